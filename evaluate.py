"""Evaluate a seqrl policy at target returns: `python evaluate.py --policy DIR_OR_HUB_ID --target_returns A B C`
(installed: `seqrl-eval`). `python evaluate.py --help` lists every option; the command lives in
seqrl/evaluation/command.py, and this file only runs it from a clone."""

from seqrl.cli import run_cli
from seqrl.evaluation.command import main

if __name__ == "__main__":
    run_cli(main)
