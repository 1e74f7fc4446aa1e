"""Implicit Q-Learning (Kostrikov et al. 2021, https://arxiv.org/abs/2110.06169).

IQL never queries Q on actions outside the data. V fits an upper expectile of Q over the dataset's
actions, Q bootstraps from V, and the policy is extracted by advantage-weighted regression:

    L_V  = E[ |tau - 1(u < 0)| u^2 ],           u = min_e Q'_e(s, a) - V(s)
    L_Q  = 1/E sum_e E[(Q_e(s, a) - (r_n + gamma^n (1 - d) V(s')))^2]
    L_pi = -E[ min(exp(beta (min_e Q'_e(s, a) - V(s))), 100) log pi(a|s) ]

with the expectile tau = 0.7, inverse temperature beta = 3 and weights clipped at 100 (the paper's
MuJoCo settings), Q' the Polyak-averaged target critics (rate 5e-3), 2x256 MLPs, lr 3e-4, batch 256.
The actor is a Gaussian with a tanh mean and a state-independent std (continuous actions) or a
categorical distribution (discrete actions: Q has one output per action and Q(s, a) is read off).

With ``normalize_reward`` the rewards are scaled by ``1000 / (max return - min return)`` over the
dataset's episodes, as the reference code does for the MuJoCo locomotion tasks.

Observations are standardised with the dataset's mean and std (as CORL does; the IQL reference feeds
raw observations), and the actor's log std is clamped at [-20, 2] (CORL's bounds; the reference's lower
bound is -5): both follow CORL, whose IQL scores on D4RL match the paper's.

The actor's learning rate follows the reference's cosine decay to 0 over the offline steps
(``actor_lr_schedule``); an online phase after them runs it at its base rate again (CORL's fine-tuning IQL
lets its periodic cosine climb back up instead).

Departures: the three losses are computed from the same pre-step parameters and stepped together
(the reference updates V, then Q with the new V, then the actor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqrl.algos.base import ActorCriticConfig, Algorithm, Output, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.networks import IdentityEncoder, QEnsemble, ValueNetwork, frozen_copy, polyak_update
from seqrl.models.value_based import ActorPolicy, ActorPolicyConfig
from seqrl.registry import register


@dataclass
class IQLConfig(ActorCriticConfig):
    """IQL hyperparameters (Kostrikov et al. 2021, MuJoCo settings). The value network has the critics'
    widths (``critic_hidden_sizes``)."""

    learning_rate: float = 3e-4
    """Learning rate of the critics and the value network."""
    normalize_reward: bool = False
    """Scale rewards by 1000 / (max - min episode return) of the data (the reference's MuJoCo setting)."""
    expectile: float = 0.7
    """tau of the expectile loss: 0.5 fits the mean of Q over the data's actions, towards 1 its maximum."""
    beta: float = 3.0
    """Inverse temperature of the advantage weights (0: behaviour cloning)."""
    max_weight: float = 100.0
    """Clip of exp(beta * advantage)."""
    actor_lr_schedule: str = "cosine"
    """The actor's learning-rate schedule over the offline steps: "cosine" decays it to 0 at the last step, as the
    reference (optax.cosine_decay_schedule) and CORL do; "constant", "linear" as --algo.lr_schedule."""


@register("iql", policy=ActorPolicy, paper="Kostrikov et al. 2021, Offline Reinforcement Learning with Implicit Q-Learning")
class IQL(Algorithm):
    """IQL with a batched critic ensemble; Gaussian actor (continuous) or categorical actor (discrete)."""

    config_class = IQLConfig
    supports_online = True
    targets = {"critic_target": "critic"}
    data_shape = "transition"
    supports_discrete = True
    supports_continuous = True

    def __init__(self, config: IQLConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if not 0.0 < config.expectile < 1.0 or config.num_critics < 1:
            raise SeqRLError(f"iql: expectile must be in (0, 1) and num_critics >= 1; got {config.expectile}, {config.num_critics}.")
        discrete = metadata.is_discrete
        self.model = ActorPolicy(ActorPolicyConfig(actor_type="categorical" if discrete else "gaussian",
                                                   hidden_sizes=config.actor_hidden_sizes,
                                                   **policy_fields(metadata, "iql")))
        state_dim, action_dim = metadata.obs_dim, metadata.action_dim
        # Discrete: one output per action; continuous: the action is an input.
        self.critic = QEnsemble(IdentityEncoder(state_dim), 0 if discrete else action_dim, config.critic_hidden_sizes,
                                config.num_critics, action_dim if discrete else 1)
        self.critic_target = frozen_copy(self.critic)
        self.value = ValueNetwork(IdentityEncoder(state_dim), config.critic_hidden_sizes)

    def _q(self, critic: QEnsemble, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_e(s, a) [E, B] for continuous actions [B, A] or action ids [B]."""
        if self.model.config.discrete_actions:
            q_all = critic(observations)  # [E, B, n]
            return q_all.gather(-1, actions.view(1, -1, 1).expand(q_all.shape[0], -1, 1)).squeeze(-1)
        return critic(observations, actions)

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        cfg = self.config
        observations, next_observations = batch["observations"], batch["next_observations"]  # [B, S]
        actions = batch["actions"]
        if not self.model.config.discrete_actions:
            actions = self.model.normalize_actions(actions).clamp(-1.0, 1.0)  # [B, A]

        with torch.no_grad():
            target_q = self._q(self.critic_target, observations, actions).float().min(0).values  # [B]
            next_v = self.value(next_observations).float()  # [B]
            targets = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminals"]) * next_v  # [B]

        v = self.value(observations).float()  # [B]
        diff = target_q - v  # u; reaches only V
        value_loss = ((cfg.expectile - (diff < 0).float()).abs() * diff.square()).mean()

        q = self._q(self.critic, observations, actions).float()  # [E, B]
        critic_loss = (q - targets).square().mean(-1).mean()

        weights = torch.exp(cfg.beta * diff.detach()).clamp(max=cfg.max_weight)  # [B]
        log_prob = self.model.actor.log_prob(observations, actions).float()  # [B]
        actor_loss = -(weights * log_prob).mean()

        metrics = {
            "actor_loss": actor_loss.detach(), "critic_loss": critic_loss.detach(), "value_loss": value_loss.detach(),
            "q_data": q.detach().mean(), "v": v.detach().mean(), "advantage": diff.detach().mean(),
            "weight": weights.mean(),
        }
        return Output(loss={"actor": actor_loss, "critic": critic_loss, "value": value_loss}, metrics=metrics)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        cfg = self.config
        return {
            "actor": [{"params": list(self.model.parameters()), "lr": cfg.actor_learning_rate,
                       "lr_schedule": cfg.actor_lr_schedule, "min_lr_ratio": 0.0}],
            "critic": [{"params": list(self.critic.parameters()), "lr": cfg.learning_rate}],
            "value": [{"params": list(self.value.parameters()), "lr": cfg.learning_rate}],
        }

    def after_step(self, step: int) -> None:
        polyak_update(self.critic_target, self.critic, self.config.tau)

    def policy(self) -> ActorPolicy:
        return self.model

    def sampler_options(self) -> dict:
        cfg, scale = self.config, self.config.reward_scale
        if cfg.normalize_reward:
            stats = self.metadata.stats
            spread = stats["return_max"] - stats["return_min"]
            if spread <= 0:
                raise SeqRLError(
                    f"iql: normalize_reward divides by the spread of episode returns, but every episode of "
                    f"'{self.metadata.dataset_id}' returns {stats['return_max']}; set normalize_reward false."
                )
            scale *= 1000.0 / spread
        return {"n_step": cfg.n_step, "gamma": cfg.gamma, "reward_scale": scale}
