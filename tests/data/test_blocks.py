"""Block-wise reading of datasets (seqrl.data.columns.iter_blocks) and the passes built on it: validation and
statistics give the same answers whatever the block size, and saved datasets are streamed from their files."""

from __future__ import annotations

import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from seqrl.data import columns
from seqrl.data.columns import iter_blocks, release_mapped_pages
from seqrl.data.schema import DatasetValidationError, build_dataset, chunk_to_numpy, dataset_to_numpy
from seqrl.data.stats import compute_stats
from seqrl.data.validation import validate

LENGTHS = (4, 3, 5, 2, 6, 3)  # 23 rows


def saved(ds: datasets.Dataset, folder: Path) -> datasets.Dataset:
    """``ds`` saved in several small files and loaded back (memory-mapped, one record batch per few rows)."""
    ds.save_to_disk(str(folder), max_shard_size=400)
    loaded = datasets.load_from_disk(str(folder))
    assert len(loaded.cache_files) > 1
    return loaded


def read_blocks(ds: datasets.Dataset, names: list[str], block_rows: int) -> dict[str, np.ndarray]:
    parts = {name: [] for name in names}
    sizes = []
    for block in iter_blocks(ds, names, block_rows):
        sizes.append({len(array) for array in block.values()}.pop())
        for name in names:
            parts[name].append(chunk_to_numpy(block[name]))
    assert all(size == block_rows for size in sizes[:-1]) and all(0 < size <= block_rows for size in sizes[-1:])
    return {name: np.concatenate(values) for name, values in parts.items() if values}


def test_iter_blocks_streams_saved_files_and_reads_every_layout(make_columns, make_metadata, tmp_path):
    in_memory = build_dataset(make_columns(LENGTHS), make_metadata())
    loaded = saved(in_memory, tmp_path / "data")
    layouts = {  # name: (dataset, streamed from its files)
        "in memory": (in_memory, False),
        "saved": (loaded, True),
        "contiguous select": (loaded.select(range(5, 19)), True),
        "select of a select": (loaded.select(range(5, 19)).select(range(2, 9)), True),
        "select_columns": (loaded.select_columns(["rewards", "observations", "terminations"]), True),
        "concatenated": (datasets.concatenate_datasets([loaded.select(range(3, 11)), loaded]), True),
        "indices mapping": (loaded.select(np.random.default_rng(0).permutation(loaded.num_rows)), False),
        "renamed": (loaded.rename_column("rewards", "r").rename_column("r", "rewards"), False),
        "empty": (loaded.select(range(0)), True),
    }
    names = ["rewards", "observations", "terminations"]
    for label, (ds, streamed) in layouts.items():
        assert (columns._file_segments(ds, names) is not None) == streamed, label
        expected = dataset_to_numpy(ds, names)
        for block_rows in (1, 3, 1000):
            actual = read_blocks(ds, names, block_rows)
            for name in names:
                np.testing.assert_array_equal(actual.get(name, expected[name][:0]), expected[name],
                                              err_msg=f"{label}, {block_rows} rows per block, {name}")


def corrupt(columns_: dict[str, np.ndarray], case: str) -> dict[str, np.ndarray]:
    columns_ = {name: values.copy() for name, values in columns_.items()}
    if case == "nan observations in two episodes":
        columns_["observations"][[5, 6, 20], 1] = np.nan
    elif case == "actions out of bounds":
        columns_["actions"][[2, 3, 4, 16], 0] = 1.5
    elif case == "split episode":
        columns_["episode_index"][12:14] = 0
    elif case == "timestep out of order":
        columns_["timestep"][[8, 9]] = columns_["timestep"][[9, 8]]
    elif case == "flag before the last step":
        columns_["truncations"][[7, 15]] = True
    elif case == "flag missing at a block boundary":
        columns_["terminations"][3] = columns_["truncations"][3] = False  # end of episode 0
        columns_["terminations"][22] = columns_["truncations"][22] = False  # last row of the dataset
    elif case == "one-step episode":
        columns_["episode_index"][11] = 99
        columns_["timestep"][11] = 0
        columns_["terminations"][11] = True
    return columns_


CASES = ("valid", "nan observations in two episodes", "actions out of bounds", "split episode",
         "timestep out of order", "flag before the last step", "flag missing at a block boundary", "one-step episode")


def validation_message(ds: datasets.Dataset) -> str | None:
    try:
        validate(ds)
    except DatasetValidationError as error:
        return str(error)
    return None


@pytest.mark.parametrize("case", CASES)
def test_validation_does_not_depend_on_the_block_size(case, make_columns, make_metadata, tmp_path, monkeypatch):
    ds = saved(build_dataset(corrupt(make_columns(LENGTHS), case), make_metadata()), tmp_path / "data")
    expected = validation_message(ds)  # one block
    assert (expected is None) == (case == "valid")
    for block_rows in (1, 2, 3, 4, 7):
        monkeypatch.setattr(columns, "BLOCK_ROWS", block_rows)
        assert validation_message(ds) == expected, block_rows


def test_stats_of_a_saved_dataset_match_its_columns(make_columns, make_metadata, tmp_path, monkeypatch):
    data = make_columns(LENGTHS)
    data["rewards"] = data["rewards"] * 100 + 1e4  # a large offset: the variance must not cancel
    ds = saved(build_dataset(data, make_metadata()), tmp_path / "data")
    expected = compute_stats(data)
    for block_rows in (1, 3, 5, 1000):
        monkeypatch.setattr(columns, "BLOCK_ROWS", block_rows)
        for source in (ds, data):
            actual = compute_stats(source)
            assert actual.keys() == expected.keys()
            for key, value in expected.items():
                np.testing.assert_allclose(actual[key], value, rtol=1e-9, err_msg=f"{key}, {block_rows} rows per block")


def mapped_kib(path: str) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5] == path
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_release_mapped_pages_drops_resident_pages_and_keeps_the_data(make_columns, make_metadata, tmp_path):
    build_dataset(make_columns((400,) * 50), make_metadata()).save_to_disk(str(tmp_path / "data"))
    ds = datasets.load_from_disk(str(tmp_path / "data"))
    expected = dataset_to_numpy(ds)  # reads every page through the memory map
    path = ds.cache_files[0]["filename"]
    assert mapped_kib(path) > 0
    release_mapped_pages(ds)
    assert mapped_kib(path) == 0
    validate(ds)
    compute_stats(ds)
    assert mapped_kib(path) == 0  # validation and statistics stream the file instead of mapping it
    for name, values in dataset_to_numpy(ds).items():  # maps the pages again, with the same data
        np.testing.assert_array_equal(values, expected[name], err_msg=name)
