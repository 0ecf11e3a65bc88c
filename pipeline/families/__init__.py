"""Layer 4, the other model families of the reference set, one subpackage each (SF2F, the self-supervised GAN,
SCLDM), with their code and ``nn.Module``s.

A family imports layers 0-3, never ``pipeline.arspm`` or another family; ``pipeline.evaluation`` compares them.
Nothing is imported here.
"""
