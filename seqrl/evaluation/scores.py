"""Normalised scores, as in D4RL: ``100 * (R - ref_min) / (ref_max - ref_min)``, and the one spread seqrl reports:
the sample standard deviation (``ddof=1``) over episodes or seeds."""

from __future__ import annotations

import numpy as np


def normalized_score(returns: np.ndarray, ref_min: float | None, ref_max: float | None) -> np.ndarray | None:
    """0 is the reference random policy, 100 the reference expert; None without reference scores."""
    if ref_min is None or ref_max is None or ref_max == ref_min:
        return None
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)


def sample_std(values) -> float:
    """Sample standard deviation (``ddof=1``, the estimate of the spread of the population the episodes or seeds
    are drawn from); 0.0 for fewer than two values. Every report, table and benchmark of seqrl uses it."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0
