"""Scores of a trained Trajectory Transformer planned two ways: seqrl's cached search, and a search that
crops and recomputes as the reference does.

seqrl's planner attends over a key/value cache: a token deep in a plan sees, from the second layer up,
the cached states of tokens older than the reference's crop (see ``modeling_trajectory_transformer``).
The reference instead re-runs the last ``context`` transitions from scratch for every sampled token, so
no layer sees further back. This script evaluates the same policy, on the same env seeds, with both:

- ``seqrl``: ``evaluate_policy`` as ``evaluate.py`` runs it;
- ``cropped``: the same acting loop, but every env's plan comes from ``ReferencePlanner``
  (``bench_tt_plan.py``: no cache, whole transitions cropped from the front, every token re-run), with
  positions being the tokens' own timesteps, as this model was trained with (the reference re-numbers
  absolute positions from its crop; its timing is measured by ``bench_tt_plan.py``).

It prints the mean ± std return and normalised score of each, and the difference. The cropped search
costs tens of times more (``bench_tt_plan.py``), so use a small model, planner and env (the built-in
Pendulum and CartPole configs), e.g.::

    python train.py --config configs/tt/pendulum-mixed.yaml --output_dir runs/tt-pendulum
    python benchmarks/bench_tt_positions.py --policy runs/tt-pendulum --episodes 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tt_plan import ReferencePlanner  # noqa: E402


def cropped_search(model, settings, prefix, index, valid, generator):
    """``beam_plan``'s signature, planning each env with the reference-style planner."""
    reference = ReferencePlanner(model, settings)
    plans, scores = [], []
    for tokens, indices, mask in zip(prefix, index, valid):
        plan, score = reference.plan(tokens[mask], generator, first_index=int(indices[mask][0]))
        plans.append(plan)
        scores.append(score)
    return torch.stack(plans), torch.stack(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="a trained TT policy folder or Hub id")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the evaluation envs (train.py's default)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", help="also write the results to this JSON file")
    args = parser.parse_args()

    from seqrl.evaluation.rollout import evaluate_policy
    from seqrl.models.trajectory_transformer import TrajectoryTransformer
    from seqrl.models.trajectory_transformer.planner import Planner
    from seqrl.registry import load_policy

    torch.set_num_threads(args.threads)
    policy = load_policy(args.policy)
    if not isinstance(policy, TrajectoryTransformer):
        parser.error(f"{args.policy} is not a Trajectory Transformer policy (algo '{policy.config.algo}').")
    results = {}
    for side, search in (("seqrl", None), ("cropped", cropped_search)):
        policy._reset_state = lambda batch, target=None, search=search: setattr(
            policy, "_planner", Planner(policy, batch, search))
        start = time.perf_counter()
        row = evaluate_policy(policy, None, args.episodes, args.num_envs, args.seed)["results"][0]
        row["seconds"] = time.perf_counter() - start
        results[side] = row
        score = row["normalized_score_mean"]
        print(f"{side:>8}: return {row['return_mean']:.1f} ± {row['return_std']:.1f}"
              + ("" if score is None else f", normalised {score:.1f} ± {row['normalized_score_std']:.1f}")
              + f", {row['episodes']} episodes, {row['seconds']:.0f} s")
    print(f"return seqrl - cropped: {results['seqrl']['return_mean'] - results['cropped']['return_mean']:+.1f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"policy": args.policy, "results": results}, indent=2))


if __name__ == "__main__":
    main()
