"""seqrl from Python: the commands' behaviour, checks included, without a command line.

    import seqrl

    run_dir = seqrl.train("configs/iql/pendulum-mixed.yaml", steps=2000, **{"algo.expectile": 0.8})
    report = seqrl.evaluate(run_dir, episodes=5)
    policy = seqrl.load_policy(run_dir)
    dataset = seqrl.load_dataset("seqrl/pendulum/mixed-v0")

``train`` goes through the same parser and checks as ``seqrl-train`` (unknown keys, ``steps``, precision,
trackers, ...), so a config the command refuses is refused here with the same :class:`~seqrl.errors.SeqRLError`.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from seqrl.data.sources import load_dataset
from seqrl.registry import load_policy

__all__ = ["evaluate", "load_dataset", "load_policy", "train"]


def train(config=None, **overrides) -> Path:
    """Train as ``seqrl-train`` does and return the run folder.

    ``config``: a YAML file (as ``--config``), a :class:`~seqrl.training.config.TrainConfig`, or None for the
    defaults. ``overrides``: config keys, dotted ones through ``**{"algo.learning_rate": 1e-3}``."""
    from seqrl.training.cli import check_config, parse_train_args
    from seqrl.training.command import run
    from seqrl.training.config import TrainConfig

    if isinstance(config, TrainConfig):
        cfg = copy.deepcopy(config)
        for key, value in overrides.items():
            _set(cfg, key, value)
        check_config(cfg)
    else:
        argv = ["--config", os.fspath(config)] if config is not None else []
        argv += [f"--{key}={_cli_value(value)}" for key, value in overrides.items()]
        cfg = parse_train_args(argv)
    return run(cfg)


def evaluate(policy, **settings) -> dict:
    """Evaluate as ``seqrl-eval`` does and return the report (also written to eval_info.json).

    ``policy``: a folder, a Hub id, or a loaded policy. ``settings``: the keys of
    :class:`~seqrl.evaluation.config.EvaluateConfig` (``target_returns``, ``episodes``, ``seed``, ``video``, ...)."""
    from seqrl.evaluation.command import check_evaluate_config, evaluate as run_evaluation
    from seqrl.evaluation.config import EvaluateConfig
    from seqrl.models.policy import SeqRLPolicy

    if isinstance(policy, SeqRLPolicy):
        from seqrl.evaluation.report import write_report
        from seqrl.evaluation.rollout import evaluate_policy

        cfg = EvaluateConfig(**settings)
        check_evaluate_config(cfg, needs_policy=False)
        report = evaluate_policy(policy, cfg.target_returns or None, cfg.episodes, cfg.num_envs, cfg.seed,
                                 env_id=cfg.env_id, mixed_precision=cfg.mixed_precision, env_kwargs=cfg.env_kwargs)
        if cfg.output:
            write_report(report, cfg.output)
        if cfg.video:
            from seqrl.evaluation.video import record_videos

            record_videos(policy, cfg.video, cfg.target_returns or None, cfg.seed, cfg.env_id, cfg.env_kwargs)
        return report
    cfg = EvaluateConfig(policy=os.fspath(policy), **settings)
    check_evaluate_config(cfg)
    return run_evaluation(cfg)[0]


def _set(cfg, key: str, value) -> None:
    *parents, name = key.split(".")
    target = cfg
    for parent in parents:
        target = getattr(target, parent)
    if not hasattr(target, name):
        from seqrl.parsing import ConfigError

        raise ConfigError(f"{key}: no such config key. Run `seqrl-train --help` to list every key.")
    setattr(target, name, value)


def _cli_value(value) -> str:
    """A Python value as draccus reads it on the command line."""
    if isinstance(value, (list, tuple, dict)) or value is None or isinstance(value, bool):
        return json.dumps(value if not isinstance(value, tuple) else list(value))
    return str(value)
