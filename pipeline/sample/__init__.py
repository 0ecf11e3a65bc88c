"""The embedded default dataset (docs/design.md, The embedded sample): synthetic speakers whose voices follow their faces.

``generate_sample(out_dir, SampleConfig(...))`` writes MP4 clips, an AVSpeech-format CSV and a labels CSV.
"""
from pipeline.sample.generate import SampleConfig, SampleConfigError, SampleSummary, generate_sample

__all__ = ["SampleConfig", "SampleConfigError", "SampleSummary", "generate_sample"]
