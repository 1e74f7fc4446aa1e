"""Speed and memory of ``TrajectorySampler`` against a per-sample loop in the Decision Transformer style.

Speed: a synthetic Hopper-sized dataset (obs 11, act 3, episodes of 10..1000 steps) of ``--steps``
steps is saved with ``save_to_disk`` and loaded with ``load_from_disk`` (memory-mapped). Both
samplers draw batches of 64 windows of K = 20 in the same process:

- ``seqrl``: ``TrajectorySampler.sample`` (vectorised gathers, returns-to-go precomputed once);
- ``naive``: the loop of the reference code (kzl/decision-transformer ``get_batch``): per sample,
  slice the episode, compute ``discount_cumsum`` of the rest of the episode with a Python loop, and
  left-pad with ``np.concatenate``. It gets its episodes as in-memory numpy arrays (as the reference
  does after unpickling), which favours it.

Each is timed ``--repeats`` times; the median samples/s and their ratio are printed.

Memory: for each ``--rss-steps`` size (1M and 10M by default; 10M is ~1.2 GB of Arrow) a dataset is
written in chunks (building it never holds it in memory), saved to disk, and sampled
``--rss-samples`` times in a fresh process,
twice: the first run writes the ``.npy`` column cache, the second reuses it. Peak RSS is the
child's ``VmHWM`` from ``/proc/self/status``; ``resource.getrusage``'s ``ru_maxrss`` is printed too,
but Linux carries the parent's peak into it across fork/exec, so it is an upper bound. RssAnon and
RssFile at the end show how much is private memory (flat in the dataset size) and how much is
memory-mapped file pages: page cache that the kernel maps in ~64 KiB around every random read and
may drop at any time, so it tracks the files touched rather than memory the process owns.

Usage: ``python benchmarks/bench_sampler.py [--steps 1000000] [--repeats 5] [--rss-steps 10000000]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

OBS_DIM, ACT_DIM, CONTEXT_LEN, BATCH_SIZE = 11, 3, 20, 64
RETURN_SCALE = 1 / 1000  # the reference divides returns-to-go by 1000 for Hopper


def write_synthetic_dataset(folder: Path, num_steps: int, seed: int = 0, chunk_rows: int = 1_000_000) -> None:
    """Write a ``num_steps`` dataset of the seqrl schema to ``folder`` with ``save_to_disk``.

    Columns are produced ``chunk_rows`` at a time into an Arrow stream file, so building a 10M-step
    dataset needs about one chunk of memory.
    """
    import datasets

    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 1001, size=num_steps // 10 + 1)  # more than enough episodes
    ends = np.cumsum(lengths)
    lengths = lengths[: np.searchsorted(ends, num_steps) + 1]
    lengths[-1] -= ends[len(lengths) - 1] - num_steps  # the last episode ends exactly at num_steps
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # [E]
    terminated = rng.random(len(lengths)) < 0.5  # [E]; the other episodes end in a truncation

    def vector(values: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])

    arrow_path = folder.parent / f"{folder.name}.arrow"
    with pa.OSFile(str(arrow_path), "wb") as sink:
        writer = None
        for first in range(0, num_steps, chunk_rows):
            rows = np.arange(first, min(first + chunk_rows, num_steps))  # [C]
            episode = np.searchsorted(starts, rows, side="right") - 1  # [C]
            last_step = rows == starts[episode] + lengths[episode] - 1
            table = pa.table({
                "episode_index": episode, "timestep": rows - starts[episode],
                "observations": vector(rng.standard_normal((len(rows), OBS_DIM), dtype=np.float32)),
                "actions": vector(rng.uniform(-1, 1, (len(rows), ACT_DIM)).astype(np.float32)),
                "rewards": rng.uniform(0, 4, len(rows)).astype(np.float32),
                "terminations": last_step & terminated[episode], "truncations": last_step & ~terminated[episode],
                "next_observations": vector(rng.standard_normal((len(rows), OBS_DIM), dtype=np.float32)),
            })
            if writer is None:
                writer = pa.ipc.new_stream(sink, table.schema)
            writer.write_table(table, max_chunksize=1000)  # record batches of 1000 rows, like `datasets`
        writer.close()
    dataset = datasets.Dataset.from_file(str(arrow_path))  # memory-mapped
    dataset.save_to_disk(str(folder))
    del dataset
    arrow_path.unlink()


def discount_cumsum(x: np.ndarray, gamma: float) -> np.ndarray:
    """The reference code's returns-to-go: a Python loop over the rest of the episode."""
    cumsum = np.zeros_like(x)
    cumsum[-1] = x[-1]
    for t in reversed(range(x.shape[0] - 1)):
        cumsum[t] = x[t] + gamma * cumsum[t + 1]
    return cumsum


