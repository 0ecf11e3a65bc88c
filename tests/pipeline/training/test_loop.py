"""The one training loop with a critic (a GAN's discriminators) and a step budget: the critic trains after every
step of the model on what that step left in the batch, takes no gradient from the model's loss, stops at
``steps``, and resumes both networks from the resume state."""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.testing.shards import write_dummy_shards
from pipeline.training.loop import Critic, fit, planned_epochs, resume_path_for

PARAMS = {"batch_size": 2, "lr": 0.01, "beta1": 0.5, "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1, "seed": 0,
          "steps": 5}


def _gan(tmp_path: Path):
    from pipeline.data.datasets import SplitDataset

    write_dummy_shards(tmp_path / "shards", "train", n_samples=6, per_shard=3)
    dataset = SplitDataset(tmp_path / "shards", "train", fields=("face", "meta"), shuffle=True, seed=0)
    torch.manual_seed(0)
    generator = torch.nn.Linear(3, 3)
    critic_net = torch.nn.Linear(3, 1)
    seen = {"critic_steps": 0, "critic_grad_during_g": []}

    def step(batch, net):
        mean = batch["face"].mean(dim=(2, 3))
        fake = net(mean)
        seen["critic_grad_during_g"].append(any(p.requires_grad for p in critic_net.parameters()))
        batch["fake"] = fake.detach()
        loss = -critic_net(fake).mean() + (fake - mean).abs().mean()
        return loss, {"l1": float((fake - mean).abs().mean().detach())}

    def critic_step(batch, net):
        seen["critic_steps"] += 1
        return net(batch["fake"]).mean() - net(batch["face"].mean(dim=(2, 3))).mean(), {"gap": 0.0}

    return dataset, generator, Critic(critic_net, critic_step, dict(PARAMS)), step, seen


def test_critic_trains_in_turn_and_steps_bound_the_run(tmp_path: Path) -> None:
    dataset, generator, critic, step, seen = _gan(tmp_path)
    assert planned_epochs(PARAMS, dataset) == (2, 5)  # 6 samples at batch 2: 3 steps an epoch
    before = critic.model.weight.detach().clone()
    history = fit(generator, dataset, step, PARAMS, tmp_path / "g.pt", tmp_path / "plots", "x", "gan",
                  critic=critic)
    assert seen["critic_steps"] == 5 and history[-1]["steps"] == 5
    assert not any(seen["critic_grad_during_g"])
    assert not torch.equal(before, critic.model.weight)
    assert {"d_loss", "d_gap", "l1"} <= set(history[-1])
    assert resume_path_for(tmp_path / "g.pt").is_file()


def test_resume_restores_the_critic(tmp_path: Path) -> None:
    dataset, generator, critic, step, _ = _gan(tmp_path)
    fit(generator, dataset, step, {**PARAMS, "steps": 3}, tmp_path / "g.pt", tmp_path / "plots", "x", "gan",
        critic=critic)
    trained = critic.model.weight.detach().clone()
    dataset, generator2, critic2, step2, seen2 = _gan(tmp_path / "again")
    fit(generator2, dataset, step2, {**PARAMS, "steps": 3}, tmp_path / "g.pt", tmp_path / "plots", "x", "gan",
        critic=critic2)
    assert seen2["critic_steps"] == 0  # everything was done: resumed at the end
    assert torch.equal(critic2.model.weight, trained)
