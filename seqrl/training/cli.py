"""Command line of ``train.py``: a YAML config plus dotted overrides, parsed by draccus.

``--config FILE`` picks the YAML, ``--algo NAME`` the algorithm (short for ``--algo.type NAME``),
``--resume`` continues the run in ``--output_dir`` (reusing its saved ``train_config.yaml`` unless a
config is given), ``--env_import MODULE [MODULE ...]`` the modules that register custom envs. Every other flag
is a config key: ``--steps 5000``, ``--algo.learning_rate 3e-4``, lists as ``--data.action_low '[-2.0]'``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import draccus
import yaml

from seqrl.errors import SeqRLError
from seqrl.training.config import TrainConfig
from seqrl.training.setup import SCHEDULES

PRECISIONS = ("auto", "no", "bf16", "fp16")


class ConfigError(SeqRLError):
    pass


def parse_train_args(argv: list[str], config_dir: Path | None = None) -> TrainConfig:
    """Parse ``train.py``'s arguments. Without ``--config``, the run uses
    ``config_dir/<algo>/pendulum-mixed.yaml`` (the default job) when that file exists."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--algo")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--output_dir")
    pre.add_argument("--env_import", nargs="+", action="extend")
    known, rest = pre.parse_known_args(argv)
    if known.output_dir is not None:
        rest += ["--output_dir", known.output_dir]
    if known.env_import:  # `--env_import a.b c` as well as draccus' list syntax `--env_import '[a.b, c]'`
        modules = [m for value in known.env_import for m in (yaml.safe_load(value) if value.startswith("[") else [value])]
        rest += ["--env_import", f"[{', '.join(modules)}]"]

    config_path = known.config
    if config_path is not None and not Path(config_path).is_file():
        raise ConfigError(f"--config {config_path}: no such file. The shipped configs are in configs/<algo>/.")
    if config_path is None and known.resume:
        if known.output_dir is None:
            raise ConfigError("--resume needs --output_dir, the run folder to continue.")
        saved = Path(known.output_dir) / "train_config.yaml"
        if saved.is_file():
            config_path = str(saved)
    if config_path is None and config_dir is not None:
        default = Path(config_dir) / (known.algo or "dt") / "pendulum-mixed.yaml"
        config_path = str(default) if default.is_file() else None

    if known.algo is not None:
        from seqrl import registry

        registry.get(known.algo)  # a clear error for unknown names
        configured = _yaml_algo(config_path)
        if configured is not None and configured != known.algo:
            raise ConfigError(
                f"--algo {known.algo} conflicts with {config_path}, which configures '{configured}'. "
                f"Drop --algo, or pass a config from configs/{known.algo}/."
            )
        rest += ["--algo.type", known.algo]
    else:
        import seqrl.algos  # noqa: F401  (registers the algorithm choices before draccus decodes)

        if _yaml_algo(config_path) is None:  # dotted --algo.* overrides need the choice named
            rest += ["--algo.type", "dt"]

    try:
        cfg = draccus.parse(TrainConfig, config_path=config_path, args=rest, exit_on_error=False)
    except (draccus.utils.DecodingError, draccus.utils.DraccusException, draccus.ParsingError) as error:
        source = f"{config_path} / command line" if config_path else "command line"
        raise ConfigError(
            f"Invalid configuration ({source}): {error}. Run `python train.py --help` to list every key."
        ) from error
    if known.resume:
        cfg.resume = True
    if cfg.steps < 0 or (cfg.steps == 0 and not (cfg.online.env_steps and cfg.init_from)):
        raise ConfigError(f"--steps must be at least 1 (got {cfg.steps}); 0 only to fine-tune a trained policy "
                          "online straight away (--init_from RUN --online.env_steps N).")
    if str(cfg.mixed_precision).lower() in ("false", "off"):  # YAML reads a bare `no` as false
        cfg.mixed_precision = "no"
    if cfg.mixed_precision not in PRECISIONS:
        raise ConfigError(f"--mixed_precision {cfg.mixed_precision}: choose one of {', '.join(PRECISIONS)}.")
    if cfg.algo.lr_schedule not in SCHEDULES:
        raise ConfigError(f"--algo.lr_schedule {cfg.algo.lr_schedule}: choose one of {', '.join(SCHEDULES)}.")
    return cfg


def _yaml_algo(config_path: str | None) -> str | None:
    if config_path is None:
        return None
    algo = (yaml.safe_load(Path(config_path).read_text()) or {}).get("algo") or {}
    return algo.get("type") if isinstance(algo, dict) else None
