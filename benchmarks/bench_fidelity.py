"""Scores of trained policies under acting settings that differ from the reference's, on the same env seeds.

Some of seqrl's departures from the reference implementations change only how a trained policy acts, not
how it is trained: the Decision Transformer's cached acting against the reference's recompute of the last K
steps (``acting``), BCQ's number of generated candidates per state (``num_candidates``: the reference acts with
100). This script evaluates each given policy once per value of one such setting, with ``evaluate_policy`` (as
``evaluate.py`` runs it) and the same evaluation seeds, and prints per policy and over the policies (seeds of
one training recipe) the mean ± sample std of the normalised score, with each setting's acting speed in env
steps per second (policy and simulator together; the machine's other load counts too)::

    python benchmarks/bench_fidelity.py --policies runs/dt-s0 runs/dt-s1 runs/dt-s2 --vary acting=window,cached
    python benchmarks/bench_fidelity.py --policies runs/bcq-s* --vary num_candidates=100,10

Without ``--vary`` each policy is evaluated as saved (e.g. to compare two training recipes' runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def parse_vary(text: str | None) -> tuple[str | None, list]:
    """``KEY=V1,V2`` -> (KEY, [V1, V2]) with numbers as numbers; None -> (None, [None])."""
    if not text:
        return None, [None]
    key, _, values = text.partition("=")
    if not key or not values:
        raise SystemExit(f"--vary {text}: write KEY=VALUE1,VALUE2, e.g. acting=window,cached")

    def cast(value: str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    return key, [cast(v) for v in values.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", required=True, help="trained policy folders (one per seed)")
    parser.add_argument("--vary", help="KEY=V1,V2: a policy config setting to evaluate at each value")
    parser.add_argument("--target-return", type=float, help="for return-conditioned policies (default: the "
                                                               "policy's largest saved target)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the evaluation envs (train.py's default)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", help="also write every evaluation to this JSON file")
    args = parser.parse_args()

    from seqrl.evaluation.rollout import evaluate_policy
    from seqrl.evaluation.scores import sample_std
    from seqrl.registry import load_policy

    torch.set_num_threads(args.threads)
    key, values = parse_vary(args.vary)
    rows = []
    for folder in args.policies:
        policy = load_policy(folder)
        if key is not None and not hasattr(policy.config, key):
            raise SystemExit(f"--vary {key}: the policy at {folder} (algo '{policy.config.algo}') has no such setting.")
        target = None
        if policy.uses_target_return:
            target = args.target_return if args.target_return is not None else max(policy.config.target_returns)
        for value in values:
            if key is not None:
                setattr(policy.config, key, value)
            began = time.perf_counter()
            report = evaluate_policy(policy, None if target is None else [target], args.episodes, args.num_envs,
                                     args.seed, progress=False)
            seconds = time.perf_counter() - began
            result = report["results"][0]
            steps = result["episode_length_mean"] * result["episodes"]
            score = result["normalized_score_mean"]
            rows.append({"policy": folder, "setting": value, "target_return": target, "normalized_score": score,
                         "normalized_score_std": result["normalized_score_std"], "return_mean": result["return_mean"],
                         "env_steps_per_s": steps / seconds, "episodes": result["episodes"]})
            shown = "" if score is None else f"normalised {score:6.1f} ± {result['normalized_score_std']:5.1f}, "
            print(f"{folder:>40} {key or '':>14}={value!s:<8} return {result['return_mean']:8.1f}, {shown}"
                  f"{steps / seconds:7.0f} env-steps/s", flush=True)

    print(f"\nover {len(args.policies)} policies (mean ± sample std of each policy's mean; env-steps/s: median)")
    for value in values:
        mine = [r for r in rows if r["setting"] == value]
        scores = [r["normalized_score"] if r["normalized_score"] is not None else r["return_mean"] for r in mine]
        label = "normalised" if mine[0]["normalized_score"] is not None else "return"
        print(f"{key or 'as saved':>14}={value!s:<8} {label} {np.mean(scores):6.1f} ± {sample_std(scores):5.1f}, "
              f"{statistics.median(r['env_steps_per_s'] for r in mine):7.0f} env-steps/s")
    if args.output:
        Path(args.output).write_text(json.dumps({"vary": key, "episodes": args.episodes, "num_envs": args.num_envs,
                                                 "seed": args.seed, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
