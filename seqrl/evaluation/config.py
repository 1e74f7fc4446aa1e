"""Evaluation settings, defined once: ``evaluate.py`` parses :class:`EvaluateConfig` and ``train.py`` nests
:class:`~seqrl.training.config.EvalConfig` (``--eval.*``); both extend :class:`EvalSettings`, so the two commands
share the same keys, help and defaults (the seed above all, which ``eval_info.json`` records so that the
evaluate command of a model card reproduces its numbers)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_SEED = 10_000  # apart from the collector's seeds (0, 1, ...), so evaluation episodes are not training ones


@dataclass
class EvalSettings:
    episodes: int = 10
    """Episodes per target return."""
    num_envs: int = 10
    """Environments stepped together in one vector env."""
    target_returns: list[float] = field(default_factory=list)
    """Target returns to evaluate, e.g. `--target_returns 100 200` (empty: the policy's saved defaults)."""
    seed: int = DEFAULT_SEED
    """Seed of the first environment (env i starts from seed + i); recorded in eval_info.json."""


@dataclass
class EvaluateConfig(EvalSettings):
    """``evaluate.py``: one policy, rolled out at each target return."""

    policy: str | None = None
    """Policy folder (a train.py output_dir or checkpoint's policy/) or Hub repo id. Required."""
    output: str | None = None
    """JSON report (default: POLICY/eval_info.json, or ./eval_info.json for Hub ids); the plot goes beside it."""
    video: str | None = None
    """Folder to record one episode per target return into, as MP4 (gymnasium RecordVideo)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit)."""
    device: str | None = None
    """Torch device (default: cuda if available, else cpu)."""
    mixed_precision: str = "no"
    """"no", or "bf16": act under bf16 autocast (fast on GPUs and CPUs with AVX512-BF16 or AMX; weights stay float32)."""
    planner: list[str] = field(default_factory=list)
    """Trajectory Transformer planning settings for this evaluation, e.g. `--planner beam_width=32 horizon=5`
    (default: those saved with the policy)."""
    acting: str | None = None
    """Decision Transformer acting for this evaluation: "window" (recompute the last K steps, as the reference) or
    "cached" (rolling key/value cache) (default: the policy's saved mode)."""
    env_id: str | None = None
    """Evaluate in this environment instead of the policy's (a registered id, module:Id-v0, or an entry point
    module:EnvClass); its spaces must match the policy's."""
    env_kwargs: dict | None = None
    """Keyword arguments of the env, e.g. '{"g": 5.0}' (without env_id: on top of the policy's saved ones)."""
    env_import: list[str] = field(default_factory=list)
    """Modules to import first, e.g. the package that registers a custom env."""
    trust_remote_code: bool = False
    """Let a policy from the Hub import the modules its config names for its env."""
    log_level: str = "info"
    """"debug", "info", "warning" or "error": how much seqrl reports."""
