"""Command line (`seqrl-hub`, or `python -m seqrl.hub`): `seqrl-hub push RUN_DIR REPO_ID [--private]
[--revision BRANCH] [--force] [--license ID]` and `seqrl-hub push_dataset SOURCE REPO_ID [...]`.

Log in first with `hf auth login` (or set HF_TOKEN). Each command prints the URL of the repo it pushed to.
"""

from __future__ import annotations

import argparse

from seqrl.hub.cards import DATASET_LICENSE, DEFAULT_LICENSE


def main(argv: list[str] | None = None, prog: str = "python -m seqrl.hub") -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="push a policy folder or train.py run folder with a model card")
    push.add_argument("run_dir", help="policy folder (config.json + model.safetensors), e.g. a train.py output_dir")
    push.add_argument("repo_id", help="model repo, 'namespace/name'")
    push.add_argument("--license", default=DEFAULT_LICENSE, help=f"license of the model card (default: {DEFAULT_LICENSE})")
    push.add_argument("--commit_message", default=None, help="commit message (default: names the algorithm and env)")
    dataset = commands.add_parser("push_dataset", help="push a seqrl dataset with its metadata and a dataset card")
    dataset.add_argument("source", help="anything seqrl.data.load_dataset reads: Minari id or folder, D4RL file, datasets folder")
    dataset.add_argument("repo_id", help="dataset repo, 'namespace/name'")
    dataset.add_argument("--no_validate", dest="validate", action="store_false", help="skip the schema checks of the data")
    dataset.add_argument("--license", default=DATASET_LICENSE, help=f"license of the dataset card (default: {DATASET_LICENSE})")
    for sub in (push, dataset):
        sub.add_argument("--private", action="store_true",
                         help="create the repo as private (an existing repo keeps its visibility)")
        sub.add_argument("--revision", default=None, help="branch to push to (created from main if needed)")
        sub.add_argument("--force", action="store_true", help="push even into a repo that holds other content")
    args = parser.parse_args(argv)

    if args.command == "push":
        from seqrl.hub.push import push_policy

        commit = push_policy(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                             commit_message=args.commit_message, overwrite=args.force, license=args.license)
    else:
        from seqrl.data.sources import load_dataset
        from seqrl.hub.data import push_dataset

        commit = push_dataset(load_dataset(args.source, validate=args.validate), args.repo_id, private=args.private,
                              revision=args.revision, overwrite=args.force, license=args.license)
    print(commit.repo_url.url + (f"/tree/{args.revision}" if args.revision else ""))


def cli() -> None:
    """Entry point of ``seqrl-hub``."""
    from seqrl.cli import run_cli

    run_cli(lambda: main(prog="seqrl-hub"))


if __name__ == "__main__":
    from seqrl.cli import run_cli

    run_cli(main)
