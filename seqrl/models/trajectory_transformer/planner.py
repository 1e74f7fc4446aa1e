"""Beam-search planning with a Trajectory Transformer (Janner et al. 2021, Algorithm 1, as ``beam_plan`` in
jannerm/trajectory-transformer), batched over environments and beams, on a key/value cache.

At every environment step each env's prefix (its last ``context - 1`` transitions and the current
observation) is encoded once. Then, for ``t = 0 .. horizon - 1``:

1. every beam is repeated ``n_expand`` times (the first step starts from ``beam_width`` copies of the prefix);
2. the action tokens are sampled (``k_act`` / ``cdf_act`` filters), then the reward and value tokens
   (``k_reward``); ``r_t`` and ``V_t`` are read as expectations over the bins' midpoints under the model's
   predicted distributions, as the reference does (the sampled reward and value tokens only extend the
   sequence);
3. each candidate is scored by ``sum_{i <= t} gamma^i r_i + gamma^{t + 1} V_t`` and the best ``beam_width``
   of each env are kept, with their caches (``index_select`` along the rows);
4. unless this was the last step, the next observation's tokens are sampled (``k_obs = 1``: greedily).

The env executes the first action of its best plan and the search starts again at the next step.

Every beam of every env is one row of one batch, so a step of the search is one small forward pass
of ``envs * beams`` rows of one token over the cache, and nothing is recomputed. The model sees the
prefix and the plan under the banded mask of :func:`.modeling_trajectory_transformer.attention_mask`:
each token sees the last ``context`` transitions up to its own, the reference's crop.

With ``plan_freq`` k > 1 (the reference's option; its default, and seqrl's, is 1) an env replans only every
k steps and in between executes the next actions of its last plan, as the reference's ``sequence[1:]``;
an env that starts an episode replans at once, and only the envs due to replan are searched.

Departure from the reference, and why: the stop token is never sampled (a plan does not end an episode).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from seqrl.errors import SeqRLError
from seqrl.models.trajectory_transformer.modeling_trajectory_transformer import TrajectoryTransformer, attention_mask


class PlannerConfigError(SeqRLError):
    """A planner setting cannot work with this model."""


@dataclass
class PlannerConfig:
    """Beam-search settings. A field left at None takes the value of :data:`ENV_OVERRIDES` for the policy's
    environment, else the reference's default (in brackets)."""

    horizon: int | None = None
    """Transitions planned ahead [15]."""
    beam_width: int | None = None
    """Plans kept per environment after each step [128]."""
    n_expand: int | None = None
    """Copies of each plan extended with new samples at each step [2]."""
    context: int | None = None
    """Transitions each token sees, its own included; at most the model's training window [5]."""
    k_obs: int | None = None
    """Observation tokens are drawn from the k most likely bins [1: greedy]."""
    k_act: int | None = None
    """Action tokens from the k most likely bins (0: no top-k filter) [0]."""
    cdf_act: float | None = None
    """Action tokens from the bins above the lowest ``cdf_act`` of probability mass (0: no filter) [0.6]."""
    k_reward: int | None = None
    """Reward and value tokens from the k most likely bins (0: all) [1]. Their expectations always use the
    model's whole predicted distribution."""
    seed: int | None = None
    """Seed of the sampling generator, re-seeded at every ``reset`` [0]."""
    plan_freq: int | None = None
    """Replan every k env steps, executing the last plan's next actions in between; at most ``horizon`` [1].
    The reference warns that Hopper and Walker2d are sensitive to it."""


REFERENCE_DEFAULTS = PlannerConfig(horizon=15, beam_width=128, n_expand=2, context=5, k_obs=1, k_act=0,
                                   cdf_act=0.6, k_reward=1, seed=0, plan_freq=1)

# Per-environment defaults (by the id's name before the version). HalfCheetah's horizon 5 is the
# reference's (config/offline.py, where a beam of 32 is suggested but commented out; seqrl takes it, as
# the reference's comment says it plans as well for much less); Pendulum and CartPole are seqrl's, for cheap test environments whose dynamics are
# short-range, where a shorter horizon and narrower beam plan as well for a fraction of the cost.
ENV_OVERRIDES: dict[str, dict] = {
    "HalfCheetah": {"horizon": 5, "beam_width": 32},
    "Pendulum": {"horizon": 5, "beam_width": 16},
    "CartPole": {"horizon": 5, "beam_width": 16},
}


