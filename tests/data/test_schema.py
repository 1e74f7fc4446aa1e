"""Schema, metadata and validation of seqrl datasets, on synthetic episodes."""

from __future__ import annotations

import datasets
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

from seqrl.data.schema import (
    COLUMNS,
    DatasetMetadata,
    DatasetValidationError,
    MetadataError,
    build_dataset,
    dataset_to_numpy,
    get_metadata,
    validate,
    with_metadata,
)
from seqrl.data.stats import compute_stats


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


def test_valid_dataset_passes(make_dataset):
    validate(make_dataset()[0])


def test_nan_reward_names_episode_and_column(make_columns, make_dataset):
    rewards = make_columns()["rewards"].copy()
    rewards[5] = np.nan  # episode 1 (rows 4..6), timestep 1
    ds, _ = make_dataset(rewards=rewards)
    with pytest.raises(DatasetValidationError) as error:
        validate(ds)
    message = str(error.value)
    assert "column 'rewards'" in message and "NaN or inf" in message
    assert "episode 1 at timestep 1 (row 5)" in message and "ds.filter" in message


def test_inf_observation_is_reported(make_columns, make_dataset):
    next_observations = make_columns()["next_observations"].copy()
    next_observations[9, 2] = np.inf  # episode 2 (rows 7..11), timestep 2
    ds, _ = make_dataset(next_observations=next_observations)
    with pytest.raises(DatasetValidationError, match=r"column 'next_observations'.*episode 2 at timestep 2"):
        validate(ds)


def test_observation_shape_mismatch_names_column_and_space(make_columns, make_metadata):
    ds = build_dataset(make_columns(obs_dim=3), make_metadata(obs_dim=4))
    with pytest.raises(DatasetValidationError) as error:
        validate(ds)
    message = str(error.value)
    assert "column 'observations'" in message
    assert "fixed_size_list<item: float>[3]" in message and "fixed_size_list<item: float>[4]" in message
    assert "Box(" in message and "(4,)" in message


def test_discrete_column_for_box_space_is_a_dtype_mismatch(make_columns, make_metadata):
    columns = make_columns(discrete=True, act_dim=2)
    ds = build_dataset(columns, make_metadata(act_dim=2, discrete=True))
    wrong = with_metadata(ds, make_metadata(act_dim=2, stats=get_metadata(ds).stats))
    with pytest.raises(DatasetValidationError, match=r"column 'actions' has type int64 .* needs fixed_size_list"):
        validate(wrong)


def test_empty_dataset(make_dataset):
    ds, _ = make_dataset()
    with pytest.raises(DatasetValidationError, match=r"dataset 'test/synthetic-v0' is empty \(0 rows\)"):
        validate(ds.select([]))
    empty = build_dataset({name: values[:0] for name, values in make_dataset()[1].items()}, get_metadata(ds))
    with pytest.raises(DatasetValidationError, match="is empty"):
        validate(empty)


def test_actions_out_of_bounds(make_columns, make_dataset):
    actions = make_columns()["actions"].copy()
    actions[2, 1] = 1.0 + 1e-6  # inside the 1e-5 tolerance
    validate(make_dataset(actions=actions)[0])
    actions[8, 0] = -1.5  # episode 2, timestep 1
    with pytest.raises(DatasetValidationError) as error:
        validate(make_dataset(actions=actions)[0])
    message = str(error.value)
    assert "column 'actions'" in message and "outside the bounds" in message
    assert "episode 2 at timestep 1 (row 8)" in message and "Clip the actions" in message


def test_invalid_discrete_action_id(make_columns, make_dataset):
    actions = make_columns(discrete=True, act_dim=3)["actions"].copy()
    actions[3] = 3
    with pytest.raises(DatasetValidationError, match=r"column 'actions': action id outside \[0, 3\).*episode 0 at timestep 3"):
        validate(make_dataset(discrete=True, act_dim=3, actions=actions)[0])


def test_episode_without_terminal_flag(make_columns, make_dataset):
    truncations = make_columns()["truncations"].copy()
    truncations[6] = False  # last step of episode 1
    with pytest.raises(DatasetValidationError) as error:
        validate(make_dataset(truncations=truncations)[0])
    message = str(error.value)
    assert "column 'terminations/truncations'" in message
    assert "neither a termination nor a truncation" in message and "episode 1 at timestep 2 (row 6)" in message


def test_flag_before_last_step(make_columns, make_dataset):
    terminations = make_columns()["terminations"].copy()
    terminations[1] = True
    with pytest.raises(DatasetValidationError, match=r"ended before its last step in episode 0 at timestep 1"):
        validate(make_dataset(terminations=terminations)[0])


def test_one_step_episode(make_dataset):
    with pytest.raises(DatasetValidationError) as error:
        validate(make_dataset(lengths=(4, 1, 3))[0])
    message = str(error.value)
    assert "column 'episode_index'" in message and "episode 1 has a single step" in message
    assert "at least 2 steps" in message


def test_non_contiguous_episode(make_columns, make_dataset):
    episode_index = make_columns()["episode_index"].copy()
    episode_index[7:] = 0  # episode 0 again after episode 1
    with pytest.raises(DatasetValidationError, match=r"episode 0 is split into 2 separate blocks .*rows \[0, 7\]"):
        validate(make_dataset(episode_index=episode_index)[0])


def test_timesteps_out_of_order(make_columns, make_dataset):
    timestep = make_columns()["timestep"].copy()
    timestep[[8, 9]] = timestep[[9, 8]]
    with pytest.raises(DatasetValidationError, match=r"column 'timestep'.*episode 2 at timestep 2 \(row 8\)"):
        validate(make_dataset(timestep=timestep)[0])


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
