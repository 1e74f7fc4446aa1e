"""Loading seqrl datasets from Minari, disk folders and the Hub (all data made here)."""

from __future__ import annotations

import json
import os

import datasets
import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.serialization import deserialize_space

from seqrl.data import builtin, sources
from seqrl.data.schema import COLUMNS, dataset_to_numpy, get_metadata
from seqrl.data.sources import DatasetSourceError, from_minari, load_dataset, save_dataset

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX_ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def test_minari_splits_t_plus_one_observations(minari_root, write_minari, box_episodes):
    episodes = box_episodes(lengths=(4, 6))
    minari_dataset = write_minari("test/box-v0", episodes, BOX_OBS, BOX_ACT)
    minari_dataset.storage.update_metadata({"ref_min_score": -3.0, "ref_max_score": 7.0})  # minari needs an env to store them
    ds = from_minari(minari_dataset)
    columns = dataset_to_numpy(ds)
    assert ds.num_rows == 10
    np.testing.assert_array_equal(columns["episode_index"], [0] * 4 + [1] * 6)
    np.testing.assert_array_equal(columns["timestep"], list(range(4)) + list(range(6)))
    # Minari keeps T+1 observations o_0..o_T: step t is (o_t, o_{t+1})
    np.testing.assert_array_equal(columns["observations"], np.concatenate([e["observations"][:-1] for e in episodes]))
    np.testing.assert_array_equal(columns["next_observations"], np.concatenate([e["observations"][1:] for e in episodes]))
    for name in ("actions", "rewards", "terminations", "truncations"):
        np.testing.assert_array_equal(columns[name], np.concatenate([e[name] for e in episodes]), err_msg=name)
    metadata = get_metadata(ds)
    assert (metadata.dataset_id, metadata.ref_min_score, metadata.ref_max_score) == ("test/box-v0", -3.0, 7.0)
    assert metadata.observation_space_obj == BOX_OBS and metadata.action_space_obj == BOX_ACT
    assert metadata.original_observation_space is None and metadata.env_spec is None
    assert metadata.stats["num_steps"] == 10


def test_load_minari_by_id_and_by_folder(minari_root, write_minari, box_episodes):
    write_minari("test/box-v0", box_episodes(), BOX_OBS, BOX_ACT)
    by_id = load_dataset("test/box-v0")
    by_folder = load_dataset(str(minari_root / "test" / "box-v0"))
    by_data_folder = load_dataset(str(minari_root / "test" / "box-v0" / "data"))
    for ds in (by_folder, by_data_folder):
        assert get_metadata(ds) == get_metadata(by_id)
        np.testing.assert_array_equal(dataset_to_numpy(ds)["observations"], dataset_to_numpy(by_id)["observations"])


def test_minari_env_spec_and_discrete_actions(minari_root, write_minari):
    rng = np.random.default_rng(1)
    episodes = [{"observations": rng.uniform(-0.05, 0.05, (length + 1, 4)).astype(np.float32),
                 "actions": rng.integers(0, 2, length), "rewards": np.ones(length, np.float32),
                 "terminations": np.arange(length) == length - 1, "truncations": np.zeros(length, bool)}
                for length in (3, 5)]
    env = gym.make("CartPole-v1")
    ds = from_minari(write_minari("test/cartpole-v0", episodes, None, None, env=env, ref_min_score=9.0, ref_max_score=500.0))
    metadata = get_metadata(ds)
    assert metadata.env_id == "CartPole-v1" and metadata.is_discrete and metadata.action_dim == 2
    assert ds.features["actions"] == datasets.Value("int64")
    np.testing.assert_array_equal(dataset_to_numpy(ds)["actions"], np.concatenate([e["actions"] for e in episodes]))


def test_dict_observations_are_flattened_and_original_space_kept(minari_root, write_minari):
    space = gym.spaces.Dict({"position": gym.spaces.Box(-5, 5, (2,), np.float32), "mode": gym.spaces.Discrete(3)})
    rng = np.random.default_rng(2)
    length = 4
    episode = {"observations": {"position": rng.uniform(-5, 5, (length + 1, 2)).astype(np.float32),
                                "mode": rng.integers(0, 3, length + 1)},
               "actions": rng.uniform(-1, 1, (length, 2)).astype(np.float32), "rewards": np.zeros(length, np.float32),
               "terminations": np.arange(length) == length - 1, "truncations": np.zeros(length, bool)}
    ds = load_dataset(str(write_minari("test/dict-v0", [episode], space, BOX_ACT).storage.data_path))
    expected = np.stack([gym.spaces.flatten(space, {key: values[t] for key, values in episode["observations"].items()})
                         for t in range(length + 1)]).astype(np.float32)  # [T+1, 5]: one-hot mode, then position
    columns = dataset_to_numpy(ds)
    np.testing.assert_array_equal(columns["observations"], expected[:-1])
    np.testing.assert_array_equal(columns["next_observations"], expected[1:])
    metadata = get_metadata(ds)
    assert deserialize_space(metadata.original_observation_space) == space
    assert metadata.observation_space_obj == gym.spaces.flatten_space(space) and metadata.obs_dim == 5


