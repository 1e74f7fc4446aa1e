"""The online replay buffers: whole episodes in the dataset schema, read by the offline samplers."""

from __future__ import annotations

import numpy as np
import pytest

from seqrl.data.samplers import TrajectorySampler, TransitionSampler
from seqrl.online.buffer import EpisodeStore, MixedSampler, ReplayBufferError, best_episodes

from ..algos.conftest import transition_dataset

OBS_DIM, ACT_DIM = 2, 1


def template() -> dict[str, np.ndarray]:
    return {"episode_index": np.zeros(1, np.int64), "timestep": np.zeros(1, np.int64),
            "observations": np.zeros((1, OBS_DIM), np.float32), "actions": np.zeros((1, ACT_DIM), np.float32),
            "rewards": np.zeros(1, np.float32), "terminations": np.zeros(1, bool), "truncations": np.zeros(1, bool),
            "next_observations": np.zeros((1, OBS_DIM), np.float32)}


def episode(rewards, tag: float = 0.0, terminal: bool = True) -> dict[str, np.ndarray]:
    """An episode whose observations all hold ``tag`` (to recognise its rows later)."""
    length = len(rewards)
    end = np.zeros(length, bool)
    end[-1] = True
    return {"observations": np.full((length, OBS_DIM), tag, np.float32), "actions": np.zeros((length, ACT_DIM), np.float32),
            "rewards": np.asarray(rewards, np.float32), "terminations": end & terminal, "truncations": end & (not terminal),
            "next_observations": np.full((length, OBS_DIM), tag, np.float32)}


def test_hindsight_returns_to_go_are_the_rewards_obtained():
    """Whatever target the rollout was conditioned on, the windows carry R_t = sum of the rewards from t on."""
    rewards = [1.0, -2.0, 0.5, 4.0, 3.0]
    store = EpisodeStore(template())
    store.add(episode(rewards))
    sampler = TrajectorySampler(store.columns(), context_len=5, batch_size=1, return_scale=0.1)
    window = sampler.windows(np.array([0]))
    expected = np.cumsum(rewards[::-1])[::-1] * 0.1  # [6.5, 5.5, 7.5, 7.0, 3.0] * 0.1
    np.testing.assert_allclose(window["returns_to_go"][0, :, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(window["timesteps"][0], np.arange(5))
    # A later window starts mid-episode and still sees the episode's own remaining return.
    np.testing.assert_allclose(sampler.windows(np.array([3]))["returns_to_go"][0, -2:, 0], [0.7, 0.3], rtol=1e-6)


def test_trajectory_buffer_replaces_the_oldest_episodes():
    store = EpisodeStore(template(), max_episodes=3)
    for tag in range(5):
        store.add(episode([1.0] * (tag + 2), tag=float(tag)))
    kept = np.unique(store.columns()["observations"][:, 0])
    np.testing.assert_array_equal(kept, [2.0, 3.0, 4.0])  # episodes 0 and 1, the oldest, left first
    assert store.num_episodes == 3 and store.dropped_episodes == 2
    assert store.num_rows == 4 + 5 + 6
    np.testing.assert_array_equal(store.episode_returns(), [4.0, 5.0, 6.0])
    # Rows stay contiguous per episode with increasing indices, so a sampler reads them as a dataset.
    sampler = TrajectorySampler(store.columns(), context_len=2, batch_size=8, return_scale=1.0)
    np.testing.assert_array_equal(sampler.episode_lengths, [4, 5, 6])


def test_transition_buffer_drops_oldest_beyond_its_size():
    store = EpisodeStore(template(), max_rows=10)
    for tag in range(4):
        store.add(episode([0.0] * 4, tag=float(tag)))  # 16 rows offered, 10 allowed: two episodes stay
    np.testing.assert_array_equal(np.unique(store.columns()["observations"][:, 0]), [2.0, 3.0])
    with pytest.raises(ReplayBufferError, match="buffer_size"):
        store.add(episode([0.0] * 11))


def test_seed_is_the_best_offline_episodes_lowest_first():
    """ODT's buffer starts with the top-K offline episodes by return; the weakest of them leaves first."""
    store = EpisodeStore(template())
    for tag, rewards in enumerate([[5.0], [1.0, 1.0], [9.0], [0.0, 0.0, 0.0]]):
        store.add(episode(rewards, tag=float(tag)))
    best = best_episodes(store.columns(), 2)
    np.testing.assert_array_equal(best["observations"][:, 0], [0.0, 2.0])  # returns 5 then 9
    seeded = EpisodeStore(template(), max_episodes=2)
    seeded.extend(best)
    seeded.add(episode([7.0], tag=10.0))
    np.testing.assert_array_equal(seeded.columns()["observations"][:, 0], [2.0, 10.0])


def test_mixed_sampler_draws_the_stated_ratio():
    offline = transition_dataset(np.full((100, OBS_DIM), -1.0), np.zeros((100, 1)), np.zeros(100))
    store = EpisodeStore(template())
    store.add(episode([0.0] * 50, tag=1.0))
    for ratio in (0.5, 0.25):
        mixed = MixedSampler([TransitionSampler(offline, batch_size=1), TransitionSampler(store.columns(), batch_size=1)],
                             [1 - ratio, ratio], batch_size=64)
        batches = [mixed.sample(step) for step in range(20)]
        online_share = np.mean([np.mean(b["observations"][:, 0] == 1.0) for b in batches])
        assert online_share == pytest.approx(ratio)  # exact: the shares are fixed counts per batch
        assert all(len(b["rewards"]) == 64 for b in batches)
        # Same step, same batch (stateless seeding); the online part is not a copy of the offline rows.
        np.testing.assert_array_equal(mixed.sample(3)["observations"], batches[3]["observations"])


def test_monte_carlo_returns_for_calql():
    store = EpisodeStore(template())
    store.add(episode([1.0, 2.0, 4.0]))
    store.add(episode([3.0], tag=1.0))
    sampler = TransitionSampler(store.columns(), batch_size=4, gamma=0.5, reward_scale=2.0, mc_returns=True)
    batch = sampler.transitions(np.array([0, 1, 2, 3]))
    # G_0 = 1 + 0.5*2 + 0.25*4 = 3, G_1 = 2 + 0.5*4 = 4, G_2 = 4, G_3 = 3 (its own episode); times 2.
    np.testing.assert_allclose(batch["mc_returns"], [6.0, 8.0, 8.0, 6.0])


def test_episode_of_wrong_shape_is_refused():
    store = EpisodeStore(template())
    bad = episode([1.0])
    bad["observations"] = np.zeros((1, OBS_DIM + 1), np.float32)
    with pytest.raises(ReplayBufferError, match="observations"):
        store.add(bad)
