"""The interface every family ends in: spectrogram shape checks, checkpoint family/size checks, uint8 faces."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.faces.generator import SPEC_SHAPE, FaceGenerator, GeneratorError, check_family, check_specs, to_uint8


class Grey(FaceGenerator):
    family, image_size, description = "grey", 8, "a grey square"
    device = torch.device("cpu")

    def __init__(self, value: float = 0.5):
        self.layer = torch.nn.Linear(2, 3)
        self.modules = (self.layer, self.layer)  # a shared module is counted once
        self.value = value

    def faces(self, specs: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return torch.full((specs.shape[0], 3, 8, 8), self.value)


def test_one_spectrogram_or_a_batch() -> None:
    assert tuple(check_specs(np.zeros(SPEC_SHAPE, np.float16)).shape) == (1, *SPEC_SHAPE)
    assert check_specs(torch.zeros(3, *SPEC_SHAPE, dtype=torch.float16)).dtype == torch.float32
    faces = Grey().generate(np.zeros((5, *SPEC_SHAPE), np.float32), batch_size=2)
    assert faces.shape == (5, 8, 8, 3) and faces.dtype == np.uint8 and (faces == 128).all()


@pytest.mark.parametrize("shape", [(2, 257, 300), (257, 598), (1, 1, 2, 257, 598), (2, 2, 128, 598)])
def test_a_wrong_shape_is_one_sentence_naming_both(shape: tuple[int, ...]) -> None:
    with pytest.raises(GeneratorError) as info:
        check_specs(np.zeros(shape, np.float32))
    message = str(info.value)
    assert str(tuple(shape)) in message and str(SPEC_SHAPE) in message and "\n" not in message


def test_non_finite_spectrograms_and_faces_are_refused() -> None:
    spec = np.zeros(SPEC_SHAPE, np.float32)
    spec[0, 0, 0] = np.nan
    with pytest.raises(GeneratorError, match="NaN or infinite"):
        check_specs(spec)
    with pytest.raises(GeneratorError, match="non-finite image"):
        Grey(float("nan")).generate(np.zeros(SPEC_SHAPE, np.float32))


def test_checkpoint_family_and_size() -> None:
    check_family({"family": "sf2f", "image_size": 64}, "x.pt", "sf2f", 64)
    with pytest.raises(GeneratorError, match=r"x.pt is a arspm checkpoint, but the sf2f family was asked for"):
        check_family({"family": "arspm"}, "x.pt", "sf2f")
    with pytest.raises(GeneratorError, match=r"not a model family's checkpoint \(arch 'vggface'\)"):
        check_family({"arch": "vggface"}, "x.pt", "sf2f")
    with pytest.raises(GeneratorError, match=r"of 128-px faces, but 64-px faces are needed"):
        check_family({"family": "sf2f", "image_size": 128}, "x.pt", "sf2f", 64)


def test_uint8_clips_and_rounds() -> None:
    images = torch.tensor([-0.5, 0.0, 0.5, 1.0, 2.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(images)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]
    assert Grey().parameter_count() == 9
