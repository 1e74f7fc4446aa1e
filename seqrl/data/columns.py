"""Dataset columns as contiguous numpy arrays, without copying the dataset into memory.

A ``datasets.Dataset`` keeps each column as a pyarrow ``ChunkedArray``. The samplers index columns
with numpy fancy indexing (``observations[rows]``), which needs one contiguous array per column.
:func:`column_array` provides it in the cheapest way the storage allows:

1. One chunk of fixed-width values without nulls (an in-memory ``Dataset.from_dict``, or a small
   saved dataset): a zero-copy, read-only numpy view of the Arrow values buffer. A fixed-size list
   column ``float32[n]`` becomes ``[N, n]`` by reshaping its flat child values.
2. Several chunks (``load_from_disk`` memory-maps one chunk per record batch) and the dataset lives
   in files: the column is written once, chunk by chunk, to
   ``<folder of the dataset's first cache file>/seqrl_cache/<fingerprint>-<column>.npy`` and opened
   with ``np.load(mmap_mode="r")``. The file is written to a temporary name and renamed, so a crash
   never leaves a half-written cache, and processes building it at the same time do not collide.
   Resident memory therefore does not grow with the dataset: pages are read from the file on demand.
   The fingerprint changes with every transform of the dataset, so a cache never serves stale data.
3. Several chunks in memory (e.g. ``concatenate_datasets`` of in-memory datasets), or a cache folder
   that cannot be written: the chunks are combined in memory.

Boolean columns are bit-packed in Arrow and cannot be viewed as numpy booleans; they follow case 2
or 3 (one byte per row).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from seqrl.errors import SeqRLError

CACHE_FOLDER_NAME = "seqrl_cache"


class ColumnError(SeqRLError):
    """A dataset column is missing or cannot be read as a fixed-shape numpy array."""


def contiguous_dataset(dataset: Dataset) -> Dataset:
    """Return ``dataset`` with its rows stored in order (an indices mapping, e.g. from
    ``select([...])``, is written out once with ``flatten_indices``)."""
    if dataset._indices is not None:
        return dataset.flatten_indices()
    return dataset


def cache_folder(dataset: Dataset) -> Path | None:
    """Folder for the ``.npy`` column cache beside the dataset's files; ``None`` when in memory."""
    if not dataset.cache_files:
        return None
    return Path(dataset.cache_files[0]["filename"]).parent / CACHE_FOLDER_NAME


def column_array(dataset: Dataset, name: str) -> np.ndarray:
    """Column ``name`` of ``dataset`` as one contiguous read-only numpy array ``[N, *value_shape]``.

    ``dataset`` must have no indices mapping (see :func:`contiguous_dataset`).
    """
    table = dataset.data.table
    if name not in table.column_names:
        raise ColumnError(
            f"the dataset has no column {name!r} (it has {table.column_names}); build it with "
            "seqrl.data.sources.load_dataset or give it the columns of the seqrl schema"
        )
    column = table.column(name)
    if column.null_count:
        raise ColumnError(
            f"column {name!r} holds {column.null_count} missing (null) values; every step needs a value, "
            "so fill or drop those rows before sampling"
        )
    if len(column) == 0:
        raise ColumnError(f"column {name!r} is empty: the dataset has no rows to sample from")
    if column.num_chunks == 1:
        try:
            view = arrow_to_numpy(column.chunk(0), name, zero_copy_only=True)
        except pa.ArrowInvalid:  # needs a copy (booleans): fall through to the cache
            view = None
        if view is not None:
            view.flags.writeable = False
            return view
    probe = arrow_to_numpy(column.slice(0, 1).combine_chunks(), name, zero_copy_only=False)  # [1, ...]
    shape = (len(column),) + probe.shape[1:]

    def chunks() -> Iterable[np.ndarray]:
        return (arrow_to_numpy(chunk, name, zero_copy_only=False) for chunk in column.chunks)

    cached = cached_array(dataset, name, shape, probe.dtype, chunks)
    if cached is not None:
        return cached
    combined = np.concatenate(list(chunks()))
    combined.flags.writeable = False
    return combined


def arrow_to_numpy(array: pa.Array, name: str, *, zero_copy_only: bool) -> np.ndarray:
    """One Arrow array as numpy ``[len(array), *value_shape]``; nested fixed-size lists reshape.

    Variable-length list columns (``Sequence`` without ``length``) are accepted when every row has
    the same length. Raises ``pa.ArrowInvalid`` when ``zero_copy_only`` and a copy is needed.
    """
    array_type = array.type
    if pa.types.is_fixed_size_list(array_type):
        width = array_type.list_size
    elif pa.types.is_list(array_type) or pa.types.is_large_list(array_type):
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)  # [len]
        width = int(lengths[0]) if len(lengths) else 0
        if np.any(lengths != width):
            raise ColumnError(
                f"column {name!r} holds lists of different lengths ({lengths.min()}..{lengths.max()}); "
                "the samplers need one shape per step: store it with a fixed-length feature "
                "(datasets.List(datasets.Value('float32'), length=n))"
            )
    else:
        return array.to_numpy(zero_copy_only=zero_copy_only)
    values = arrow_to_numpy(array.flatten(), name, zero_copy_only=zero_copy_only)  # flatten honours slices
    return values.reshape((len(array), width) + values.shape[1:])


def cached_array(
    dataset: Dataset,
    key: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    blocks: Callable[[], Iterable[np.ndarray]],
) -> np.ndarray | None:
    """Memory-map ``<cache folder>/<fingerprint>-<key>.npy``, writing it first from ``blocks()``.

    ``blocks()`` yields consecutive row blocks whose concatenation has ``shape``; it is only called
    when the file is missing or has another shape/dtype. Returns ``None`` for an in-memory dataset
    or a folder that cannot be written (the caller then keeps the array in memory).
    """
    folder = cache_folder(dataset)
    if folder is None:
        return None
    dtype = np.dtype(dtype)
    path = folder / f"{dataset._fingerprint}-{key}.npy"
    cached = _load_if_matching(path, shape, dtype)
    if cached is not None:
        return cached
    try:
        folder.mkdir(exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        warnings.warn(
            f"cannot write the seqrl column cache in {folder} ({error}); column {key!r} is kept in memory "
            "instead. Save the dataset to a writable folder (save_to_disk) to keep memory flat.",
            stacklevel=3,
        )
        return None
    try:
        with os.fdopen(descriptor, "wb") as file:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(file, header)  # padded so the data is aligned for mmap
            rows_written = 0
            for block in blocks():
                block = np.ascontiguousarray(block, dtype=dtype)
                file.write(block.data)
                rows_written += len(block)
            if rows_written != shape[0]:
                raise ColumnError(f"cache for {key!r}: wrote {rows_written} rows, expected {shape[0]}")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic: readers see the old file or the whole new one
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return _load_if_matching(path, shape, dtype)


def _load_if_matching(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    if not path.exists():
        return None
    try:
        mapped = np.load(path, mmap_mode="r")
    except (ValueError, OSError):  # unreadable header: rebuild it
        return None
    if mapped.shape != shape or mapped.dtype != dtype:
        return None
    return np.asarray(mapped)  # plain ndarray view; keeps the mapping alive through .base
