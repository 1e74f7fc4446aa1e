"""The one registry: algorithm name -> (config class, algorithm class, policy class).

``--algo NAME`` on the command line, the ``algo: {type: NAME}`` key of a YAML config, loading a
policy folder (by its config's ``model_type``) and the conformance tests all read this table, so an
algorithm exists everywhere once it is registered here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seqrl.errors import SeqRLError
from seqrl.models.policy import SeqRLPolicy

if TYPE_CHECKING:
    from seqrl.algos.base import AlgoConfig, Algorithm


@dataclass(frozen=True)
class Entry:
    name: str
    algorithm: type["Algorithm"]
    policy: type[SeqRLPolicy]
    paper: str

    @property
    def config(self) -> type["AlgoConfig"]:
        return self.algorithm.config_class


ALGORITHMS: dict[str, Entry] = {}


class UnknownAlgorithmError(SeqRLError):
    pass


def register(name: str, policy: type[SeqRLPolicy], paper: str):
    """Class decorator for an :class:`Algorithm`: makes ``name`` usable everywhere."""

    from seqrl.algos.base import AlgoConfig

    def wrap(algorithm: type["Algorithm"]) -> type["Algorithm"]:
        ALGORITHMS[name] = Entry(name, algorithm, policy, paper)
        AlgoConfig.register_subclass(name)(algorithm.config_class)
        return algorithm

    return wrap


def get(name: str) -> Entry:
    _load_builtin()
    if name not in ALGORITHMS:
        raise UnknownAlgorithmError(f"Unknown algorithm '{name}'. Available: {', '.join(sorted(ALGORITHMS))}.")
    return ALGORITHMS[name]


def names() -> list[str]:
    _load_builtin()
    return sorted(ALGORITHMS)


def entry_for_config(config: "AlgoConfig") -> Entry:
    _load_builtin()
    for entry in ALGORITHMS.values():
        if type(config) is entry.config:
            return entry
    raise UnknownAlgorithmError(f"No registered algorithm uses config class {type(config).__name__}.")


def _load_builtin() -> None:
    import seqrl.algos  # noqa: F401  (importing the package registers every built-in algorithm)


class PolicyLoadError(SeqRLError):
    pass


def load_policy(name_or_path: str | os.PathLike, revision: str | None = None, device: str | None = None) -> SeqRLPolicy:
    """Load any seqrl policy from a local folder or a Hub repo id.

    The folder's ``config.json`` names the algorithm; its policy class is looked up here and loaded
    with safetensors only (nothing is unpickled). Errors say which file is missing or broken.
    """
    _load_builtin()
    path = Path(name_or_path)
    if path.exists():
        if not path.is_dir():
            raise PolicyLoadError(f"{path} is a file; pass the policy folder that holds config.json and model.safetensors.")
        config_file = path / "config.json"
        if not config_file.is_file():
            raise PolicyLoadError(
                f"{path} has no config.json, so it is not a policy folder. Pass the output_dir of "
                "`python train.py` (or one of its checkpoints/step-*/policy folders)."
            )
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise PolicyLoadError(
                f"{path} has no model.safetensors: the weights are missing. Re-save the policy, or use "
                f"a checkpoint under {path / 'checkpoints'} if the run has one."
            )
        config = _read_config(config_file)
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            config = _read_config(Path(hf_hub_download(str(name_or_path), "config.json", revision=revision)))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
            raise PolicyLoadError(
                f"'{name_or_path}' is neither a local folder nor a reachable Hub repo with a config.json "
                f"({type(error).__name__}: {error}). Check the path or repo id; offline, the repo must be "
                "in the Hugging Face cache (HF_HUB_OFFLINE=1 reads only the cache)."
            ) from error
    policy_class = _policy_class(config, name_or_path)
    try:
        policy, loading = policy_class.from_pretrained(
            name_or_path, revision=revision, use_safetensors=True, output_loading_info=True
        )
    except Exception as error:  # safetensors / shape errors come in many types; all mean one thing here
        raise PolicyLoadError(
            f"Could not load the weights of '{name_or_path}' ({type(error).__name__}: {error}). "
            "model.safetensors is corrupt or does not match config.json; re-save or re-download the policy."
        ) from error
    # transformers only warns about weights that are missing from the file (it initialises them at random)
    # or that the model has no place for; either way the policy would act with weights nobody trained.
    problems = {kind: sorted(map(str, loading.get(kind) or ())) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        details = "; ".join(
            f"{kind.replace('_', ' ')}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}" for kind, keys in problems.items()
        )
        raise PolicyLoadError(
            f"The weights of '{name_or_path}' do not fit its {policy_class.__name__} ({details}): model.safetensors "
            "does not match config.json. Re-save or re-download the policy."
        )
    return policy.to(device) if device else policy


def _read_config(config_file: Path) -> dict:
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise PolicyLoadError(f"{config_file} is not valid JSON ({error}); the policy folder is damaged.") from error


def _policy_class(config: dict, source) -> type[SeqRLPolicy]:
    model_type = config.get("model_type")
    for entry in ALGORITHMS.values():
        if entry.policy.config_class.model_type == model_type and config.get("algo") in (entry.name, None):
            return entry.policy
    known = sorted({e.policy.config_class.model_type for e in ALGORITHMS.values()})
    raise PolicyLoadError(
        f"'{source}' has model_type '{model_type}' (algo '{config.get('algo')}'), which seqrl does not know. "
        f"Known model types: {', '.join(known)}. Was it saved by a newer seqrl or another library?"
    )
