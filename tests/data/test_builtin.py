"""The built-in datasets: ordered quality levels and reference scores, idempotent and race-safe generation."""

from __future__ import annotations

import numpy as np
import pytest

from seqrl.data import builtin as builtin_module
from seqrl.data.builtin import BUILTIN_DATASETS, BuiltinRecipe, QualityLevel, generate_builtin
from seqrl.data.collect import CollectError


@pytest.fixture(scope="module")
def cartpole_builtin(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        yield generate_builtin("seqrl/cartpole/mixed-v0")


def _level_returns(dataset, counts):
    returns = np.array([episode.rewards.sum() for episode in dataset.iterate_episodes()])
    bounds = np.cumsum([0, *counts])
    return [returns[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def test_cartpole_builtin_has_three_ordered_quality_levels_and_ref_scores(cartpole_builtin):
    recipe = builtin_module.BUILTIN_RECIPES["seqrl/cartpole/mixed-v0"]
    random, medium, expert = _level_returns(cartpole_builtin, [q.episodes for q in recipe.levels])
    assert random.mean() < 40 < medium.mean() < 400 < expert.mean()
    assert medium.min() < 100 and medium.max() == 500  # the medium block spans the range
    metadata = cartpole_builtin.storage.metadata
    assert metadata["ref_min_score"] < 40 and metadata["ref_max_score"] == 500.0
    assert "seqrl/cartpole/mixed-v0" in BUILTIN_DATASETS and "CartPole-v1" in BUILTIN_DATASETS["seqrl/cartpole/mixed-v0"]


def test_builtin_generation_is_idempotent(cartpole_builtin, monkeypatch):
    monkeypatch.setattr(builtin_module, "collect", lambda *a, **k: pytest.fail("an existing built-in was regenerated"))
    again = generate_builtin("seqrl/cartpole/mixed-v0")
    assert again.total_steps == cartpole_builtin.total_steps


def test_builtin_generation_loads_the_winner_of_a_race(minari_root, monkeypatch):
    tiny = BuiltinRecipe("CartPole-v1", (QualityLevel("random", "random", 0.0, 2),), ref_episodes=2)
    monkeypatch.setitem(builtin_module.BUILTIN_RECIPES, "seqrl/tiny-v0", tiny)
    real_write = builtin_module.write_minari

    def another_process_wins(dataset_id, buffers, env_id, **kwargs):
        real_write(dataset_id, buffers[:1], env_id)  # the other process's dataset has one episode
        return real_write(dataset_id, buffers, env_id, **kwargs)

    monkeypatch.setattr(builtin_module, "write_minari", another_process_wins)
    assert generate_builtin("seqrl/tiny-v0").total_episodes == 1
    with pytest.raises(CollectError, match="Unknown built-in dataset 'seqrl/nope-v0'.*seqrl/pendulum/mixed-v0"):
        generate_builtin("seqrl/nope-v0")


@pytest.mark.slow
def test_pendulum_builtin_has_three_ordered_quality_levels_and_ref_scores(minari_root):
    dataset = generate_builtin("seqrl/pendulum/mixed-v0")
    recipe = builtin_module.BUILTIN_RECIPES["seqrl/pendulum/mixed-v0"]
    random, medium, expert = _level_returns(dataset, [q.episodes for q in recipe.levels])
    assert random.mean() < -1000 < medium.mean() < -400 < expert.mean()
    metadata = dataset.storage.metadata
    assert metadata["ref_min_score"] < -1000 and -250 < metadata["ref_max_score"] < -100
