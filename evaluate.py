"""Evaluate a seqrl policy at target returns:
`python evaluate.py --policy DIR_OR_HUB_ID --target_returns A B C --episodes N --num_envs M --seed S --output FILE.json`.

The policy acts in the environment it saves, or in another one whose spaces match: `--env_id Hopper-v5`,
`--env_kwargs '{"g": 5.0}'`. A custom env is reached with `--env_import my_package.envs` (the module that
registers it) or an entry point `--env_id my_package.envs:MyEnv`. A local policy folder imports the modules its
config names; a policy from the Hub does so only with `--trust_remote_code`.
"""

import argparse
from pathlib import Path

from seqrl.cli import json_object, run_cli
from seqrl.envs import check_remote_imports, env_modules, import_env_modules
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
    parser.add_argument("--env_id", default=None,
                        help="evaluate in this environment instead of the policy's (a registered id, module:Id-v0, or "
                             "an entry point module:EnvClass); its spaces must match the policy's")
    parser.add_argument("--env_kwargs", type=json_object, default=None, metavar="JSON",
                        help="keyword arguments of the env, e.g. '{\"g\": 5.0}' (without --env_id: on top of the "
                             "policy's saved ones)")
    parser.add_argument("--env_import", nargs="+", default=[], metavar="MODULE",
                        help="modules to import first, e.g. the package that registers a custom env")
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="let a policy from the Hub import the modules its config names for its env")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.num_envs < 1:
        parser.error("--episodes and --num_envs must be at least 1")

    import torch

    import_env_modules(args.env_import)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    policy = load_policy(args.policy, revision=args.revision, device=device)
    if not args.env_id:
        import_policy_env(policy.config, args)
    if args.planner:
        override_planner(policy, args.planner, parser)
    report = evaluate_policy(policy, args.target_returns, args.episodes, args.num_envs, args.seed, env_id=args.env_id,
                             mixed_precision=args.mixed_precision, env_kwargs=args.env_kwargs)
    report["policy"] = args.policy
    local = Path(args.policy)
    output = Path(args.output) if args.output else (local / "eval_info.json" if local.is_dir() else Path("eval_info.json"))
    write_report(report, output)
    print(format_table(report))
    print(f"Wrote {output}" + (f" and {output.with_suffix('.png')}" if policy.uses_target_return else ""))


def import_policy_env(config, args: argparse.Namespace) -> None:
    """Import the modules the policy's config names for its env: those of a local folder (the user's own files),
    those of a Hub policy only with --trust_remote_code (or when the user imports them with --env_import)."""
    if not Path(args.policy).exists():
        check_remote_imports(args.policy, config.env_id, config.env_import, args.env_import, args.trust_remote_code)
    modules = env_modules(config.env_id, config.env_import)
    import_env_modules(modules, flag=f"the policy {args.policy} names the env module")


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
