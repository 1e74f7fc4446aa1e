"""Push seqrl datasets to the Hub and load them back with their metadata.

A seqrl dataset repo holds the Parquet shards and README that ``Dataset.push_to_hub`` writes, plus
``seqrl_metadata.json`` (:meth:`DatasetMetadata.to_json`: env spec, spaces, reference scores,
statistics), which the data's Parquet files cannot carry, the same JSON as the one-row ``seqrl_metadata``
subset (so plain ``datasets.load_dataset(repo, "seqrl_metadata")`` reads it), and a dataset card. Loading downloads one snapshot of the
repo (data and metadata from the same commit) through the Hugging Face cache, so a dataset seen once
loads again with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import io
from pathlib import Path

import datasets
from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    HfApi,
    constants,
    snapshot_download,
)
from huggingface_hub.errors import LocalEntryNotFoundError

from seqrl.data.schema import DatasetMetadata, get_metadata, with_metadata
from seqrl.hub.cards import DATASET_LICENSE, METADATA_CONFIG, METADATA_PARQUET, dataset_card
from seqrl.hub.errors import (
    FORCE_HINT,
    ForeignRepoError,
    HubConnectionError,
    HubError,
    check_repo_id,
    translated_hub_errors,
)
from seqrl.hub.push import repo_state

METADATA_FILE = "seqrl_metadata.json"


def push_dataset(
    dataset: datasets.Dataset,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    overwrite: bool = False,
    commit_message: str | None = None,
    license: str = DATASET_LICENSE,
) -> CommitInfo:
    """Push a seqrl ``dataset`` (one with metadata) to the dataset repo ``repo_id`` as its ``train`` split.

    Two commits: ``Dataset.push_to_hub`` uploads the Parquet shards, then ``seqrl_metadata.json`` and the
    card follow in one commit on top of it. A repo holding other data is refused unless ``overwrite=True``.
    Returns the last commit (a ``str``: its URL).
    """
    metadata = get_metadata(dataset)
    check_repo_id(repo_id)
    api = HfApi(token=token)
    with translated_hub_errors(f"pushing the dataset to '{repo_id}'", repo_id):
        state = repo_state(api, repo_id, revision, "dataset")
        other = (state.files - {".gitattributes", "README.md"}) if state is not None else set()
        if other and METADATA_FILE not in other and not overwrite:
            shown = ", ".join(sorted(other)[:5]) + (", ..." if len(other) > 5 else "")
            raise ForeignRepoError(f"Refusing to push to dataset repo '{repo_id}': it already holds data that is not a "
                                   f"seqrl dataset (no {METADATA_FILE}; files {shown}). {FORCE_HINT}.")
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        data_commit = dataset.push_to_hub(repo_id, split="train", private=private, token=token, revision=revision,
                                          commit_message=commit_message or f"Upload seqrl dataset {metadata.dataset_id}")
    unfinished = (f"The data was pushed (commit {data_commit.oid}) but its {METADATA_FILE} was not, so the repo holds the "
                  "new data without its metadata (or with a previous push's): run the push again.")
    action = f"uploading {METADATA_FILE} and the dataset card to '{repo_id}'"
    with translated_hub_errors(action, repo_id, unfinished):
        base = Path(api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=data_commit.oid)).read_text()
        card = dataset_card(metadata, repo_id, dataset.num_rows, base, license)
        operations = [CommitOperationAdd(path_in_repo=METADATA_FILE, path_or_fileobj=metadata.to_json().encode()),
                      CommitOperationAdd(path_in_repo=METADATA_PARQUET, path_or_fileobj=metadata_parquet(metadata)),
                      CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode())]
        return api.create_commit(repo_id, operations, commit_message=f"Add {METADATA_FILE} and the seqrl dataset card",
                                 repo_type="dataset", revision=revision, parent_commit=data_commit.oid)


def metadata_parquet(metadata: DatasetMetadata) -> bytes:
    """The metadata as the one-row Parquet file of the repo's ``seqrl_metadata`` subset (column ``seqrl_metadata``:
    the JSON text)."""
    buffer = io.BytesIO()
    datasets.Dataset.from_dict({METADATA_CONFIG: [metadata.to_json()]}).to_parquet(buffer)
    return buffer.getvalue()


def load_dataset_from_hub(repo_id: str, revision: str | None = None, token: str | None = None) -> datasets.Dataset:
    """The ``train`` split of the seqrl dataset repo ``repo_id``, with its :class:`DatasetMetadata` attached.

    Downloads (or, offline, finds in the Hugging Face cache) one snapshot of the repo with
    ``snapshot_download`` and reads it with ``datasets.load_dataset``; ``datasets``' own loading by repo
    id cannot fall back to the Hub cache offline, and this way data and metadata share one commit.
    """
    where = repo_id + (f" at revision '{revision}'" if revision else "")
    with translated_hub_errors(f"downloading the dataset '{where}'", repo_id):
        try:
            folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, token=token,
                                            allow_patterns=["README.md", METADATA_FILE, "*.parquet"]))
        except LocalEntryNotFoundError as error:
            offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
            raise HubConnectionError(
                f"Dataset repo '{where}' is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the Hub cannot "
                f"be reached{offline}. Load it once with network access (or `hf download {repo_id} --repo-type dataset`)."
            ) from error
    metadata_file = folder / METADATA_FILE
    if not metadata_file.is_file():
        raise HubError(
            f"Dataset repo '{where}' has no {METADATA_FILE}, so it is not a seqrl dataset (or its push did not finish). "
            f"Push it with `seqrl-hub push_dataset SOURCE {repo_id}`."
        )
    metadata = DatasetMetadata.from_json(metadata_file.read_text())
    if not any(folder.rglob("*.parquet")):
        raise HubError(f"Dataset repo '{where}' has {METADATA_FILE} but no Parquet data files; push the dataset again.")
    try:
        dataset = datasets.load_dataset(str(folder), split="train")
    except ValueError as error:  # e.g. an unknown split
        raise HubError(f"Dataset repo '{where}' has no readable 'train' split ({error}); push the dataset again.") from error
    return with_metadata(dataset, metadata)
