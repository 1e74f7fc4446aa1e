"""Decision Transformer: the KV cache computes exactly the uncached forward, padding and the masked
loss are right, and save -> load gives the same actions."""

import numpy as np
import pytest
import torch
from torch import distributions as D

from seqrl.errors import SeqRLError
from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig
from seqrl.models.decision_transformer.modeling_decision_transformer import squashed_gaussian_log_prob
from seqrl.models.policy import PolicyError


def make_model(discrete: bool, context_len: int = 4, seed: int = 0, acting: str = "cached") -> DecisionTransformer:
    torch.manual_seed(seed)
    act_dim = 4 if discrete else 2
    cfg = DecisionTransformerConfig(
        state_dim=3, act_dim=act_dim, discrete_actions=discrete, context_len=context_len, max_ep_len=64,
        hidden_size=32, n_layer=3, n_head=2, return_scale=0.01, env_id="Pendulum-v1",
        obs_mean=[0.5, -0.5, 1.0], obs_std=[2.0, 1.0, 0.5],
        action_low=None if discrete else [-2.0, -1.0], action_high=None if discrete else [2.0, 3.0],
        target_returns=[10.0], acting=acting,
    )
    return DecisionTransformer(cfg).eval()


def rollout_cached(model, observations, rewards, targets, starts=None):
    """Act step by step with the cache; observations [B, T, S], rewards [B, T]."""
    batch, steps = rewards.shape
    model.reset(batch, targets)
    actions = []
    for t in range(steps):
        actions.append(model.act(observations[:, t], rewards[:, t - 1] if t else None,
                                 None if starts is None else starts[:, t]))
    return np.stack(actions, 1)


def uncached_action(model, observations, rewards, actions, targets, t, window=None, first=0):
    """The action at step t from one forward pass over the history [first, t] (no cache), each token
    attending to the last ``window`` timesteps (None: context_len)."""
    batch = observations.shape[0]
    states = model.normalize_observations(torch.tensor(observations[:, first : t + 1]))
    spent = np.concatenate([np.zeros((batch, 1)), np.cumsum(rewards[:, :t], axis=1)], axis=1)[:, first:]
    rtg = torch.tensor(targets[:, None] - spent, dtype=torch.float32)[..., None] * model.config.return_scale
    past = torch.tensor(actions[:, first : t + 1])
    if not model.config.discrete_actions:
        past = model.normalize_actions(past)
    with torch.no_grad():
        pred = model(states, past, rtg, torch.arange(first, t + 1).expand(batch, -1), window=window)[:, -1]
    return pred.argmax(-1).numpy() if model.config.discrete_actions else model.unnormalize_actions(pred).numpy()


@pytest.mark.parametrize("discrete", [False, True])
def test_cached_actions_equal_uncached_forward(discrete):
    # 13 steps with K=4: most steps run with a full, rolling context.
    model = make_model(discrete)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(3, 13, 3)).astype(np.float32)
    rewards = rng.normal(size=(3, 13)).astype(np.float32)
    targets = np.array([5.0, 10.0, 20.0], dtype=np.float32)
    cached = rollout_cached(model, observations, rewards, targets)
    for t in range(13):
        np.testing.assert_allclose(cached[:, t], uncached_action(model, observations, rewards, cached, targets, t), atol=1e-5)


def test_episode_start_resets_one_env_only():
    model = make_model(False)
    rng = np.random.default_rng(1)
    observations = rng.normal(size=(2, 9, 3)).astype(np.float32)
    rewards = rng.normal(size=(2, 9)).astype(np.float32)
    targets = np.array([10.0, 10.0], dtype=np.float32)
    starts = np.zeros((2, 9), dtype=bool)
    starts[0, 5] = True  # env 0 begins a new episode at step 5
    cached = rollout_cached(model, observations, rewards, targets, starts)
    # env 0 from step 5 on acts as a fresh episode; env 1 is untouched.
    fresh = rollout_cached(model, observations[:1, 5:], rewards[:1, 5:], targets[:1])
    np.testing.assert_allclose(cached[0, 5:], fresh[0], atol=1e-5)
    alone = rollout_cached(model, observations[1:], rewards[1:], targets[1:])
    np.testing.assert_allclose(cached[1], alone[0], atol=1e-5)


def test_actions_respect_bounds_and_target_changes_actions():
    model = make_model(False)
    obs = np.random.default_rng(2).normal(size=(64, 3)).astype(np.float32)
    model.reset(64, 10.0)
    low = model.act(obs)
    assert low.shape == (64, 2) and low.dtype == np.float32
    assert (low[:, 0] >= -2).all() and (low[:, 0] <= 2).all() and (low[:, 1] >= -1).all() and (low[:, 1] <= 3).all()
    model.reset(64, 500.0)
    assert not np.allclose(model.act(obs), low)


