"""Normalised scores, as in D4RL: ``100 * (R - ref_min) / (ref_max - ref_min)``."""

from __future__ import annotations

import numpy as np


def normalized_score(returns: np.ndarray, ref_min: float | None, ref_max: float | None) -> np.ndarray | None:
    """0 is the reference random policy, 100 the reference expert; None without reference scores."""
    if ref_min is None or ref_max is None or ref_max == ref_min:
        return None
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
