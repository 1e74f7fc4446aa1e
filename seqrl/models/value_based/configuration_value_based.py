"""Configurations of the acting policies of the value-based methods (CQL, IQL, BCQ, TD3+BC, AWAC, BC).

Each config carries its network sizes and, through :class:`PolicyConfigMixin`, the preprocessing and
environment facts, so a saved folder acts with nothing else. None of these policies is
return-conditioned (``uses_target_return`` is False).
"""

from __future__ import annotations

from transformers import PretrainedConfig

from seqrl.models.policy import PolicyError
from seqrl.models.policy_config import PolicyConfigMixin

ACTOR_TYPES = ("deterministic", "tanh_gaussian", "gaussian", "categorical")


def _sizes(sizes, default: tuple[int, ...]) -> list[int]:
    return [int(s) for s in (default if sizes is None else sizes)]


class ActorPolicyConfig(PolicyConfigMixin, PretrainedConfig):
    """An actor network that acts on its own (CQL, IQL, TD3+BC, AWAC, BC).

    Args:
        state_dim: size of the flat observation vector.
        act_dim: size of the action vector; for discrete actions the number of actions.
        discrete_actions: the actor is a categorical distribution over ``act_dim`` actions.
        actor_type: ``"deterministic"`` (``tanh(MLP(s))``, TD3+BC / BC-MSE), ``"tanh_gaussian"``
            (SAC's squashed Gaussian, CQL), ``"gaussian"`` (Gaussian with a tanh mean and a
            state-independent std, IQL / AWAC / BC-NLL) or ``"categorical"`` (discrete actions).
            Continuous actors act with ``tanh(mean)`` (the mean for ``"gaussian"``, which is already
            tanh-squashed); the categorical one with the most likely action.
        hidden_sizes: widths of the actor MLP's hidden layers.
        log_std_min, log_std_max: clamp of the Gaussian actors' log standard deviation.
    """

    model_type = "seqrl_actor"

    def __init__(self, state_dim: int = 1, act_dim: int = 1, discrete_actions: bool = False,
                 actor_type: str = "deterministic", hidden_sizes: list[int] | None = None,
                 log_std_min: float = -20.0, log_std_max: float = 2.0, **kwargs):
        if actor_type not in ACTOR_TYPES:
            raise PolicyError(f"actor_type must be one of {ACTOR_TYPES}, got '{actor_type}'.")
        if (actor_type == "categorical") != bool(discrete_actions):
            raise PolicyError(
                f"actor_type '{actor_type}' does not fit {'discrete' if discrete_actions else 'continuous'} actions: "
                "use 'categorical' for discrete actions and one of 'deterministic', 'tanh_gaussian', 'gaussian' otherwise."
            )
        self.state_dim, self.act_dim, self.discrete_actions = state_dim, act_dim, bool(discrete_actions)
        self.actor_type = actor_type
        self.hidden_sizes = _sizes(hidden_sizes, (256, 256))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        super().__init__(**kwargs)


class DiscreteQPolicyConfig(PolicyConfigMixin, PretrainedConfig):
    """Greedy policy of a discrete Q ensemble (discrete CQL): ``a = argmax_a mean_e Q_e(s, a)``.

    Args:
        state_dim: size of the flat observation vector.
        act_dim: number of discrete actions.
        discrete_actions: must be True.
        hidden_sizes: widths of each Q network's hidden layers.
        num_critics: Q networks in the ensemble (evaluated in one batched matmul).
    """

    model_type = "seqrl_discrete_q"

    def __init__(self, state_dim: int = 1, act_dim: int = 2, discrete_actions: bool = True,
                 hidden_sizes: list[int] | None = None, num_critics: int = 1, **kwargs):
        if not discrete_actions:
            raise PolicyError("DiscreteQPolicy acts by argmax over discrete actions; the data has continuous actions.")
        self.state_dim, self.act_dim, self.discrete_actions = state_dim, act_dim, True
        self.hidden_sizes = _sizes(hidden_sizes, (256, 256))
        self.num_critics = num_critics
        super().__init__(**kwargs)