def test_padding_does_not_change_real_outputs():
    model = make_model(False, context_len=5)
    rng = np.random.default_rng(3)
    states = torch.tensor(rng.normal(size=(2, 5, 3)), dtype=torch.float32)
    actions = torch.tensor(rng.uniform(-1, 1, size=(2, 5, 2)), dtype=torch.float32)
    rtg = torch.tensor(rng.normal(size=(2, 5, 1)), dtype=torch.float32)
    timesteps = torch.arange(5).expand(2, -1)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        out = model(states, actions, rtg, timesteps, mask)
        noisy_states = states.clone()
        noisy_states[0, :2] = 100.0  # change only padded inputs
        out_noisy = model(noisy_states, actions, rtg, timesteps, mask)
        # the same real steps without any padding
        short = model(states[:1, 2:], actions[:1, 2:], rtg[:1, 2:], timesteps[:1, 2:])
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 2:], out_noisy[0, 2:])
    torch.testing.assert_close(out[0, 2:], short[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("discrete", [False, True])
def test_save_load_gives_identical_actions(tmp_path, discrete):
    model = make_model(discrete)
    model.save_pretrained(tmp_path)
    loaded = DecisionTransformer.from_pretrained(tmp_path).eval()
    rng = np.random.default_rng(4)
    observations = rng.normal(size=(4, 7, 3)).astype(np.float32)
    rewards = rng.normal(size=(4, 7)).astype(np.float32)
    targets = np.full(4, 10.0, dtype=np.float32)
    np.testing.assert_array_equal(rollout_cached(model, observations, rewards, targets),
                                  rollout_cached(loaded, observations, rewards, targets))
    assert loaded.config.obs_mean == [0.5, -0.5, 1.0] and loaded.config.env_id == "Pendulum-v1"


# --- window acting: the reference's recompute of the last K steps ------------------------------------------


@pytest.mark.parametrize("discrete", [False, True])
def test_window_actions_equal_a_fresh_forward_over_the_last_k_steps(discrete):
    # K=4, 13 steps: from step 4 on the window drops steps; each action must be that of a fresh, uncached
    # forward over exactly the last K steps (the reference's get_action), as training windows are seen.
    model = make_model(discrete, acting="window")
    with torch.no_grad():  # sharper attention than the small init gives, so that far history shows in the outputs
        for block in model.blocks:
            block.attn.c_attn.weight.mul_(30.0)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(3, 13, 3)).astype(np.float32)
    rewards = rng.normal(size=(3, 13)).astype(np.float32)
    targets = np.array([5.0, 10.0, 20.0], dtype=np.float32)
    acted = rollout_cached(model, observations, rewards, targets)
    for t in range(13):
        fresh = uncached_action(model, observations, rewards, acted, targets, t, first=max(0, t - 3))
        np.testing.assert_allclose(acted[:, t], fresh, atol=1e-5)
    # The cached mode differs once deeper layers see past the window: the mismatch the window mode removes.
    model.config.acting = "cached"
    cached = rollout_cached(model, observations, rewards, targets)
    if discrete:
        assert (cached[:, :4] == acted[:, :4]).all()
    else:
        np.testing.assert_allclose(cached[:, :4], acted[:, :4], atol=1e-5)  # the first K steps: the same tokens
        assert np.abs(cached[:, 8:] - acted[:, 8:]).max() > 1e-3


def test_window_acting_restarts_one_env_and_honours_a_short_acting_context():
    model = make_continuous(context_len=6, act_context_len=3, acting="window")
    rng = np.random.default_rng(1)
    observations = rng.normal(size=(2, 10, 3)).astype(np.float32)
    rewards = rng.normal(size=(2, 10)).astype(np.float32)
    targets = np.array([10.0, 10.0], dtype=np.float32)
    starts = np.zeros((2, 10), dtype=bool)
    starts[0, 5] = True  # env 0 begins a new episode at step 5
    acted = rollout_cached(model, observations, rewards, targets, starts)
    fresh = rollout_cached(model, observations[:1, 5:], rewards[:1, 5:], targets[:1])
    np.testing.assert_allclose(acted[0, 5:], fresh[0], atol=1e-5)
    for t in range(10):  # env 1 never restarts: the last 3 steps, each token seeing all 3
        expected = uncached_action(model, observations[1:], rewards[1:], acted[1:], targets[1:], t, first=max(0, t - 2))
        np.testing.assert_allclose(acted[1, t], expected[0], atol=1e-5)


def test_acting_mode_is_saved_and_validated(tmp_path):
    make_model(False, acting="window").save_pretrained(tmp_path)
    assert DecisionTransformer.from_pretrained(tmp_path).config.acting == "window"
    with pytest.raises(SeqRLError, match="acting='full' must be one of window, cached"):
        DecisionTransformerConfig(acting="full")


# --- acting context shorter than the training context ------------------------------------------------------


def make_continuous(seed: int = 0, context_len: int = 6, act_context_len=None, stochastic: bool = False,
                    n_layer: int = 3, acting: str = "cached") -> DecisionTransformer:
    torch.manual_seed(seed)
    cfg = DecisionTransformerConfig(
        state_dim=3, act_dim=2, context_len=context_len, act_context_len=act_context_len, stochastic=stochastic,
        max_ep_len=64, hidden_size=32, n_layer=n_layer, n_head=2, return_scale=0.01, env_id="Pendulum-v1",
        obs_mean=[0.5, -0.5, 1.0], obs_std=[2.0, 1.0, 0.5], action_low=[-2.0, -1.0], action_high=[2.0, 3.0],
        target_returns=[10.0], acting=acting,
    )
    return DecisionTransformer(cfg).eval()


@pytest.mark.parametrize("stochastic", [False, True])
def test_short_acting_context_cache_equals_forward_with_that_band(stochastic):
    # K=6 for training, 3 for acting: the cache must compute the forward pass whose tokens see 3 timesteps.
    model = make_continuous(context_len=6, act_context_len=3, stochastic=stochastic)
    rng = np.random.default_rng(5)
    observations = rng.normal(size=(3, 11, 3)).astype(np.float32)
    rewards = rng.normal(size=(3, 11)).astype(np.float32)
    targets = np.array([5.0, 10.0, 20.0], dtype=np.float32)
    cached = rollout_cached(model, observations, rewards, targets)
    for t in range(11):
        np.testing.assert_allclose(cached[:, t], uncached_action(model, observations, rewards, cached, targets, t, window=3),
                                   atol=1e-5)
    # The band matters: seeing all 6 timesteps gives other actions once the history is longer than 3.
    wide = uncached_action(model, observations, rewards, cached, targets, 8, window=6)
    assert np.abs(wide - cached[:, 8]).max() > 1e-4


def test_acting_context_is_saved_and_validated(tmp_path):
    model = make_continuous(context_len=6, act_context_len=3, stochastic=True)
    model.save_pretrained(tmp_path)
    loaded = DecisionTransformer.from_pretrained(tmp_path)
    assert (loaded.config.context_len, loaded.config.act_context_len, loaded.config.acting_context_len) == (6, 3, 3)
    assert loaded.config.stochastic and loaded.can_explore
    assert make_continuous(act_context_len=None).config.acting_context_len == 6
    with pytest.raises(SeqRLError, match="act_context_len=7 must be between 1 and context_len=6"):
        DecisionTransformerConfig(context_len=6, act_context_len=7)


# --- stochastic (Online DT) head ---------------------------------------------------------------------------


def test_squashed_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    mean = torch.randn(4, 5, 3) * 1.5
    log_std = torch.empty(4, 5, 3).uniform_(-3.0, 1.0)
    actions = torch.empty(4, 5, 3).uniform_(-0.995, 0.995)
    reference = D.Independent(D.TransformedDistribution(D.Normal(mean, log_std.exp()), [D.TanhTransform()]), 1)
    ours = squashed_gaussian_log_prob(torch.atanh(actions), mean, log_std)
    assert ours.shape == (4, 5)
    torch.testing.assert_close(ours, reference.log_prob(actions), atol=1e-4, rtol=1e-5)
    # Far out in the tails, where 1 - tanh(u)^2 underflows, the stable form stays finite.
    assert torch.isfinite(squashed_gaussian_log_prob(torch.full((1, 3), 30.0), torch.zeros(1, 3), torch.zeros(1, 3))).all()


def window_inputs(seed: int = 6, steps: int = 5):
    rng = np.random.default_rng(seed)
    return (torch.tensor(rng.normal(size=(2, steps, 3)), dtype=torch.float32),
            torch.tensor(rng.uniform(-1, 1, size=(2, steps, 2)), dtype=torch.float32),
            torch.tensor(rng.normal(size=(2, steps, 1)), dtype=torch.float32),
            torch.arange(steps).expand(2, -1))


def test_stochastic_head_bounds_log_std_and_forward_is_its_mode():
    model = make_continuous(stochastic=True)
    inputs = window_inputs()
    with torch.no_grad():
        mean, log_std = model.action_distribution(*inputs)
        torch.testing.assert_close(model(*inputs), torch.tanh(mean))
        assert mean.shape == log_std.shape == (2, 5, 2)
        assert (log_std > -5.0).all() and (log_std < 2.0).all()
        # log std = min + (max - min) (tanh(raw) + 1) / 2: the raw output's extremes reach the bounds,
        # and 0 lands in the middle.
        model.predict_log_std.weight.zero_()
        for bias, expected in ((100.0, 2.0), (-100.0, -5.0), (0.0, -1.5)):
            model.predict_log_std.bias.fill_(bias)
            torch.testing.assert_close(model.action_distribution(*inputs)[1], torch.full((2, 5, 2), expected))


def test_deterministic_model_has_no_distribution_and_cannot_explore():
    model = make_continuous()
    assert not model.can_explore and not hasattr(model, "predict_log_std")
    with pytest.raises(PolicyError, match="deterministic"):
        model.action_distribution(*window_inputs())
    with pytest.raises(PolicyError, match="cannot explore"):
        model.reset(2, 10.0, explore=True)
    with pytest.raises(SeqRLError, match="discrete_actions=True"):
        DecisionTransformerConfig(act_dim=3, discrete_actions=True, stochastic=True)


def test_exploring_samples_and_mode_is_deterministic():
    model = make_continuous(stochastic=True)
    obs = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)

    def first_action(explore):
        model.reset(4, 10.0, explore=explore)
        return model.act(obs)

    sampled = [first_action(True) for _ in range(2)]
    assert np.abs(sampled[0] - sampled[1]).min() > 1e-6  # every env, every dimension draws anew
    mode = first_action(False)
    assert not model.exploring
    np.testing.assert_array_equal(mode, first_action(False))
    # The mode is tanh(mu) of a one-step forward pass.
    state = model.normalize_observations(torch.tensor(obs))[:, None]
    with torch.no_grad():
        mu = model(state, torch.zeros(4, 1, 2), torch.full((4, 1, 1), 10.0 * 0.01), torch.zeros(4, 1, dtype=torch.long))
    np.testing.assert_allclose(mode, model.unnormalize_actions(mu[:, 0]).numpy(), atol=1e-5)


