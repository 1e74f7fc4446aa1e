"""Evaluation reports: ``eval_info.json``, a printed table, and the return-conditioning plot."""

from __future__ import annotations

import json
import os
from pathlib import Path


def format_table(report: dict) -> str:
    """Plain-text table: one row per target return."""
    lines = [f"{report['env_id']}: {report['policy']}",
             f"{'target':>10}  {'return (mean ± std)':>22}  {'normalised':>10}  {'length':>7}  {'episodes':>8}"]
    for row in report["results"]:
        target = "-" if row["target_return"] is None else f"{row['target_return']:.1f}"
        score = "-" if row["normalized_score_mean"] is None else f"{row['normalized_score_mean']:.1f}"
        ret = f"{row['return_mean']:.1f} ± {row['return_std']:.1f}"
        lines.append(f"{target:>10}  {ret:>22}  {score:>10}  {row['episode_length_mean']:>7.1f}  {row['episodes']:>8}")
    return "\n".join(lines)


def write_report(report: dict, path: str | os.PathLike) -> Path:
    """Write the JSON report and, beside it, the plot of achieved against target return (PNG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)
    if any(row["target_return"] is not None for row in report["results"]):
        plot_return_conditioning(report, path.with_suffix(".png"))
    return path


def plot_return_conditioning(report: dict, path: Path) -> Path:
    """Achieved return (mean ± std over episodes) against target return, with the y = x line that a
    perfectly return-conditioned policy would follow and the reference scores for scale."""
    from matplotlib.figure import Figure  # a bare Figure: no pyplot, so the caller's backend stays as it is

    rows = [r for r in report["results"] if r["target_return"] is not None]
    targets = [r["target_return"] for r in rows]
    means = [r["return_mean"] for r in rows]
    stds = [r["return_std"] for r in rows]
    fig = Figure(figsize=(5.5, 4.5), dpi=120)
    ax = fig.add_subplot()
    low, high = min(targets + means), max(targets + means)
    ax.plot([low, high], [low, high], ls="--", color="grey", lw=1, label="achieved = target")
    ax.errorbar(targets, means, yerr=stds, marker="o", capsize=4, label="achieved (mean ± std)")
    ax.set_xlabel("target return")
    ax.set_ylabel("achieved return")
    ax.set_title(f"{report['env_id']}: return conditioning")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path