def naive_batch(trajectories, p_sample, rng, state_mean, state_std) -> dict[str, np.ndarray]:
    """One batch, sample by sample, as in kzl/decision-transformer ``get_batch`` (numpy only)."""
    max_len = CONTEXT_LEN
    batch_inds = rng.choice(len(trajectories), size=BATCH_SIZE, replace=True, p=p_sample)
    s, a, rtg, timesteps, mask = [], [], [], [], []
    for i in range(BATCH_SIZE):
        traj = trajectories[batch_inds[i]]
        si = rng.integers(0, traj["rewards"].shape[0])
        s.append(traj["observations"][si:si + max_len].reshape(1, -1, OBS_DIM))
        a.append(traj["actions"][si:si + max_len].reshape(1, -1, ACT_DIM))
        timesteps.append(np.arange(si, si + s[-1].shape[1]).reshape(1, -1))
        rtg.append(discount_cumsum(traj["rewards"][si:], gamma=1.0)[:s[-1].shape[1]].reshape(1, -1, 1))
        tlen = s[-1].shape[1]
        s[-1] = np.concatenate([np.zeros((1, max_len - tlen, OBS_DIM)), s[-1]], axis=1)
        s[-1] = (s[-1] - state_mean) / state_std
        a[-1] = np.concatenate([np.zeros((1, max_len - tlen, ACT_DIM)), a[-1]], axis=1)
        rtg[-1] = np.concatenate([np.zeros((1, max_len - tlen, 1)), rtg[-1]], axis=1) * RETURN_SCALE
        timesteps[-1] = np.concatenate([np.zeros((1, max_len - tlen)), timesteps[-1]], axis=1)
        mask.append(np.concatenate([np.zeros((1, max_len - tlen)), np.ones((1, tlen))], axis=1))
    return {
        "states": np.concatenate(s).astype(np.float32),  # [B, K, obs_dim]
        "actions": np.concatenate(a).astype(np.float32),  # [B, K, act_dim]
        "returns_to_go": np.concatenate(rtg).astype(np.float32),  # [B, K, 1]
        "timesteps": np.concatenate(timesteps).astype(np.int64),  # [B, K]
        "attention_mask": np.concatenate(mask).astype(np.int64),  # [B, K]
    }


