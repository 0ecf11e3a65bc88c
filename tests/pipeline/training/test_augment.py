"""Training-time augmentations: time masks and circular time shifts of spectrograms, image shifts."""
from __future__ import annotations

import torch

from pipeline.training.augment import mask_and_roll_time, random_shift


def _specs() -> torch.Tensor:
    return torch.randn(4, 2, 5, 50, generator=torch.Generator().manual_seed(0))


def test_roll_is_a_circular_shift_of_each_sample():
    specs = _specs()
    out = mask_and_roll_time(specs, masks=0, max_frames=0, roll=True, generator=torch.Generator().manual_seed(1))
    assert out.shape == specs.shape
    shifts = []
    for i in range(len(specs)):
        matches = [s for s in range(50) if torch.equal(out[i], torch.roll(specs[i], s, dims=-1))]
        assert len(matches) == 1
        shifts += matches
    assert len(set(shifts)) > 1  # each sample gets its own shift


def test_time_masks_zero_whole_frames_within_the_limit():
    specs = _specs() + 10.0  # no zeros before masking
    out = mask_and_roll_time(specs, masks=2, max_frames=7, roll=False, generator=torch.Generator().manual_seed(2))
    masked = (out == 0).all(dim=(1, 2))  # (B, T): frames zero in every channel and bin
    assert torch.equal(out == 0, masked[:, None, None, :].expand_as(out))  # masks take whole frames
    assert masked.any() and (masked.sum(1) <= 2 * 7).all()
    assert torch.equal(out[~masked[:, None, None, :].expand_as(out)], specs[~masked[:, None, None, :].expand_as(out)])


def test_off_is_identity_and_input_is_kept():
    specs = _specs()
    before = specs.clone()
    assert torch.equal(mask_and_roll_time(specs, 0, 60, False, torch.Generator()), specs)
    mask_and_roll_time(specs, 2, 10, True, torch.Generator().manual_seed(3))
    assert torch.equal(specs, before)


def test_same_seed_same_augmentation():
    specs = _specs()
    a = mask_and_roll_time(specs, 2, 10, True, torch.Generator().manual_seed(4))
    b = mask_and_roll_time(specs, 2, 10, True, torch.Generator().manual_seed(4))
    c = mask_and_roll_time(specs, 2, 10, True, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_shift_keeps_shape():
    images = torch.rand(3, 3, 16, 16)
    assert random_shift(images, 2, torch.Generator().manual_seed(0)).shape == images.shape


def test_speech_encoder_augmenter_follows_params_and_epochs():
    from types import SimpleNamespace

    from pipeline.arspm.train_encoder import spec_augmenter

    specs = _specs()
    dataset = SimpleNamespace(epoch=0)
    off = spec_augmenter({"seed": 0, "time_masks": 0, "time_mask_frames": 60, "time_roll": False}, dataset)
    assert off(specs) is specs
    params = {"seed": 0, "time_masks": 2, "time_mask_frames": 10, "time_roll": True}
    first, again = spec_augmenter(params, dataset), spec_augmenter(params, dataset)
    epoch0 = first(specs)
    assert not torch.equal(epoch0, specs) and torch.equal(again(specs), epoch0)  # seeded: a resumed run repeats it
    dataset.epoch = 1
    assert not torch.equal(first(specs), epoch0)  # a new epoch draws new masks and shifts


def test_negative_time_mask_settings_are_one_sentence():
    from types import SimpleNamespace

    import pytest

    from pipeline.arspm.train_encoder import spec_augmenter
    from pipeline.common.errors import TrainingError

    with pytest.raises(TrainingError, match="time_masks and time_mask_frames must be 0"):
        spec_augmenter({"seed": 0, "time_masks": -1, "time_mask_frames": 60, "time_roll": True},
                       SimpleNamespace(epoch=0))
