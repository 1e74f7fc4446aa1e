"""push_policy: the exact files of one commit, branches, re-pushes, and failures that leave the run folder alone."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import HfApi, ModelCard

from seqrl.cli import run_cli
from seqrl.hub import ForeignRepoError, HubAuthError, HubConnectionError, HubError, push_policy
from seqrl.hub.__main__ import main

PUBLISHED = {"config.json", "model.safetensors", "train_config.yaml", "eval_info.json", "eval_info.png"}


@pytest.fixture
def run_dir(tmp_path, make_run):
    return make_run(tmp_path / "run", "dt")


def test_push_uploads_policy_reports_and_card_in_one_commit(fake_hub, run_dir, folder_files):
    commit = push_policy(run_dir, "user/dt-pendulum")

    assert len(fake_hub.commits) == 1
    pushed = fake_hub.commits[0]
    assert set(pushed["added"]) == PUBLISHED | {"README.md"}  # no checkpoints/, logs/ or optimizer state
    local = folder_files(run_dir)
    for name in PUBLISHED:
        assert pushed["added"][name] == local[name]
    assert pushed["message"] == "Upload dt policy for Pendulum-v1 (seqrl)"
    card = ModelCard(pushed["added"]["README.md"].decode())
    assert card.data.library_name == "seqrl"
    assert commit == commit.commit_url and commit.oid == fake_hub.repos[("model", "user/dt-pendulum")]["branches"]["main"]
    assert set(fake_hub.files("user/dt-pendulum")) == PUBLISHED | {"README.md", ".gitattributes"}


def test_push_of_a_bare_policy_folder_has_only_policy_and_card(fake_hub, tmp_path, tiny_policy):
    tiny_policy("dt").save_pretrained(tmp_path / "policy")
    push_policy(tmp_path / "policy", "user/bare", commit_message="first")
    assert set(fake_hub.commits[0]["added"]) == {"config.json", "model.safetensors", "README.md"}
    assert fake_hub.commits[0]["message"] == "first"


def test_push_to_a_new_branch_leaves_main_alone(fake_hub, run_dir):
    fake_hub.add_repo("user/dt-pendulum", {"README.md": b"---\nlibrary_name: seqrl\n---\n"})
    main_before = fake_hub.files("user/dt-pendulum")
    push_policy(run_dir, "user/dt-pendulum", revision="ablation")
    assert fake_hub.commits[0]["revision"] == "ablation"
    assert fake_hub.files("user/dt-pendulum") == main_before
    assert "model.safetensors" in fake_hub.files("user/dt-pendulum", "ablation")
    card = fake_hub.files("user/dt-pendulum", "ablation")["README.md"].decode()
    assert "seqrl-eval --policy user/dt-pendulum --revision ablation" in card


def test_repush_replaces_a_seqrl_repo_and_drops_its_stale_reports(fake_hub, run_dir, tmp_path, make_run):
    push_policy(run_dir, "user/dt-pendulum")
    bare = make_run(tmp_path / "second", "dt", evaluation=False)
    push_policy(bare, "user/dt-pendulum")
    assert set(fake_hub.commits[1]["deleted"]) == {"eval_info.json", "eval_info.png"}
    assert "eval_info.png" not in fake_hub.files("user/dt-pendulum")
    assert fake_hub.files("user/dt-pendulum")["model.safetensors"] == (bare / "model.safetensors").read_bytes()


FOREIGN_REPOS = {
    "transformers model": {"config.json": json.dumps({"model_type": "bert"}).encode(), "model.safetensors": b"x"},
    "other library": {"README.md": b"---\nlibrary_name: stable-baselines3\n---\n# PPO\n", "ppo.zip": b"x"},
    "unknown files": {"weights.pt": b"x"},
}


@pytest.mark.parametrize("content", list(FOREIGN_REPOS), ids=list(FOREIGN_REPOS))
def test_push_refuses_a_repo_with_other_content_unless_forced(fake_hub, run_dir, content, tree_state):
    fake_hub.add_repo("user/taken", FOREIGN_REPOS[content])
    before_repo, before_run = fake_hub.files("user/taken"), tree_state(run_dir)
    with pytest.raises(ForeignRepoError) as error:
        push_policy(run_dir, "user/taken")
    message = str(error.value)
    assert "user/taken" in message and "--force" in message and "another repo id" in message
    assert fake_hub.commits == [] and fake_hub.files("user/taken") == before_repo
    assert tree_state(run_dir) == before_run

    push_policy(run_dir, "user/taken", overwrite=True)
    files = fake_hub.files("user/taken")
    assert files["model.safetensors"] == (run_dir / "model.safetensors").read_bytes()
    assert set(FOREIGN_REPOS[content]) <= set(files)  # forcing replaces same-named files only


def _fail(monkeypatch, method: str, error: Exception):
    def raise_error(*args, **kwargs):
        raise error

    monkeypatch.setattr(HfApi, method, raise_error)


FAILURES = {  # which HfApi call fails, with what (None: a network error, else an HTTP status), and what the user reads
    "network down before anything": ("repo_info", None, HubConnectionError, ["Could not reach", "network"]),
    "network down at the commit": ("create_commit", None, HubConnectionError, ["Could not reach", "network"]),
    "bad token (401)": ("create_repo", 401, HubAuthError, ["401", "hf auth login", "HF_TOKEN"]),
    "no write access (403)": ("create_commit", 403, HubAuthError, ["403", "Check the repo id", "hf auth login"]),
    "server error (500)": ("create_commit", 500, HubError, ["HTTP 500", "Try again"]),
}


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
def test_failed_push_leaves_the_run_folder_byte_for_byte_unchanged(fake_hub, run_dir, monkeypatch, failure,
                                                                  http_error, transport_error, tree_state):
    method, status, error_type, phrases = FAILURES[failure]
    _fail(monkeypatch, method, transport_error() if status is None else http_error(status))
    before = tree_state(run_dir)
    with pytest.raises(error_type) as error:
        push_policy(run_dir, "user/dt-pendulum")
    for phrase in phrases:
        assert phrase in str(error.value)
    assert f"{run_dir} was not changed" in str(error.value)
    assert tree_state(run_dir) == before
    assert fake_hub.commits == []


def test_invalid_or_namespace_free_repo_ids_fail_before_any_request(fake_hub, run_dir):
    for repo_id, phrase in (("user/bad name!", "not a valid Hub repo id"), ("dt-pendulum", "has no namespace")):
        with pytest.raises(HubError, match=phrase):
            push_policy(run_dir, repo_id)
    assert fake_hub.repos == {}


def test_folder_that_is_not_a_policy_is_refused(fake_hub, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubError, match="does not load as a seqrl policy"):
        push_policy(tmp_path / "empty", "user/x")
    assert fake_hub.repos == {}


def test_broken_eval_report_is_refused_before_pushing(fake_hub, run_dir):
    (run_dir / "eval_info.json").write_text(json.dumps({"results": [{"target_return": 1.0}]}))
    with pytest.raises(HubError, match="not an evaluation report"):
        push_policy(run_dir, "user/dt-pendulum")
    assert fake_hub.repos == {}


def test_cli_push_prints_the_repo_url(fake_hub, run_dir, capsys):
    run_cli(lambda: main(["push", str(run_dir), "user/dt-pendulum", "--private", "--revision", "v1"]))
    assert capsys.readouterr().out.strip() == "https://huggingface.co/user/dt-pendulum/tree/v1"
    assert fake_hub.repos[("model", "user/dt-pendulum")]["private"] is True


def test_cli_errors_are_one_line_with_exit_status_2(fake_hub, run_dir, capsys):
    fake_hub.add_repo("user/taken", FOREIGN_REPOS["transformers model"])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(["push", str(run_dir), "user/taken"]))
    assert exit_info.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and error_lines[0].startswith("error: Refusing to push to 'user/taken'")
    run_cli(lambda: main(["push", str(run_dir), "user/taken", "--force"]))
    assert len(fake_hub.commits) == 1


def test_push_with_hf_hub_offline_set_says_to_unset_it(run_dir, tree_state):
    before = tree_state(run_dir)
    with pytest.raises(HubConnectionError, match="HF_HUB_OFFLINE is set.*Unset HF_HUB_OFFLINE"):
        push_policy(run_dir, "user/dt-pendulum")  # the real HfApi, in offline mode: it refuses before any request
    assert tree_state(run_dir) == before
