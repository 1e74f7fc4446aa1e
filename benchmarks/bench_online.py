"""Offline-to-online fine-tuning on the D4RL-style Hopper data: seqrl against d3rlpy's ``fit_online``.

Each run pretrains offline for ``--offline-steps`` gradient steps, evaluates (``--episodes`` episodes,
"before"), fine-tunes online for ``--env-steps`` environment steps with one update per env step (IQL,
Cal-QL) or the Online Decision Transformer's rounds (ODT: one episode, then ``updates_per_round``
updates), and evaluates again ("after").

- ``seqrl``: ``train.py --config configs/<algo>/<dataset>-online.yaml`` with the budget overridden; "before"
  is the hand-over checkpoint's policy, "after" the run's final evaluation. The online phase's own clock
  (collection and updates, no checkpoints or evaluations) gives the throughput.
- ``d3rlpy``: ``benchmarks/d3rlpy_online_peer.py`` in d3rlpy's own virtual environment (``--d3rlpy-python``)
  with the same config's hyperparameters, on the same transitions: ``fit`` then ``fit_online`` with its own
  stochastic policy as explorer, IQL with the offline episodes in a FIFO buffer, Cal-QL with a 50/50
  ``MixedReplayBuffer``; timed around ``fit_online`` alone. d3rlpy has no online Decision Transformer.

Runs go one at a time by default (``--workers 1``) so that the throughput figures are not shared cores.
Prints a table of scores before and after (mean over seeds), the gain, and env steps per second with the
ratio; writes ``--output`` (JSON, resumable with ``--resume``) and a plot beside it.

Usage: ``python benchmarks/bench_online.py [--datasets hopper-medium-replay hopper-medium] [--algos iql calql odt]
[--seeds 0 1 2] [--offline-steps 20000] [--env-steps 20000] [--episodes 10] [--workers 1] [--output runs/online.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import DEFAULT_MINARI_PATH

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MINARI_IDS = {"hopper-medium-replay": "mujoco/hopper/medium-replay-v0", "hopper-medium": "mujoco/hopper/medium-v0"}
PEERS = {"iql": "iql", "calql": "calql"}  # algorithms d3rlpy can fine-tune online


def run_seqrl(algo: str, dataset: str, seed: int, args, workdir: Path) -> dict:
    from bench_value_speed import thread_env

    run_dir = workdir / f"seqrl-{algo}-{dataset}-s{seed}"
    command = [sys.executable, str(REPO / "train.py"), "--config", str(REPO / f"configs/{algo}/{dataset}-online.yaml"),
               "--steps", str(args.offline_steps), "--online.env_steps", str(args.env_steps), "--seed", str(seed),
               "--output_dir", str(run_dir), "--eval.episodes", str(args.episodes), "--eval.every", "0",
               "--checkpoint_every", "0", "--online.checkpoint_every", "0", "--online.eval_every", "0",
               "--log_every", "1000", "--mixed_precision", "no"]
    result = subprocess.run(command, capture_output=True, text=True, env={**thread_env(args.threads), "TQDM_DISABLE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"seqrl {algo} {dataset} seed {seed} failed:\n{result.stderr[-3000:]}")
    before = evaluate_checkpoint(run_dir / "checkpoints" / f"step-{args.offline_steps:08d}" / "policy", args)
    after = json.loads((run_dir / "eval_info.json").read_text())["results"]
    summary = json.loads((run_dir / "online_returns.json").read_text())["summary"]
    return {"returns_before": before["returns"], "score_before": before["normalized_score_mean"],
            "returns_after": after[-1]["returns"], "score_after": after[-1]["normalized_score_mean"],
            "env_steps": summary["env_steps"], "updates": summary["updates"], "online_seconds": summary["seconds"]}


def evaluate_checkpoint(policy_dir: Path, args) -> dict:
    """The hand-over policy, evaluated as the run's final evaluation is (same seed and episodes)."""
    from seqrl.evaluation.rollout import evaluate_policy
    from seqrl.registry import load_policy

    policy = load_policy(policy_dir)
    targets = policy.config.target_returns[-1:] if policy.uses_target_return else None
    return evaluate_policy(policy, target_returns=targets, episodes=args.episodes, num_envs=min(10, args.episodes),
                           seed=10_000, progress=False)["results"][-1]


