"""Peak memory (RSS) of training the Decision Transformer with ``seqrl.training.loop.train`` on a 10M-step dataset.

The dataset (obs 11, act 3, episodes of 10..1000 steps; ~1.2 GB of Arrow for 10M steps) is written
in chunks by ``bench_sampler.write_synthetic_dataset`` (building it never holds it in memory), its
statistics are computed in chunks, and it gets seqrl metadata (``DatasetMetadata`` with the Hopper-v5
env spec, ``with_metadata``) and is saved with ``seqrl.data.sources.save_dataset``. Each run then
trains in a fresh process (``spawn``): the real ``train(TrainConfig(...))`` with the ``dt`` paper
defaults, ``--train-steps`` steps, ``checkpoint_every 0`` and ``eval.final False``; the data goes through
``seqrl.data.sources.load_dataset(path)`` inside ``train``.

Inside the child, memory is read from ``/proc/self/status`` at the end of each phase: ``VmHWM`` (the
peak RSS) is reset (``/proc/self/clear_refs`` = 5) after each reading, so each phase reports its own
peak and the run's peak is the largest of them. The phases are: imports; ``train`` up to the loaded
dataset (``load_dataset``, including ``validate`` when ``data.validate``); up to the built sampler
(``algorithm.make_sampler``: the first run writes the ``.npy`` column cache beside the dataset, later
runs reuse it); and the rest of ``train`` (the steps, final checkpoint, policy save). ``RssAnon`` (private
memory) and ``RssFile`` (mapped file pages: page cache the kernel may drop, counted in RSS while
mapped) at the end of each phase tell owned memory from memory-mapped data.

``--validate both`` (default) runs the training twice: with ``data.validate`` true (the default of
``TrainConfig``) and false, to show what validation costs. Goal for reference: peak RSS < 2 GB.

Usage: ``python benchmarks/bench_memory.py [--num-steps 10000000] [--train-steps 200]
[--validate both|on|off] [--data-dir DIR] [--threads N]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sampler import ACT_DIM, OBS_DIM, write_synthetic_dataset  # noqa: E402

GOAL_MIB = 2048
_STATS_CHUNK_ROWS = 1 << 20


# ---------------------------------------------------------------- building the dataset


def chunked_stats(table) -> dict:
    """``seqrl.data.stats.compute_stats`` of an Arrow table in the seqrl schema, one chunk at a time."""
    from seqrl.data.stats import STD_FLOOR

    def column(part, name: str) -> np.ndarray:
        array = part.column(name).combine_chunks()
        if hasattr(array.type, "list_size"):
            return array.flatten().to_numpy().reshape(-1, array.type.list_size)
        return array.to_numpy(zero_copy_only=False)

    num_rows = table.num_rows
    num_episodes = int(table.column("episode_index")[num_rows - 1].as_py()) + 1  # ids 0 .. E-1, in order
    obs_sum, obs_squares = np.zeros(OBS_DIM), np.zeros(OBS_DIM)
    reward_sum = reward_squares = 0.0
    returns, lengths = np.zeros(num_episodes), np.zeros(num_episodes, np.int64)
    action_min, action_max = np.full(ACT_DIM, np.inf), np.full(ACT_DIM, -np.inf)
    for begin in range(0, num_rows, _STATS_CHUNK_ROWS):
        part = table.slice(begin, _STATS_CHUNK_ROWS)
        observations = column(part, "observations").astype(np.float64)
        rewards = column(part, "rewards").astype(np.float64)
        actions, episode = column(part, "actions"), column(part, "episode_index")
        obs_sum += observations.sum(axis=0)
        obs_squares += np.einsum("ij,ij->j", observations, observations)
        reward_sum += rewards.sum()
        reward_squares += rewards @ rewards
        returns += np.bincount(episode, weights=rewards, minlength=num_episodes)
        lengths += np.bincount(episode, minlength=num_episodes)
        action_min, action_max = np.minimum(action_min, actions.min(axis=0)), np.maximum(action_max, actions.max(axis=0))
    obs_mean = obs_sum / num_rows
    reward_mean = reward_sum / num_rows
    return {
        "obs_mean": obs_mean.tolist(),
        "obs_std": np.maximum(np.sqrt(np.maximum(obs_squares / num_rows - obs_mean**2, 0)), STD_FLOOR).tolist(),
        "reward_mean": float(reward_mean), "reward_std": float(np.sqrt(max(reward_squares / num_rows - reward_mean**2, 0))),
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "return_min": float(returns.min()), "return_max": float(returns.max()),
        "return_p10": float(np.percentile(returns, 10)), "return_p50": float(np.percentile(returns, 50)),
        "return_p90": float(np.percentile(returns, 90)),
        "length_mean": float(lengths.mean()), "length_min": int(lengths.min()), "length_max": int(lengths.max()),
        "num_episodes": num_episodes, "num_steps": num_rows,
        "action_min": action_min.tolist(), "action_max": action_max.tolist(),
    }


def build_seqrl_dataset(folder: Path, num_steps: int) -> None:
    """Write a ``num_steps`` synthetic dataset with seqrl metadata to ``folder`` (never whole in memory)."""
    import datasets
    import gymnasium as gym
    from minari.serialization import serialize_space

    from seqrl.data.schema import DatasetMetadata, with_metadata
    from seqrl.data.sources import save_dataset

    datasets.disable_progress_bars()
    raw = folder.with_name(f"{folder.name}-raw")
    write_synthetic_dataset(raw, num_steps)
    dataset = datasets.load_from_disk(str(raw))  # memory-mapped
    metadata = DatasetMetadata(
        dataset_id=f"synthetic/hopper-{num_steps}", env_spec=gym.spec("Hopper-v5").to_json(),
        observation_space=serialize_space(gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64)),
        action_space=serialize_space(gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)),
        stats=chunked_stats(dataset.data.table),
    )
    save_dataset(with_metadata(dataset, metadata), folder)
    del dataset
    shutil.rmtree(raw)


# ---------------------------------------------------------------- the training child


def _memory_status() -> dict[str, float]:
    """VmHWM (peak RSS since the last reset), VmRSS, RssAnon and RssFile in MiB, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _train_child(folder: str, out_dir: str, steps: int, validate: bool, threads: int, results) -> None:
    """In a fresh process: ``train`` with the dt defaults on ``folder``; report memory per phase."""
    began = last = time.perf_counter()
    os.environ["TQDM_DISABLE"] = "1"
    import torch

    torch.set_num_threads(threads)
    import seqrl.training.loop as loop
    from seqrl.algos.base import Algorithm
    from seqrl.algos.dt import DTConfig
    from seqrl.training.config import DataConfig, EvalConfig, TrainConfig

    phases: list[dict] = []
    resettable = True

    def mark(name: str) -> None:
        nonlocal last, resettable
        now = time.perf_counter()
        phases.append({"phase": name, "seconds": now - last, **_memory_status()})
        resettable = _reset_peak() and resettable
        last = time.perf_counter()

    mark("imports")
    load_dataset, make_sampler = loop.load_dataset, Algorithm.make_sampler

    def marked_load(*args, **kwargs):
        dataset = load_dataset(*args, **kwargs)
        mark(f"load_dataset (validate={validate})")
        return dataset

    def marked_make_sampler(self, *args, **kwargs):
        sampler = make_sampler(self, *args, **kwargs)
        mark("model + make_sampler")
        return sampler

    loop.load_dataset, Algorithm.make_sampler = marked_load, marked_make_sampler
    cfg = TrainConfig(
        algo=DTConfig(), data=DataConfig(dataset=folder, validate=validate), eval=EvalConfig(final=False),
        output_dir=out_dir, steps=steps, checkpoint_every=0, log_every=max(1, min(100, steps)), mixed_precision="no",
    )
    loop.train(cfg)
    mark(f"{steps} training steps + final checkpoint and policy")
    results.put({"phases": phases, "resettable": resettable, "total_s": time.perf_counter() - began})


