"""Loading policies by Hub repo id: offline from the Hugging Face cache, bit-identical after a push, safetensors
only, and clear errors for repos whose config or weights are not a seqrl policy."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

from seqrl import registry
from seqrl.hub import push_policy
from seqrl.registry import PolicyLoadError, load_policy

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Loading must never unpickle: any torch.load call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called: a policy was unpickled")

    monkeypatch.setattr(torch, "load", refuse)


def act_sequence(policy, steps: int = 6, batch: int = 3) -> np.ndarray:
    """Actions [steps, batch, ...] for a fixed stream of observations and rewards (and a fixed torch seed, for
    policies that sample, e.g. BCQ's VAE)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(steps, batch, policy.config.state_dim)).astype(np.float32)
    rewards = rng.normal(size=(steps, batch)).astype(np.float32)
    policy.reset(batch, policy.config.target_returns[-1] if policy.uses_target_return else None)
    return np.stack([policy.act(observations[t], rewards[t - 1] if t else None) for t in range(steps)])


def cached_policy_repo(tmp_path, tiny_policy, folder_files, write_snapshot, algo="dt", repo_id="user/repo",
                       branch="main", edit=None):
    """Save a tiny policy, optionally ``edit(folder)`` it, and place it in the cache as ``repo_id``; returns the folder.

    Tests compare the repo's policy with ``load_policy(folder)``, not with the policy in memory: safetensors
    weights sit at other memory alignments than freshly allocated ones, and CPU kernels may then round the
    last bit differently."""
    folder = tmp_path / "saved"
    tiny_policy(algo).save_pretrained(folder)
    if edit is not None:
        edit(folder)
    write_snapshot(repo_id, folder_files(folder), COMMIT, branch)
    return folder


@pytest.mark.parametrize("algo", registry.names())
def test_load_by_repo_id_offline_from_the_hf_cache(tmp_path, tiny_policy, folder_files, write_snapshot, algo):
    assert constants.HF_HUB_OFFLINE
    original = load_policy(cached_policy_repo(tmp_path, tiny_policy, folder_files, write_snapshot, algo))
    loaded = load_policy("user/repo")
    assert type(loaded) is type(original) is registry.get(algo).policy
    assert np.array_equal(act_sequence(loaded), act_sequence(original))


def test_load_a_branch_by_revision(tmp_path, tiny_policy, folder_files, write_snapshot):
    original = load_policy(cached_policy_repo(tmp_path, tiny_policy, folder_files, write_snapshot, branch="v1"))
    assert np.array_equal(act_sequence(load_policy("user/repo", revision="v1")), act_sequence(original))
    with pytest.raises(PolicyLoadError, match="HF_HUB_OFFLINE"):
        load_policy("user/repo")  # no main branch in the cache


@pytest.mark.parametrize("algo", registry.names())
def test_pushed_then_pulled_policy_acts_bit_identically(tmp_path, fake_hub, make_run, algo):
    run_dir = make_run(tmp_path / "run", algo)
    push_policy(run_dir, f"user/{algo}-policy")
    fake_hub.online = False  # pull as a machine without network: from the Hugging Face cache
    local, pulled = load_policy(run_dir), load_policy(f"user/{algo}-policy")
    assert np.array_equal(act_sequence(pulled), act_sequence(local))
    local_weights, pulled_weights = local.state_dict(), pulled.state_dict()
    assert local_weights.keys() == pulled_weights.keys()
    assert all(torch.equal(local_weights[k], pulled_weights[k]) for k in local_weights)


@pytest.mark.parametrize("algo", registry.names())
def test_evaluate_script_runs_a_repo_id_offline(tmp_path, tiny_policy, folder_files, write_snapshot, capsys, algo):
    cached_policy_repo(tmp_path, tiny_policy, folder_files, write_snapshot, algo)
    spec = importlib.util.spec_from_file_location("evaluate_script", REPO_ROOT / "evaluate.py")
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    output = tmp_path / "eval.json"
    evaluate.main(["--policy", "user/repo", "--episodes", "1", "--num_envs", "1", "--device", "cpu", "--output", str(output)])
    report = json.loads(output.read_text())
    assert report["policy"] == "user/repo" and report["results"][0]["episodes"] == 1


def _edit_config(**changes):
    def edit(folder):
        config = json.loads((folder / "config.json").read_text())
        config.update(changes)
        (folder / "config.json").write_text(json.dumps(config))

    return edit


def _edit_weights(change):
    def edit(folder):
        weights = load_file(folder / "model.safetensors")
        save_file(change(weights), folder / "model.safetensors", metadata={"format": "pt"})

    return edit


def _pickle_only(folder):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle that must never be loaded")


def _truncate_weights(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


TAMPERED = {  # how the repo was changed -> (edit, phrase the error must contain)
    "unknown model_type": (_edit_config(model_type="bert"), "model_type 'bert'"),
    "unknown algorithm": (_edit_config(algo="mystery"), "algo 'mystery'"),
    "weights of another shape": (_edit_config(state_dim=5), "does not match config.json"),
    "weights under other names": (_edit_weights(lambda w: {f"encoder.{k}": v for k, v in w.items()}), "does not match"),
    "a weight missing": (_edit_weights(lambda w: {k: v for k, v in w.items() if k != sorted(w)[0]}), "does not match"),
    "pickle weights only": (_pickle_only, "model.safetensors"),
    "truncated safetensors": (_truncate_weights, "corrupt"),
    "config not JSON": (lambda folder: (folder / "config.json").write_text("{model_type:"), "not valid JSON"),
}


@pytest.mark.parametrize("tampering", list(TAMPERED), ids=list(TAMPERED))
def test_tampered_repo_fails_to_load_with_a_clear_message(tmp_path, tiny_policy, folder_files, write_snapshot, tampering):
    edit, phrase = TAMPERED[tampering]
    cached_policy_repo(tmp_path, tiny_policy, folder_files, write_snapshot, edit=edit)
    with pytest.raises(PolicyLoadError) as error:
        load_policy("user/repo")
    assert phrase in str(error.value) and "user/repo" in str(error.value)
