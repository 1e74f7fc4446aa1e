"""Conservative Q-Learning for continuous actions (Kumar et al. 2020, https://arxiv.org/abs/2006.04779).

SAC with a regulariser that pushes Q down on actions the policy or a uniform proposal would pick and
up on the dataset's actions (CQL(H), the paper's eq. 4, with importance-sampled log-sum-exp):

    y       = r_n + gamma^n (1 - d) min_e Q'_e(s', a'),   a' ~ pi(.|s')
    L_Q     = sum_e E[(Q_e(s, a) - y)^2]
              + alpha_cql sum_e E_s[ T log sum_{a_j} exp((Q_e(s, a_j) - log mu(a_j|s)) / T) - Q_e(s, a) ]
    L_pi    = E_s[ alpha log pi(a~|s) - min_e Q_e(s, a~) ],  a~ ~ pi(.|s) reparameterised
    L_alpha = -E_s[ log alpha (log pi(a~|s) + H_target) ]

The proposals ``a_j`` are N uniform actions (density 0.5^A on [-1, 1]^A), N actions of pi(.|s) and N
of pi(.|s') (each evaluated at s), with ``mu`` their density. With ``lagrange`` the weight becomes
``alpha'`` times the weighted gap less a threshold, and ``alpha' >= 0`` is trained to hold the weighted gap at
``target_action_gap``, as in the paper's code (aviralkumar2907/CQL): the critic minimises
``alpha' (alpha_cql gap - target_action_gap)`` and ``L_alpha' = -alpha' (alpha_cql gap - target_action_gap)``,
with alpha' stepped at the critic's learning rate (3e-4).

Defaults follow the paper's MuJoCo settings and CORL/d3rlpy: 3x256 MLPs, actor lr 1e-4, critic lr
3e-4, alpha_cql 5, N = 10, T = 1, automatic entropy tuning with H_target = -A, tau 5e-3, no entropy
in the backup, batch 256.

Departures: the critic, actor and temperature are updated from the same batch with the same
pre-step parameters (the reference steps the actor first and then computes the critic loss with the
new actor); this is what a single backward per step allows, and the difference is one gradient step
of lag. Discrete actions use :mod:`seqrl.algos.cql_discrete`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from seqrl.algos.base import ActorCriticConfig, Algorithm, Output, policy_fields
from seqrl.data.schema import DatasetMetadata
from seqrl.errors import SeqRLError
from seqrl.models.networks import IdentityEncoder, QEnsemble, call_frozen, frozen_copy, polyak_update
from seqrl.models.value_based import ActorPolicy, ActorPolicyConfig
from seqrl.registry import register


@dataclass
class CQLConfig(ActorCriticConfig):
    """CQL hyperparameters (Kumar et al. 2020, MuJoCo settings)."""

    actor_learning_rate: float = 1e-4
    """Learning rate of the actor."""
    alpha_learning_rate: float = 1e-4
    """Learning rate of log alpha, the SAC entropy temperature (with auto_alpha)."""
    actor_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    """Hidden widths of the tanh-Gaussian actor."""
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    """Hidden widths of each critic."""
    min_q_weight: float = 5.0
    """alpha_cql: weight of the conservative regulariser (5 for MuJoCo; CORL uses 10)."""
    num_sampled_actions: int = 10
    """N: actions drawn from each proposal (uniform, pi(.|s), pi(.|s')) per state."""
    cql_temperature: float = 1.0
    """T: temperature of the log-sum-exp."""
    lagrange: bool = False
    """Tune alpha_cql's multiplier alpha' by dual gradient descent to hold the gap at target_action_gap."""
    target_action_gap: float = 10.0
    """Lagrange threshold tau: the target of the weighted gap alpha_cql * gap (used only with lagrange)."""
    alpha_prime_learning_rate: float = 3e-4
    """Learning rate of log alpha' (used only with lagrange; the paper's code steps it at the critic's 3e-4)."""
    auto_alpha: bool = True
    """Tune the entropy temperature alpha towards target_entropy (else alpha stays initial_alpha)."""
    initial_alpha: float = 1.0
    """Entropy temperature alpha at the start."""
    target_entropy: float | None = None
    """H_target for auto_alpha; None means -action_dim."""
    backup_entropy: bool = False
    """Subtract alpha log pi(a'|s') in the TD target (SAC's soft backup); off in the paper's MuJoCo runs."""
    bc_steps: int = 0
    """Steps at the start where the actor maximises log pi(a|s) of the data instead of Q (warm start)."""


@register("cql", policy=ActorPolicy, paper="Kumar et al. 2020, Conservative Q-Learning for Offline Reinforcement Learning")
class CQL(Algorithm):
    """Continuous CQL(H) on a SAC actor-critic with a batched critic ensemble."""

    config_class = CQLConfig
    supports_online = True
    targets = {"critic_target": "critic"}
    data_shape = "transition"
    supports_discrete = False
    supports_continuous = True

    def __init__(self, config: CQLConfig, metadata: DatasetMetadata):
        super().__init__(config, metadata)
        if config.num_critics < 1 or config.num_sampled_actions < 1 or config.cql_temperature <= 0 or config.initial_alpha <= 0:
            raise SeqRLError(
                "cql: num_critics and num_sampled_actions must be >= 1, cql_temperature and initial_alpha > 0; got "
                f"{config.num_critics}, {config.num_sampled_actions}, {config.cql_temperature}, {config.initial_alpha}."
            )
        self.model = ActorPolicy(ActorPolicyConfig(actor_type="tanh_gaussian", hidden_sizes=config.actor_hidden_sizes,
                                                   **policy_fields(metadata, "cql")))
        state_dim, action_dim = metadata.obs_dim, metadata.action_dim
        self.critic = QEnsemble(IdentityEncoder(state_dim), action_dim, config.critic_hidden_sizes, config.num_critics)
        self.critic_target = frozen_copy(self.critic)
        log_alpha = torch.tensor(math.log(config.initial_alpha))
        if config.auto_alpha:
            self.log_alpha = torch.nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)
        if config.lagrange:
            self.log_alpha_prime = torch.nn.Parameter(torch.zeros(()))  # alpha' = 1 at the start, as in the paper's code
        self.target_entropy = -float(action_dim) if config.target_entropy is None else config.target_entropy

    def compute_loss(self, batch: dict[str, torch.Tensor], step: int) -> Output:
        cfg, actor = self.config, self.model.actor
        observations, next_observations = batch["observations"], batch["next_observations"]  # [B, S]
        actions = self.model.normalize_actions(batch["actions"]).clamp(-1.0, 1.0)  # [B, A]
        batch_size, action_dim = actions.shape
        alpha = self.log_alpha.exp().detach()  # a coefficient in the actor and critic terms

        # Actor: the critic is frozen, so -Q reaches only the actor's weights.
        new_actions, log_pi = actor.sample(observations)  # [B, A], [B]
        if step < cfg.bc_steps:
            objective = actor.log_prob(observations, actions)  # [B]
        else:
            objective = call_frozen(self.critic, observations, new_actions).float().min(0).values  # [B]
        actor_loss = (alpha * log_pi - objective).mean()
        losses = {"actor": actor_loss}
        if cfg.auto_alpha:
            losses["alpha"] = -(self.log_alpha * (log_pi.detach() + self.target_entropy)).mean()

        num = cfg.num_sampled_actions
        with torch.no_grad():
            next_actions, next_log_pi = actor.sample(next_observations)  # [B, A], [B]
            target_q = self.critic_target(next_observations, next_actions).float().min(0).values  # [B]
            if cfg.backup_entropy:
                target_q = target_q - alpha * next_log_pi
            targets = batch["rewards"] + batch["discounts"] * (1.0 - batch["terminals"]) * target_q  # [B]
            # Proposals for the log-sum-exp and their log densities: uniform, pi(.|s), pi(.|s').
            uniform = torch.empty(batch_size, num, action_dim, device=actions.device).uniform_(-1.0, 1.0)
            current, current_log_pi = actor.sample(observations, num)  # [B, N, A], [B, N]
            following, following_log_pi = actor.sample(next_observations, num)  # [B, N, A], [B, N]
            proposals = torch.cat([uniform, current, following], dim=1)  # [B, 3N, A]
            log_density = torch.cat([current_log_pi.new_full((batch_size, num), action_dim * math.log(0.5)),
                                     current_log_pi, following_log_pi], dim=1)  # [B, 3N]

        # One ensemble pass scores the data action and all proposals at s.
        all_actions = torch.cat([actions.unsqueeze(1), proposals], dim=1)  # [B, 1 + 3N, A]
        q_all = self.critic(observations.unsqueeze(1), all_actions).float()  # [E, B, 1 + 3N]
        q_data, q_proposals = q_all[..., 0], self.bound_proposals(q_all[..., 1:], batch)  # [E, B], [E, B, 3N]
        td_loss = (q_data - targets).square().mean(-1).sum()
        temperature = cfg.cql_temperature
        soft_max_q = temperature * torch.logsumexp((q_proposals - log_density) / temperature, dim=-1)  # [E, B]
        gap = (soft_max_q - q_data).mean(-1)  # [E]
        if cfg.lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            # The threshold bounds the weighted gap (alpha_cql * gap), as the paper's code does.
            conservative = (alpha_prime.detach() * (cfg.min_q_weight * gap - cfg.target_action_gap)).sum()
            losses["alpha_prime"] = -(alpha_prime * (cfg.min_q_weight * gap.detach() - cfg.target_action_gap)).mean()
        else:
            conservative = cfg.min_q_weight * gap.sum()
        losses["critic"] = td_loss + conservative

        metrics = {
            "actor_loss": actor_loss.detach(), "critic_loss": losses["critic"].detach(), "td_loss": td_loss.detach(),
            "conservative_loss": conservative.detach(), "cql_gap": gap.detach().mean(), "q_data": q_data.detach().mean(),
            "target_q": target_q.mean(), "log_pi": log_pi.detach().mean(), "alpha": alpha,
        }
        if cfg.auto_alpha:
            metrics["alpha_loss"] = losses["alpha"].detach()
        if cfg.lagrange:
            metrics["alpha_prime"], metrics["alpha_prime_loss"] = alpha_prime.detach(), losses["alpha_prime"].detach()
        return Output(loss=losses, metrics=metrics)

    def bound_proposals(self, q_proposals: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q of the proposals [E, B, 3N] (uniform, pi(.|s), pi(.|s')) as the penalty sees them (Cal-QL
        bounds the policy's from below; CQL uses them as they are)."""
        return q_proposals

    def optimizer_groups(self) -> dict[str, list[dict]]:
        cfg = self.config
        groups = {
            "actor": [{"params": list(self.model.parameters()), "lr": cfg.actor_learning_rate}],
            "critic": [{"params": list(self.critic.parameters()), "lr": cfg.learning_rate}],
        }
        if cfg.auto_alpha:
            groups["alpha"] = [{"params": [self.log_alpha], "lr": cfg.alpha_learning_rate, "weight_decay": 0.0}]
        if cfg.lagrange:
            groups["alpha_prime"] = [{"params": [self.log_alpha_prime], "lr": cfg.alpha_prime_learning_rate,
                                      "weight_decay": 0.0}]
        return groups

    def after_step(self, step: int) -> None:
        polyak_update(self.critic_target, self.critic, self.config.tau)

    def policy(self) -> ActorPolicy:
        return self.model