def run_training(folder: Path, steps: int, validate: bool, threads: int) -> dict:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as out_dir:
        results = context.Queue()
        child = context.Process(target=_train_child, args=(str(folder), out_dir, steps, validate, threads, results))
        child.start()
        report = results.get()
        child.join()
    if child.exitcode:
        raise RuntimeError(f"the training child exited with {child.exitcode}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-steps", type=int, default=10_000_000, help="dataset size (steps)")
    parser.add_argument("--train-steps", type=int, default=200, help="training steps per run")
    parser.add_argument("--validate", choices=("both", "on", "off"), default="both",
                        help="data.validate of the runs (both: one run each, validation first)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the dataset here (reused when it already holds one); default: a temporary folder")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data_dir or Path(tmp) / "synthetic"
        if (folder / "dataset_info.json").is_file():
            print(f"reusing the dataset in {folder}")
        else:
            began = time.perf_counter()
            build_seqrl_dataset(folder, args.num_steps)
            print(f"built a {args.num_steps:,}-step dataset with seqrl metadata in {time.perf_counter() - began:.1f} s")
        size = sum(path.stat().st_size for path in folder.glob("*.arrow")) / 2**20
        print(f"dataset: {folder}, {size:,.0f} MiB of Arrow; DT paper defaults, {args.train_steps} training steps, "
              f"{args.threads} threads; memory in MiB (peak = VmHWM within the phase)")
        for validate in {"both": (True, False), "on": (True,), "off": (False,)}[args.validate]:
            report = run_training(folder, args.train_steps, validate, args.threads)
            phases = report["phases"]
            peak = max(phase["VmHWM"] for phase in phases)
            print(f"\nrun with data.validate={validate}: peak RSS {peak:,.0f} MiB "
                  f"({'under' if peak < GOAL_MIB else 'OVER'} the {GOAL_MIB:,} MiB goal), {report['total_s']:.1f} s in all"
                  f"{'' if report['resettable'] else ' (VmHWM could not be reset: peaks are cumulative)'}")
            for phase in phases:
                print(f"  {phase['phase']:<52} {phase['seconds']:7.1f} s  peak {phase['VmHWM']:7,.0f}  at the end: "
                      f"RSS {phase['VmRSS']:7,.0f} = anon {phase['RssAnon']:7,.0f} + file {phase['RssFile']:7,.0f}")


if __name__ == "__main__":
    main()
