"""SCLDM's parts: latent sizes, the residual-prior arithmetic, the schedulers' settings, the training target,
guidance, condition dropout, the moving average and deterministic DDIM."""
from __future__ import annotations

import pytest
import torch

from pipeline.families.scldm.modules import (
    Denoiser,
    build_autoencoder,
    check_latent_size,
    ddim_sample,
    drop_conditions,
    from_residual,
    guide,
    latent_side,
    prior_latent,
    sampling_scheduler,
    to_residual,
    training_scheduler,
    training_target,
)


def test_latent_sizes_of_the_demo_and_the_paper_and_a_size_that_does_not_divide() -> None:
    assert latent_side(64, 3) == 16 and latent_side(224, 4) == 28
    check_latent_size(64, 3, 16)
    with pytest.raises(ValueError, match=r"^a 12x12 latent does not divide 64-px faces through 3 blocks \(they give "
                                         r"16x16"):
        check_latent_size(64, 3, 12)
    with pytest.raises(ValueError, match=r"^an autoencoder of 4 blocks downsamples by 8, which does not divide the "
                                         r"36-px faces"):
        latent_side(36, 4)


def test_the_autoencoder_makes_latents_of_the_promised_shape() -> None:
    torch.manual_seed(0)
    ae = build_autoencoder(32, [4, 8, 8], 4).eval()
    with torch.no_grad():
        posterior = ae.encode(torch.rand(2, 3, 32, 32) * 2 - 1).latent_dist
        assert posterior.mean.shape == (2, 4, 8, 8)
        assert ae.decode(posterior.mean).sample.shape == (2, 3, 32, 32)


@pytest.mark.slow
def test_the_paper_autoencoder_is_ldms_kl_f8_and_makes_28x28_latents_of_224_px_faces(repo_root) -> None:
    """configs/paper.yaml's autoencoder at full size: LDM's KL-f8 (Stable Diffusion's VAE has 83,653,863
    parameters), 224 px in, 4x28x28 out. The paper smoke run (tests/stages/test_paper_smoke.py) runs SCLDM's stages
    with these blocks at a quarter of the widths, where this one encode takes seconds."""
    import yaml

    from pipeline.families.scldm.autoencoder import build_autoencoder_from, latent_shape

    section = yaml.safe_load((repo_root / "configs" / "paper.yaml").read_text(encoding="utf-8"))["scldm_autoencoder"]
    config = {"image_size": 224, **{k: section[k] for k in ("widths", "latent_channels", "layers_per_block")}}
    torch.manual_seed(0)
    ae = build_autoencoder_from(config).eval()
    assert sum(p.numel() for p in ae.parameters()) == 83_653_863
    assert latent_shape(config) == [4, 28, 28] == [4, section["latent_size"], section["latent_size"]]
    with torch.no_grad():
        assert ae.encode(torch.zeros(1, 3, 224, 224)).latent_dist.mean.shape == (1, 4, 28, 28)


def test_the_residual_prior_arithmetic() -> None:
    z = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    prior = torch.randn(2, 4, 4, dtype=torch.float64)
    r = to_residual(z, prior)
    assert torch.equal(r[3], z[3] - prior)  # the model learns z - z_prior ...
    assert torch.allclose(from_residual(r, prior), z)  # ... and decodes its sample + z_prior
    # the prior: the mean latent, or with the priors stage's weights (each speaker once) the weighted mean
    assert torch.allclose(prior_latent(z), z.mean(0))
    w = torch.tensor([0.5, 0.5, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(prior_latent(z, w), ((z[0] + z[1]) / 2 + z[2]) / 2)
    # the residual of the prior's own faces averages to zero
    assert torch.allclose(prior_latent(to_residual(z, prior_latent(z, w)), w), torch.zeros(2, 4, 4,
                                                                                            dtype=torch.float64))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_schedulers_clip_nothing_and_keep_the_prediction_type(prediction: str) -> None:
    ddpm = training_scheduler(1000, prediction)
    assert ddpm.config.clip_sample is False and ddpm.config.prediction_type == prediction
    ddim = sampling_scheduler(ddpm.config, 25)
    assert ddim.config.clip_sample is False and ddim.config.prediction_type == prediction
    assert len(ddim.timesteps) == 25 and int(ddim.timesteps[0]) == 999
    assert torch.allclose(ddim.alphas_cumprod, ddpm.alphas_cumprod)
    # a latent far outside [-1, 1] is not clipped by a DDIM step
    x = torch.full((1, 1, 2, 2), 5.0)
    out = ddim.step(torch.zeros_like(x), ddim.timesteps[-1], x).prev_sample
    assert float(out.abs().max()) > 1.5
    with pytest.raises(ValueError, match="prediction type 'sample' is not one of epsilon, v_prediction"):
        training_scheduler(1000, "sample")
    with pytest.raises(ValueError, match="at least 1 sampling step, got 0"):
        sampling_scheduler(ddpm.config, 0)


def test_the_training_target_is_the_noise_or_the_velocity() -> None:
    x0, noise, t = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4), torch.tensor([10, 500, 990])
    assert torch.equal(training_target(training_scheduler(1000, "epsilon"), x0, noise, t), noise)
    v_sched = training_scheduler(1000, "v_prediction")
    a = v_sched.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
    s = (1 - v_sched.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
    assert torch.allclose(training_target(v_sched, x0, noise, t), a * noise - s * x0, atol=1e-6)


def test_guidance_and_condition_dropout() -> None:
    u, c = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.equal(guide(u, c, 0.0), u) and torch.equal(guide(u, c, 1.0), c)
    assert torch.equal(guide(u, c, 3.0), 3 * c)
    cond = torch.randn(1000, 4)
    assert torch.equal(drop_conditions(cond, 0.0, torch.Generator().manual_seed(0)), cond)
    dropped = drop_conditions(cond, 0.25, torch.Generator().manual_seed(0))
    zero = (dropped == 0).all(dim=1)
    assert 0.2 < float(zero.float().mean()) < 0.3 and torch.equal(dropped[~zero], cond[~zero])


def test_ddim_sampling_is_deterministic_and_refuses_a_negative_guidance_scale() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    den = Denoiser(8, 2, [8, 8], 4, attention=False).eval()
    config = training_scheduler(1000, "v_prediction").config
    c, start = torch.randn(3, 4), torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    first = ddim_sample(den, config, c, start, 4, 2.0)
    assert first.shape == (3, 2, 8, 8) and torch.equal(first, ddim_sample(den, config, c, start, 4, 2.0))
    # guidance 1 is the conditional prediction alone; row i does not depend on the other rows
    one = ddim_sample(den, config, c, start, 4, 1.0)
    assert torch.allclose(ddim_sample(den, config, c[:1], start[:1], 4, 1.0), one[:1], atol=1e-5)
    with pytest.raises(ValueError, match="guidance scale is -0.5; it must be 0 or more"):
        ddim_sample(den, config, c, start, 4, -0.5)
