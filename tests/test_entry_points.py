"""The installed commands: a wheel of seqrl installed into a fresh virtual environment, used from a folder
outside the repository, as a user who pip-installs seqrl (or reads a model card) uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import REPO

COMMANDS = ("seqrl-train", "seqrl-eval", "seqrl-hub", "seqrl-collect")


def run(args, cwd, env=None, timeout=900):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_entry_points_run_from_an_installed_wheel_in_a_fresh_venv(tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheels"),
         str(REPO)], cwd=tmp_path)
    wheel, = (tmp_path / "wheels").glob("seqrl-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    # The wheel alone goes into the fresh venv; its dependencies are the ones this test runs on, made visible by a
    # path file (plain paths: the editable install's finder in that folder is not loaded, so `import seqrl` can
    # only find the wheel). Installing torch and the rest again would take minutes and test pip, not seqrl.
    run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", str(wheel)], cwd=tmp_path)
    site = run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               tmp_path).stdout.strip()
    (Path(site) / "seqrl-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
           "MINARI_DATASETS_PATH": str(work / "minari"), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    where = run([str(venv / "bin" / "python"), "-c", "import seqrl; print(seqrl.__file__)"], work, env).stdout
    assert where.startswith(str(venv)), where  # the installed copy, not the clone
    bin_ = venv / "bin"
    # The shipped jobs come with the wheel: away from a clone, `--algo tt` still starts from configs/tt/pendulum-mixed.yaml
    # (a 64-wide model), not from TTConfig()'s reference sizes (128 wide).
    shipped = run([str(bin_ / "python"), "-c", "from seqrl.training.command import default_config_dir as d; "
                   "from seqrl.training.cli import parse_train_args as p; "
                   "print(d(), p(['--algo', 'tt'], config_dir=d()).algo.hidden_size)"], work, env).stdout.split()
    assert shipped[0] == str(Path(site) / "seqrl" / "configs") and shipped[1] == "64", shipped
    for name in COMMANDS:
        assert "usage: " + name in run([str(bin_ / name), "--help"], work, env).stdout
    run([str(bin_ / "seqrl-collect"), "--env_id", "CartPole-v1", "--policy", "random", "--episodes", "4",
         "--num_envs", "2", "--dataset_id", "test/cartpole/random-v0"], work, env)
    trained = run([str(bin_ / "seqrl-train"), "--algo", "dt", "--data.dataset", "test/cartpole/random-v0", "--steps", "20",
                   "--algo.hidden_size", "16", "--algo.n_layer", "1", "--algo.context_len", "4", "--algo.batch_size", "8",
                   "--output_dir", "run", "--eval.episodes", "1", "--eval.num_envs", "1", "--eval.target_returns", "20",
                   "--report_to", "none"], work, env)
    assert trained.stdout.strip().endswith(str(work / "run"))
    evaluated = run([str(bin_ / "seqrl-eval"), "--policy", "run", "--episodes", "1", "--num_envs", "1",
                     "--target_returns", "20", "--seed", "10000"], work, env)
    assert "CartPole-v1" in evaluated.stdout and (work / "run" / "eval_info.json").is_file()
