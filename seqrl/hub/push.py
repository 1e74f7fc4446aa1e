"""Push a policy folder or a ``train.py`` run folder to the Hub in one commit, with a generated model card.

Order of work: read and check the local folder (nothing is written to it; the card is built in
memory), look at the target repo and refuse one that holds something other than a seqrl policy,
then ``create_repo`` / ``create_branch`` and a single ``create_commit`` pinned to the commit that was
inspected (``parent_commit``), so a concurrent change to the repo fails the push instead of being
overwritten unseen. A failure at any point leaves the local folder as it was.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    ModelCard,
)
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from seqrl import registry
from seqrl.data.schema import DatasetMetadata
from seqrl.hub.cards import DEFAULT_LICENSE, model_card
from seqrl.hub.errors import (
    FORCE_HINT,
    ForeignRepoError,
    check_repo_id,
    translated_hub_errors,
)
from seqrl.hub.run_folder import REPORT_FILES, read_run_folder


@dataclass(frozen=True)
class RepoState:
    """What a repo holds at one commit: its files and the commit's sha."""

    sha: str
    files: frozenset[str]


def push_policy(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    overwrite: bool = False,
    dataset_metadata: DatasetMetadata | None = None,
    license: str = DEFAULT_LICENSE,
) -> CommitInfo:
    """Push the policy in ``run_dir`` to the model repo ``repo_id``; returns the commit (a ``str``: its URL).

    Uploads ``config.json``, ``model.safetensors``, and where present ``train_config.yaml``,
    ``eval_info.json``, ``eval_info.png`` and ``dataset_metadata.json``, plus a generated ``README.md``
    model card, in one commit. Checkpoints (optimizer state) and logs are never uploaded. ``revision``
    names a branch, created from ``main`` if it does not exist. The token comes from ``token``, else
    ``HF_TOKEN`` or ``hf auth login``. A repo that already holds something other than a seqrl policy
    is refused unless ``overwrite=True`` (then same-named files are replaced and the rest stay).
    ``dataset_metadata`` adds the dataset statistics to the card when the folder has no
    ``dataset_metadata.json``. ``license`` goes into the card's metadata; ``videos/*.mp4`` (recorded by the
    evaluation) are uploaded and shown on the card.
    """
    check_repo_id(repo_id)
    run = read_run_folder(run_dir, dataset_metadata)
    card = model_card(run, repo_id, revision, license)
    additions = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run.path / name)) for name in run.files]
    additions.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    env = run.config.get("env_id") or "an unspecified env"
    message = commit_message or f"Upload {run.entry.name} policy for {env} (seqrl)"
    unchanged = f"The local folder {run.path} was not changed."

    api = HfApi(token=token)
    with translated_hub_errors(f"pushing the policy to '{repo_id}'", repo_id, unchanged):
        state = repo_state(api, repo_id, revision, "model")
        deletions = []
        if state is not None:
            foreign = _foreign_policy_content(api, repo_id, state)
            if foreign and not overwrite:
                raise ForeignRepoError(
                    f"Refusing to push to '{repo_id}': it already holds something other than a seqrl policy ({foreign}). "
                    f"{FORCE_HINT}. {unchanged}"
                )
            if not foreign:  # a previous seqrl push: drop its reports that this run does not have (e.g. a stale plot)
                deletions = [CommitOperationDelete(path_in_repo=name) for name in REPORT_FILES
                             if name in state.files and name not in run.files]
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.create_commit(repo_id, additions + deletions, commit_message=message, revision=revision,
                                 parent_commit=state.sha if state else None)


def repo_state(api: HfApi, repo_id: str, revision: str | None, repo_type: str) -> RepoState | None:
    """The repo at ``revision`` (at ``main`` when that branch does not exist yet), or None if there is no repo."""
    try:
        info = api.repo_info(repo_id, revision=revision, repo_type=repo_type)
    except RevisionNotFoundError:
        if revision is None:
            raise
        info = api.repo_info(repo_id, repo_type=repo_type)  # the new branch will start from main
    except RepositoryNotFoundError:
        return None
    return RepoState(sha=info.sha, files=frozenset(sibling.rfilename for sibling in info.siblings or ()))


def _foreign_policy_content(api: HfApi, repo_id: str, state: RepoState) -> str | None:
    """None when the repo is empty or holds a seqrl policy; otherwise what it holds instead."""
    files = state.files - {".gitattributes"}
    if not files:
        return None
    if "config.json" in files:
        text = Path(api.hf_hub_download(repo_id, "config.json", revision=state.sha)).read_text()
        try:
            config = json.loads(text)
        except json.JSONDecodeError:
            return "a config.json that is not valid JSON"
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if _is_seqrl_model_type(model_type):
            return None
        return f"its config.json has model_type '{model_type}'"
    if "README.md" in files:
        text = Path(api.hf_hub_download(repo_id, "README.md", revision=state.sha)).read_text()
        try:
            library = ModelCard(text).data.library_name
        except (ValueError, yaml.YAMLError):  # an unreadable card is not a seqrl card
            library = None
        if library == "seqrl":
            return None
        if library:
            return f"its model card names library_name '{library}'"
    shown = ", ".join(sorted(files)[:5]) + (", ..." if len(files) > 5 else "")
    return f"files {shown}"


def _is_seqrl_model_type(model_type) -> bool:
    """A model type this seqrl knows, or one from another seqrl version (all are prefixed 'seqrl_')."""
    known = {registry.get(name).policy.config_class.model_type for name in registry.names()}
    return isinstance(model_type, str) and (model_type in known or model_type.startswith("seqrl_"))
