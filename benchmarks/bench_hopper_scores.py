"""Normalised scores of seqrl and d3rlpy on the D4RL-style Hopper data, with the same budget.

For every dataset (``--datasets``, Minari ids read from ``MINARI_DATASETS_PATH``, default
``/work/shared/datasets/minari``), algorithm (``--algos``) and seed (``--seeds``):

- ``seqrl``: ``python train.py --config configs/<algo>/<hopper-medium|hopper-medium-replay>.yaml --steps
  BUDGET --seed S`` (the user's command; evaluation at the end with ``--episodes`` episodes on the
  config's env), and the normalised score from the run's ``eval_info.json``.
- ``d3rlpy``: ``benchmarks/d3rlpy_peer.py --score-steps BUDGET`` in d3rlpy's own virtual environment
  (``--d3rlpy-python``), with the same config's hyperparameters, on the same transitions, evaluated on
  the same env from the same starting seeds; returns normalised with the dataset's reference scores.

Both sides get ``--budget`` gradient steps and one thread each; the two run side by side (one per
core) since only scores are compared. The table gives mean ± std over seeds of each side's mean
normalised score. Results are also written to ``--output`` (JSON) as they arrive.

Usage: ``python benchmarks/bench_hopper_scores.py [--budget 100000] [--seeds 0 1 2] [--episodes 10]
[--algos cql iql bcq td3bc bc] [--datasets mujoco/hopper/medium-v0 mujoco/hopper/medium-replay-v0]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from bench_value_speed import export_transitions, peer_hparams, thread_env

DEFAULT_MINARI_PATH = "/work/shared/datasets/minari"
REPO = Path(__file__).resolve().parents[1]
CONFIG_NAMES = {"mujoco/hopper/medium-v0": "hopper-medium", "mujoco/hopper/medium-replay-v0": "hopper-medium-replay"}


def run_seqrl(algo: str, dataset_id: str, seed: int, args, workdir: Path) -> list[float]:
    output = workdir / f"seqrl-{algo}-{CONFIG_NAMES[dataset_id]}-{seed}"
    command = [sys.executable, "train.py", "--config", f"configs/{algo}/{CONFIG_NAMES[dataset_id]}.yaml",
               "--output_dir", str(output), "--steps", str(args.budget), "--seed", str(seed),
               "--checkpoint_every", "0", "--eval.every", "0", "--eval.episodes", str(args.episodes),
               "--eval.num_envs", str(min(10, args.episodes)), "--eval.seed", str(seed)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=thread_env(1))
    if result.returncode != 0:
        raise SystemExit(f"seqrl {algo} on {dataset_id} failed:\n{result.stderr[-3000:]}")
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
        raise SystemExit(f"d3rlpy {algo} on {dataset_id} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["returns"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CONFIG_NAMES))
    parser.add_argument("--algos", nargs="+", default=["cql", "iql", "bcq", "td3bc", "bc"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100_000, help="gradient steps per run, both sides")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--d3rlpy-python", default=os.environ.get("D3RLPY_PYTHON", ".venv-d3rlpy/bin/python"))
    parser.add_argument("--output", default="runs/hopper_scores.json")
    args = parser.parse_args()
    if not Path(args.d3rlpy_python).exists():
        raise SystemExit(f"no d3rlpy interpreter at {args.d3rlpy_python}; set it up with: python -m venv .venv-d3rlpy "
                         "&& .venv-d3rlpy/bin/pip install torch==2.13.0 d3rlpy 'gymnasium[mujoco]==1.0.0'")

    from seqrl.data.schema import get_metadata
    from seqrl.data.sources import load_dataset
    from seqrl.evaluation.scores import normalized_score

    os.environ.setdefault("MINARI_DATASETS_PATH", DEFAULT_MINARI_PATH)
    results: dict = {"budget": args.budget, "episodes": args.episodes, "runs": []}
    print(f"budget {args.budget:,} gradient steps per run, {args.episodes} episodes, seeds {args.seeds}")
    print(f"{'dataset':>32} {'algo':>6} {'seqrl':>14} {'d3rlpy':>14}")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        for dataset_id in args.datasets:
            dataset = load_dataset(dataset_id)
            metadata = get_metadata(dataset)
            data = Path(tmp) / f"{CONFIG_NAMES[dataset_id]}.npz"
            export_transitions(dataset, data)
            for algo in args.algos:
                scores = {"seqrl": [], "d3rlpy": []}
                for seed in args.seeds:
                    ours = pool.submit(run_seqrl, algo, dataset_id, seed, args, Path(tmp))
                    theirs = pool.submit(run_d3rlpy, algo, dataset_id, seed, args, data, metadata.env_id)
                    for side, future in (("seqrl", ours), ("d3rlpy", theirs)):
                        returns = np.asarray(future.result())
                        score = float(normalized_score(returns, metadata.ref_min_score, metadata.ref_max_score).mean())
                        scores[side].append(score)
                        results["runs"].append({"dataset": dataset_id, "algo": algo, "seed": seed, "side": side,
                                                "returns": returns.tolist(), "normalized_score": score})
                    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.output).write_text(json.dumps(results, indent=1))
                cells = [f"{np.mean(scores[s]):6.1f} ± {np.std(scores[s]):5.1f}" for s in ("seqrl", "d3rlpy")]
                print(f"{dataset_id:>32} {algo:>6} {cells[0]:>14} {cells[1]:>14}", flush=True)
    print(f"per-run returns: {args.output}")


if __name__ == "__main__":
    main()
