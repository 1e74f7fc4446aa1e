"""Normalised scores of seqrl and d3rlpy on the D4RL-style Hopper data, with the same budget.

For every dataset (``--datasets``, Minari ids read from ``MINARI_DATASETS_PATH``, default
``../shared/datasets/minari`` beside the repository), algorithm (``--algos``) and seed (``--seeds``):

- ``seqrl``: ``python train.py --config configs/<algo>/<hopper-medium|hopper-medium-replay>.yaml --steps
  BUDGET --seed S`` (the user's command; evaluation at the end with ``--episodes`` episodes on the
  config's env), and the normalised score from the run's ``eval_info.json``.
- ``d3rlpy``: ``benchmarks/d3rlpy_peer.py --score-steps BUDGET`` in d3rlpy's own virtual environment
  (``--d3rlpy-python``), with the same config's hyperparameters, on the same transitions, evaluated on
  the same env from the same starting seeds; returns normalised with the dataset's reference scores.

``--sides`` picks what runs: ``seqrl``, ``d3rlpy`` (the default pair) and ``seqrl-bf16``, seqrl's run
with ``--mixed_precision bf16`` (bf16 autocast, float32 weights), to check that the faster precision
trains as well. Every side gets ``--budget`` gradient steps and one thread. ``--workers`` runs go at once
(default 2, one per core), seqrl's and d3rlpy's alternating in the queue; timing is not compared,
only scores. The table gives mean ± std over seeds of each side's mean normalised score, and a bar
chart of the same goes beside ``--output``. Every finished run is written to ``--output`` (JSON) at
once, so a run that fails costs only itself, and ``--resume`` picks an interrupted benchmark up.

Usage: ``python benchmarks/bench_hopper_scores.py [--budget 100000] [--seeds 0 1 2] [--episodes 10]
[--algos cql iql bcq td3bc bc] [--datasets mujoco/hopper/medium-v0 mujoco/hopper/medium-replay-v0]
[--sides seqrl d3rlpy seqrl-bf16] [--workers 2] [--output runs/hopper_scores.json] [--resume]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from bench_value_speed import export_transitions, peer_hparams, require_peer, thread_env
from common import DEFAULT_MINARI_PATH

from seqrl.evaluation.scores import sample_std
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
CONFIG_NAMES = {"mujoco/hopper/medium-v0": "hopper-medium", "mujoco/hopper/medium-replay-v0": "hopper-medium-replay"}
SIDES = {"seqrl": "tab:blue", "d3rlpy": "tab:orange", "seqrl-bf16": "tab:green"}  # and their bar colours


class RunFailed(RuntimeError):
    """One training run exited with an error (its stderr tail is the message)."""


def run_seqrl(algo: str, dataset_id: str, seed: int, args, workdir: Path, side: str = "seqrl") -> list[float]:
    precision = side.partition("-")[2] or "no"  # "seqrl-bf16" -> "bf16"
    output = workdir / f"{side}-{algo}-{CONFIG_NAMES[dataset_id]}-{seed}"
    command = [sys.executable, "train.py", "--config", f"configs/{algo}/{CONFIG_NAMES[dataset_id]}.yaml",
               "--output_dir", str(output), "--steps", str(args.budget), "--seed", str(seed),
               "--mixed_precision", precision,
               "--checkpoint_every", "0", "--eval.every", "0", "--eval.episodes", str(args.episodes),
               "--eval.num_envs", str(min(10, args.episodes)), "--eval.seed", str(seed)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=thread_env(1))
    if result.returncode != 0:
        raise RunFailed(f"{side} {algo} on {dataset_id}, seed {seed} failed:\n{result.stderr[-3000:]}")
    row = json.loads((output / "eval_info.json").read_text())["results"][0]
    return row["returns"]


def run_d3rlpy(algo: str, dataset_id: str, seed: int, args, data: Path, env_id: str) -> list[float]:
    from seqrl.training.cli import parse_train_args

    cfg = parse_train_args(["--config", str(REPO / f"configs/{algo}/{CONFIG_NAMES[dataset_id]}.yaml")])
    command = [args.d3rlpy_python, str(Path(__file__).with_name("d3rlpy_peer.py")), str(data), algo,
               peer_hparams(cfg.algo),
               "--score-steps", str(args.budget), "--episodes", str(args.episodes), "--env", env_id,
               "--seed", str(seed), "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, env=thread_env(1))
    if result.returncode != 0:
        raise RunFailed(f"d3rlpy {algo} on {dataset_id}, seed {seed} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["returns"]


def run_one(job: tuple, args, workdir: Path, data: dict[str, Path], env_ids: dict[str, str]) -> list[float]:
    side, dataset_id, algo, seed = job
    if side.startswith("seqrl"):
        return run_seqrl(algo, dataset_id, seed, args, workdir, side)
    return run_d3rlpy(algo, dataset_id, seed, args, data[dataset_id], env_ids[dataset_id])


def load_previous(path: Path, args) -> list[dict]:
    """Runs already in ``path`` from a benchmark with the same budget and episodes (``--resume``)."""
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    if (previous.get("budget"), previous.get("episodes")) != (args.budget, args.episodes):
        raise SystemExit(f"{path} holds runs with budget {previous.get('budget')} and {previous.get('episodes')} "
                         f"episodes, not {args.budget} and {args.episodes}; pass another --output.")
    return previous["runs"]


def table(runs: list[dict], datasets: list[str], algos: list[str], sides: list[str]) -> list[str]:
    """One line per (dataset, algo): mean ± sample std over seeds of each side's mean normalised score."""
    lines = [f"{'dataset':>32} {'algo':>6} {'seeds':>5} " + " ".join(f"{side:>14}" for side in sides)]
    for dataset_id in datasets:
        for algo in algos:
            cells, seeds = [], set()
            for side in sides:
                scores = [r["normalized_score"] for r in runs if (r["dataset"], r["algo"], r["side"]) == (dataset_id, algo, side)]
                seeds |= {r["seed"] for r in runs if (r["dataset"], r["algo"], r["side"]) == (dataset_id, algo, side)}
                cells.append(f"{np.mean(scores):6.1f} ± {sample_std(scores):5.1f}" if scores else "-")
            if seeds:
                lines.append(f"{dataset_id:>32} {algo:>6} {len(seeds):>5} " + " ".join(f"{c:>14}" for c in cells))
    return lines


