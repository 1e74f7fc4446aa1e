"""Train an offline RL policy: `python train.py [--config configs/<algo>/<dataset>.yaml] [--key value ...]`.

With no arguments it runs configs/dt/pendulum-mixed.yaml: the Decision Transformer on the built-in
Pendulum mixed dataset (made locally on first use), evaluated at three target returns; it prints the
run folder.
"""

import sys
from pathlib import Path

from accelerate import PartialState

from seqrl.cli import run_cli
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train


def main(argv: list[str] | None = None) -> None:
    cfg = parse_train_args(sys.argv[1:] if argv is None else argv, config_dir=Path(__file__).parent / "configs")
    run_dir = train(cfg)
    if PartialState().is_main_process:
        print(run_dir.resolve())


if __name__ == "__main__":
    run_cli(main)
