"""Fields that every seqrl policy config carries so that it can act with nothing else."""

from __future__ import annotations


class PolicyConfigMixin:
    """Preprocessing and environment facts saved in every policy's ``config.json``.

    Mixed into each algorithm's ``PretrainedConfig`` so that ``from_pretrained`` followed by
    ``evaluate.py`` needs no dataset and no numbers copied by hand.

    Args:
        algo: registry name of the algorithm that trained the policy (e.g. ``"dt"``).
        env_id: gymnasium id of the environment the data came from.
        env_kwargs: keyword arguments for ``gymnasium.make`` (from the dataset's env spec).
        env_import: modules to import before making the env (the package that registers a custom env; see
            :mod:`seqrl.envs`). Loading from the Hub never imports them without ``--trust_remote_code``.
        dataset_id: where the training data came from.
        obs_mean, obs_std: observation normalisation ``(obs - mean) / std`` (lists of floats).
        action_low, action_high: bounds that actions in [-1, 1] are rescaled to (continuous only).
        target_returns: default target returns for evaluation (raw return units).
        ref_min_score, ref_max_score: reference returns for the normalised score.
    """

    def __init__(
        self,
        algo: str | None = None,
        env_id: str | None = None,
        env_kwargs: dict | None = None,
        env_import: list[str] | None = None,
        dataset_id: str | None = None,
        obs_mean: list[float] | None = None,
        obs_std: list[float] | None = None,
        action_low: list[float] | None = None,
        action_high: list[float] | None = None,
        target_returns: list[float] | None = None,
        ref_min_score: float | None = None,
        ref_max_score: float | None = None,
        **kwargs,
    ):
        self.algo = algo
        self.env_id = env_id
        self.env_kwargs = env_kwargs or {}
        self.env_import = list(env_import or [])
        self.dataset_id = dataset_id
        self.obs_mean = obs_mean
        self.obs_std = obs_std
        self.action_low = action_low
        self.action_high = action_high
        self.target_returns = target_returns or []
        self.ref_min_score = ref_min_score
        self.ref_max_score = ref_max_score
        super().__init__(**kwargs)

    @property
    def uses_target_return(self) -> bool:
        """Whether acting is conditioned on a target return (return-conditioned sequence models)."""
        return False
