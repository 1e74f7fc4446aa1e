"""Settings of the online phase (``--online.*``): after ``--steps`` offline gradient steps (or straight
from ``--init_from`` with ``--steps 0``), the policy keeps learning from its own interaction."""

from __future__ import annotations

from dataclasses import dataclass, field

UNSET = None  # fields left at None take the algorithm's default (Algorithm.online_defaults), then the one below


@dataclass
class OnlineConfig:
    env_steps: int = 0
    """Environment steps of the online phase, over all processes (0: offline training only)."""
    env_id: str | None = None
    """Environment to fine-tune in (default: the one the dataset names)."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments of gymnasium.make (default: the dataset's env kwargs, when env_id is not given)."""
    num_envs: int = 1
    """Environments each process steps together (one vector env)."""
    updates_per_step: float = 1.0
    """Value heads: gradient updates per environment step (CORL and d3rlpy's fit_online: 1)."""
    episodes_per_round: int = 1
    """Sequence models (ODT): episodes collected per round before its updates (the reference: 1)."""
    updates_per_round: int = 300
    """Sequence models (ODT): gradient updates per round (the reference: 300)."""
    random_steps: int = 0
    """Environment steps at the start that take uniform random actions instead of the policy's."""
    exploration: str = "sample"
    """"sample": act with samples of the policy's distribution (ODT, IQL, AWAC, CQL, Cal-QL);
    "gaussian": the policy's mode plus N(0, noise_std) noise on actions scaled to [-1, 1]."""
    noise_std: float = 0.1
    """Standard deviation of the "gaussian" exploration noise (in [-1, 1] action units)."""
    online_rtg: float | None = None
    """ODT: target return the rollouts are conditioned on (None: twice the largest evaluation target for
    positive targets, as the reference's 7200 for Hopper's 3600; 0 when returns are negative)."""
    buffer_episodes: int = 1000
    """ODT: trajectories in the replay buffer (seeded with the best offline ones; oldest replaced first)."""
    buffer_size: int | None = None
    """Value heads: transitions the replay buffer keeps (oldest episodes dropped first; None: all)."""
    mix_ratio: float | None = UNSET
    """Value heads: share of each batch drawn from the online episodes, the rest from the offline data
    (two buffers, as Cal-QL). 0: online transitions join the buffer that holds the offline data (CORL's
    IQL and AWAC). None: the algorithm's default (0.5 for calql, else 0)."""
    eval_every: int = 0
    """Evaluate (as evaluate.py does, eval.* settings) every N environment steps (0: only at the end)."""
    checkpoint_every: int = 10_000
    """Write a checkpoint every N environment steps (0: only at the end). Episodes in progress are ended
    there (truncated) so that a resumed run continues exactly as an uninterrupted one."""
    save_dataset: str | None = None
    """Also write the episodes collected online as a dataset: a Minari id (namespace/name-v0, under
    MINARI_DATASETS_PATH) or a folder path (datasets save_to_disk). Either loads with --data.dataset."""
    log_episodes: int = 10
    """The progress bar shows the mean return of the last N episodes."""

    def resolved(self, defaults: dict) -> OnlineConfig:
        """A copy with the fields left unset filled from the algorithm's ``online_defaults``."""
        from dataclasses import replace

        filled = {k: v for k, v in defaults.items() if getattr(self, k) is UNSET}
        settled = replace(self, **filled)
        if settled.mix_ratio is None:
            settled.mix_ratio = 0.0
        return settled
