"""Schema and metadata of seqrl datasets, on synthetic episodes."""

from __future__ import annotations

import datasets
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

from seqrl.data.schema import (
    COLUMNS,
    DatasetMetadata,
    MetadataError,
    build_dataset,
    dataset_to_numpy,
    get_metadata,
    with_metadata,
)
from seqrl.data.stats import compute_stats
from seqrl.data.validation import validate


def test_metadata_json_round_trip_and_properties(make_metadata):
    spec = EnvSpec("Pendulum-v1", entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv").to_json()
    metadata = make_metadata(obs_dim=5, act_dim=2, env_spec=spec, ref_min_score=-1.5, ref_max_score=3.0, stats={"a": [1.0]})
    restored = DatasetMetadata.from_json(metadata.to_json())
    assert restored == metadata
    assert (restored.obs_dim, restored.action_dim, restored.is_discrete, restored.env_id) == (5, 2, False, "Pendulum-v1")
    assert isinstance(restored.action_space_obj, gym.spaces.Box)
    discrete = make_metadata(obs_dim=4, act_dim=7, discrete=True)
    assert (discrete.is_discrete, discrete.action_dim, discrete.env_id) == (True, 7, None)


def test_build_dataset_types_values_and_stats(make_columns, make_metadata):
    columns = make_columns()
    ds = build_dataset(columns, make_metadata())
    assert tuple(ds.column_names) == COLUMNS
    schema = ds.features.arrow_schema
    assert str(schema.field("observations").type) == "fixed_size_list<item: float>[3]"
    assert str(schema.field("actions").type) == "fixed_size_list<item: float>[2]"
    back = dataset_to_numpy(ds)
    for name in COLUMNS:
        np.testing.assert_array_equal(back[name], columns[name])
    assert get_metadata(ds).stats == compute_stats(columns)
    assert get_metadata(ds).stats["num_episodes"] == 3


def test_discrete_actions_are_int64(make_dataset):
    ds, columns = make_dataset(discrete=True, act_dim=4)
    assert ds.features["actions"] == datasets.Value("int64")
    np.testing.assert_array_equal(ds.with_format("numpy")["actions"][:], columns["actions"])
    validate(ds)
    assert "action_min" not in get_metadata(ds).stats


def test_metadata_survives_disk_select_format_filter(make_dataset, tmp_path):
    ds, _ = make_dataset()
    metadata = get_metadata(ds)
    ds.save_to_disk(str(tmp_path / "saved"))
    reloaded = datasets.load_from_disk(str(tmp_path / "saved"))
    assert get_metadata(reloaded) == metadata
    assert get_metadata(reloaded.select(range(4))) == metadata
    assert get_metadata(reloaded.with_format("numpy")) == metadata
    assert get_metadata(reloaded.filter(lambda e: e == 1, input_columns="episode_index")) == metadata
    selected = reloaded.select(range(4, 7))  # episode 1 only, through an indices mapping
    validate(selected)
    np.testing.assert_array_equal(dataset_to_numpy(selected)["timestep"], [0, 1, 2])


def test_missing_metadata_says_how_to_attach_it(make_columns):
    plain = datasets.Dataset.from_dict({"rewards": [1.0, 2.0]})
    with pytest.raises(MetadataError, match=r"no seqrl metadata.*with_metadata"):
        get_metadata(plain)


def test_with_metadata_copies(make_dataset, make_metadata):
    ds, _ = make_dataset()
    renamed = with_metadata(ds, make_metadata(dataset_id="other/id-v1", stats=get_metadata(ds).stats))
    assert get_metadata(renamed).dataset_id == "other/id-v1"
    assert get_metadata(ds).dataset_id == "test/synthetic-v0"


def test_stats_values(make_columns):
    columns = make_columns(lengths=(2, 3))
    columns["observations"][:, 1] = 4.0  # constant feature: std floored
    stats = compute_stats(columns)
    np.testing.assert_allclose(stats["obs_mean"], columns["observations"].mean(0), rtol=1e-6)
    observations = columns["observations"]
    np.testing.assert_allclose(stats["obs_std"], [observations[:, 0].std(), 1e-6, observations[:, 2].std()], rtol=1e-5)
    returns = [columns["rewards"][:2].sum(), columns["rewards"][2:].sum()]
    np.testing.assert_allclose([stats["return_min"], stats["return_max"]], [min(returns), max(returns)], rtol=1e-6)
    np.testing.assert_allclose(stats["return_mean"], np.mean(returns), rtol=1e-6)
    np.testing.assert_allclose(stats["action_max"], columns["actions"].max(0), rtol=1e-6)
    assert (stats["length_min"], stats["length_max"], stats["length_mean"]) == (2, 3, 2.5)
    assert (stats["num_episodes"], stats["num_steps"]) == (2, 5)
