"""--data.drop_invalid_episodes: messy logs are cleaned and every change reported; without it they are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from seqrl.data.schema import DatasetValidationError, build_dataset, dataset_to_numpy, get_metadata
from seqrl.data.sources import load_dataset, save_dataset
from seqrl.training.cli import parse_train_args
from seqrl.training.data import load_training_data

from ..conftest import make_metadata
from .conftest import make_columns


@pytest.fixture
def messy_folder(tmp_path):
    """Five episodes (lengths 4, 3, 1, 5, 4), one of each defect: episode 1 has an inf observation, episode 2 a
    single step, episode 3 ends without a flag; 0 and 4 are clean."""
    columns = make_columns(lengths=(4, 3, 1, 5, 4))
    columns["observations"][5, 2] = np.inf  # episode 1, timestep 1
    last_of_episode_3 = 4 + 3 + 1 + 5 - 1
    columns["terminations"][last_of_episode_3] = columns["truncations"][last_of_episode_3] = False
    folder = tmp_path / "messy"
    save_dataset(build_dataset(columns, make_metadata(), with_stats=False), folder)
    return folder, columns


def test_messy_log_is_refused_by_default(messy_folder):
    with pytest.raises(DatasetValidationError, match=r"column 'observations': NaN or inf values in episode 1"):
        load_dataset(messy_folder[0])


def test_drop_invalid_episodes_reports_exact_counts_and_indices(messy_folder):
    folder, columns = messy_folder
    cfg = parse_train_args(["--data.dataset", str(folder), "--data.drop_invalid_episodes", "true"])
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy warning from the statistics of the dropped inf
        dataset = load_training_data(cfg, lines.append)
    assert lines == [
        "--data.drop_invalid_episodes: dropped 1 episode(s) with NaN/inf values: [1]",
        "--data.drop_invalid_episodes: dropped 1 episode(s) of a single step: [2]",
        "--data.drop_invalid_episodes: marked the last step truncated in 1 episode(s) that end without a termination "
        "or truncation flag: [3]",
    ]
    kept = dataset_to_numpy(dataset)
    np.testing.assert_array_equal(np.unique(kept["episode_index"]), [0, 3, 4])  # the source's episode numbers
    keep_rows = np.r_[0:4, 8:17]
    np.testing.assert_array_equal(kept["observations"], columns["observations"][keep_rows])
    np.testing.assert_array_equal(kept["terminations"], columns["terminations"][keep_rows])
    expected_truncations = columns["truncations"][keep_rows].copy()
    expected_truncations[8] = True  # the last step of episode 3
    np.testing.assert_array_equal(kept["truncations"], expected_truncations)
    stats = get_metadata(dataset).stats
    assert stats["num_episodes"] == 3 and stats["num_steps"] == 13 and np.isfinite(stats["obs_mean"]).all()


def test_clean_data_is_left_as_it_is(tmp_path):
    folder = tmp_path / "clean"
    save_dataset(build_dataset(make_columns(), make_metadata()), folder)
    lines = []
    loaded = load_dataset(folder, drop_invalid_episodes=True, log=lines.append)
    assert lines == [] and loaded.num_rows == 12
