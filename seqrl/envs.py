"""Naming and making the environment a dataset, a policy or the command line points at, custom ones included.

An environment is named by a string and keyword arguments, in one of three forms:

- a registered gymnasium id, ``Pendulum-v1``, or ``MyEnv-v0`` once the module that registers it is imported
  (``--env_import my_package.envs``);
- gymnasium's own ``my_package.envs:MyEnv-v0``: the module is imported, then the registered id is used;
- an entry point ``my_package.envs:MyEnv``: a ``gymnasium.Env`` subclass in that module, made without registering.

:func:`resolve_env` turns the name into an ``EnvSpec`` whose ``id`` is the name as given, so the spec saved
with a dataset or a policy names the environment again in the same way. Modules are imported only by
:func:`import_env_modules`, which the command lines call for the modules the user names and, for a local
policy folder, the ones its config names; :func:`check_remote_imports` refuses modules named by a config
downloaded from the Hub unless the user passed ``--trust_remote_code``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import inspect
import json
import sys
from collections.abc import Iterable

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from seqrl.errors import SeqRLError


class EnvError(SeqRLError):
    """An environment cannot be named, imported or made, or its spaces do not fit the data or the policy."""


def import_env_modules(modules: Iterable[str], flag: str = "--env_import") -> None:
    """Import each module (the package that registers a custom environment) before any ``gymnasium.make``."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name and (module == error.name or module.startswith(f"{error.name}.")):
                raise EnvError(
                    f"{flag} {module}: no module named {error.name!r}. Check the spelling, install the package that "
                    f"provides it, or run from the folder that holds it (`python -c 'import {module}'` must work)."
                ) from error
            raise EnvError(f"{flag} {module}: importing it failed because it needs the module {error.name!r}, which "
                           "is not installed.") from error


def env_modules(env_id: str | None, env_import: Iterable[str] = ()) -> list[str]:
    """The modules that making ``env_id`` imports: ``env_import`` and the module part of a ``module:name`` id."""
    modules = list(env_import or ())
    if env_id and ":" in env_id:
        module = env_id.split(":", 1)[0]
        if module not in modules:
            modules.append(module)
    return modules


def check_remote_imports(source: str, env_id: str | None, env_import: Iterable[str], trusted: Iterable[str] = (),
                         trust_remote_code: bool = False) -> None:
    """Refuse to import modules that a config downloaded from the Hub (``source``) names, unless the user
    trusts it (``trust_remote_code``) or named them on the command line (``trusted``); as in transformers,
    downloaded files never make seqrl run code on their own. Modules already imported run no code."""
    if trust_remote_code:
        return
    trusted = set(trusted)
    untrusted = [m for m in env_modules(env_id, env_import) if m not in trusted and m not in sys.modules]
    if untrusted:
        raise EnvError(
            f"the policy '{source}' was downloaded from the Hub and its config names the module(s) {untrusted} to "
            f"import for its environment '{env_id}'. seqrl does not import code named by a downloaded config on its "
            "own: read that code, then pass --trust_remote_code to import it, or import the module yourself with "
            "--env_import MODULE, or evaluate in another environment with --env_id ID."
        )


def resolve_env(env_id: str, env_kwargs: dict | None = None) -> EnvSpec:
    """The ``EnvSpec`` that makes ``env_id`` (a registered id, ``module:Id-v0`` or ``module:Class``) with
    ``env_kwargs`` on top of the registered ones. Its ``id`` is ``env_id`` as given."""
    kwargs = dict(env_kwargs or {})
    module, _, name = env_id.rpartition(":")
    if module:
        import_env_modules([module], flag=f"environment {env_id!r} names the module")
    if name in gym.registry:
        spec = gym.registry[name]
        return dataclasses.replace(spec, id=env_id, kwargs={**spec.kwargs, **kwargs})
    if not module:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise EnvError(
            f"Unknown gymnasium environment {env_id!r}: nothing is registered under that id.{hint} Import the module "
            "that registers it with --env_import MODULE, or name its class as an entry point 'my_package.envs:MyEnv'."
        )
    entry_point = getattr(sys.modules[module], name, None)
    if entry_point is None:
        raise EnvError(f"environment {env_id!r}: module {module!r} has no attribute {name!r} and registers no env "
                       f"with that id. Name a gymnasium.Env subclass of {module!r}, or a registered id.")
    if not (inspect.isclass(entry_point) and issubclass(entry_point, gym.Env)):
        raise EnvError(f"entry point {env_id!r} is a {type(entry_point).__name__}, not a class: an entry point must "
                       "name a gymnasium.Env subclass ('my_package.envs:MyEnv'), or use the registered id of the env.")
    return EnvSpec(id=env_id, entry_point=env_id, kwargs=kwargs)


