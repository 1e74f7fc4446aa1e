"""Evaluate a seqrl policy at target returns:
`python evaluate.py --policy DIR_OR_HUB_ID --target_returns A B C --episodes N --num_envs M --seed S --output FILE.json`.
"""

import argparse
from pathlib import Path

from seqrl.cli import run_cli
from seqrl.evaluation.report import format_table, write_report
from seqrl.evaluation.rollout import evaluate_policy
from seqrl.registry import load_policy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="policy folder (a train.py output_dir) or Hub repo id")
    parser.add_argument("--target_returns", type=float, nargs="+", default=None,
                        help="target returns for return-conditioned policies (default: the policy's saved targets)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per target return")
    parser.add_argument("--num_envs", type=int, default=10, help="environments stepped together")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first environment")
    parser.add_argument("--output", default=None, help="JSON report (default: POLICY/eval_info.json, or ./eval_info.json for Hub ids)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--mixed_precision", choices=["no", "bf16"], default="no",
                        help="act under bf16 autocast (fast on GPUs and CPUs with AVX512-BF16 or AMX; weights stay float32)")
    parser.add_argument("--planner", nargs="+", default=None, metavar="KEY=VALUE",
                        help="Trajectory Transformer planning settings for this evaluation, e.g. beam_width=32 "
                             "horizon=5 (default: those saved with the policy)")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.num_envs < 1:
        parser.error("--episodes and --num_envs must be at least 1")

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    policy = load_policy(args.policy, revision=args.revision, device=device)
    if args.planner:
        override_planner(policy, args.planner, parser)
    report = evaluate_policy(policy, args.target_returns, args.episodes, args.num_envs, args.seed,
                             mixed_precision=args.mixed_precision)
    report["policy"] = args.policy
    local = Path(args.policy)
    output = Path(args.output) if args.output else (local / "eval_info.json" if local.is_dir() else Path("eval_info.json"))
    write_report(report, output)
    print(format_table(report))
    print(f"Wrote {output}" + (f" and {output.with_suffix('.png')}" if policy.uses_target_return else ""))


def override_planner(policy, settings: list[str], parser: argparse.ArgumentParser) -> None:
    """Apply ``KEY=VALUE`` planner settings to a planning policy, checked as training checks them."""
    if not hasattr(policy.config, "planner"):
        parser.error(f"--planner: the policy (algo '{policy.config.algo}') does not plan; only --algo tt policies do.")
    from seqrl.models.trajectory_transformer.planner import resolve

    changes = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--planner {item}: write KEY=VALUE, e.g. beam_width=32")
        changes[key] = float(value) if key == "cdf_act" else int(value)
    planner = {**policy.config.planner, **changes}
    resolve(planner, policy.config.env_id, policy.config.window)  # a setting that cannot work fails now
    policy.config.planner = planner


if __name__ == "__main__":
    run_cli(main)
