"""Train an offline RL policy: `python train.py [--config configs/<algo>/<dataset>.yaml] [--key value ...]`
(installed: `seqrl-train`). `python train.py --help` lists every key; the command lives in
seqrl/training/command.py, and this file only runs it from a clone."""

from seqrl.cli import run_cli
from seqrl.training.command import main

if __name__ == "__main__":
    run_cli(main)
