"""Cleaning messy logs (``--data.drop_invalid_episodes``) instead of refusing them.

Real recordings hold episodes that the schema refuses (:mod:`seqrl.data.validation`): a sensor glitch writes
NaN or inf, a recording stops after one step, a log ends mid-episode with no end flag. By default seqrl refuses
such data and says which episode is wrong; :func:`drop_invalid_episodes` is the opt-in that keeps the rest:

- episodes with a NaN or inf in a float column (observations, next observations, rewards, Box actions) and
  episodes of a single step are dropped;
- episodes whose last step has neither flag are kept, their last step marked truncated (cut, not ended).

Episodes keep their ``episode_index``, so the reported indices name the episodes of the source. Everything
else (actions outside bounds, split episodes, flags in the middle) still fails validation afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import datasets
import numpy as np

from seqrl.data.schema import build_dataset, dataset_to_numpy, episode_boundaries, get_metadata

_FLOAT_COLUMNS = ("observations", "next_observations", "rewards", "actions")


@dataclass(frozen=True)
class Repairs:
    """Source ``episode_index`` values of each kind of defect found (an episode may have several)."""

    non_finite: list[int]
    one_step: list[int]
    unterminated: list[int]

    def lines(self) -> list[str]:
        """One line per kind of defect found (nothing when the data was clean)."""
        kinds = (("dropped", self.non_finite, "with NaN/inf values"), ("dropped", self.one_step, "of a single step"),
                 ("marked the last step truncated in", self.unterminated, "that end without a termination or "
                  "truncation flag"))
        return [f"--data.drop_invalid_episodes: {verb} {len(episodes)} episode(s) {what}: {_listed(episodes)}"
                for verb, episodes, what in kinds if episodes]


def _listed(episodes: list[int], limit: int = 20) -> str:
    return str(episodes) if len(episodes) <= limit else f"{episodes[:limit]} and {len(episodes) - limit} more"


def drop_invalid_episodes(ds: datasets.Dataset) -> tuple[datasets.Dataset, Repairs]:
    """``ds`` without its non-finite and one-step episodes and with unterminated episodes marked truncated, and
    what was done. A clean dataset comes back as it is; otherwise the columns are read into memory once and the
    dataset rebuilt without statistics (:func:`seqrl.data.sources.load_dataset` computes them afterwards)."""
    columns = dataset_to_numpy(ds)
    episode_index = columns["episode_index"]  # [N]
    starts, lengths = episode_boundaries(episode_index)  # [E], [E]
    ids = episode_index[starts]  # [E]
    ends = starts + lengths - 1  # [E] last row of each episode
    bad_rows = np.zeros(len(episode_index), dtype=bool)  # [N]
    for name in _FLOAT_COLUMNS:
        values = columns[name]
        if values.dtype.kind == "f":
            bad_rows |= ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    non_finite = np.logical_or.reduceat(bad_rows, starts) if len(starts) else np.zeros(0, bool)  # [E]
    one_step = lengths < 2  # [E]
    unterminated = ~(columns["terminations"][ends] | columns["truncations"][ends])  # [E]
    dropped = non_finite | one_step
    repairs = Repairs(*(ids[flags].tolist() for flags in (non_finite, one_step, unterminated & ~dropped)))
    if not (dropped.any() or repairs.unterminated):
        return ds, repairs
    columns["truncations"] = columns["truncations"].copy()  # Arrow-backed arrays may be read-only
    columns["truncations"][ends[unterminated & ~dropped]] = True
    keep = np.repeat(~dropped, lengths)  # [N]
    kept = {name: values[keep] for name, values in columns.items()}
    return build_dataset(kept, replace(get_metadata(ds), stats={}), with_stats=False), repairs
