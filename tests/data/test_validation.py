"""Validation of seqrl datasets: each broken rule is reported with its column, episode and fix (synthetic episodes)."""

from __future__ import annotations

import numpy as np
import pytest

from seqrl.data.schema import DatasetValidationError, build_dataset, get_metadata, with_metadata
from seqrl.data.validation import validate


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
    assert "train.py --data.drop_invalid_episodes true" in message  # the way out without code


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
