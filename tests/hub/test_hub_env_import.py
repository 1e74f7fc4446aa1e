"""A policy from the Hub never makes seqrl import code: a module its config names for its env is imported only
with --trust_remote_code (or when the user names it with --env_import), as in transformers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from seqrl.envs import EnvError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = "remote_robot_envs"
ENV_SOURCE = '''
import gymnasium as gym
gym.register("RemoteRobot-v0", entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv", max_episode_steps=20)
'''


@pytest.fixture
def remote_policy(tmp_path, tiny_policy, folder_files, write_snapshot, monkeypatch):
    """A cached Hub repo 'user/robot' whose policy's env is registered by a module of the repo's author, which
    is importable here (on sys.path) but not imported."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / f"{MODULE}.py").write_text(ENV_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    folder = tmp_path / "saved"
    tiny_policy("iql").save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(env_id="RemoteRobot-v0", env_import=[MODULE])
    (folder / "config.json").write_text(json.dumps(config))
    write_snapshot("user/robot", folder_files(folder), COMMIT)
    yield "user/robot"
    sys.modules.pop(MODULE, None)
    gym.registry.pop("RemoteRobot-v0", None)


def evaluate_main():
    spec = importlib.util.spec_from_file_location("evaluate_script", REPO_ROOT / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_hub_policy_naming_a_module_refuses_to_import_it_without_trust_remote_code(remote_policy, tmp_path):
    main = evaluate_main()
    args = ["--policy", remote_policy, "--episodes", "1", "--num_envs", "1", "--device", "cpu",
            "--output", str(tmp_path / "eval.json")]
    with pytest.raises(EnvError) as error:
        main(args)
    message = str(error.value)
    assert f"names the module(s) ['{MODULE}'] to import for its environment 'RemoteRobot-v0'" in message
    assert "pass --trust_remote_code" in message
    assert MODULE not in sys.modules and "RemoteRobot-v0" not in gym.registry  # nothing was imported

    main([*args, "--trust_remote_code"])
    report = json.loads((tmp_path / "eval.json").read_text())
    assert MODULE in sys.modules and report["env_id"] == "RemoteRobot-v0"
    assert report["results"][0]["episode_length_mean"] == 20.0


def test_a_module_the_user_names_needs_no_trust(remote_policy, tmp_path):
    main = evaluate_main()
    main(["--policy", remote_policy, "--env_import", MODULE, "--episodes", "1", "--num_envs", "1", "--device", "cpu",
          "--output", str(tmp_path / "eval.json")])
    assert json.loads((tmp_path / "eval.json").read_text())["env_id"] == "RemoteRobot-v0"