def plot(runs: list[dict], datasets: list[str], algos: list[str], sides: list[str], budget: int, path: Path) -> None:
    """Bars of the mean normalised score per algorithm, the sides side by side, one panel per dataset;
    the dots are the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), dpi=120, squeeze=False)
    for ax, dataset_id in zip(axes[0], datasets):
        width = 0.8 / len(sides)
        for k, side in enumerate(sides):
            offset, color = (k - (len(sides) - 1) / 2) * width, SIDES[side]
            for i, algo in enumerate(algos):
                scores = [r["normalized_score"] for r in runs if (r["dataset"], r["algo"], r["side"]) == (dataset_id, algo, side)]
                if scores:
                    ax.bar(i + offset, np.mean(scores), width=width, color=color, alpha=0.8, label=side if i == 0 else None)
                    ax.scatter([i + offset] * len(scores), scores, color="black", s=8, zorder=3)
        ax.set_xticks(range(len(algos)), algos)
        ax.set_title(f"{dataset_id}, {budget:,} steps")
        ax.set_ylabel("normalised score")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CONFIG_NAMES))
    parser.add_argument("--algos", nargs="+", default=["cql", "iql", "bcq", "td3bc", "bc"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100_000, help="gradient steps per run, both sides")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--sides", nargs="+", choices=list(SIDES), default=["seqrl", "d3rlpy"])
    parser.add_argument("--workers", type=int, default=2, help="runs at once, one thread each (one per core)")
    parser.add_argument("--d3rlpy-python", default=os.environ.get("D3RLPY_PYTHON", ".venv-d3rlpy/bin/python"))
    parser.add_argument("--output", default="runs/hopper_scores.json")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --output and do the rest")
    args = parser.parse_args()
    if "d3rlpy" in args.sides:
        require_peer(args.d3rlpy_python)
    unknown = sorted(set(args.datasets) - set(CONFIG_NAMES))
    if unknown:
        raise SystemExit(f"no Hopper configs for {unknown}; choose from {sorted(CONFIG_NAMES)}")

    from seqrl.data.schema import get_metadata
    from seqrl.data.sources import load_dataset
    from seqrl.evaluation.scores import normalized_score

    os.environ.setdefault("MINARI_DATASETS_PATH", DEFAULT_MINARI_PATH)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    runs = load_previous(output, args) if args.resume else []
    done = {(r["side"], r["dataset"], r["algo"], r["seed"]) for r in runs}
    # In --algos order (put the slow ones last), the sides' runs alternating, so both cores stay busy
    # whichever side is slower.
    jobs = [(side, d, a, s) for a in args.algos for d in args.datasets for s in args.seeds for side in args.sides
            if (side, d, a, s) not in done]
    print(f"budget {args.budget:,} gradient steps per run, {args.episodes} episodes, seeds {args.seeds}; "
          f"{len(jobs)} runs to do ({len(done)} kept from {output}), {args.workers} at a time")

    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        data, metadata = {}, {}
        for dataset_id in args.datasets:
            dataset = load_dataset(dataset_id)
            metadata[dataset_id] = get_metadata(dataset)
            data[dataset_id] = Path(tmp) / f"{CONFIG_NAMES[dataset_id]}.npz"
            export_transitions(dataset, data[dataset_id])
        env_ids = {d: m.env_id for d, m in metadata.items()}
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            futures = {pool.submit(run_one, job, args, Path(tmp), data, env_ids): job for job in jobs}
            for future in tqdm(as_completed(futures), total=len(futures), desc="runs"):
                side, dataset_id, algo, seed = futures[future]
                try:
                    returns = np.asarray(future.result())
                except RunFailed as error:  # keep going: the other runs' results still count
                    failures.append(str(error))
                    tqdm.write(str(error)[:2000])
                    continue
                meta = metadata[dataset_id]
                score = float(normalized_score(returns, meta.ref_min_score, meta.ref_max_score).mean())
                runs.append({"dataset": dataset_id, "algo": algo, "seed": seed, "side": side,
                             "returns": returns.tolist(), "normalized_score": score})
                tqdm.write(f"{side:>6} {algo:>5} {CONFIG_NAMES[dataset_id]:>20} seed {seed}: {score:6.1f}")
                # Written after every run, so an interrupted benchmark resumes with --resume.
                output.write_text(json.dumps({"budget": args.budget, "episodes": args.episodes, "runs": runs}, indent=1))

    print(f"budget {args.budget:,} gradient steps per run, {args.episodes} episodes; normalised score, mean ± std over seeds")
    print("\n".join(table(runs, args.datasets, args.algos, args.sides)))
    plot(runs, args.datasets, args.algos, args.sides, args.budget, output.with_suffix(".png"))
    print(f"per-run returns: {output}; plot: {output.with_suffix('.png')}")
    if failures:
        raise SystemExit(f"{len(failures)} runs failed (the others are in {output}; rerun with --resume)")


if __name__ == "__main__":
    main()
