"""The training command (``seqrl-train``, ``python train.py``): parse, train, print the run folder, push.

With no arguments it runs configs/dt/pendulum-mixed.yaml (from a clone, or the copy an installed wheel ships): the
Decision Transformer on the built-in Pendulum mixed dataset, evaluated at three target returns.
"""

from __future__ import annotations

import sys
from pathlib import Path

from accelerate import PartialState

from seqrl.logs import set_log_level
from seqrl.training.cli import parse_train_args
from seqrl.training.config import TrainConfig
from seqrl.training.loop import train


def default_config_dir() -> Path | None:
    """``configs/`` of the clone this package runs from (``python train.py``, an editable install), else of the
    working directory, else the copy the wheel ships inside the package (``seqrl/configs``), so that an
    installed ``seqrl-train --algo NAME`` starts from the same job as a clone."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "configs", Path.cwd() / "configs", package / "configs"):
        if candidate.is_dir():
            return candidate
    return None


def main(argv: list[str] | None = None, prog: str = "python train.py") -> None:
    cfg = parse_train_args(sys.argv[1:] if argv is None else argv, config_dir=default_config_dir(), prog=prog)
    run(cfg, announce=True)


def run(cfg: TrainConfig, announce: bool = False) -> Path:
    """Train ``cfg`` (already checked) with its logging, background checkpoint pushes and final push; returns the
    run folder (printed first with ``announce``, as the command does)."""
    set_log_level(cfg.log_level)
    on_checkpoint = None
    if cfg.push_every_checkpoint and PartialState().is_main_process:
        from seqrl.hub.background import CheckpointPusher

        on_checkpoint = CheckpointPusher(cfg.push_to_hub, cfg.private)
    try:
        run_dir = train(cfg, on_checkpoint)
    finally:
        if on_checkpoint is not None:
            on_checkpoint.close()  # the queued checkpoint uploads finish before the final push
    if announce and PartialState().is_main_process:
        print(run_dir.resolve())
    if cfg.push_to_hub:
        push(run_dir, cfg.push_to_hub, cfg.private)
    return run_dir


def push(run_dir: Path, repo_id: str, private: bool) -> None:
    """Push the finished run from the main process; a failure says how to push the run later."""
    from seqrl.hub import HubError, push_policy

    if not PartialState().is_main_process:
        return
    try:
        commit = push_policy(run_dir, repo_id, private=private)
    except HubError as error:
        raise HubError(f"{error} Training finished: push the run later with "
                       f"`seqrl-hub push {run_dir} {repo_id}`.") from error
    print(commit.repo_url)


def cli() -> None:
    """Entry point of ``seqrl-train``."""
    from seqrl.cli import run_cli

    run_cli(lambda: main(prog="seqrl-train"))
