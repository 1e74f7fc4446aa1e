"""Decision Transformer: the KV cache computes exactly the uncached forward, padding and the masked
loss are right, and save -> load gives the same actions."""

import numpy as np
import pytest
import torch

from seqrl.models.decision_transformer import DecisionTransformer, DecisionTransformerConfig


def make_model(discrete: bool, context_len: int = 4, seed: int = 0) -> DecisionTransformer:
    torch.manual_seed(seed)
    act_dim = 4 if discrete else 2
    cfg = DecisionTransformerConfig(
        state_dim=3, act_dim=act_dim, discrete_actions=discrete, context_len=context_len, max_ep_len=64,
        hidden_size=32, n_layer=3, n_head=2, return_scale=0.01, env_id="Pendulum-v1",
        obs_mean=[0.5, -0.5, 1.0], obs_std=[2.0, 1.0, 0.5],
        action_low=None if discrete else [-2.0, -1.0], action_high=None if discrete else [2.0, 3.0],
        target_returns=[10.0],
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


def uncached_action(model, observations, rewards, actions, targets, t):
    """The action at step t from one forward pass over the whole history [0, t] (no cache)."""
    batch = observations.shape[0]
    states = model.normalize_observations(torch.tensor(observations[:, : t + 1]))
    spent = np.concatenate([np.zeros((batch, 1)), np.cumsum(rewards[:, :t], axis=1)], axis=1)
    rtg = torch.tensor(targets[:, None] - spent, dtype=torch.float32)[..., None] * model.config.return_scale
    past = torch.tensor(actions[:, : t + 1])
    if not model.config.discrete_actions:
        past = model.normalize_actions(past)
    with torch.no_grad():
        pred = model(states, past, rtg, torch.arange(t + 1).expand(batch, -1))[:, -1]
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