def resolve(planner: PlannerConfig | dict | None, env_id: str | None, window: int) -> dict:
    """The planner's full settings for ``env_id``: explicit fields, then the env's, then the reference's;
    checked against the model's ``window``. Raises :class:`PlannerConfigError` naming what to change."""
    given = asdict(planner) if isinstance(planner, PlannerConfig) else dict(planner or {})
    unknown = set(given) - {f.name for f in fields(PlannerConfig)}
    if unknown:
        raise PlannerConfigError(f"unknown planner settings {sorted(unknown)}; known: "
                                 f"{', '.join(f.name for f in fields(PlannerConfig))}.")
    family = (env_id or "").split(":")[-1].split("-")[0]
    settings = {**asdict(REFERENCE_DEFAULTS), "context": min(REFERENCE_DEFAULTS.context, window),
                **ENV_OVERRIDES.get(family, {}), **{k: v for k, v in given.items() if v is not None}}
    for name in ("horizon", "beam_width", "n_expand", "context", "plan_freq"):
        if int(settings[name]) < 1:
            raise PlannerConfigError(f"planner.{name} must be at least 1, got {settings[name]}; set it to a positive "
                                     f"number (--algo.planner.{name} in train.py, --planner {name}=N in evaluate.py).")
    if settings["context"] > window:
        raise PlannerConfigError(
            f"planner.context {settings['context']} is longer than the model's training window of {window} "
            "transitions, so planning would attend further back than training ever did; set "
            f"--algo.planner.context to at most {window}, or train with a longer --algo.window.")
    if settings["plan_freq"] > settings["horizon"]:
        raise PlannerConfigError(
            f"planner.plan_freq {settings['plan_freq']} is longer than the plan's horizon of {settings['horizon']} "
            "transitions, so the plan would run out of actions; set plan_freq to at most the horizon.")
    if not 0.0 <= float(settings["cdf_act"]) < 1.0:
        raise PlannerConfigError(f"planner.cdf_act must be in [0, 1), got {settings['cdf_act']}.")
    for name in ("k_obs", "k_act", "k_reward"):
        if int(settings[name]) < 0:
            raise PlannerConfigError(f"planner.{name} must be >= 0 (0: no top-k filter), got {settings[name]}.")
    return settings


