"""MLP pieces of the value-based methods: encoders, Q ensembles, value nets, actors, BCQ's VAE.

Every network reads observations through an ``encoder``: a module that maps observations
``[..., obs_dim]`` to features ``[..., encoder.out_features]``. Today that is :class:`IdentityEncoder`
or :class:`MLPEncoder`; the same slot can later hold a transformer trunk under the same heads.
Actions are in [-1, 1] (the policy maps them to the env's bounds); discrete actions are int64 ids.

Networks that take an observation and a second input (an action, a latent) broadcast their leading
dimensions, so ``observations [B, 1, S]`` with ``actions [B, N, A]`` scores N actions per state
without copying the observations.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOG_2 = math.log(2.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --- encoders ----------------------------------------------------------------------------------
class IdentityEncoder(nn.Module):
    """Features are the (normalised) observations themselves."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.out_features = obs_dim

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations


class MLPEncoder(nn.Module):
    """``features = relu(MLP(observations))`` with ``out_features = hidden_sizes[-1]``."""

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("MLPEncoder needs at least one hidden size; use IdentityEncoder for none.")
        self.net = MLP(obs_dim, hidden_sizes[:-1], hidden_sizes[-1])
        self.out_features = hidden_sizes[-1]

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return F.relu(self.net(observations))


def make_encoder(obs_dim: int, hidden_sizes: Sequence[int] = ()) -> nn.Module:
    """Identity for no hidden sizes, else an MLP encoder."""
    return MLPEncoder(obs_dim, hidden_sizes) if hidden_sizes else IdentityEncoder(obs_dim)


