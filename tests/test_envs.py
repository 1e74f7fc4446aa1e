"""Naming environments (seqrl.envs): the three ways to name one, and the errors of a module that does not exist
and of an entry point that is not a class."""

from __future__ import annotations

import gymnasium as gym
import pytest

from seqrl.envs import EnvError, env_modules, make_env, resolve_env
from seqrl.training.cli import parse_train_args
from seqrl.training.data import load_training_data


def test_the_three_ways_to_name_an_env():
    import tests.custom_envs  # noqa: F401  (registers DictPendulum-v0)

    registered = resolve_env("Pendulum-v1", {"g": 5.0})
    assert registered.id == "Pendulum-v1" and registered.kwargs == {"g": 5.0} and registered.max_episode_steps == 200
    with_module = resolve_env("tests.custom_envs:DictPendulum-v0")  # gymnasium's module:id form
    assert with_module.id == "tests.custom_envs:DictPendulum-v0"
    assert with_module.entry_point == "tests.custom_envs:DictPendulumEnv"
    entry_point = resolve_env("tests.custom_envs:DictPendulumEnv", {"max_steps": 7})
    env = make_env(entry_point)
    assert isinstance(env.observation_space, gym.spaces.Dict) and env.unwrapped.max_steps == 7
    env.close()
    assert env_modules("tests.custom_envs:DictPendulumEnv", ["my.pkg"]) == ["my.pkg", "tests.custom_envs"]


def test_env_import_of_a_module_that_does_not_exist():
    cfg = parse_train_args(["--env_import", "no_such_package.envs", "tests.custom_envs"])
    assert cfg.env_import == ["no_such_package.envs", "tests.custom_envs"]
    with pytest.raises(EnvError, match=r"--env_import no_such_package.envs: no module named 'no_such_package'\. "
                                       "Check the spelling"):
        load_training_data(cfg, print)  # before any data is read
    with pytest.raises(EnvError, match=r"environment 'no_such_package.envs:MyEnv' names the module "
                                       r"no_such_package.envs: no module named"):
        resolve_env("no_such_package.envs:MyEnv")
    with pytest.raises(EnvError, match=r"Unknown gymnasium environment 'MyEnv-v0'.*--env_import MODULE"):
        resolve_env("MyEnv-v0")


def test_an_entry_point_that_is_not_a_class():
    with pytest.raises(EnvError, match=r"entry point 'tests.custom_envs:make_dict_pendulum' is a function, not a "
                                       "class"):
        resolve_env("tests.custom_envs:make_dict_pendulum")
    with pytest.raises(EnvError, match="module 'tests.custom_envs' has no attribute 'NoSuchEnv'"):
        resolve_env("tests.custom_envs:NoSuchEnv")
