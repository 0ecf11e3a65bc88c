"""The diffusion family: SCLDM, *Realistic Speech-to-Face Generation with Speech-Conditioned Latent Diffusion Model
with Face Prior* (Wang, Liu, Wang, Cheng 2023), rebuilt from its abstract (no public code exists).

Four stages: ``contrastive`` (``pipeline.families.contrastive``, used as is: the paper's contrastive pretraining of
the speech and face encoders), ``scldm_autoencoder`` (a diffusers ``AutoencoderKL`` for faces), ``scldm_train``
(a diffusers U-Net over the autoencoder's latents, conditioned on the frozen contrastive speech embedding, trained
with DDPM on the latent *minus the face prior's latent*: the prior is a residual) and ``scldm_sample`` (DDIM steps,
classifier-free guidance and seed: the sampler the comparison and the page use).

- ``modules``: the autoencoder and the denoiser builders, the schedulers, the residual-prior arithmetic, the
  training target, classifier-free guidance and the weights' moving average; pure functions and ``nn.Module``s.
- ``model``: the two checkpoints (autoencoder; diffusion, which carries a copy of the autoencoder and of the frozen
  encoders) and the sampler's settings file.
- ``train``: the two training stages; ``sample``: DDIM sampling; ``generator``: the family's ``FaceGenerator``.
"""