@contextlib.contextmanager
def making(spec: EnvSpec):
    """Turn the errors of making ``spec``'s env (a constructor refusing its keyword arguments) into
    :class:`EnvError`."""
    try:
        yield
    except (TypeError, gym.error.Error) as error:
        raise EnvError(f"cannot make environment {spec.id!r} with kwargs {spec.kwargs}: {error}. Check the keyword "
                       "arguments (--env_kwargs / --data.env_kwargs).") from error


def make_env(spec: EnvSpec) -> gym.Env:
    """``gymnasium.make(spec)``, with a clear error when the env's constructor refuses the keyword arguments."""
    with making(spec):
        return gym.make(spec)


def env_spaces(spec: EnvSpec) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) of the environment ``spec`` makes."""
    env = make_env(spec)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def serialisable(spec: EnvSpec) -> EnvSpec:
    """``spec`` with an entry point given as a class or function written as ``module:name``, as the JSON form of
    a spec (saved with datasets) cannot hold a callable."""
    entry_point = spec.entry_point
    if callable(entry_point):
        return dataclasses.replace(spec, entry_point=f"{entry_point.__module__}:{entry_point.__qualname__}")
    return spec


def spec_json(spec: EnvSpec) -> str:
    """``spec.to_json()`` of :func:`serialisable` ``(spec)``."""
    return serialisable(spec).to_json()


def spec_kwargs(env_spec_json: str | None) -> dict:
    """The keyword arguments stored in an ``EnvSpec`` JSON (empty without one)."""
    return dict(json.loads(env_spec_json).get("kwargs") or {}) if env_spec_json else {}


def flat_observations(env: gym.Env) -> gym.Env:
    """``env`` whose observations are one float vector: wrapped in ``FlattenObservation`` unless already a 1-D
    Box. The models see flat vectors; datasets flatten Dict/Tuple observations the same way
    (``gymnasium.spaces.flatten``)."""
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return env
    return gym.wrappers.FlattenObservation(env)


def describe_actions(space: gym.Space) -> str:
    return f"{space.n} discrete actions" if isinstance(space, gym.spaces.Discrete) else f"actions {space}"


def check_spaces(env_name: str, obs_space: gym.Space, action_space: gym.Space, other: str, obs_dim: int,
                 discrete: bool, action_dim: int) -> None:
    """Raise :class:`EnvError`, showing both sides, unless the env's (flattened) observations have ``obs_dim``
    values and its actions are of the same kind as ``other``'s (``action_dim`` values for Box actions)."""
    env_obs_dim = int(gym.spaces.flatdim(obs_space))
    env_discrete = isinstance(action_space, gym.spaces.Discrete)
    env_action_dim = int(np.prod(action_space.shape)) if not env_discrete else int(action_space.n)
    fits = env_obs_dim == obs_dim and env_discrete == discrete and (discrete or env_action_dim == action_dim)
    if not fits:
        theirs = f"{action_dim} discrete actions" if discrete else f"{action_dim}-dimensional continuous actions"
        raise EnvError(
            f"environment {env_name!r} does not fit {other}: the env has observations {obs_space} ({env_obs_dim} "
            f"values flattened) and {describe_actions(action_space)}; {other} has observations of {obs_dim} values "
            f"and {theirs}. Pick the environment the data was collected in."
        )