def test_missing_minari_id_says_how_to_download(minari_root, monkeypatch):
    def no_network(dataset_id, force_download=False):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(minari, "download_dataset", no_network)
    with pytest.raises(DatasetSourceError) as error:
        load_dataset("mujoco/hopper/missing-v0")
    message = str(error.value)
    assert "`minari download mujoco/hopper/missing-v0`" in message and "MINARI_DATASETS_PATH" in message
    assert "ConnectionError: Name or service not known" in message and str(minari_root) in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetSourceError, match=r"HF_HUB_OFFLINE is set\. .*`minari download mujoco/hopper/missing-v0`"):
        load_dataset("mujoco/hopper/missing-v0")


def test_unknown_seqrl_id_says_it_is_generated(minari_root, monkeypatch):
    monkeypatch.setattr(builtin, "BUILTIN_DATASETS", {"seqrl/pendulum/mixed-v0": "pendulum"})
    with pytest.raises(DatasetSourceError) as error:
        load_dataset("seqrl/pendulum/nothing-v0")
    message = str(error.value)
    assert "'seqrl/pendulum/nothing-v0' is not a built-in seqrl dataset" in message
    assert "generates them locally on first use" in message and "seqrl/pendulum/mixed-v0" in message


def test_builtin_id_goes_through_generate_builtin(minari_root, monkeypatch, write_minari, box_episodes):
    calls = []

    def fake_generate(dataset_id):
        calls.append(dataset_id)
        return write_minari(dataset_id, box_episodes(), BOX_OBS, BOX_ACT)

    monkeypatch.setattr(builtin, "BUILTIN_DATASETS", {"seqrl/pendulum/mixed-v0": "pendulum"})
    monkeypatch.setattr(builtin, "generate_builtin", fake_generate)
    ds = load_dataset("seqrl/pendulum/mixed-v0")
    assert calls == ["seqrl/pendulum/mixed-v0"] and get_metadata(ds).dataset_id == "seqrl/pendulum/mixed-v0"


def test_save_dataset_round_trip_and_overwrite(tmp_path, make_dataset):
    ds, columns = make_dataset()
    save_dataset(ds, tmp_path / "ds")
    reloaded = load_dataset(str(tmp_path / "ds"))
    assert get_metadata(reloaded) == get_metadata(ds)
    for name in COLUMNS:
        np.testing.assert_array_equal(dataset_to_numpy(reloaded)[name], columns[name])
    smaller = ds.select(range(4))
    save_dataset(smaller, tmp_path / "ds")
    assert load_dataset(str(tmp_path / "ds")).num_rows == 4
    assert sorted(os.listdir(tmp_path)) == ["ds"]


def test_save_dataset_failure_leaves_existing_folder_untouched(tmp_path, make_dataset, monkeypatch):
    ds, _ = make_dataset()
    save_dataset(ds, tmp_path / "ds")
    before = {name: (tmp_path / "ds" / name).read_bytes() for name in os.listdir(tmp_path / "ds")}

    def broken_save(self, dataset_path, **kwargs):
        os.makedirs(dataset_path)
        (open(os.path.join(dataset_path, "data-00000-of-00001.arrow"), "wb")).write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(ds.select(range(4)), tmp_path / "ds")
    assert {name: (tmp_path / "ds" / name).read_bytes() for name in os.listdir(tmp_path / "ds")} == before
    assert sorted(os.listdir(tmp_path)) == ["ds"]
    monkeypatch.undo()
    assert load_dataset(str(tmp_path / "ds")).num_rows == ds.num_rows


def test_hub_repo_uses_the_hub_loader(monkeypatch, make_dataset):
    from seqrl.hub import data as hub_data

    ds, _ = make_dataset()
    calls = []
    monkeypatch.setattr(hub_data, "load_dataset_from_hub", lambda repo_id: calls.append(repo_id) or ds)
    assert get_metadata(load_dataset("someone/offline-data")) == get_metadata(ds)
    assert calls == ["someone/offline-data"]


def test_hub_failure_lists_what_was_tried(monkeypatch):
    from seqrl.hub import data as hub_data
    from seqrl.hub.errors import HubError

    def missing(repo_id):
        raise HubError(f"Repo '{repo_id}' was not found while downloading the dataset")

    monkeypatch.setattr(hub_data, "load_dataset_from_hub", missing)
    with pytest.raises(DatasetSourceError, match=r"not a local folder or file, not a local Minari id.*was not found.*minari download"):
        load_dataset("someone/nothing-v2")


def test_bad_paths_and_misplaced_kwargs(tmp_path, make_dataset):
    with pytest.raises(DatasetSourceError, match=r"no dataset at path .*missing\.hdf5"):
        load_dataset(str(tmp_path / "missing.hdf5"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetSourceError, match="neither a datasets save_to_disk folder"):
        load_dataset(str(tmp_path / "empty"))
    save_dataset(make_dataset()[0], tmp_path / "ds")
    with pytest.raises(DatasetSourceError, match="apply to D4RL"):
        load_dataset(str(tmp_path / "ds"), ref_min_score=0.0)


def test_flatten_batch_matches_gymnasium():
    space = gym.spaces.Tuple((gym.spaces.MultiDiscrete([2, 3]), gym.spaces.MultiBinary(2), gym.spaces.Box(0, 1, (2, 2))))
    samples = [space.sample() for _ in range(5)]
    batch = (np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples]), np.stack([s[2] for s in samples]))
    expected = np.stack([gym.spaces.flatten(space, s) for s in samples]).astype(np.float32)
    np.testing.assert_array_equal(sources.flatten_batch(space, batch), expected)
    assert json.loads(sources.serialize_space(gym.spaces.flatten_space(space)))["shape"] == [11]
