"""TrajectorySampler / TransitionSampler on hand-made episodes with known answers."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest

from seqrl.data import columns
from seqrl.data.samplers import SamplerConfigError, TrajectorySampler, TransitionSampler

# Three episodes: rows 0-2 (terminated), rows 3-7 (truncated), rows 8-9 (terminated).
REWARDS = [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0], [0.5, 4.0]]
TERMINATED = [True, False, True]


def make_dataset(rewards_per_episode=REWARDS, terminated=TERMINATED, discrete=False) -> datasets.Dataset:
    """Row ``r`` has observation ``[r, -r]``, next observation ``[r + 0.5, -r - 0.5]`` and action
    ``[r, 2r, 3r]`` (Box) or ``r % 3`` (Discrete), so every gathered value names its row."""
    lengths = [len(rewards) for rewards in rewards_per_episode]
    rows = np.arange(sum(lengths), dtype=np.float32)
    last = np.cumsum(lengths) - 1
    terminations = np.zeros(len(rows), dtype=bool)
    truncations = np.zeros(len(rows), dtype=bool)
    terminations[last[np.array(terminated)]] = True
    truncations[last[~np.array(terminated)]] = True
    vector = lambda n: datasets.List(datasets.Value("float32"), length=n)  # noqa: E731
    features = datasets.Features({
        "episode_index": datasets.Value("int64"), "timestep": datasets.Value("int64"),
        "observations": vector(2), "actions": datasets.Value("int64") if discrete else vector(3),
        "rewards": datasets.Value("float32"), "terminations": datasets.Value("bool"),
        "truncations": datasets.Value("bool"), "next_observations": vector(2),
    })
    return datasets.Dataset.from_dict({
        "episode_index": np.repeat(np.arange(len(lengths)), lengths),
        "timestep": np.concatenate([np.arange(n) for n in lengths]),
        "observations": np.stack([rows, -rows], axis=1),
        "actions": (rows.astype(np.int64) % 3) if discrete else np.stack([rows, 2 * rows, 3 * rows], axis=1),
        "rewards": np.concatenate(rewards_per_episode).astype(np.float32),
        "terminations": terminations, "truncations": truncations,
        "next_observations": np.stack([rows + 0.5, -rows - 0.5], axis=1),
    }, features=features)


def random_dataset(num_episodes=60, seed=0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    rewards = [rng.normal(size=n).astype(np.float32).tolist() for n in rng.integers(20, 80, size=num_episodes)]
    return make_dataset(rewards, list(rng.random(num_episodes) < 0.5))


def test_windows_returns_to_go_left_padding_mask_and_timesteps_exact():
    sampler = TrajectorySampler(make_dataset(), context_len=4, batch_size=1, return_scale=0.5)
    batch = sampler.windows(np.array([0, 3, 4, 9, 7]))
    # Returns-to-go per episode: [6, 5, 3], [5, 4, 3, 2, 1], [4.5, 4]; windows cut by the end are left-padded.
    expected_rtg = 0.5 * np.array([[0, 6, 5, 3], [5, 4, 3, 2], [4, 3, 2, 1], [0, 0, 0, 4], [0, 0, 0, 1]])
    np.testing.assert_array_equal(batch["returns_to_go"], expected_rtg[..., None].astype(np.float32))
    np.testing.assert_array_equal(
        batch["attention_mask"], [[0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(
        batch["timesteps"], [[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [0, 0, 0, 1], [0, 0, 0, 4]])
    np.testing.assert_array_equal(batch["states"][:, :, 0], [[0, 0, 1, 2], [3, 4, 5, 6], [4, 5, 6, 7],
                                                             [0, 0, 0, 9], [0, 0, 0, 7]])
    np.testing.assert_array_equal(batch["actions"][0], [[0, 0, 0], [0, 0, 0], [1, 2, 3], [2, 4, 6]])
    assert batch["states"].dtype == np.float32 and batch["states"].shape == (5, 4, 2)
    assert batch["actions"].dtype == np.float32 and batch["actions"].shape == (5, 4, 3)
    assert batch["returns_to_go"].dtype == np.float32
    assert batch["timesteps"].dtype == batch["attention_mask"].dtype == np.int64


def test_states_are_normalised_and_padding_stays_zero():
    sampler = TrajectorySampler(make_dataset(), context_len=3, batch_size=1, return_scale=1.0,
                                obs_mean=[1.0, 2.0], obs_std=[2.0, 4.0])
    states = sampler.windows(np.array([8]))["states"]  # rows 8, 9 after one padding step
    expected = [[[0, 0], [(8 - 1) / 2, (-8 - 2) / 4], [(9 - 1) / 2, (-9 - 2) / 4]]]
    np.testing.assert_array_equal(states, np.array(expected, dtype=np.float32))


def test_discrete_actions_are_int64_steps():
    sampler = TrajectorySampler(make_dataset(discrete=True), context_len=4, batch_size=1, return_scale=1.0)
    actions = sampler.windows(np.array([1, 3]))["actions"]
    np.testing.assert_array_equal(actions, [[0, 0, 1, 2], [0, 1, 2, 0]])  # row % 3, padding 0
    assert actions.dtype == np.int64


def test_sample_matches_a_per_window_reference():
    dataset = random_dataset()
    rewards, episode_index = np.array(dataset["rewards"]), np.array(dataset["episode_index"])
    sampler = TrajectorySampler(dataset, context_len=20, batch_size=64, return_scale=0.01)
    batch = sampler.sample(3)
    first_real = 20 - batch["attention_mask"].sum(1)
    for b in range(64):  # the reference is a slow loop on purpose
        start = int(batch["states"][b, first_real[b], 0])
        episode_rows = np.flatnonzero(episode_index == episode_index[start])
        window = np.arange(start, min(start + 20, episode_rows[-1] + 1))
        rtg = np.array([rewards[row:episode_rows[-1] + 1].astype(np.float64).sum() for row in window])
        padding = 20 - len(window)
        np.testing.assert_allclose(batch["returns_to_go"][b, padding:, 0], 0.01 * rtg, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(batch["states"][b, padding:, 0], window)
        np.testing.assert_array_equal(batch["timesteps"][b, padding:], window - episode_rows[0])
        assert not batch["returns_to_go"][b, :padding].any() and not batch["states"][b, :padding].any()


def test_episodes_are_drawn_in_proportion_to_length_and_starts_are_uniform():
    sampler = TrajectorySampler(make_dataset(), context_len=2, batch_size=20_000, return_scale=1.0)
    np.testing.assert_allclose(sampler.episode_probabilities, [0.3, 0.5, 0.2])
    batches = [sampler.sample(step) for step in range(3)]
    first_real = 2 - np.concatenate([batch["attention_mask"].sum(1) for batch in batches])  # [60000]
    starts = np.concatenate([batch["states"][:, :, 0] for batch in batches])  # [60000, 2]
    start_rows = starts[np.arange(len(starts)), first_real]  # [60000]
    episode = np.searchsorted([0, 3, 8], start_rows, side="right") - 1
    np.testing.assert_allclose(np.bincount(episode) / len(episode), [0.3, 0.5, 0.2], atol=0.01)
    np.testing.assert_allclose(np.bincount(start_rows.astype(int), minlength=10) / len(start_rows),
                               np.full(10, 0.1), atol=0.01)  # every step equally likely


def test_samples_are_deterministic_per_seed_process_and_step():
    dataset = random_dataset()
    make = lambda **kwargs: TrajectorySampler(dataset, context_len=5, batch_size=32, return_scale=1.0,  # noqa: E731
                                              num_processes=2, **kwargs)
    first, again = make().sample(7), make().sample(7)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["states"], make().sample(8)["states"])
    assert not np.array_equal(first["states"], make(process_index=1).sample(7)["states"])
    assert not np.array_equal(first["states"], make(seed=1).sample(7)["states"])


def test_state_dict_restores_seed_and_rejects_other_settings():
    dataset = make_dataset()
    saved = TrajectorySampler(dataset, context_len=4, batch_size=8, return_scale=0.5, seed=11)
    resumed = TrajectorySampler(dataset, context_len=4, batch_size=8, return_scale=0.5)
    resumed.load_state_dict(saved.state_dict())
    np.testing.assert_array_equal(resumed.sample(5)["states"], saved.sample(5)["states"])
    other = TrajectorySampler(dataset, context_len=3, batch_size=8, return_scale=0.5)
    with pytest.raises(SamplerConfigError, match="context_len"):
        other.load_state_dict(saved.state_dict())
    transitions = TransitionSampler(dataset, batch_size=4, n_step=3)
    with pytest.raises(SamplerConfigError, match="n_step"):
        TransitionSampler(dataset, batch_size=4, n_step=1).load_state_dict(transitions.state_dict())


def test_n_step_transitions_stop_at_episode_end_and_only_terminations_are_terminal():
    sampler = TransitionSampler(make_dataset(), batch_size=1, n_step=3, gamma=0.5, reward_scale=2.0)
    batch = sampler.transitions(np.array([0, 1, 2, 3, 6, 7, 8]))
    # rows 0-2 end in a termination, rows 3-7 in a truncation, rows 8-9 in a termination.
    np.testing.assert_array_equal(batch["rewards"], 2 * np.array(
        [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 1 + 0.5 + 0.25, 1 + 0.5, 1, 0.5 + 0.5 * 4], dtype=np.float32))
    np.testing.assert_array_equal(batch["discounts"], [0.125, 0.25, 0.5, 0.125, 0.25, 0.5, 0.25])
    np.testing.assert_array_equal(batch["terminals"], [1, 1, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(batch["next_observations"][:, 0], [2.5, 2.5, 2.5, 5.5, 7.5, 7.5, 9.5])
    np.testing.assert_array_equal(batch["observations"][:, 0], [0, 1, 2, 3, 6, 7, 8])
    np.testing.assert_array_equal(batch["actions"][:, 1], [0, 2, 4, 6, 12, 14, 16])
    for key in ("rewards", "discounts", "terminals", "observations", "next_observations", "actions"):
        assert batch[key].dtype == np.float32, key


def test_one_step_transitions_and_discrete_actions():
    sampler = TransitionSampler(make_dataset(discrete=True), batch_size=1, n_step=1, gamma=0.9,
                                obs_mean=[1.0, 0.0], obs_std=[2.0, 1.0])
    batch = sampler.transitions(np.array([2, 7, 5]))
    np.testing.assert_array_equal(batch["rewards"], [3, 1, 1])
    np.testing.assert_array_equal(batch["terminals"], [1, 0, 0])  # row 7 is a truncation
    np.testing.assert_array_equal(batch["discounts"], np.full(3, 0.9, dtype=np.float32))
    np.testing.assert_array_equal(batch["observations"], [[0.5, -2], [3, -7], [2, -5]])
    np.testing.assert_array_equal(batch["next_observations"], [[0.75, -2.5], [3.25, -7.5], [2.25, -5.5]])
    np.testing.assert_array_equal(batch["actions"], [2, 1, 2])
    assert batch["actions"].dtype == np.int64 and sampler.sample(0)["rewards"].shape == (1,)


def test_memory_mapped_dataset_uses_npy_cache_and_matches_in_memory(tmp_path, monkeypatch):
    in_memory = random_dataset()
    in_memory.save_to_disk(str(tmp_path / "data"))
    loaded = datasets.load_from_disk(str(tmp_path / "data"))
    assert loaded.data.table.column("observations").num_chunks > 1  # one chunk per record batch
    for make in (lambda ds: TrajectorySampler(ds, context_len=8, batch_size=16, return_scale=0.1,
                                              obs_mean=[1.0, 2.0], obs_std=[3.0, 4.0], seed=5),
                 lambda ds: TransitionSampler(ds, batch_size=16, n_step=3, gamma=0.9, seed=5)):
        expected, mapped = make(in_memory), make(loaded)
        for step in (0, 1):
            actual, reference = mapped.sample(step), expected.sample(step)
            for key in reference:
                np.testing.assert_array_equal(actual[key], reference[key], err_msg=key)
    cache = tmp_path / "data" / columns.CACHE_FOLDER_NAME
    names = sorted(os.listdir(cache))
    assert {"observations", "actions", "terminations", "next_observations", "seqrl-returns_to_go"} <= {
        name.split("-", 1)[1].removesuffix(".npy") for name in names}
    assert not [name for name in names if name.endswith(".tmp")]
    assert isinstance(TrajectorySampler(loaded, 8, 16, 0.1).observations.base, np.memmap)
    modified = {name: os.stat(cache / name).st_mtime_ns for name in names}

    def no_writing(*args, **kwargs):
        raise AssertionError("the cache should have been reused, not written again")

    monkeypatch.setattr(columns.tempfile, "mkstemp", no_writing)
    again = TransitionSampler(datasets.load_from_disk(str(tmp_path / "data")), batch_size=16, n_step=3,
                              gamma=0.9, seed=5)
    np.testing.assert_array_equal(again.sample(1)["rewards"], expected.sample(1)["rewards"])
    assert {name: os.stat(cache / name).st_mtime_ns for name in names} == modified


def test_broken_cache_file_is_rebuilt(tmp_path):
    random_dataset().save_to_disk(str(tmp_path / "data"))
    loaded = datasets.load_from_disk(str(tmp_path / "data"))
    reference = TrajectorySampler(loaded, context_len=4, batch_size=8, return_scale=1.0).sample(0)
    broken = tmp_path / "data" / columns.CACHE_FOLDER_NAME / f"{loaded._fingerprint}-observations.npy"
    broken.write_bytes(broken.read_bytes()[:200])  # as if cut short
    batch = TrajectorySampler(loaded, context_len=4, batch_size=8, return_scale=1.0).sample(0)
    np.testing.assert_array_equal(batch["states"], reference["states"])


def test_chunked_in_memory_and_selected_datasets():
    dataset = random_dataset()
    chunked = datasets.concatenate_datasets([dataset.select(range(0, 700)), dataset.select(range(700, len(dataset)))])
    assert chunked.data.table.column("observations").num_chunks == 2
    reference = TrajectorySampler(dataset, 6, 32, 1.0).sample(2)
    batch = TrajectorySampler(chunked, 6, 32, 1.0).sample(2)
    for key in reference:
        np.testing.assert_array_equal(batch[key], reference[key])
    first_episodes = dataset.select(np.flatnonzero(np.array(dataset["episode_index"]) < 2))  # indices mapping
    assert TrajectorySampler(first_episodes, 6, 4, 1.0).episode_lengths.tolist() == \
        np.bincount(np.array(dataset["episode_index"]))[:2].tolist()


def test_errors_say_what_is_wrong():
    dataset = make_dataset()
    with pytest.raises(SamplerConfigError, match="observation shape"):
        TrajectorySampler(dataset, 4, 2, 1.0, obs_mean=[0.0], obs_std=[1.0])
    with pytest.raises(SamplerConfigError, match="process_index"):
        TransitionSampler(dataset, 2, process_index=2, num_processes=2)
    with pytest.raises(columns.ColumnError, match="next_observations"):
        TransitionSampler(dataset.remove_columns("next_observations"), 2)
    with pytest.raises(SamplerConfigError, match="step"):
        TrajectorySampler(dataset, 4, 2, 1.0).sample(-1)
