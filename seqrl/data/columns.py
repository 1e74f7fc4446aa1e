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

Whole-dataset passes (writing the cache above, :func:`seqrl.data.validation.validate`,
:func:`seqrl.data.stats.compute_stats`) read the data with :func:`iter_blocks`, a block of rows at a
time. For a dataset that lives in its Arrow files it streams the record batches from the files with
ordinary reads instead of going through the dataset's memory map: every page read through the map
stays resident in the process (counted in its RSS as ``RssFile``) for as long as the dataset is open,
so one pass over a memory-mapped dataset would leave all of it resident.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset
from datasets.table import ConcatenationTable, MemoryMappedTable

from seqrl.errors import SeqRLError

CACHE_FOLDER_NAME = "seqrl_cache"
BLOCK_ROWS = 1 << 18  # rows per block of iter_blocks: ~32 MB of a MuJoCo-sized dataset (obs 11, act 3)
_MADV_DONTNEED = 4  # <sys/mman.h>, Linux

# Transforms of a memory-mapped table (datasets' "replays") after which its rows are still a contiguous range of
# its file's rows and the columns keep their names and types, so the file can be streamed instead of mapped.
_STREAMABLE_REPLAYS = frozenset({"replace_schema_metadata", "combine_chunks", "select", "drop", "remove_column", "slice"})


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
        return (arrow_to_numpy(block[name], name, zero_copy_only=False) for block in iter_blocks(dataset, [name]))

    cached = cached_array(dataset, name, shape, probe.dtype, chunks)
    if cached is not None:
        return cached
    combined = np.concatenate(list(chunks()))
    combined.flags.writeable = False
    return combined


def iter_blocks(dataset: Dataset, columns: Sequence[str], block_rows: int | None = None) -> Iterator[dict[str, pa.Array]]:
    """Consecutive blocks of ``block_rows`` rows (default :data:`BLOCK_ROWS`; fewer in the last block) of the named
    columns of ``dataset``, in row order after any indices mapping: ``{name: one Arrow array}`` per block; nothing
    for an empty dataset.

    A dataset whose rows are a contiguous range of rows of its Arrow files (``load_from_disk``, and after column
    selections or a contiguous ``select``) is read by streaming record batches from the files with ordinary reads
    (``pa.ipc.open_stream(pa.OSFile(path))``), never through its memory map, so only the current block is held in
    memory. Other datasets (in memory, with an indices mapping, or transformed otherwise) are read in slices.
    """
    columns = list(columns)
    block_rows = BLOCK_ROWS if block_rows is None else int(block_rows)
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    segments = _file_segments(dataset, columns)
    try:
        if segments is None:
            arrow = dataset.with_format("arrow", columns=columns)
            for begin in range(0, dataset.num_rows, block_rows):
                part = arrow[begin : begin + block_rows]  # pa.Table; applies any indices mapping
                yield {name: _one_array(part.column(name)) for name in columns}
            return
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for path, begin, end in segments:
            row = 0
            with pa.OSFile(path) as source:
                for batch in pa.ipc.open_stream(source):
                    first, row = row, row + batch.num_rows
                    if row <= begin:
                        continue
                    if first >= end:
                        break
                    start = max(begin, first)
                    batch = pa.RecordBatch.from_arrays([batch.column(name) for name in columns], names=columns)
                    pending.append(batch.slice(start - first, min(end, row) - start))  # one schema for all files
                    pending_rows += min(end, row) - start
                    while pending_rows >= block_rows:
                        table = pa.Table.from_batches(pending)
                        yield {name: _one_array(table.column(name).slice(0, block_rows)) for name in columns}
                        pending = table.slice(block_rows).to_batches()
                        pending_rows -= block_rows
            if row < end:
                raise ColumnError(f"{path} holds {row} rows but the dataset opened from it needs rows {begin}..{end - 1}; "
                                  "the file changed after the dataset was loaded: load it again")
        if pending_rows:
            table = pa.Table.from_batches(pending)
            yield {name: _one_array(table.column(name)) for name in columns}
    finally:
        pending = table = None  # drop the last block before handing the pool's free memory back
        pa.default_memory_pool().release_unused()  # the pool keeps freed blocks; numpy and torch cannot reuse them


def release_mapped_pages(dataset: Dataset) -> None:
    """Unmap the resident pages of ``dataset``'s memory-mapped Arrow files from this process (Linux; else nothing).

    ``datasets`` opens a file by reading its record batches through the memory map, and the kernel maps the
    cached pages around each page read (fault-around): a freshly loaded 10M-step dataset keeps about half of its
    1.2 GB resident (``RssFile``) for as long as it is open, although seqrl never reads it through the map
    (:func:`iter_blocks` streams the files, the samplers read the ``.npy`` cache). The mappings are read-only
    copies of the files, so ``madvise(MADV_DONTNEED)`` only drops the pages: a later access maps them again
    from the page cache or the file, with the same contents.
    """
    paths = {os.path.realpath(entry["filename"]) for entry in dataset.cache_files}
    if not paths or not sys.platform.startswith("linux"):
        return
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return
    madvise.argtypes, madvise.restype = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int), ctypes.c_int
    for line in maps:  # "start-end perms offset dev inode path"
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] in paths and "w" not in fields[1]:
            start, end = (int(address, 16) for address in fields[0].split("-"))
            madvise(start, end - start, _MADV_DONTNEED)  # failure only leaves the pages resident


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _file_segments(dataset: Dataset, columns: list[str]) -> list[tuple[str, int, int]] | None:
    """``(file, first row, end row)`` per Arrow file when the rows of ``dataset`` are exactly those rows of its
    files, in order, with the named columns unchanged; ``None`` when the data cannot be streamed from files."""
    if dataset._indices is not None:
        return None
    table = dataset.data
    if isinstance(table, ConcatenationTable) and all(len(row) == 1 for row in table.blocks):
        parts = [row[0] for row in table.blocks]  # datasets concatenated along rows (e.g. load_from_disk shards)
    else:
        parts = [table]
    segments = []
    for part in parts:
        if not isinstance(part, MemoryMappedTable) or any(name not in _STREAMABLE_REPLAYS for name, _, _ in part.replays):
            return None
        if part.num_rows == 0:  # also covers a slice past the end, which pyarrow clamps to an empty table
            continue
        offset = 0
        for name, args, kwargs in part.replays:
            if name == "slice":
                offset += int(args[0] if args else kwargs.get("offset", 0))
        try:
            with pa.OSFile(part.path) as source:
                file_schema = pa.ipc.open_stream(source).schema
        except (OSError, pa.ArrowInvalid):
            return None
        schema = part.table.schema
        if any(name not in file_schema.names or name not in schema.names
               or file_schema.field(name).type != schema.field(name).type for name in columns):
            return None
        segments.append((part.path, offset, offset + part.num_rows))
    return segments


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
