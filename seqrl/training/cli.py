"""Command line of ``train.py`` / ``seqrl-train``: a YAML config plus dotted overrides, in one draccus parser.

``--config FILE`` picks the YAML, ``--algo NAME`` the algorithm (short for ``--algo.type NAME``); every other
flag is a :class:`~seqrl.training.config.TrainConfig` key, and ``--help`` lists them all: ``--steps 5000``,
``--algo.learning_rate 3e-4``, lists as ``--data.action_low '[-2.0]'`` (``--env_import a.b c`` and
``--eval.target_returns 100 200`` also take several values). ``--resume`` (from the latest checkpoint) and
``--resume_from_checkpoint PATH`` continue the run in ``--output_dir``, reusing its saved ``train_config.yaml``
unless a config is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from seqrl.parsing import ConfigError, config_parser, decode, existing_file, precision_name, read_options
from seqrl.training.config import TrainConfig

__all__ = ["ConfigError", "check_config", "parse_train_args", "train_parser"]

PRECISIONS = ("auto", "no", "bf16", "fp16")
TRACKERS = ("tensorboard", "wandb", "none")
LOG_LEVELS = ("debug", "info", "warning", "error")
PROG = "python train.py"
LISTS = ("env_import", "eval.target_returns", "algo.target_returns")


def train_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The one parser of the training command, from :class:`TrainConfig` (every algorithm's fields included)."""
    import seqrl.algos  # noqa: F401  (registers the algorithm choices)
    from seqrl import registry

    extra = [
        (["--config"], dict(dest="config_path", metavar="FILE",
                            help="YAML config, e.g. configs/iql/pendulum-mixed.yaml; flags override its keys "
                                 "(default: configs/<algo>/pendulum-mixed.yaml, or the shipped built-in job for the algorithm)")),
        (["--algo"], dict(dest="algo", metavar="NAME", choices=registry.names(),
                          help=f"algorithm, short for --algo.type: one of {', '.join(registry.names())} "
                               "(default: the config's, else dt)")),
    ]
    return config_parser(TrainConfig, prog, __doc__, LISTS, extra)


def parse_train_args(argv: list[str], config_dir: Path | None = None, prog: str = PROG) -> TrainConfig:
    """Parse the training command line. Without ``--config``, the run uses the algorithm's default job
    (:func:`default_config`) when ``config_dir`` has one."""
    options = read_options(train_parser(prog), list(argv))
    config_path = existing_file(options.pop("config_path", None), "--config",
                                "The shipped configs are in configs/<algo>/.")
    algo = options.pop("algo", None)
    resume = str(options.get("resume", "false")).lower() in ("true", "1", "yes")
    output_dir = options.get("output_dir")
    if config_path is None and (resume or options.get("resume_from_checkpoint")):
        if output_dir is None:
            flag = "--resume" if resume else "--resume_from_checkpoint"
            raise ConfigError(f"{flag} needs --output_dir, the run folder to continue.")
        saved = Path(output_dir) / "train_config.yaml"
        if saved.is_file():
            config_path = str(saved)
    if config_path is None and config_dir is not None:
        config_path = default_config(Path(config_dir), algo or "dt")

    configured = _yaml_algo(config_path)
    if algo is not None:
        if configured is not None and configured != algo:
            raise ConfigError(
                f"--algo {algo} conflicts with {config_path}, which configures '{configured}'. "
                f"Drop --algo, or pass a config from configs/{algo}/."
            )
        options["algo.type"] = algo
    elif configured is None and "algo.type" not in options:
        options["algo.type"] = "dt"  # dotted --algo.* overrides need the choice named
    if config_path is None and "data.dataset" not in options and not _supports_continuous(options["algo.type"]):
        options["data.dataset"] = DISCRETE_DEFAULT_DATASET  # the default data has continuous actions
    cfg = decode(TrainConfig, options, config_path, prog)
    check_config(cfg)
    return cfg


def check_config(cfg: TrainConfig) -> None:
    """The checks that protect a run, made before anything is loaded: by the command line and by
    :func:`seqrl.train` alike."""
    from seqrl.training.setup import SCHEDULES

    if cfg.steps < 0 or (cfg.steps == 0 and not (cfg.online.env_steps and cfg.init_from)):
        raise ConfigError(f"--steps must be at least 1 (got {cfg.steps}); 0 only to fine-tune a trained policy "
                          "online straight away (--init_from RUN --online.env_steps N).")
    cfg.mixed_precision = precision_name(cfg.mixed_precision)
    if cfg.mixed_precision not in PRECISIONS:
        raise ConfigError(f"--mixed_precision {cfg.mixed_precision}: choose one of {', '.join(PRECISIONS)}.")
    for key in ("lr_schedule", "actor_lr_schedule"):
        if getattr(cfg.algo, key, "constant") not in SCHEDULES:
            raise ConfigError(f"--algo.{key} {getattr(cfg.algo, key)}: choose one of {', '.join(SCHEDULES)}.")
    if cfg.report_to not in TRACKERS:
        raise ConfigError(f"--report_to {cfg.report_to}: choose one of {', '.join(TRACKERS)}.")
    if cfg.report_to == "wandb":
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise ConfigError("--report_to wandb needs the wandb package: `pip install wandb` (then `wandb login`, "
                              "or WANDB_MODE=offline), or choose --report_to tensorboard.")
    if cfg.log_level not in LOG_LEVELS:
        raise ConfigError(f"--log_level {cfg.log_level}: choose one of {', '.join(LOG_LEVELS)}.")
    if cfg.resume_from_checkpoint is not None:
        from seqrl.training.checkpoint import STATE_FILE

        if not (Path(cfg.resume_from_checkpoint) / STATE_FILE).is_file():
            raise ConfigError(f"--resume_from_checkpoint {cfg.resume_from_checkpoint}: not a complete checkpoint "
                              f"(no {STATE_FILE}); pass a folder such as RUN/checkpoints/step-00001000.")
    if cfg.push_every_checkpoint and not cfg.push_to_hub:
        raise ConfigError("--push_every_checkpoint needs --push_to_hub REPO_ID.")
    if cfg.push_to_hub:
        from seqrl.hub.errors import check_repo_id

        check_repo_id(cfg.push_to_hub)  # a typo fails now, not after training


DEFAULT_JOBS = ("pendulum-mixed.yaml", "cartpole-mixed.yaml")  # the built-in datasets, continuous first
DISCRETE_DEFAULT_DATASET = "seqrl/cartpole/mixed-v0"


def default_config(config_dir: Path, algo: str) -> str | None:
    """The shipped config that ``--algo NAME`` alone runs: ``<algo>/pendulum-mixed.yaml``, else the first
    built-in job anywhere under ``config_dir`` that configures this algorithm (the discrete forms' configs
    live beside their continuous ones, e.g. ``cql/cartpole-mixed.yaml`` for ``cql_discrete``)."""
    for job in DEFAULT_JOBS:
        candidates = [config_dir / algo / job, *sorted(config_dir.glob(f"*/{job}"))]
        for path in candidates:
            if path.is_file() and _yaml_algo(str(path)) == algo:
                return str(path)
    return None


def _supports_continuous(algo: str) -> bool:
    from seqrl import registry

    return algo not in registry.names() or registry.get(algo).algorithm.supports_continuous


def _yaml_algo(config_path: str | None) -> str | None:
    if config_path is None:
        return None
    algo = (yaml.safe_load(Path(config_path).read_text()) or {}).get("algo") or {}
    return algo.get("type") if isinstance(algo, dict) else None
