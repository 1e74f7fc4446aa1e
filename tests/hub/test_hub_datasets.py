"""push_dataset / load_dataset_from_hub: Parquet data plus seqrl_metadata.json and a card, loaded back offline with
every column and all metadata intact."""

from __future__ import annotations

import numpy as np
import pytest
from huggingface_hub import DatasetCard, HfApi

from seqrl.data.schema import COLUMNS, dataset_to_numpy, get_metadata
from seqrl.data.validation import validate
from seqrl.hub import ForeignRepoError, HubConnectionError, HubError, load_dataset_from_hub, push_dataset
from seqrl.hub.__main__ import main


@pytest.mark.parametrize("discrete", [False, True], ids=["box", "discrete"])
def test_push_then_load_keeps_data_and_metadata(fake_hub, synthetic_dataset, discrete):
    dataset = synthetic_dataset(discrete)
    commit = push_dataset(dataset, "user/pendulum-mixed", private=True)

    files = fake_hub.files("user/pendulum-mixed", repo_type="dataset")
    assert set(files) == {".gitattributes", "README.md", "data/train-00000-of-00001.parquet", "seqrl_metadata.json",
                          "seqrl_metadata/train-00000-of-00001.parquet"}
    assert files["seqrl_metadata.json"].decode() == get_metadata(dataset).to_json()
    assert [c["message"] for c in fake_hub.commits] == ["Upload seqrl dataset user/pendulum-mixed",
                                                        "Add seqrl_metadata.json and the seqrl dataset card"]
    assert commit.oid == fake_hub.repos[("dataset", "user/pendulum-mixed")]["branches"]["main"]
    card = DatasetCard(files["README.md"].decode())
    assert card.data.configs[0]["data_files"] == [{"split": "train", "path": "data/train-*"}]  # push_to_hub's YAML kept
    assert "seqrl" in card.data.tags and "| Episodes | 3 |" in card.text

    fake_hub.online = False
    loaded = load_dataset_from_hub("user/pendulum-mixed")  # offline, from the Hugging Face cache
    assert get_metadata(loaded) == get_metadata(dataset)
    assert loaded.features == dataset.features
    expected, actual = dataset_to_numpy(dataset), dataset_to_numpy(loaded)
    for name in COLUMNS:
        assert actual[name].dtype == expected[name].dtype and np.array_equal(actual[name], expected[name]), name
    validate(loaded)


def test_push_to_a_branch_and_load_that_revision(fake_hub, synthetic_dataset):
    dataset = synthetic_dataset(False)
    push_dataset(dataset, "user/data", revision="v2")
    assert "seqrl_metadata.json" not in fake_hub.files("user/data", repo_type="dataset")  # main untouched
    fake_hub.online = False
    assert get_metadata(load_dataset_from_hub("user/data", revision="v2")) == get_metadata(dataset)


def test_dataset_repo_without_seqrl_metadata_is_refused_on_push_and_on_load(fake_hub, synthetic_dataset):
    fake_hub.add_repo("user/other", {"data/train-0.parquet": b"PAR1", "README.md": b"---\n---\n"}, "dataset")
    with pytest.raises(ForeignRepoError, match="no seqrl_metadata.json.*--force"):
        push_dataset(synthetic_dataset(False), "user/other")
    fake_hub.online = False
    with pytest.raises(HubError, match="has no seqrl_metadata.json.*push_dataset"):
        load_dataset_from_hub("user/other")
    fake_hub.online = True
    push_dataset(synthetic_dataset(False), "user/other", overwrite=True)
    assert "seqrl_metadata.json" in fake_hub.files("user/other", repo_type="dataset")


def test_failed_metadata_commit_says_the_push_is_unfinished(fake_hub, synthetic_dataset, monkeypatch, transport_error):
    original = HfApi.create_commit

    def fail_second_commit(api, repo_id, operations, **kwargs):
        if fake_hub.commits:
            raise transport_error()
        return original(api, repo_id, operations, **kwargs)

    monkeypatch.setattr(HfApi, "create_commit", fail_second_commit)
    with pytest.raises(HubConnectionError, match="The data was pushed .* run the push again"):
        push_dataset(synthetic_dataset(False), "user/data")


def test_dataset_missing_from_the_cache_offline():
    with pytest.raises(HubConnectionError, match="not in the Hugging Face cache .*HF_HUB_OFFLINE is set"):
        load_dataset_from_hub("user/never-downloaded")


def test_cli_push_dataset_loads_the_source_and_prints_the_url(fake_hub, synthetic_dataset, tmp_path, capsys):
    from seqrl.data.sources import save_dataset

    dataset = synthetic_dataset(False)
    save_dataset(dataset, tmp_path / "saved")
    main(["push_dataset", str(tmp_path / "saved"), "user/pendulum-mixed"])
    assert capsys.readouterr().out.strip() == "https://huggingface.co/datasets/user/pendulum-mixed"
    fake_hub.online = False
    assert get_metadata(load_dataset_from_hub("user/pendulum-mixed")) == get_metadata(dataset)


def test_seqrl_load_dataset_reads_hub_ids_with_their_metadata(fake_hub, synthetic_dataset):
    from seqrl.data.sources import load_dataset

    dataset = synthetic_dataset(False)
    push_dataset(dataset, "user/pendulum-mixed")
    fake_hub.online = False
    loaded = load_dataset("user/pendulum-mixed")  # the path train.py takes for --data.dataset user/pendulum-mixed
    assert get_metadata(loaded) == get_metadata(dataset) and loaded.num_rows == dataset.num_rows
