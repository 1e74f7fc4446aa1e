"""``--online.save_dataset``: the episodes collected online as a dataset that seqrl (and Minari or
``datasets``) load again, and that ``seqrl-hub push_dataset`` pushes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_dataset import DATASET_ID_RE

from seqrl.data.schema import DatasetMetadata, build_dataset, episode_boundaries
from seqrl.errors import SeqRLError


def is_path(target: str) -> bool:
    """A folder path (``./x``, ``/x``, ``~/x``, or no Minari ``namespace/name-vN`` form) rather than a Minari id."""
    return target.startswith(("/", "./", "../", "~")) or not (DATASET_ID_RE.fullmatch(target) and "-v" in target)


def save_online_dataset(columns: dict[str, np.ndarray], metadata: DatasetMetadata, target: str, env_id: str,
                        algo: str) -> str:
    """Write ``columns`` (schema columns of whole episodes) to ``target``: a Minari id under
    ``MINARI_DATASETS_PATH``, or a ``save_to_disk`` folder. Returns where it went."""
    if not columns or not len(columns["rewards"]):
        raise SeqRLError(f"--online.save_dataset {target}: the online phase collected no episode.")
    if is_path(target):
        from seqrl.data.sources import save_dataset

        path = Path(target).expanduser()
        info = replace(metadata, dataset_id=path.name, stats={})
        if env_id != metadata.env_id:  # fine-tuned in another env than the data's: the saved data names it
            import gymnasium as gym

            info = replace(info, env_spec=gym.spec(env_id).to_json())
        save_dataset(build_dataset(columns, info), path)
        print(f"Saved the {len(episode_boundaries(columns['episode_index'])[0])} online episodes to {path}.")
        return str(path)
    from seqrl.data.collect import write_minari

    starts, lengths = episode_boundaries(columns["episode_index"])
    buffers = []
    for index, (start, length) in enumerate(zip(starts, lengths)):
        rows = slice(start, start + length)
        buffers.append(EpisodeBuffer(
            id=index,
            observations=np.concatenate([columns["observations"][rows], columns["next_observations"][start + length - 1][None]]),
            actions=columns["actions"][rows], rewards=columns["rewards"][rows].astype(np.float64),
            terminations=columns["terminations"][rows], truncations=columns["truncations"][rows], infos={},
        ))
    write_minari(target, buffers, env_id, ref_min_score=metadata.ref_min_score, ref_max_score=metadata.ref_max_score,
                 algorithm_name=f"seqrl {algo} (online fine-tuning)",
                 description=f"Episodes collected by seqrl's online fine-tuning of {algo} on {env_id}.")
    print(f"Saved the {len(buffers)} online episodes as the Minari dataset {target}.")
    return target
