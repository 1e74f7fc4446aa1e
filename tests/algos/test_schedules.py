"""The loop's learning-rate schedules per named parameter group, IQL's actor decay, and metric averaging."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator

from seqrl.algos.base import AlgoConfig
from seqrl.data.schema import get_metadata
from seqrl.registry import get
from seqrl.training.loop import accumulate, reduce_logs
from seqrl.training.setup import build_optimizer, build_schedule


def factors(optimizer, scheduler, steps: int) -> list[list[float]]:
    """Each group's learning rate (base 1.0) at steps 0 .. steps - 1."""
    rates = []
    for _ in range(steps):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return rates


def test_each_group_follows_its_own_schedule_then_the_base_rate_past_the_end():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    optimizer = torch.optim.SGD([{"params": [params[0]]},  # the run's schedule: cosine to 0.1
                                 {"params": [params[1]], "lr_schedule": "linear"},
                                 {"params": [params[2]], "lr_schedule": "constant"}], lr=1.0)
    cfg = AlgoConfig(warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    rates = factors(optimizer, build_schedule(optimizer, cfg, total_steps=110), 130)
    cosine, linear, constant = zip(*rates)
    for shape in (cosine, linear, constant):  # the same linear warm-up from 0
        assert shape[0] == 0.0 and shape[5] == pytest.approx(0.5) and shape[10] == pytest.approx(1.0)
    assert cosine[60] == pytest.approx(0.55) and cosine[109] == pytest.approx(0.1, abs=1e-3)
    assert linear[60] == pytest.approx(0.5) and linear[109] == pytest.approx(0.01)
    assert set(constant[10:]) == {1.0}
    # Past the offline steps (an online phase) every group is back at its base rate.
    assert cosine[110:] == linear[110:] == constant[110:] == (1.0,) * 20


def test_iql_actor_decays_to_zero_with_a_cosine_as_its_reference(bandit_dataset):
    entry = get("iql")
    algorithm = entry.algorithm(entry.algorithm.config_class(), get_metadata(bandit_dataset))
    optimizer, scheduler = build_optimizer(algorithm, algorithm.config, total_steps=100)
    base = {group["name"]: group["initial_lr"] for group in optimizer.param_groups}
    rates = []
    for _ in range(100):
        rates.append({group["name"]: group["lr"] / base[group["name"]] for group in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    assert rates[0]["actor"] == 1.0 and rates[50]["actor"] == pytest.approx(0.5, abs=0.02)
    assert rates[-1]["actor"] == pytest.approx(0.0, abs=1e-3)
    assert all(r["critic"] == r["value"] == 1.0 for r in rates)  # the critics keep their rate
    assert algorithm.config.actor_lr_schedule == "cosine"


def test_a_metric_reported_on_some_steps_is_averaged_over_those_steps():
    running = {}
    for step in range(6):
        metrics = {"critic_loss": torch.tensor(float(step))}
        if step % 2 == 0:  # a delayed actor: steps 0, 2, 4
            metrics["actor_loss"] = torch.tensor(10.0 * step)
        accumulate(running, metrics)
    logs = reduce_logs(Accelerator(cpu=True), running)
    assert logs == {"train/critic_loss": pytest.approx(2.5), "train/actor_loss": pytest.approx(20.0)}
