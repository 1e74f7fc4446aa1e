"""Train an offline RL policy: `python train.py [--config configs/<algo>/<dataset>.yaml] [--key value ...]`.

With no arguments it runs configs/dt/pendulum-mixed.yaml: the Decision Transformer on the built-in
Pendulum mixed dataset (made locally on first use), evaluated at three target returns; it prints the
run folder. `--push_to_hub REPO_ID` (with `--private` for a private repo) then pushes the policy, its
reports and a model card to the Hugging Face Hub (log in first with `hf auth login` or set HF_TOKEN);
`--push_every_checkpoint` also pushes each checkpoint's policy as it is written.
"""

import argparse
import sys
from pathlib import Path

from accelerate import PartialState

from seqrl.cli import run_cli
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train


def main(argv: list[str] | None = None) -> None:
    hub = argparse.ArgumentParser(add_help=False)
    hub.add_argument("--push_to_hub", metavar="REPO_ID")
    hub.add_argument("--private", action="store_true")
    hub.add_argument("--push_every_checkpoint", action="store_true")
    hub_args, rest = hub.parse_known_args(sys.argv[1:] if argv is None else argv)
    if hub_args.push_to_hub:
        from seqrl.hub.errors import check_repo_id

        check_repo_id(hub_args.push_to_hub)  # a typo fails now, not after training
    cfg = parse_train_args(rest, config_dir=Path(__file__).parent / "configs")
    if hub_args.push_every_checkpoint and not hub_args.push_to_hub:
        from seqrl.training.cli import ConfigError

        raise ConfigError("--push_every_checkpoint needs --push_to_hub REPO_ID.")
    on_checkpoint = None
    if hub_args.push_every_checkpoint:
        def on_checkpoint(checkpoint: Path, step: int) -> None:
            push_checkpoint(checkpoint, step, hub_args.push_to_hub, hub_args.private)
    run_dir = train(cfg, on_checkpoint)
    if PartialState().is_main_process:
        print(run_dir.resolve())
    if hub_args.push_to_hub:
        push(run_dir, hub_args.push_to_hub, hub_args.private)


def push(run_dir: Path, repo_id: str, private: bool) -> None:
    """Push the finished run from the main process; a failure says how to push the run later."""
    from seqrl.hub import HubError, push_policy

    if not PartialState().is_main_process:
        return
    try:
        commit = push_policy(run_dir, repo_id, private=private)
    except HubError as error:
        raise HubError(f"{error} Training finished: push the run later with "
                       f"`python -m seqrl.hub push {run_dir} {repo_id}`.") from error
    print(commit.repo_url)


def push_checkpoint(checkpoint: Path, step: int, repo_id: str, private: bool) -> None:
    """Push a checkpoint's policy during training; a failure warns and training goes on."""
    from seqrl.hub import HubError, push_policy

    try:
        push_policy(checkpoint / "policy", repo_id, private=private, commit_message=f"Checkpoint at step {step}")
    except HubError as error:
        print(f"warning: could not push the checkpoint at step {step}: {error}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
