"""The dataset a run trains on: loaded from its source with the environment and action bounds the run gives
for it, cleaned if asked, and checked before any training step.

Data that names no environment still trains: without ``--data.action_low/--data.action_high`` its Box actions
are bounded by the data's own range (one log line says so), and evaluation is skipped at the end with a line
saying how to run it in an env (see :func:`seqrl.training.loop.train`).
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import numpy as np

from seqrl.data.binding import bounds_from_data, has_unbounded_actions
from seqrl.data.schema import get_metadata
from seqrl.data.sources import load_dataset
from seqrl.envs import EnvError, import_env_modules, resolve_env


def load_training_data(cfg, log: Callable[[str], None]) -> datasets.Dataset:
    """The dataset of ``cfg`` (a :class:`~seqrl.training.config.TrainConfig`), after importing ``cfg.env_import``."""
    import_env_modules(cfg.env_import)
    data = cfg.data
    ds = load_dataset(data.dataset, validate=data.validate, env_id=data.env_id, env_kwargs=data.env_kwargs or None,
                      env_import=cfg.env_import, action_low=data.action_low, action_high=data.action_high,
                      drop_invalid_episodes=data.drop_invalid_episodes, log=log)
    metadata = get_metadata(ds)
    if has_unbounded_actions(ds):
        ds = bounds_from_data(ds)
        space = get_metadata(ds).action_space_obj
        log(f"The dataset '{metadata.dataset_id}' gives no bounds for its actions"
            f"{'' if metadata.env_id else ' and names no environment'}: they are bounded by the data's own range, "
            f"low {np.round(space.low, 4).tolist()} high {np.round(space.high, 4).tolist()} (set them with "
            "--data.action_low/--data.action_high, or name the env with --data.env_id).")
    if metadata.env_id and not data.env_id and (cfg.eval.final or cfg.eval.every):
        try:
            resolve_env(metadata.env_id)  # an env that cannot be found fails now, not after training
        except EnvError as error:
            modules = f" Its metadata names the module(s) {metadata.env_import}." if metadata.env_import else ""
            raise EnvError(f"the dataset '{metadata.dataset_id}' names the environment '{metadata.env_id}' for "
                           f"evaluation, which cannot be made here: {error}{modules} Or train without evaluation "
                           "(--eval.final false).") from error
    return ds