def _concat(features: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``[features, other]`` on the last dim, leading dims broadcast: [..., F] + [..., D] -> [..., F + D]."""
    other = other.to(features.dtype)
    if features.shape[:-1] == other.shape[:-1]:  # the common case, without broadcast_shapes' Python cost
        return torch.cat([features, other], dim=-1)
    lead = torch.broadcast_shapes(features.shape[:-1], other.shape[:-1])
    return torch.cat([features.expand(*lead, -1), other.expand(*lead, -1)], dim=-1)


# --- plain and ensemble MLPs -------------------------------------------------------------------
class MLP(nn.Sequential):
    """``Linear -> ReLU`` for each hidden size, then a final ``Linear``: [..., in] -> [..., out]."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], out_features: int):
        layers: list[nn.Module] = []
        for size in hidden_sizes:
            layers += [nn.Linear(in_features, size), nn.ReLU()]
            in_features = size
        layers.append(nn.Linear(in_features, out_features))
        super().__init__(*layers)


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied in one batched matmul: [E, M, in] -> [E, M, out].

    Weights are stacked as ``[E, in, out]`` so the layer is ``torch.baddbmm(bias, x, weight)``.
    Each member is initialised like ``nn.Linear`` (uniform in ``±1/sqrt(in)``).
    """

    def __init__(self, ensemble_size: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight.uniform_(-bound, bound)
        self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.out_features == 1:
            return _EnsembleColumn.apply(x, self.weight, self.bias)  # a critic's last layer: [E, M, 1]
        return torch.baddbmm(self.bias, x, self.weight)


class _EnsembleColumn(torch.autograd.Function):
    """A one-output layer per member, ``y[e, m] = x[e, m] . w[e] + b[e]``: [E, M, H] -> [E, M, 1].

    ``bmm`` with one output column runs far below BLAS speed on CPU, and a broadcast multiply-and-sum
    writes an [E, M, H] temporary each way. Here each member is one matrix-vector product forward
    (``mv``) and backward: ``dx = g w^T`` (an outer product, the one [E, M, H] write) and
    ``dw = x^T g`` (``mv`` again). For 2 x 7936 x 256 (CQL's critics) that is 4.1 ms against 8.6 ms
    for the multiply-and-sum, forward plus backward, on one CPU core.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        weight_x = weight.to(x.dtype)  # under autocast x may be bf16 while the weights stay float32
        ctx.save_for_backward(x, weight_x)
        ctx.dtypes = weight.dtype, bias.dtype
        out = torch.stack([torch.mv(x_e, w_e) for x_e, w_e in zip(x, weight_x[..., 0])])  # [E, M]
        return out.unsqueeze(-1) + bias.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight_x = ctx.saved_tensors
        grad = grad[..., 0].to(x.dtype)  # [E, M]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.unsqueeze(-1) * weight_x.transpose(1, 2)  # [E, M, H]
        if ctx.needs_input_grad[1]:
            grad_weight = torch.stack([torch.mv(x_e.t(), g_e) for x_e, g_e in zip(x, grad)])  # [E, H]
            grad_weight = grad_weight.unsqueeze(-1).to(ctx.dtypes[0])  # [E, H, 1]
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(-1).view(-1, 1, 1).to(ctx.dtypes[1])  # [E, 1, 1]
        return grad_x, grad_weight, grad_bias


class QEnsemble(nn.Module):
    """``E`` critics evaluated together; every layer is one batched matmul over the members.

    Continuous actions (``action_dim > 0``): ``Q_e(s, a)``, ``forward(obs [..., S], actions [..., A])
    -> [E, ...]``. Discrete actions (``action_dim = 0``, ``num_outputs = n``): all action values at
    once, ``forward(obs [..., S]) -> [E, ..., n]``. The members share the encoder (a shared trunk
    under independent heads; with the identity encoder they are fully independent).
    """

    def __init__(self, encoder: nn.Module, action_dim: int, hidden_sizes: Sequence[int], ensemble_size: int = 2,
                 num_outputs: int = 1):
        super().__init__()
        self.encoder = encoder
        self.ensemble_size, self.num_outputs = ensemble_size, num_outputs
        sizes = [encoder.out_features + action_dim, *hidden_sizes, num_outputs]
        self.layers = nn.ModuleList(EnsembleLinear(ensemble_size, i, o) for i, o in zip(sizes[:-1], sizes[1:]))

    def forward(self, observations: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        features = self.encoder(observations)  # [..., F]
        x = features if actions is None else _concat(features, actions)  # [..., F (+ A)]
        lead = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1]).expand(self.ensemble_size, -1, -1)  # [E, M, in]
        for layer in self.layers[:-1]:
            x = layer(x).relu_()  # [E, M, H]; in place: baddbmm's backward does not read its output
        out = self.layers[-1](x).reshape(self.ensemble_size, *lead, self.num_outputs)  # [E, ..., out]
        return out.squeeze(-1) if self.num_outputs == 1 and actions is not None else out


class ValueNetwork(nn.Module):
    """State value ``V(s)``: [..., S] -> [...]."""

    def __init__(self, encoder: nn.Module, hidden_sizes: Sequence[int]):
        super().__init__()
        self.encoder = encoder
        self.net = MLP(encoder.out_features, hidden_sizes, 1)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(self.encoder(observations)).squeeze(-1)


# --- actors ------------------------------------------------------------------------------------
class DeterministicActor(nn.Module):
    """``a = tanh(MLP(s))`` in [-1, 1]^A (TD3+BC, BC with MSE)."""

    def __init__(self, encoder: nn.Module, action_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.encoder = encoder
        self.net = MLP(encoder.out_features, hidden_sizes, action_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(self.encoder(observations)))  # [..., A]

    def mode(self, observations: torch.Tensor) -> torch.Tensor:
        return self(observations)


class TanhGaussianActor(nn.Module):
    """SAC's squashed Gaussian (CQL): ``u ~ N(mu(s), sigma(s)^2)``, ``a = tanh(u)``.

    With the change of variables, per action dimension::

        log pi(a|s) = log N(u; mu, sigma^2) - log(1 - tanh(u)^2)
                    = log N(u; mu, sigma^2) - 2 (log 2 - u - softplus(-2u))

    (the second form is the numerically stable one), summed over the A dimensions. ``log sigma`` is a
    head of the network, clamped to ``[log_std_min, log_std_max]``.
    """

    def __init__(self, encoder: nn.Module, action_dim: int, hidden_sizes: Sequence[int],
                 log_std_min: float = -20.0, log_std_max: float = 2.0):
        super().__init__()
        self.encoder = encoder
        self.net = MLP(encoder.out_features, hidden_sizes, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log std of the pre-tanh Gaussian, each [..., A]."""
        mean, log_std = self.net(self.encoder(observations)).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    @staticmethod
    def _log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        gaussian = -0.5 * ((pre_tanh - mean) / log_std.exp()).square() - log_std - HALF_LOG_2PI
        squash = 2.0 * (LOG_2 - pre_tanh - F.softplus(-2.0 * pre_tanh))
        return (gaussian - squash).sum(-1)

    def sample(self, observations: torch.Tensor, num_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised actions and their log-probabilities: [..., A] and [...], or with
        ``num_samples = N`` [..., N, A] and [..., N] (the network runs once per state)."""
        mean, log_std = self(observations)
        if num_samples is not None:
            shape = (*mean.shape[:-1], num_samples, mean.shape[-1])
            mean, log_std = mean.unsqueeze(-2).expand(shape), log_std.unsqueeze(-2).expand(shape)
        pre_tanh = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(pre_tanh), self._log_prob(pre_tanh, mean, log_std)

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """``log pi(a|s)`` [...] of given actions in [-1, 1] (clipped to ``±(1 - eps)`` before atanh)."""
        mean, log_std = self(observations)
        return self._log_prob(torch.atanh(actions.clamp(-1.0 + eps, 1.0 - eps)), mean, log_std)

    def mode(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(observations)[0])

    def explore(self, observations: torch.Tensor) -> torch.Tensor:
        """A sampled action [..., A] (exploration in online fine-tuning)."""
        return self.sample(observations)[0]


class GaussianActor(nn.Module):
    """IQL's and AWAC's policy: ``pi(a|s) = N(tanh(MLP(s)), diag(exp(2 log_sigma)))`` with a learned,
    state-independent ``log_sigma`` clamped to ``[log_std_min, log_std_max]``. The density is not
    squashed, so data actions need no atanh; acting uses the mean, which tanh keeps in [-1, 1]."""

    def __init__(self, encoder: nn.Module, action_dim: int, hidden_sizes: Sequence[int],
                 log_std_min: float = -20.0, log_std_max: float = 2.0):
        super().__init__()
        self.encoder = encoder
        self.net = MLP(encoder.out_features, hidden_sizes, action_dim)
        self.log_std = nn.Parameter(torch.zeros(action_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.log_std.zero_()

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [..., A] and log std [A]."""
        return torch.tanh(self.net(self.encoder(observations))), self.log_std.clamp(self.log_std_min, self.log_std_max)

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a|s)`` [...]."""
        mean, log_std = self(observations)
        return (-0.5 * ((actions - mean) / log_std.exp()).square() - log_std - HALF_LOG_2PI).sum(-1)

    def sample(self, observations: torch.Tensor) -> torch.Tensor:
        """Reparameterised actions [..., A], clipped to [-1, 1] as the env would clip them."""
        mean, log_std = self(observations)
        return (mean + log_std.exp() * torch.randn_like(mean)).clamp(-1.0, 1.0)

    def mode(self, observations: torch.Tensor) -> torch.Tensor:
        return self(observations)[0]

    def explore(self, observations: torch.Tensor) -> torch.Tensor:
        """A sampled action [..., A] (exploration in online fine-tuning)."""
        return self.sample(observations)


class CategoricalActor(nn.Module):
    """``pi(a|s) = softmax(MLP(s))`` over ``n`` discrete actions."""

    def __init__(self, encoder: nn.Module, num_actions: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.encoder = encoder
        self.net = MLP(encoder.out_features, hidden_sizes, num_actions)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Logits [..., n]."""
        return self.net(self.encoder(observations))

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a|s)`` [...] of int64 action ids [...]."""
        log_probs = F.log_softmax(self(observations).float(), dim=-1)
        return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def mode(self, observations: torch.Tensor) -> torch.Tensor:
        return self(observations).argmax(-1)

    def explore(self, observations: torch.Tensor) -> torch.Tensor:
        """A sampled action id [...] (exploration in online fine-tuning)."""
        logits = self(observations).float()
        return torch.distributions.Categorical(logits=logits).sample()


# --- BCQ ---------------------------------------------------------------------------------------
class VAEEncoder(nn.Module):
    """BCQ's generative model, encoder half: ``q(z|s, a) = N(mu, sigma^2)``; ``log sigma`` clamped
    to [-4, 15] as in the reference code. [..., S], [..., A] -> mean and log std [..., L]."""

    def __init__(self, encoder: nn.Module, action_dim: int, latent_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.encoder = encoder
        self.net = MLP(encoder.out_features + action_dim, hidden_sizes, 2 * latent_dim)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(_concat(self.encoder(observations), actions)).chunk(2, dim=-1)
        return mean, log_std.clamp(-4.0, 15.0)


class VAEDecoder(nn.Module):
    """BCQ's generative model, decoder half: ``a = tanh(MLP(s, z))`` in [-1, 1]^A.

    ``sample`` draws ``z ~ N(0, I)`` clipped to ``[-latent_clip, latent_clip]`` (0.5 in the paper), which
    keeps generated actions near the well-covered centre of the latent space, i.e. near the data.
    """

    def __init__(self, encoder: nn.Module, action_dim: int, latent_dim: int, hidden_sizes: Sequence[int],
                 latent_clip: float = 0.5):
        super().__init__()
        self.encoder = encoder
        self.latent_dim, self.latent_clip = latent_dim, latent_clip
        self.net = MLP(encoder.out_features + latent_dim, hidden_sizes, action_dim)

    def forward(self, observations: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(_concat(self.encoder(observations), latent)))

    def sample(self, observations: torch.Tensor, num_samples: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions [..., A], or [..., N, A] with ``num_samples = N`` (``observations`` [..., S]); the
        latents come from ``generator`` (default: the global RNG)."""
        lead = observations.shape[:-1] if num_samples is None else (*observations.shape[:-1], num_samples)
        # generator only when given: under torch.compile with a dynamic batch size, randn's generator overload
        # rejects symbolic sizes
        seeded = {} if generator is None else {"generator": generator}
        latent = torch.randn(*lead, self.latent_dim, device=observations.device, dtype=observations.dtype, **seeded)
        latent = latent.clamp(-self.latent_clip, self.latent_clip)
        obs = observations if num_samples is None else observations.unsqueeze(-2)
        return self(obs, latent)


class PerturbationActor(nn.Module):
    """BCQ's perturbation model: ``xi(s, a) = a + phi * max_action * tanh(MLP(s, a))``, clipped to the
    action range. Actions are in [-1, 1], so ``max_action = 1`` and ``phi`` is a fraction of the range."""

    def __init__(self, encoder: nn.Module, action_dim: int, hidden_sizes: Sequence[int], phi: float = 0.05):
        super().__init__()
        self.encoder = encoder
        self.phi = phi
        self.net = MLP(encoder.out_features + action_dim, hidden_sizes, action_dim)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        perturbation = self.phi * torch.tanh(self.net(_concat(self.encoder(observations), actions)))
        return (actions + perturbation).clamp(-1.0, 1.0)  # [..., A]


# --- training helpers --------------------------------------------------------------------------
def call_frozen(module: nn.Module, *args, **kwargs):
    """Run ``module`` with detached parameters: gradients reach its inputs but not its weights.

    Used for actor terms that go through a critic (e.g. ``-Q(s, pi(s))``): the training loop
    backpropagates the sum of all named losses once, so the actor's loss must not leave gradients
    on the critic. Unlike toggling ``requires_grad`` this changes no module state.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, args, kwargs, strict=False)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``theta_target <- (1 - tau) theta_target + tau theta_online`` for all parameters, in one fused op."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a deep copy with ``requires_grad`` off (updated only by :func:`polyak_update`)."""
    return copy.deepcopy(module).requires_grad_(False)