class BCQPolicyConfig(PolicyConfigMixin, PretrainedConfig):
    """BCQ (Fujimoto et al. 2019): generative model decoder, perturbation model and critics.

    Acting: draw ``num_candidates`` actions from the decoder with the latent clipped to
    ``[-latent_clip, latent_clip]``, perturb each by at most ``phi`` (in [-1, 1] action units), and take
    the one with the highest ``Q_1``.

    Args:
        state_dim, act_dim: observation and action sizes.
        discrete_actions: must be False (discrete data uses ``DiscreteBCQPolicy``).
        latent_dim: size of the VAE latent; None means ``2 * act_dim`` (the paper's choice).
        vae_hidden_sizes: hidden widths of the VAE encoder and decoder (750, 750 in the paper).
        actor_hidden_sizes: hidden widths of the perturbation model (400, 300).
        critic_hidden_sizes: hidden widths of each critic (400, 300).
        num_critics: critics in the ensemble (2: clipped double Q); acting uses the first.
        phi: largest perturbation, as a fraction of the half-range of the actions.
        num_candidates: actions sampled per state when acting (100, as the reference's ``select_action``;
            the target's 10 is a training setting, ``--algo.num_samples``).
        latent_clip: the decoder's latent is clipped to this when sampling (0.5).
    """

    model_type = "seqrl_bcq"

    def __init__(self, state_dim: int = 1, act_dim: int = 1, discrete_actions: bool = False,
                 latent_dim: int | None = None, vae_hidden_sizes: list[int] | None = None,
                 actor_hidden_sizes: list[int] | None = None, critic_hidden_sizes: list[int] | None = None,
                 num_critics: int = 2, phi: float = 0.05, num_candidates: int = 100, latent_clip: float = 0.5,
                 **kwargs):
        if discrete_actions:
            raise PolicyError("BCQPolicy needs continuous actions; discrete data uses DiscreteBCQPolicy (--algo bcq_discrete).")
        self.state_dim, self.act_dim, self.discrete_actions = state_dim, act_dim, False
        self.latent_dim = latent_dim or 2 * act_dim
        self.vae_hidden_sizes = _sizes(vae_hidden_sizes, (750, 750))
        self.actor_hidden_sizes = _sizes(actor_hidden_sizes, (400, 300))
        self.critic_hidden_sizes = _sizes(critic_hidden_sizes, (400, 300))
        self.num_critics, self.phi = num_critics, phi
        self.num_candidates, self.latent_clip = num_candidates, latent_clip
        super().__init__(**kwargs)


class DiscreteBCQPolicyConfig(PolicyConfigMixin, PretrainedConfig):
    """Discrete BCQ (Fujimoto et al. 2019, "Benchmarking Batch Deep RL Algorithms"): a Q network and
    an imitation network ``G``; acting takes ``argmax_a Q(s, a)`` over the actions with
    ``G(a|s) / max_a' G(a'|s) >= threshold``.

    Args:
        state_dim: size of the flat observation vector.
        act_dim: number of discrete actions.
        discrete_actions: must be True.
        hidden_sizes: hidden widths of the Q and imitation networks.
        threshold: tau, the relative probability an action needs to be considered (0.3 in the paper;
            0 is DQN, 1 is imitation).
    """

    model_type = "seqrl_discrete_bcq"

    def __init__(self, state_dim: int = 1, act_dim: int = 2, discrete_actions: bool = True,
                 hidden_sizes: list[int] | None = None, threshold: float = 0.3, **kwargs):
        if not discrete_actions:
            raise PolicyError("DiscreteBCQPolicy needs discrete actions; continuous data uses BCQPolicy (--algo bcq).")
        if not 0.0 <= threshold <= 1.0:
            raise PolicyError(f"threshold must be in [0, 1], got {threshold}.")
        self.state_dim, self.act_dim, self.discrete_actions = state_dim, act_dim, True
        self.hidden_sizes = _sizes(hidden_sizes, (256, 256))
        self.threshold = threshold
        super().__init__(**kwargs)