def run_d3rlpy(algo: str, dataset: str, seed: int, args, data: Path) -> dict:
    from bench_value_speed import peer_hparams, thread_env

    from seqrl.training.cli import parse_train_args

    config = parse_train_args(["--config", str(REPO / f"configs/{algo}/{dataset}.yaml")])
    command = [args.d3rlpy_python, str(HERE / "d3rlpy_online_peer.py"), str(data), PEERS[algo], peer_hparams(config.algo),
               "--offline-steps", str(args.offline_steps), "--env-steps", str(args.env_steps), "--episodes",
               str(args.episodes), "--seed", str(seed), "--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True, env=thread_env(args.threads))
    if result.returncode != 0:
        raise SystemExit(f"d3rlpy {algo} {dataset} seed {seed} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def export(dataset: str, workdir: Path) -> Path:
    from bench_value_speed import export_transitions

    from seqrl.data.sources import load_dataset

    path = workdir / f"{dataset}.npz"
    if not path.exists():
        export_transitions(load_dataset(MINARI_IDS[dataset]), path)
    return path


def table(runs: list[dict]) -> list[str]:
    lines = ["| dataset | algo | side | seeds | score before | score after | gain | env steps/s (online) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    keys = sorted({(r["dataset"], r["algo"], r["side"]) for r in runs})
    rates = {}
    for dataset, algo, side in keys:
        group = [r for r in runs if (r["dataset"], r["algo"], r["side"]) == (dataset, algo, side)]
        before = statistics.mean(r["score_before"] for r in group)
        after = statistics.mean(r["score_after"] for r in group)
        rate = statistics.median(r["env_steps"] / r["online_seconds"] for r in group)
        rates[(dataset, algo, side)] = rate
        lines.append(f"| {dataset} | {algo} | {side} | {len(group)} | {before:.1f} | {after:.1f} | {after - before:+.1f} "
                     f"| {rate:.1f} |")
    for dataset, algo, side in keys:
        if side == "seqrl" and (dataset, algo, "d3rlpy") in rates:
            ratio = rates[(dataset, algo, side)] / rates[(dataset, algo, "d3rlpy")]
            lines.append(f"\n{dataset} {algo}: seqrl's online phase runs {ratio:.2f}x d3rlpy's fit_online (median env steps/s).")
    return lines


def plot(runs: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    keys = sorted({(r["dataset"], r["algo"], r["side"]) for r in runs})
    figure = Figure(figsize=(max(6, 1.2 * len(keys)), 4), dpi=120)
    ax = figure.add_subplot()
    for i, key in enumerate(keys):
        group = [r for r in runs if (r["dataset"], r["algo"], r["side"]) == key]
        for offset, field, color in ((-0.2, "score_before", "tab:grey"), (0.2, "score_after", "tab:blue" if key[2] == "seqrl" else "tab:orange")):
            values = [r[field] for r in group]
            ax.bar(i + offset, statistics.mean(values), width=0.4, color=color, alpha=0.8)
            ax.scatter([i + offset] * len(values), values, color="black", s=8, zorder=3)
    ax.set_xticks(range(len(keys)), [f"{d.replace('hopper-', '')}\n{a} {s}" for d, a, s in keys], fontsize=7)
    ax.set_ylabel("normalised score (grey: before, colour: after online)")
    ax.set_title("Hopper-v5: offline pretraining, then online fine-tuning")
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["hopper-medium-replay"], choices=list(MINARI_IDS))
    parser.add_argument("--algos", nargs="+", default=["iql", "calql", "odt"])
    parser.add_argument("--sides", nargs="+", default=["seqrl", "d3rlpy"], choices=["seqrl", "d3rlpy"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--offline-steps", type=int, default=20_000)
    parser.add_argument("--env-steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="runs at once (timings are only fair with 1)")
    parser.add_argument("--d3rlpy-python", default=os.environ.get("D3RLPY_PYTHON", ".venv-d3rlpy/bin/python"))
    parser.add_argument("--output", default="runs/online.json")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", DEFAULT_MINARI_PATH)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    budget = {"offline_steps": args.offline_steps, "env_steps": args.env_steps, "episodes": args.episodes}
    runs = [r for r in json.loads(output.read_text()) if all(r[k] == v for k, v in budget.items())] \
        if args.resume and output.exists() else []
    done = {(r["dataset"], r["algo"], r["side"], r["seed"]) for r in runs}
    jobs = [(d, a, side, s) for s in args.seeds for d in args.datasets for a in args.algos for side in args.sides
            if (side == "seqrl" or a in PEERS) and (d, a, side, s) not in done]
    if any(side == "d3rlpy" for _, _, side, _ in jobs):
        from bench_value_speed import require_peer

        require_peer(args.d3rlpy_python)
    workdir = Path(tempfile.mkdtemp(prefix="seqrl-online-", dir=output.parent))
    data = {d: export(d, workdir) for d in args.datasets}

    def one(job):
        dataset, algo, side, seed = job
        result = run_seqrl(algo, dataset, seed, args, workdir) if side == "seqrl" else run_d3rlpy(algo, dataset, seed, args, data[dataset])
        record = {"dataset": dataset, "algo": algo, "side": side, "seed": seed, **budget,
                  **{k: result[k] for k in ("score_before", "score_after", "env_steps", "updates", "online_seconds",
                                            "returns_before", "returns_after")}}
        print(f"{side} {algo} {dataset} seed {seed}: {record['score_before']:.1f} -> {record['score_after']:.1f}, "
              f"{record['env_steps'] / record['online_seconds']:.1f} env steps/s", flush=True)
        return record

    with ThreadPoolExecutor(args.workers) as pool:
        for record in pool.map(one, jobs):
            runs.append(record)
            output.write_text(json.dumps(runs, indent=1))
    print(f"\nBudget: {args.offline_steps} offline steps, then {args.env_steps} env steps; {args.episodes} evaluation "
          "episodes before and after.")
    print("\n".join(table(runs)))
    plot(runs, output.with_suffix(".png"))


if __name__ == "__main__":
    main()
