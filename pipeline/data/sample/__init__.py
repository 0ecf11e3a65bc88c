"""The embedded default dataset (docs/design.md, The embedded sample): synthetic speakers whose voices follow their faces.

``pipeline.data.sample.generate.generate_sample(out_dir, SampleConfig(...))`` writes MP4 clips, an AVSpeech-format CSV
and a labels CSV; ``pipeline.data.sample.corpus`` draws the face corpus. Nothing is imported here, so that a stage using
one module does not run (and depend on) the others.
"""