def median_samples_per_second(draw, calls: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        began = time.perf_counter()
        for call in range(calls):
            draw(call)
        rates.append(calls * BATCH_SIZE / (time.perf_counter() - began))
    return statistics.median(rates)


def compare_speed(num_steps: int, repeats: int) -> None:
    import datasets

    from seqrl.data.samplers import TrajectorySampler

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synthetic"
        write_synthetic_dataset(folder, num_steps)
        dataset = datasets.load_from_disk(str(folder))
        state_mean, state_std = np.zeros(OBS_DIM, np.float32), np.ones(OBS_DIM, np.float32)
        began = time.perf_counter()
        sampler = TrajectorySampler(dataset, CONTEXT_LEN, BATCH_SIZE, RETURN_SCALE, state_mean, state_std)
        built = time.perf_counter() - began
        began = time.perf_counter()
        TrajectorySampler(dataset, CONTEXT_LEN, BATCH_SIZE, RETURN_SCALE, state_mean, state_std)
        rebuilt = time.perf_counter() - began
        # The reference keeps a list of per-episode dicts of numpy arrays in memory.
        bounds = np.append(sampler.episode_starts, sampler.num_steps)
        observations, actions = np.array(sampler.observations), np.array(sampler.actions)
        rewards = np.array(dataset.data.table.column("rewards"))
        trajectories = [{"observations": observations[a:b], "actions": actions[a:b], "rewards": rewards[a:b]}
                        for a, b in zip(bounds[:-1], bounds[1:])]
        p_sample = sampler.episode_lengths / sampler.num_steps
        rng = np.random.default_rng(0)

        naive = median_samples_per_second(
            lambda call: naive_batch(trajectories, p_sample, rng, state_mean, state_std), 10, repeats)
        vectorised = median_samples_per_second(sampler.sample, 200, repeats)
    print(f"dataset: {num_steps:,} steps, {len(trajectories):,} episodes, memory-mapped (load_from_disk)")
    print(f"TrajectorySampler construction: {built:.2f} s first (writes the .npy cache), {rebuilt:.2f} s reusing it")
    print(f"batch {BATCH_SIZE}, K={CONTEXT_LEN}, median of {repeats} repeats:")
    print(f"  naive per-sample loop : {naive:12,.0f} samples/s")
    print(f"  seqrl TrajectorySampler: {vectorised:12,.0f} samples/s")
    print(f"  ratio                  : {vectorised / naive:12.1f}x")


def _peak_rss_child(folder: str, samples: int, results) -> None:
    """In a fresh process: load, build the sampler, sample; report memory in MiB."""
    import datasets

    from seqrl.data.samplers import TrajectorySampler

    baseline = _memory_status()["VmHWM"]
    began = time.perf_counter()
    sampler = TrajectorySampler(datasets.load_from_disk(folder), CONTEXT_LEN, BATCH_SIZE, RETURN_SCALE)
    built = time.perf_counter() - began
    for step in range(samples):
        sampler.sample(step)
    status = _memory_status()
    results.put({
        "baseline_mib": baseline, "peak_mib": status["VmHWM"], "rss_anon_mib": status["RssAnon"],
        "rss_file_mib": status["RssFile"], "construction_s": built,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    })


def _memory_status() -> dict[str, float]:
    """VmHWM (this process's peak RSS), RssAnon and RssFile in MiB, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "RssAnon", "RssFile")}


def measure_memory(num_steps: int, samples: int) -> None:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synthetic"
        began = time.perf_counter()
        write_synthetic_dataset(folder, num_steps)
        size = sum(path.stat().st_size for path in folder.glob("*.arrow")) / 2**20
        print(f"\nmemory: {num_steps:,}-step dataset, {size:,.0f} MiB of Arrow on disk "
              f"(written in {time.perf_counter() - began:.0f} s); {samples} samples of {BATCH_SIZE}x{CONTEXT_LEN}")
        for run in ("first run (writes the .npy cache)", "second run (reuses the cache)"):
            results = context.Queue()
            child = context.Process(target=_peak_rss_child, args=(str(folder), samples, results))
            child.start()
            report = results.get()
            child.join()
            print(f"  {run}: peak RSS {report['peak_mib']:,.0f} MiB (imports alone {report['baseline_mib']:,.0f}); "
                  f"at the end RssAnon {report['rss_anon_mib']:,.0f} + RssFile {report['rss_file_mib']:,.0f} MiB; "
                  f"construction {report['construction_s']:.1f} s; "
                  f"getrusage ru_maxrss {report['ru_maxrss_mib']:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="dataset size for the speed comparison")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--rss-steps", type=int, nargs="*", default=[1_000_000, 10_000_000],
                        help="dataset sizes for the memory runs (none: skip)")
    parser.add_argument("--rss-samples", type=int, default=1000, help="batches drawn in the memory run")
    args = parser.parse_args()
    compare_speed(args.steps, args.repeats)
    for num_steps in args.rss_steps:
        measure_memory(num_steps, args.rss_samples)


if __name__ == "__main__":
    main()
