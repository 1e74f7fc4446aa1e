"""The evaluation command (``seqrl-eval``, ``python evaluate.py``), parsed from
:class:`~seqrl.evaluation.config.EvaluateConfig` by draccus like training's ``--eval.*``:

    seqrl-eval --policy DIR_OR_HUB_ID --target_returns A B C --episodes N --num_envs M --seed S --output FILE.json

The policy acts in the environment it saves, or in another one whose spaces match: `--env_id Hopper-v5`,
`--env_kwargs '{"g": 5.0}'`. A custom env is reached with `--env_import my_package.envs` (the module that
registers it) or an entry point `--env_id my_package.envs:MyEnv`. A local policy folder imports the modules its
config names; a policy from the Hub does so only with `--trust_remote_code`. `--video DIR` records one episode
per target return as MP4.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqrl.envs import check_remote_imports, env_modules, import_env_modules
from seqrl.evaluation.config import EvaluateConfig
from seqrl.logs import get_logger, set_log_level
from seqrl.parsing import ConfigError, config_parser, decode, precision_name, read_options

log = get_logger(__name__)
LISTS = ("target_returns", "planner", "env_import")


def parse_evaluate_args(argv: list[str], prog: str = "python evaluate.py") -> EvaluateConfig:
    options = read_options(config_parser(EvaluateConfig, prog, __doc__, LISTS), list(argv))
    cfg = decode(EvaluateConfig, options, prog=prog)
    check_evaluate_config(cfg, prog)
    return cfg


def check_evaluate_config(cfg: EvaluateConfig, prog: str = "seqrl-eval", needs_policy: bool = True) -> None:
    """The checks of the evaluation settings, by the command line and :func:`seqrl.evaluate` alike (which may pass
    a loaded policy instead of ``cfg.policy``: ``needs_policy=False``)."""
    if needs_policy and not cfg.policy:
        raise ConfigError(f"--policy is required: a policy folder or Hub repo id. Run `{prog} --help` for the options.")
    if cfg.episodes < 1 or cfg.num_envs < 1:
        raise ConfigError("--episodes and --num_envs must be at least 1")
    cfg.mixed_precision = precision_name(cfg.mixed_precision)
    if cfg.mixed_precision not in ("no", "bf16"):
        raise ConfigError(f"--mixed_precision {cfg.mixed_precision}: choose no or bf16.")
    if cfg.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"--log_level {cfg.log_level}: choose one of debug, info, warning, error.")


def main(argv: list[str] | None = None, prog: str = "python evaluate.py") -> None:
    cfg = parse_evaluate_args(sys.argv[1:] if argv is None else argv, prog)
    set_log_level(cfg.log_level)
    report, output = evaluate(cfg)
    from seqrl.evaluation.report import format_table

    print(format_table(report))
    plotted = any(row["target_return"] is not None for row in report["results"])
    print(f"Wrote {output}" + (f" and {output.with_suffix('.png')}" if plotted else ""))


def evaluate(cfg: EvaluateConfig) -> tuple[dict, Path]:
    """Load, roll out, write the report (and videos); returns the report and its path."""
    import torch

    from seqrl.evaluation.report import write_report
    from seqrl.evaluation.rollout import evaluate_policy
    from seqrl.registry import load_policy

    import_env_modules(cfg.env_import)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    policy = load_policy(cfg.policy, revision=cfg.revision, device=device)
    if not cfg.env_id:
        import_policy_env(policy.config, cfg)
    if cfg.planner:
        override_planner(policy, cfg.planner)
    if cfg.acting:
        override_acting(policy, cfg.acting)
    targets = cfg.target_returns or None
    report = evaluate_policy(policy, targets, cfg.episodes, cfg.num_envs, cfg.seed, env_id=cfg.env_id,
                             mixed_precision=cfg.mixed_precision, env_kwargs=cfg.env_kwargs)
    report["policy"] = cfg.policy
    local = Path(cfg.policy)
    output = Path(cfg.output) if cfg.output else (local / "eval_info.json" if local.is_dir() else Path("eval_info.json"))
    write_report(report, output)
    if cfg.video:
        from seqrl.evaluation.video import record_videos

        for path in record_videos(policy, cfg.video, targets, cfg.seed, cfg.env_id, cfg.env_kwargs):
            log.info(f"Recorded {path}")
    return report, output


def import_policy_env(config, cfg: EvaluateConfig) -> None:
    """Import the modules the policy's config names for its env: those of a local folder (the user's own files),
    those of a Hub policy only with --trust_remote_code (or when the user imports them with --env_import)."""
    if not Path(cfg.policy).exists():
        check_remote_imports(cfg.policy, config.env_id, config.env_import, cfg.env_import, cfg.trust_remote_code)
    modules = env_modules(config.env_id, config.env_import)
    import_env_modules(modules, flag=f"the policy {cfg.policy} names the env module")


def override_acting(policy, acting: str) -> None:
    """Switch a Decision Transformer between window and cached acting for this evaluation."""
    from seqrl.models.decision_transformer.configuration_decision_transformer import ACTING_MODES

    if not hasattr(policy.config, "acting"):
        raise ConfigError(f"--acting: the policy (algo '{policy.config.algo}') has no acting modes; only --algo dt and "
                          "odt policies do.")
    if acting not in ACTING_MODES:
        raise ConfigError(f"--acting {acting}: choose one of {', '.join(ACTING_MODES)}.")
    policy.config.acting = acting


def override_planner(policy, settings: list[str]) -> None:
    """Apply ``KEY=VALUE`` planner settings to a planning policy, checked as training checks them."""
    if not hasattr(policy.config, "planner"):
        raise ConfigError(f"--planner: the policy (algo '{policy.config.algo}') does not plan; only --algo tt policies do.")
    from seqrl.models.trajectory_transformer.planner import resolve

    changes = {}
    for item in settings:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ConfigError(f"--planner {item}: write KEY=VALUE, e.g. beam_width=32")
        changes[key] = float(value) if key == "cdf_act" else int(value)
    planner = {**policy.config.planner, **changes}
    resolve(planner, policy.config.env_id, policy.config.window)  # a setting that cannot work fails now
    policy.config.planner = planner


def cli() -> None:
    """Entry point of ``seqrl-eval``."""
    from seqrl.cli import run_cli

    run_cli(lambda: main(prog="seqrl-eval"))
