"""The plot of the online phase: episode returns against environment steps, with the evaluations."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_online_returns(history: dict, path: Path, title: str) -> Path:
    """Training episodes (points and a running mean over 10) and evaluations (mean ± std) against env steps.

    ``history``: ``{"episodes": [[env_step, return, length], ...], "evaluations": [{"env_step", "return_mean",
    "return_std"}, ...]}``. Drawn on a bare ``Figure`` (no pyplot), so the caller's backend is untouched."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.2), dpi=120)
    ax = figure.add_subplot()
    episodes = np.asarray(history.get("episodes") or np.zeros((0, 3)), dtype=np.float64).reshape(-1, 3)
    if len(episodes):
        ax.scatter(episodes[:, 0], episodes[:, 1], s=6, alpha=0.3, color="tab:blue", label="training episodes")
        window = min(10, len(episodes))
        running = np.convolve(episodes[:, 1], np.ones(window) / window, mode="valid")
        ax.plot(episodes[window - 1:, 0], running, color="tab:blue", lw=1.5, label=f"running mean ({window})")
    evaluations = history.get("evaluations") or []
    if evaluations:
        ax.errorbar([e["env_step"] for e in evaluations], [e["return_mean"] for e in evaluations],
                    yerr=[e["return_std"] for e in evaluations], color="tab:orange", marker="o", capsize=3,
                    label="evaluation (mean ± std)")
    ax.set_xlabel("environment steps (online)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(episodes) or evaluations:
        ax.legend(loc="best")
    figure.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(tmp)
    tmp.replace(path)
    return path