def sample_tokens(logits: torch.Tensor, top_k: int, cdf: float, generator: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens [R] sampled from logits [R, N + 1], and the model's probabilities of the N bins [R, N].

    The stop token is never sampled, so tokens are drawn from the bins' distribution (the model's, renormalised
    without the stop token). ``cdf`` drops the least likely bins that together hold less than that much of
    it (the reference's ``filter_cdf``; the most likely bin always stays), ``top_k`` keeps the k most likely
    (1: greedy, no randomness used). The probabilities returned are the model's own, before any filter, with
    the stop token's share left out and not renormalised: what the reference's ``value_expectation`` averages
    over.
    """
    probs = logits.float().softmax(-1)[:, :-1]  # [R, N]
    logits = logits[:, :-1].float()
    if cdf > 0:
        # On the bins' own distribution: measured with the stop token's share in it, a row whose stop token
        # holds more than 1 - cdf would have every bin below the cut, and nothing left to sample.
        bins = probs / probs.sum(-1, keepdim=True)  # [R, N]
        ascending, _ = bins.sort(-1)
        below = ascending.cumsum(-1) < cdf  # [R, N] the least likely bins that hold < cdf of the mass
        threshold = ascending.masked_fill(~below, float("-inf")).amax(-1, keepdim=True)  # [R, 1]
        drop = (bins <= threshold) & (bins < bins.amax(-1, keepdim=True))  # ties with the top bin stay
        logits = logits.masked_fill(drop, float("-inf"))
    if top_k == 1:
        return logits.argmax(-1), probs
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1), probs


class CachedDecoder:
    """Runs the model one token at a time for ``rows = envs * beams`` rows, over a ring of keys and values.

    The ring has ``context * D`` slots per row: a token of transition ``t`` sees transitions ``t - context +
    1 .. t``, at most that many tokens, so the slot a new token overwrites always holds a token that no
    later query may see. Slot bookkeeping (global index, validity) is per env, since all beams of an env
    share their structure.

    Beams share what they have in common instead of copying it. :meth:`expand` fans every row out to
    ``copies`` candidates without copying its ring: the candidates' own new tokens go to a small local
    cache, and each attention step reads the parent's ring once for all its candidates (one batched
    matmul of ``copies`` queries per parent) plus the candidate's local keys. :meth:`select` then copies
    the ring of each kept candidate's parent once and writes the candidate's local tokens into it. So a
    search step copies the ring once, for the kept beams, where copying on expansion too would copy it
    three times as much; the first step fans each env's prefix out to all its candidates without a copy.
    """

    def __init__(self, model: TrajectoryTransformer, context: int):
        self.model, self.context = model, context
        self.slots = context * model.config.transition_dim

    def start(self, tokens: torch.Tensor, index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Encode each env's prefix (tokens, global indices, validity [E, P], left-padded) into the ring;
        returns the output [E, H] at its last token."""
        model, (envs, length) = self.model, tokens.shape
        if length > self.slots:
            raise PlannerConfigError(f"a prefix of {length} tokens does not fit the cache of {self.context} transitions "
                                     f"({self.slots} tokens); pass at most context - 1 transitions and an observation.")
        self.key_index = torch.zeros(envs, self.slots, dtype=torch.long, device=tokens.device)
        self.key_valid = torch.zeros(envs, self.slots, dtype=torch.bool, device=tokens.device)
        self.key_index[:, :length], self.key_valid[:, :length] = index, valid
        self.position, self.ring, self.spare, self.fan, self.local_slots = length % self.slots, None, None, 1, []
        self.local_spare = None
        mask = attention_mask(index, index, valid, model.config.transition_dim, self.context)
        mask = mask | torch.diag_embed(~valid)[:, None]  # padded queries see themselves (see hidden_states)
        stores = [self._ring_store(layer, slice(0, length), slice(0, length)) for layer in range(model.config.n_layer)]
        return model.run_blocks(model.embed(tokens, index), mask, stores)[:, -1]

    def _ring_store(self, layer: int, where: slice, visible: slice = slice(None)):
        """``store`` for layer ``layer``: files new keys/values at ring slots ``where``, returns slots ``visible``."""
        def store(k: torch.Tensor, v: torch.Tensor):  # [rows, heads, n, head_dim]
            if self.ring is None:  # [layers, 2 (keys, values), rows, heads, slots, head_dim]
                self.ring = k.new_zeros(self.model.config.n_layer, 2, k.shape[0], k.shape[1], self.slots, k.shape[3])
            self.ring[layer, 0, :, :, where] = k
            self.ring[layer, 1, :, :, where] = v
            return self.ring[layer, 0, :, :, visible], self.ring[layer, 1, :, :, visible]
        return store

    def expand(self, copies: int) -> None:
        """Fan every row out to ``copies`` consecutive candidates (no copy: see the class docstring)."""
        if self.fan > 1:
            self.select(torch.arange(self.ring.shape[2] * self.fan, device=self.key_index.device))
        self.fan, self.local, self.local_slots = copies, None, []

    def select(self, rows: torch.Tensor) -> None:
        """Keep (and repeat) the candidates ``rows`` [R'], in that order: their parents' rings, once, with
        their own tokens written in."""
        # Into the spare buffer of the last step, not a new one: a fresh ring of tens of MB is page-faulted
        # in on every write (a 42 MB copy took 24 ms fresh against 9 ms into a reused buffer).
        parents = torch.div(rows, self.fan, rounding_mode="floor")
        if self.ring.requires_grad:  # out= is not differentiable; planning runs without gradients anyway
            self.ring = self.ring.index_select(2, parents)
        else:
            shape = (*self.ring.shape[:2], rows.shape[0], *self.ring.shape[3:])
            if self.spare is None or self.spare.shape != shape or self.spare.dtype != self.ring.dtype:
                self.spare = self.ring.new_empty(shape)
            torch.index_select(self.ring, 2, parents, out=self.spare)
            self.ring, self.spare = self.spare, self.ring
        if self.local_slots:
            own = self.local[:, :, :, :, :len(self.local_slots)].index_select(2, rows)  # [L, 2, R', nh, n, hd]
            self.ring[:, :, :, :, self.local_slots] = own
        self.fan, self.local, self.local_slots = 1, None, []

    def _local_buffer(self, k: torch.Tensor) -> torch.Tensor:
        """The candidates' local cache, [layers, 2, candidates, heads, D, head_dim], unfilled: only the slots
        written since :meth:`expand` are read. Every search step reuses one buffer (a fresh one of some
        16 MB per env was zeroed and page-faulted in on every step: 6 ms each)."""
        cfg = self.model.config
        shape = (cfg.n_layer, 2, k.shape[0], k.shape[1], cfg.transition_dim, k.shape[3])
        if k.requires_grad:  # a buffer written in place cannot be reused while a graph holds it
            return k.new_empty(shape)
        if self.local_spare is None or self.local_spare.shape != shape or self.local_spare.dtype != k.dtype:
            self.local_spare = k.new_empty(shape)
        return self.local_spare

    def _local_attend(self, layer: int, ring_mask: torch.Tensor, local_mask: torch.Tensor):
        """``attend`` for layer ``layer`` while rows are candidates of ``fan`` per parent."""
        fan, position = self.fan, len(self.local_slots) - 1

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # [C, nh, 1, hd]
            if self.local is None:  # [layers, 2, candidates, heads, up to D tokens, head_dim]
                self.local = self._local_buffer(k)
            self.local[layer, 0, :, :, position] = k[:, :, 0]
            self.local[layer, 1, :, :, position] = v[:, :, 0]
            candidates, heads, _, width = q.shape
            parents = candidates // fan
            grouped = q.view(parents, fan, heads, width).transpose(1, 2)  # [P, nh, fan, hd]: one matmul per parent
            ring_keys, ring_values = self.ring[layer, 0], self.ring[layer, 1]  # [P, nh, slots, hd]
            scores_ring = (grouped @ ring_keys.transpose(-1, -2)).transpose(1, 2).reshape(candidates, heads, 1, -1)
            local_keys, local_values = self.local[layer, 0, :, :, :position + 1], self.local[layer, 1, :, :, :position + 1]
            scores_local = q @ local_keys.transpose(-1, -2)  # [C, nh, 1, n]
            scores = torch.cat([scores_ring, scores_local], -1) * width ** -0.5
            mask = torch.cat([ring_mask, local_mask], -1)  # [C, 1, 1, slots + n]
            weights = scores.masked_fill(~mask, float("-inf")).softmax(-1).to(v.dtype)
            to_ring = weights[..., :self.slots].reshape(parents, fan, heads, -1).transpose(1, 2)  # [P, nh, fan, slots]
            out = (to_ring @ ring_values).transpose(1, 2).reshape(candidates, heads, 1, width)
            return out + weights[..., self.slots:] @ local_values
        return attend

    def step(self, tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Append one token per row (tokens [R]) at each env's global index [E]; outputs [R, H]."""
        model, envs = self.model, index.shape[0]
        per_env = tokens.shape[0] // envs
        slot = self.position
        self.key_index[:, slot], self.key_valid[:, slot] = index, True
        self.position = (slot + 1) % self.slots
        mask = attention_mask(index[:, None], self.key_index, self.key_valid, model.config.transition_dim, self.context)
        mask = mask.repeat_interleave(per_env, dim=0)  # [R, 1, 1, slots]
        x = model.embed(tokens[:, None], index.repeat_interleave(per_env)[:, None])  # [R, 1, H]
        layers = range(model.config.n_layer)
        if self.fan == 1:
            return model.run_blocks(x, mask, [self._ring_store(layer, slice(slot, slot + 1)) for layer in layers])[:, 0]
        self.local_slots.append(slot)
        ring_mask = mask.clone()
        ring_mask[..., self.local_slots] = False  # those slots are filled only when the candidates are selected
        local_mask = mask[..., self.local_slots]
        return model.run_blocks(x, None, attends=[self._local_attend(layer, ring_mask, local_mask) for layer in layers])[:, 0]


class FullDecoder:
    """The same interface without a cache: every step re-runs each row's whole sequence under the same
    banded mask. Slow; it exists to check :class:`CachedDecoder` against."""

    def __init__(self, model: TrajectoryTransformer, context: int):
        self.model, self.context = model, context

    def start(self, tokens, index, valid):
        self.tokens, self.index, self.valid = tokens, index, valid
        return self.model.hidden_states(tokens, index, valid, band=self.context)[:, -1]

    def expand(self, copies):
        self.select(torch.arange(self.tokens.shape[0], device=self.tokens.device).repeat_interleave(copies))

    def select(self, rows):
        self.tokens, self.index, self.valid = self.tokens[rows], self.index[rows], self.valid[rows]

    def step(self, tokens, index):
        per_env = tokens.shape[0] // index.shape[0]
        self.tokens = torch.cat([self.tokens, tokens[:, None]], 1)
        self.index = torch.cat([self.index, index.repeat_interleave(per_env)[:, None]], 1)
        self.valid = torch.cat([self.valid, torch.ones_like(self.valid[:, :1])], 1)
        return self.model.hidden_states(self.tokens, self.index, self.valid, band=self.context)[:, -1]


@torch.no_grad()
def beam_plan(model: TrajectoryTransformer, settings: dict, prefix: torch.Tensor, prefix_index: torch.Tensor,
              prefix_valid: torch.Tensor, generator: torch.Generator | None = None, decoder_class=CachedDecoder
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Plan for every env at once. ``prefix`` tokens, ``prefix_index`` global indices and ``prefix_valid``
    [E, P] (left-padded; the last S tokens are the current observation's). Returns the best plan of each
    env, tokens [E, horizon * D - S] (from its first action token to its last value token), and its score [E]."""
    cfg, disc = model.config, model.discretiser
    dims, obs, act = cfg.transition_dim, cfg.state_dim, cfg.action_tokens
    horizon, beams, expand = settings["horizon"], settings["beam_width"], settings["n_expand"]
    envs = prefix.shape[0]
    decoder = decoder_class(model, settings["context"])
    hidden = decoder.start(prefix, prefix_index, prefix_valid)  # [E, H], output at the observation's last token
    next_index = prefix_index[:, -1] + 1  # [E]: global index of the next token
    logits = model.head.at(hidden, obs - 1)  # [E, N + 1]: the first action token
    discounts = cfg.discount ** torch.arange(horizon + 1, device=prefix.device, dtype=torch.float32)
    width = 1  # rows per env
    rewards = torch.zeros(envs, horizon + 1, device=prefix.device)
    plan = torch.zeros(envs, 0, dtype=torch.long, device=prefix.device)
    midpoints = disc.midpoints.float()  # [D, N]

    def extend(logits, top_k, cdf):
        nonlocal plan
        token, probs = sample_tokens(logits, top_k, cdf, generator)
        plan = torch.cat([plan, token[:, None]], 1)
        return token, probs

    for t in range(horizon):
        # Repeat every beam n_expand times (the first step fans each env's prefix out to beams * n_expand).
        copies = expand * (beams if t == 0 else 1)
        rows = torch.arange(envs * width, device=prefix.device).repeat_interleave(copies)
        decoder.expand(copies)
        logits, rewards, plan, width = logits[rows], rewards[rows], plan[rows], width * copies
        for offset in range(act + 2):  # action tokens, then reward and value
            dim = obs + offset
            is_action = offset < act
            token, probs = extend(logits, settings["k_act"] if is_action else settings["k_reward"],
                                  settings["cdf_act"] if is_action else 0.0)
            if not is_action:  # expectation of r_t / V_t over the bins' midpoints
                rewards[:, t + offset - act] = probs @ midpoints[dim]
            if offset < act + 1:  # the value token's output is only needed once the next observation follows
                logits = model.head.at(decoder.step(token, next_index), dim)
                next_index = next_index + 1
        value_token = token
        # Score the candidates and keep each env's best beam_width.
        scores = (rewards * discounts).sum(-1).view(envs, width)
        keep = min(beams, width)
        scores, best = scores.topk(keep, dim=1)  # [E, keep]
        rows = (best + torch.arange(envs, device=best.device)[:, None] * width).reshape(-1)
        decoder.select(rows)
        rewards, plan, value_token, width = rewards[rows], plan[rows], value_token[rows], keep
        if t < horizon - 1:
            logits = model.head.at(decoder.step(value_token, next_index), dims - 1)
            next_index = next_index + 1
            for dim in range(obs):
                token, _ = extend(logits, settings["k_obs"], 0.0)
                logits = model.head.at(decoder.step(token, next_index), dim)
                next_index = next_index + 1
    best = scores.argmax(1)  # [E]
    chosen = best + torch.arange(envs, device=best.device) * width
    return plan[chosen], scores.gather(1, best[:, None])[:, 0]


class Planner:
    """Acting state of a :class:`TrajectoryTransformer` for ``batch`` envs: each env's last transitions as
    tokens, its timestep, and the sampling generator; :meth:`act` plans for all envs in one batch with
    ``search`` (:func:`beam_plan`; ``benchmarks/bench_tt_positions.py`` passes a reference-style search)."""

    def __init__(self, model: TrajectoryTransformer, batch: int, search=None):
        cfg = model.config
        self.search = search or beam_plan
        self.model, self.settings = model, resolve(cfg.planner, cfg.env_id, cfg.window)
        dims, device = cfg.transition_dim, model.device
        self.kept = (self.settings["context"] - 1) * dims  # tokens of earlier transitions in a prefix
        self.history = torch.zeros(batch, self.kept, dtype=torch.long, device=device)
        self.history_valid = torch.zeros(batch, self.kept, dtype=torch.bool, device=device)
        self.timestep = torch.zeros(batch, dtype=torch.long, device=device)
        self.last = None  # tokens [B, S + A] of the previous observation and action
        self.pending_start = torch.ones(batch, dtype=torch.bool, device=device)
        self.generator = torch.Generator(device=device).manual_seed(int(self.settings["seed"]))
        self.last_plan = None  # [B, horizon * D - S]: each env's current plan
        self.since_plan = torch.zeros(batch, dtype=torch.long, device=device)  # env steps executed from it

    def act(self, observations: torch.Tensor, rewards: torch.Tensor, starts: torch.Tensor | None) -> torch.Tensor:
        model, cfg = self.model, self.model.config
        dims, obs = cfg.transition_dim, cfg.state_dim
        disc = model.discretiser
        starts = self.pending_start if starts is None else starts | self.pending_start
        self.pending_start = torch.zeros_like(starts)
        if self.last is not None and self.kept:
            # The finished transition (s, a, r, V) joins the history; V is never attended to, so its token
            # is a placeholder (the reference's too).
            reward = disc.encode(rewards[:, None].float(), slice(dims - 2, dims - 1))
            transition = torch.cat([self.last, reward, torch.zeros_like(reward)], 1)  # [B, D]
            self.history = torch.cat([self.history[:, dims:], transition], 1)
            self.history_valid = torch.cat([self.history_valid[:, dims:], torch.ones_like(transition, dtype=torch.bool)], 1)
        if self.last is not None:
            self.timestep = self.timestep + 1
        self.history_valid &= ~starts[:, None]
        self.timestep = torch.where(starts, torch.zeros_like(self.timestep), self.timestep)

        observation_tokens = disc.encode(observations, slice(0, obs))  # [B, S]
        prefix = torch.cat([self.history, observation_tokens], 1)
        valid = torch.cat([self.history_valid, torch.ones_like(observation_tokens, dtype=torch.bool)], 1)
        first = (self.timestep - (self.settings["context"] - 1)) * dims  # global index of the prefix's start
        index = first[:, None] + torch.arange(prefix.shape[1], device=prefix.device)
        due = starts | (self.since_plan >= self.settings["plan_freq"])  # every env at the first call (pending_start)
        if bool(due.all()):
            self.last_plan, _ = self.search(model, self.settings, prefix, index, valid, self.generator)
            self.since_plan = torch.zeros_like(self.since_plan)
        elif bool(due.any()):  # only the envs due to replan are searched
            rows = due.nonzero()[:, 0]
            self.last_plan[rows], _ = self.search(model, self.settings, prefix[rows], index[rows], valid[rows],
                                                  self.generator)
            self.since_plan[rows] = 0
        # this step's action tokens: transition since_plan of each env's plan (a plan starts at an action token)
        columns = (self.since_plan * dims)[:, None] + torch.arange(cfg.action_tokens, device=prefix.device)
        action_tokens = self.last_plan.gather(1, columns)  # [B, A]
        self.since_plan = self.since_plan + 1
        self.last = torch.cat([observation_tokens, action_tokens], 1)
        actions = disc.decode(action_tokens, slice(obs, obs + cfg.action_tokens))  # [B, A]
        return actions.round().long()[:, 0] if cfg.discrete_actions else actions
