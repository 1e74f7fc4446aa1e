"""Trajectory Transformer: discretiser, attention mask, cached decoding, the planner's search, saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrl.models.trajectory_transformer import Discretiser, TrajectoryTransformer, TrajectoryTransformerConfig, fit_edges
from seqrl.models.trajectory_transformer.discretiser import DiscretiserError
from seqrl.models.trajectory_transformer.modeling_trajectory_transformer import attention_mask
from seqrl.models.trajectory_transformer.planner import (
    CachedDecoder, FullDecoder, Planner, PlannerConfigError, beam_plan, resolve, sample_tokens)


def tiny_model(state_dim=3, act_dim=2, discrete=False, n_bins=20, window=4, seed=0, bound=None, **planner
               ) -> TrajectoryTransformer:
    torch.manual_seed(seed)
    bounds = {} if bound is None else {"action_low": [-bound] * act_dim, "action_high": [bound] * act_dim}
    config = TrajectoryTransformerConfig(state_dim=state_dim, act_dim=act_dim, discrete_actions=discrete, n_bins=n_bins,
                                         **bounds,
                                         hidden_size=32, n_layer=2, n_head=2, window=window, max_ep_len=50,
                                         planner=planner, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = TrajectoryTransformer(config).eval()
    rng = np.random.default_rng(seed)
    model.discretiser.load_edges(fit_edges(rng.normal(size=(500, config.transition_dim)), n_bins))
    return model


# --- discretiser ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_round_trip_is_within_one_bin_width_per_dimension(strategy):
    rng = np.random.default_rng(0)
    # dimensions of very different scales and shapes: normal, heavy-tailed, skewed, near-constant
    data = np.stack([rng.normal(size=4000), 50 * rng.standard_t(2, size=4000), rng.exponential(3, size=4000),
                     1.0 + 1e-3 * rng.normal(size=4000)], axis=1)
    discretiser = Discretiser(4, 64)
    discretiser.load_edges(fit_edges(data, 64, strategy))
    values = torch.from_numpy(data.astype(np.float32))
    tokens = discretiser.encode(values)
    assert tokens.min() >= 0 and tokens.max() < 64
    edges = discretiser.edges
    width = (edges[:, 1:] - edges[:, :-1]).T.gather(0, tokens)  # [rows, D] width of each value's bin
    error = (discretiser.decode(tokens) - values).abs()
    assert (error <= width / 2 + 1e-4 * values.abs().clamp(min=1)).all()
    if strategy == "quantile":  # every bin holds about 1/N of the data
        counts = torch.stack([torch.bincount(tokens[:, d], minlength=64) for d in range(4)])
        assert counts.max() <= 2 * 4000 / 64


def test_discrete_ids_are_their_own_tokens():
    ids = np.array([0, 1, 2, 1, 0, 2], dtype=np.float64)[:, None]
    discretiser = Discretiser(1, 10)
    discretiser.load_edges(fit_edges(ids, 10, "quantile", discrete_dims=(0,)))
    tokens = discretiser.encode(torch.tensor(ids, dtype=torch.float32))
    assert tokens[:, 0].tolist() == [0, 1, 2, 1, 0, 2]
    assert discretiser.decode(tokens)[:, 0].tolist() == [0.0, 1.0, 2.0, 1.0, 0.0, 2.0]


def test_too_many_discrete_actions_for_the_bins_is_a_clear_error():
    with pytest.raises(DiscretiserError, match="raise --algo.n_bins to at least 13"):
        fit_edges(np.arange(13, dtype=np.float64)[:, None], 10, discrete_dims=(0,))


# --- attention ------------------------------------------------------------------------------------------------

def test_value_token_mask_matches_the_reference():
    """The reference (jannerm/trajectory-transformer, CausalSelfAttention) starts from a lower-triangular
    mask over the block and zeroes every column ``D - 1 mod D``: no token attends to a value token."""
    dims, steps = 5, 4
    length = dims * steps - 1
    reference = torch.tril(torch.ones(length, length, dtype=torch.bool))
    reference[:, dims - 1::dims] = False
    index = torch.arange(length)[None]
    ours = attention_mask(index, index, torch.ones_like(index, dtype=torch.bool), dims, band=steps)[0, 0]
    assert torch.equal(ours, reference)


def test_band_shows_only_the_last_context_transitions():
    dims = 4
    index = torch.arange(6 * dims)[None]
    mask = attention_mask(index, index, torch.ones_like(index, dtype=torch.bool), dims, band=2)[0, 0]
    query = 4 * dims + 1  # transition 4, second token
    visible = torch.nonzero(mask[query])[:, 0].tolist()
    assert visible == [3 * dims, 3 * dims + 1, 3 * dims + 2, 4 * dims, 4 * dims + 1]  # transitions 3 and 4, no values


# --- cached decoding ------------------------------------------------------------------------------------------

def prefix_for(model, envs=3, history=(0, 1, 2), start=(0, 7, 20), seed=0):
    """Left-padded prefixes of ``history[e]`` earlier transitions plus an observation, as Planner builds them."""
    cfg, rng = model.config, np.random.default_rng(seed)
    dims, kept = cfg.transition_dim, (resolve(cfg.planner, cfg.env_id, cfg.window)["context"] - 1) * cfg.transition_dim
    tokens = torch.from_numpy(rng.integers(0, cfg.n_bins, (envs, kept + cfg.state_dim)))
    valid = torch.ones_like(tokens, dtype=torch.bool)
    for env, count in enumerate(history):
        valid[env, :kept - count * dims] = False
    timestep = torch.tensor(start)
    index = (timestep - (kept // dims))[:, None] * dims + torch.arange(tokens.shape[1])
    return tokens, index, valid


def test_cached_decoding_gives_the_logits_of_a_full_forward():
    model = tiny_model(context=3)
    tokens, index, valid = prefix_for(model)
    cached, full = CachedDecoder(model, 3), FullDecoder(model, 3)
    hidden_c, hidden_f = cached.start(tokens, index, valid), full.start(tokens, index, valid)
    torch.testing.assert_close(hidden_c, hidden_f, atol=1e-5, rtol=1e-5)
    rng, next_index, per_env = np.random.default_rng(1), index[:, -1] + 1, 1

    def step_both(count):
        nonlocal next_index
        for _ in range(count):
            new = torch.from_numpy(rng.integers(0, model.config.n_bins, 3 * per_env))
            hidden_c, hidden_f = cached.step(new, next_index), full.step(new, next_index)
            torch.testing.assert_close(hidden_c, hidden_f, atol=1e-5, rtol=1e-5)  # float32: agreement to 1e-5
            next_index = next_index + 1

    # As the search does: fan beams out (candidates share their parent's cache), extend them, keep some
    # (their parents' caches are copied, their own tokens written in), extend those. 24 tokens: the
    # ring of 3 transitions (21 slots) wraps around.
    for copies in (4, 2, 3):
        for decoder in (cached, full):
            decoder.expand(copies)
        per_env *= copies
        step_both(5)
        keep = per_env // 2
        rows = torch.from_numpy(np.concatenate([env * per_env + rng.choice(per_env, keep, replace=False) for env in range(3)]))
        for decoder in (cached, full):
            decoder.select(rows)
        per_env = keep
        step_both(3)


def test_cached_and_uncached_planning_choose_the_same_plan():
    model = tiny_model(context=3)
    tokens, index, valid = prefix_for(model)
    settings = resolve({"horizon": 4, "beam_width": 6, "n_expand": 2, "context": 3}, None, model.config.window)
    plans = [beam_plan(model, settings, tokens, index, valid, torch.Generator().manual_seed(7), decoder)
             for decoder in (CachedDecoder, FullDecoder)]
    assert torch.equal(plans[0][0], plans[1][0])
    torch.testing.assert_close(plans[0][1], plans[1][1], atol=1e-4, rtol=1e-5)


# --- the search -----------------------------------------------------------------------------------------------

class ToyWorld:
    """A decoder whose predictions are an exact, known world: what a model that learned it perfectly predicts.

    The observation is a state s in {0, 1}; the action a in {0, 1, 2}. From s, a = 0 pays 1 (a bait), a = 1
    pays 3 when s = 1 and 0 otherwise; the next state is 1 after a = 2, or a = 1 from s = 1, and 0 otherwise. Value tokens are
    ``values[s']`` (the value of the next state), and every action is equally likely under the model. A
    planner that reads rewards one step ahead takes the bait forever (1 a step); the best plan from s = 0 is
    a = 2 (0), then a = 1 (3 a step). "Hidden states" are the next token's logits (the head is the identity).
    """

    def __init__(self, model, context, values=(0, 0)):
        self.bins, self.dims, self.values = model.config.n_bins, model.config.transition_dim, torch.tensor(values)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        out = torch.full((tokens.shape[0], self.bins + 1), -30.0)
        out[torch.arange(tokens.shape[0]), tokens] = 30.0
        return out

    def any_action(self, rows: int) -> torch.Tensor:
        out = torch.full((rows, self.bins + 1), -30.0)
        out[:, :3] = 0.0
        return out

    def start(self, tokens, index, valid):
        self.state = tokens[:, -1]
        return self.any_action(len(tokens))

    def expand(self, copies):
        self.select(torch.arange(len(self.state)).repeat_interleave(copies))

    def select(self, rows):
        self.state = self.state[rows]
        if hasattr(self, "action"):
            self.action = self.action[rows]

    def step(self, tokens, index):
        dim = int(index[0]) % self.dims
        if dim == 0:  # an observation: any action may follow
            self.state = tokens
            return self.any_action(len(tokens))
        if dim == 1:  # an action: its reward
            self.action = tokens
            return self.logits(torch.where(tokens == 0, 1, torch.where((tokens == 1) & (self.state == 1), 3, 0)))
        next_state = ((self.action == 2) | ((self.action == 1) & (self.state == 1))).long()
        if dim == 2:  # the reward: the value of the next state
            return self.logits(self.values[next_state])
        return self.logits(next_state)  # the value: the next observation


@pytest.mark.parametrize("horizon, discount, values, first, score", [
    (1, 1.0, (0, 0), 0, 1.0),  # one step ahead and no values: the bait
    (3, 1.0, (0, 0), 2, 6.0),  # three steps: 0 + 3 + 3 beats the bait's 1 + 1 + 1
    (1, 0.5, (3, 6), 2, 3.0),  # one step with exact values (gamma 0.5): 0 + 0.5 * V(1) = 3 beats 1 + 0.5 * V(0)
])
def test_planner_picks_the_best_first_action_of_a_known_world(horizon, discount, values, first, score):
    model = tiny_model(state_dim=1, act_dim=3, discrete=True, n_bins=8, window=6)
    model.config.discount = discount
    model.head.at = lambda hidden, dim: hidden
    model.discretiser.load_edges((torch.arange(9.0) - 0.5).repeat(model.config.transition_dim, 1).numpy())
    # n_expand 1 keeps every sampled candidate, so the best sampled sequence is found exhaustively
    settings = resolve({"horizon": horizon, "beam_width": 300, "n_expand": 1, "context": 6, "cdf_act": 0.0},
                       None, model.config.window)
    start = torch.tensor([[0]])
    plan, best = beam_plan(model, settings, start, torch.tensor([[0]]), torch.tensor([[True]]),
                           torch.Generator().manual_seed(0), lambda model, context: ToyWorld(model, context, values))
    assert plan[0, 0].item() == first
    assert best.item() == pytest.approx(score)


def test_sample_tokens_filters_as_the_reference():
    logits = torch.log(torch.tensor([[0.05, 0.1, 0.15, 0.3, 0.4, 1e-9]]))  # last column: the stop token
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_tokens(logits, 0, 0.6, generator)[0] for _ in range(200)])
    # the least likely bins holding < 60% of the mass (0.05 + 0.1 + 0.15 = 0.3; adding 0.3 reaches 0.6) go
    assert set(draws.flatten().tolist()) == {3, 4}
    token, probs = sample_tokens(logits, 1, 0.0, generator)
    assert token.item() == 4  # greedy; the probabilities stay the model's (the reference's value_expectation)
    torch.testing.assert_close(probs, torch.tensor([[0.05, 0.1, 0.15, 0.3, 0.4]]))
    assert sample_tokens(torch.zeros(50, 6), 0, 0.0, generator)[0].max() < 5  # never the stop token


def test_sample_tokens_filters_the_bins_own_distribution_whatever_the_stop_token_holds():
    """A row whose stop token holds most of the mass (the model expects the episode to have ended) still
    samples among the bins, with the cdf cut made on the bins' distribution; equal bins all stay."""
    generator = torch.Generator().manual_seed(0)
    bins = torch.tensor([0.05, 0.1, 0.15, 0.3, 0.4])
    stop_heavy = torch.log(torch.cat([bins * 0.3, torch.tensor([0.7])]))[None]  # 70% on the stop token
    draws = torch.stack([sample_tokens(stop_heavy, 0, 0.6, generator)[0] for _ in range(200)])
    assert set(draws.flatten().tolist()) == {3, 4}  # the same cut as without the stop token's share
    uniform = torch.zeros(1, 6)
    draws = torch.stack([sample_tokens(uniform, 0, 0.6, generator)[0] for _ in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1, 2, 3, 4}


# --- acting, settings, saving ---------------------------------------------------------------------------------

def act_twice(model, observations, seed_steps=3):
    model.reset(observations.shape[0])
    actions = [model.act(observations + 0.1 * i, np.ones(observations.shape[0])) for i in range(seed_steps)]
    return np.stack(actions), model._planner.last_plan


def test_saved_and_loaded_policy_plans_identically(tmp_path):
    model = tiny_model(horizon=3, beam_width=4, context=3, bound=2.0)
    model.save_pretrained(tmp_path)
    loaded = TrajectoryTransformer.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded.discretiser.edges, model.discretiser.edges) and loaded.discretiser.is_fitted
    observations = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    first, first_plan = act_twice(model, observations)
    second, second_plan = act_twice(loaded, observations)
    np.testing.assert_array_equal(first, second)
    assert torch.equal(first_plan, second_plan)


def test_plan_freq_executes_the_last_plan_between_searches_and_replans_an_env_that_starts():
    model = tiny_model(horizon=3, beam_width=4, context=3, plan_freq=3)
    dims, obs, act = model.config.transition_dim, model.config.state_dim, model.config.action_tokens
    searched = []  # rows of each search
    model.reset(2)
    planner = model._planner
    search = planner.search
    planner.search = lambda model, settings, prefix, *rest: searched.append(prefix.shape[0]) or search(
        model, settings, prefix, *rest)
    observations = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    actions, plans = [], []
    for step in range(4):
        actions.append(model.act(observations + 0.1 * step, np.ones(2)))
        plans.append(planner.last_plan.clone())
    assert searched == [2, 2]  # at steps 0 and 3: every plan_freq steps
    for step in (1, 2):  # in between, transition `step` of the plan made at step 0
        tokens = plans[0][:, step * dims:step * dims + act]
        expected = model.discretiser.decode(tokens, slice(obs, obs + act))
        np.testing.assert_allclose(actions[step], model.unnormalize_actions(expected.float()).numpy(), rtol=1e-6)
    # an env whose episode starts replans at once, alone
    model.act(observations, np.ones(2), episode_starts=np.array([False, True]))
    assert searched == [2, 2, 1]


@pytest.mark.parametrize("setting, message", [
    ({"plan_freq": 16}, "planner.plan_freq 16 is longer than the plan's horizon of 15"),
    ({"plan_freq": 0}, "planner.plan_freq must be at least 1"),
    ({"beam_width": 0}, "planner.beam_width must be at least 1"),
    ({"horizon": 0}, "planner.horizon must be at least 1"),
    ({"context": 7}, "planner.context 7 is longer than the model's training window of 4"),
    ({"cdf_act": 1.5}, "planner.cdf_act must be in"),
    ({"beam": 3}, "unknown planner settings"),
])
def test_planner_settings_that_cannot_work_are_refused(setting, message):
    with pytest.raises(PlannerConfigError, match=message):
        resolve(setting, "Hopper-v5", window=4)


def test_env_overrides_and_reference_defaults():
    assert resolve({}, "Hopper-v5", 10)["horizon"] == 15 and resolve({}, "Hopper-v5", 10)["beam_width"] == 128
    assert resolve({}, "HalfCheetah-v5", 10)["horizon"] == 5 and resolve({}, "HalfCheetah-v5", 10)["beam_width"] == 32
    assert resolve({"beam_width": 7}, "HalfCheetah-v5", 10)["beam_width"] == 7  # explicit settings win
    assert resolve({}, "Hopper-v5", 3)["context"] == 3  # the reference's 5, cut to a shorter window


def test_planner_state_restarts_with_each_episode():
    model = tiny_model(horizon=2, beam_width=4, context=3)
    planner = Planner(model, 2)
    observations = torch.zeros(2, 3)
    for _ in range(3):
        planner.act(observations, torch.ones(2), None)
    assert planner.history_valid.all() and planner.timestep.tolist() == [2, 2]
    planner.act(observations, torch.ones(2), torch.tensor([True, False]))
    assert planner.timestep.tolist() == [0, 3]
    assert not planner.history_valid[0].any() and planner.history_valid[1].all()
