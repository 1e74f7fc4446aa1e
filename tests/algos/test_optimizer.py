"""One fused AdamW over all named parameter groups steps exactly as one optimizer per name would."""

from __future__ import annotations

import pytest
import torch

from seqrl.training.setup import build_optimizer, params_by_name

from .conftest import make_algorithm


def train_steps(algorithm, dataset, optimizers: list[torch.optim.Optimizer], steps: int) -> None:
    sampler = algorithm.make_sampler(dataset, seed=0)
    for step in range(steps):
        torch.manual_seed(100 + step)  # the same exploration noise on both sides
        batch = {k: torch.from_numpy(v) for k, v in sampler.sample(step).items()}
        sum(algorithm(batch, step).losses().values()).backward()
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        algorithm.after_step(step)


@pytest.mark.parametrize("name", ["cql", "iql", "bcq", "td3bc"])
def test_one_optimizer_matches_one_optimizer_per_name(name, bandit_dataset):
    config = {"batch_size": 32, "actor_hidden_sizes": [16], "critic_hidden_sizes": [16]}
    if name == "bcq":
        config["vae_hidden_sizes"] = [16]
    torch.manual_seed(0)
    merged = make_algorithm(name, bandit_dataset, **config)
    torch.manual_seed(0)
    separate = make_algorithm(name, bandit_dataset, **config)

    initial = {key: value.clone() for key, value in merged.state_dict().items()}
    optimizer, _ = build_optimizer(merged, merged.config)
    per_name = [torch.optim.AdamW(groups, lr=separate.config.learning_rate, weight_decay=separate.config.weight_decay,
                                  fused=True) for groups in separate.optimizer_groups().values()]
    train_steps(merged, bandit_dataset, [optimizer], steps=4)
    train_steps(separate, bandit_dataset, per_name, steps=4)

    separate_state = separate.state_dict()
    for key, value in merged.state_dict().items():
        torch.testing.assert_close(value, separate_state[key], rtol=0, atol=0, msg=key)
    assert any(not torch.equal(value, initial[key]) for key, value in merged.state_dict().items())


def test_named_groups_keep_their_learning_rates(bandit_dataset):
    algorithm = make_algorithm("cql", bandit_dataset, actor_learning_rate=1e-4, learning_rate=3e-4,
                               alpha_learning_rate=5e-5, weight_decay=0.01, lagrange=True)
    optimizer, _ = build_optimizer(algorithm, algorithm.config)
    settings = {g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert settings == {"actor": (1e-4, 0.01), "critic": (3e-4, 0.01), "alpha": (5e-5, 0.0),
                        "alpha_prime": (algorithm.config.alpha_prime_learning_rate, 0.0)}
    named = params_by_name(optimizer)
    trainable = [p for p in algorithm.parameters() if p.requires_grad]
    assert sorted(map(id, trainable)) == sorted(id(p) for params in named.values() for p in params)
    assert {id(p) for p in named["critic"]} == {id(p) for p in algorithm.critic.parameters()}