def test_exploring_samples_follow_the_head_distribution():
    # 20000 envs in the same state: the sampled pre-tanh actions have the head's mean and std.
    model = make_continuous(stochastic=True, n_layer=1)
    with torch.no_grad():
        model.predict_log_std.bias.fill_(0.5)  # a std large enough for the check to notice sigma
    envs = 20000
    obs = np.tile(np.array([[0.3, -0.2, 0.9]], np.float32), (envs, 1))
    torch.manual_seed(0)
    model.reset(envs, 10.0, explore=True)
    actions = model.normalize_actions(torch.tensor(model.act(obs)))  # [N, A] in [-1, 1]
    pre_tanh = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6))
    state = model.normalize_observations(torch.tensor(obs[:1]))[:, None]
    with torch.no_grad():
        mean, log_std = model.action_distribution(state, torch.zeros(1, 1, 2), torch.full((1, 1, 1), 0.1),
                                                  torch.zeros(1, 1, dtype=torch.long))
    torch.testing.assert_close(pre_tanh.mean(0), mean[0, 0], atol=0.05, rtol=0)
    torch.testing.assert_close(pre_tanh.std(0), log_std[0, 0].exp(), atol=0.05, rtol=0.03)


def test_a_loaded_policy_owns_aligned_memory_and_acts_exactly_as_the_saved_one(tmp_path):
    # Tensors read from model.safetensors may sit at any 8-byte offset; MKL rounds differently on unaligned
    # weights on some CPUs, so from_pretrained copies them into PyTorch's (64-byte aligned) memory.
    model = make_model(False)
    model.save_pretrained(tmp_path)
    loaded = DecisionTransformer.from_pretrained(tmp_path)
    assert all(t.data_ptr() % 64 == 0 for t in loaded.parameters())
    rng = np.random.default_rng(3)
    observations = rng.normal(size=(2, 9, 3)).astype(np.float32)
    rewards = rng.normal(size=(2, 9)).astype(np.float32)
    targets = np.array([5.0, 10.0], dtype=np.float32)
    np.testing.assert_array_equal(rollout_cached(loaded, observations, rewards, targets),
                                  rollout_cached(model, observations, rewards, targets))
