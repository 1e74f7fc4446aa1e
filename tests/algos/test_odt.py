"""Online Decision Transformer: the loss is the tanh-Gaussian likelihood plus the entropy bonus, the temperature
moves towards the target entropy, a trained DT starts an ODT, and the one loop trains, saves and loads it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import distributions as D

from seqrl.data.schema import get_metadata
from seqrl.data.sources import load_dataset
from seqrl.errors import SeqRLError
from seqrl.models.decision_transformer import DecisionTransformer
from seqrl.registry import get, load_policy
from seqrl.training.cli import parse_train_args
from seqrl.training.loop import train
from seqrl.training.setup import IncompatibleDatasetError, build_optimizer

TINY = {"hidden_size": 16, "n_layer": 1, "n_head": 1, "context_len": 5, "batch_size": 16, "warmup_steps": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def pendulum(pendulum_dir):
    return load_dataset(str(pendulum_dir))


def build(name: str, dataset, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    entry = get(name)
    return entry.algorithm(entry.config(**{**TINY, **overrides}), get_metadata(dataset))


def first_batch(algorithm, dataset, step: int = 0) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in algorithm.make_sampler(dataset, seed=0).sample(step).items()}


def padded_batch(algorithm, dataset) -> dict[str, torch.Tensor]:
    """Windows that start 1-3 steps before an episode's end (left-padded) and windows in the middle."""
    episodes = np.asarray(dataset["episode_index"])
    ends = np.flatnonzero(np.r_[episodes[1:] != episodes[:-1], True]) + 1  # exclusive
    starts = np.r_[ends[:3] - 1, ends[:3] - 3, ends[:3] - 100]
    return {k: torch.from_numpy(v) for k, v in algorithm.make_sampler(dataset, seed=0).windows(starts).items()}


def tanh_normal(mean, log_std):
    return D.Independent(D.TransformedDistribution(D.Normal(mean, log_std.exp()), [D.TanhTransform()]), 1)


def test_loss_is_masked_likelihood_and_sampled_entropy(pendulum):
    algorithm = build("odt", pendulum, init_temperature=0.3).eval()  # eval: no dropout, the sample is the only noise
    batch = padded_batch(algorithm, pendulum)
    mask = batch["attention_mask"].bool()
    assert mask.sum() == 3 * 1 + 3 * 3 + 3 * 5  # left padding must not count
    torch.manual_seed(1)
    output = algorithm.compute_loss(batch, step=0)
    torch.manual_seed(1)  # the same noise for the entropy sample
    model = algorithm.model
    actions = model.normalize_actions(batch["actions"])
    with torch.no_grad():
        mean, log_std = model.action_distribution(batch["states"], actions, batch["returns_to_go"], batch["timesteps"],
                                                  batch["attention_mask"])
        policy = tanh_normal(mean, log_std)
        sample = torch.tanh(mean + log_std.exp() * torch.randn_like(mean))
        expected_nll = -policy.log_prob(actions.clamp(-1 + 1e-6, 1 - 1e-6))[mask].mean()
        expected_entropy = -policy.log_prob(sample.clamp(-1 + 1e-6, 1 - 1e-6))[mask].mean()
        expected_mse = (torch.tanh(mean) - actions).square().mean(-1)[mask].mean()
    metrics = output.metrics
    torch.testing.assert_close(metrics["nll"], expected_nll, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(metrics["entropy"], expected_entropy, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(metrics["action_loss"], expected_mse)
    torch.testing.assert_close(metrics["temperature"], torch.tensor(0.3))
    losses = output.losses()
    assert set(losses) == {"main", "temperature"}
    torch.testing.assert_close(losses["main"], expected_nll - 0.3 * expected_entropy, atol=1e-3, rtol=1e-4)
    # L_T = T * (H - H_target) with H_target = -act_dim.
    torch.testing.assert_close(losses["temperature"], 0.3 * (expected_entropy + 1.0), atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("target_entropy, rises", [(5.0, True), (-50.0, False)])
def test_temperature_rises_below_the_target_entropy_and_falls_above(pendulum, target_entropy, rises):
    # no warm-up: transformers' schedules start it at a learning rate of 0, and this checks one step's direction
    algorithm = build("odt", pendulum, target_entropy=target_entropy, temperature_learning_rate=1e-2, warmup_steps=0)
    optimizer, _ = build_optimizer(algorithm, algorithm.config)
    output = algorithm(first_batch(algorithm, pendulum), 0)
    assert (output.metrics["entropy"] < target_entropy) == rises
    before = output.metrics["temperature"].item()
    sum(output.losses().values()).backward()
    optimizer.step()
    after = algorithm.log_temperature.exp().item()
    assert (after > before) == rises and abs(after - before) > 1e-4


def test_entropy_bonus_raises_the_policy_entropy(pendulum):
    # A fixed, large temperature (lr 0) against almost none: the bonus must keep the policy wide (a 1-D
    # tanh-Gaussian's entropy is at most log 2, the uniform's), while likelihood alone narrows it.
    entropies = {}
    for temperature in (1e-4, 10.0):
        algorithm = build("odt", pendulum, init_temperature=temperature, temperature_learning_rate=0.0,
                          learning_rate=3e-2, warmup_steps=0)
        optimizer, _ = build_optimizer(algorithm, algorithm.config)
        for step in range(10):
            output = algorithm(first_batch(algorithm, pendulum, step), step)
            sum(output.losses().values()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        assert algorithm.log_temperature.exp().item() == pytest.approx(temperature)
        entropies[temperature] = algorithm.eval()(first_batch(algorithm, pendulum, 99), 99).metrics["entropy"].item()
    assert entropies[10.0] > 0.3 and entropies[10.0] > entropies[1e-4] + 1.0


def test_dt_weights_start_an_odt_whose_mode_acts_like_the_dt(pendulum):
    dt = build("dt", pendulum, seed=1).policy().eval()
    odt = build("odt", pendulum, seed=2, eval_context_len=None)  # act over the full K, as the DT does
    log_std_head = {k: v.clone() for k, v in odt.model.predict_log_std.state_dict().items()}
    observations = np.random.default_rng(0).normal(size=(6, 4, 3)).astype(np.float32)
    rewards = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)

    def actions(policy):
        policy.reset(4, -300.0)
        return np.stack([policy.act(observations[t], rewards[t - 1] if t else None) for t in range(6)])

    assert not np.allclose(actions(odt.policy().eval()), actions(dt))
    odt.load_policy_weights(dt)
    np.testing.assert_allclose(actions(odt.policy().eval()), actions(dt), atol=1e-6)
    for key, value in odt.model.predict_log_std.state_dict().items():  # the new head keeps its init
        assert torch.equal(value, log_std_head[key])

    # An odt policy loads whole; policies of other sizes or kinds are refused by name.
    twin = build("odt", pendulum, seed=3, eval_context_len=None)
    twin.load_policy_weights(odt.policy())
    assert all(torch.equal(a, b) for a, b in zip(twin.model.state_dict().values(), odt.model.state_dict().values()))
    with pytest.raises(SeqRLError, match="do not fit this odt model.*other shapes"):
        build("odt", pendulum, hidden_size=32).load_policy_weights(dt)
    with pytest.raises(SeqRLError, match=r"not from ActorPolicy \(algo 'bc'\)"):
        odt.load_policy_weights(get("bc").algorithm(get("bc").config(), get_metadata(pendulum)).policy())
    with pytest.warns(UserWarning, match="return_scale differ"):
        build("odt", pendulum, return_scale=0.5).load_policy_weights(dt)


def test_trains_in_the_loop_then_loads_and_acts(pendulum_dir, tmp_path):
    args = ["--algo", "odt", "--data.dataset", str(pendulum_dir), "--output_dir", str(tmp_path / "run"), "--steps", "4",
            "--algo.hidden_size", "16", "--algo.n_layer", "1", "--algo.n_head", "1", "--algo.context_len", "6",
            "--algo.eval_context_len", "3", "--algo.batch_size", "8", "--algo.warmup_steps", "1", "--log_every", "2",
            "--checkpoint_every", "2", "--eval.final", "false"]
    run = train(parse_train_args(args))
    policy = load_policy(run)
    assert type(policy) is DecisionTransformer and policy.config.algo == "odt"
    assert policy.config.stochastic and (policy.config.context_len, policy.config.act_context_len) == (6, 3)
    assert policy.blocks[0].mlp.c_fc.weight.shape == (16, 64)  # n_inner None: 4 * hidden_size
    twin = load_policy(run / "checkpoints" / "step-00000002" / "policy")
    observations = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    policy.reset(3, -300.0)
    twin.reset(3, -300.0)
    assert not np.array_equal(policy.act(observations), twin.act(observations))  # steps 3-4 changed the weights
    state = load_file(run / "checkpoints" / "step-00000004" / "model.safetensors")
    assert state["log_temperature"].shape == ()  # the temperature resumes with the run
    policy.reset(3, -300.0, explore=True)
    low, high = np.array(policy.config.action_low), np.array(policy.config.action_high)
    explored = policy.act(observations)
    assert explored.shape == (3, 1) and (explored >= low).all() and (explored <= high).all()


def test_defaults_are_the_reference_sizes(pendulum):
    entry = get("odt")
    config = entry.config()
    assert (config.hidden_size, config.n_layer, config.n_head, config.context_len, config.eval_context_len) == (512, 4, 4, 20, 5)
    assert (config.batch_size, config.learning_rate, config.weight_decay, config.warmup_steps) == (256, 1e-4, 5e-4, 10_000)
    algorithm = entry.algorithm(config, get_metadata(pendulum))
    assert algorithm.model.blocks[0].mlp.c_fc.weight.shape == (512, 2048)
    assert algorithm.model.config.act_context_len == 5 and algorithm.target_entropy == -1.0
    assert algorithm.log_temperature.exp().item() == pytest.approx(0.1)
    groups = algorithm.optimizer_groups()
    assert groups["temperature"][0]["weight_decay"] == 0.0 and groups["temperature"][0]["lr"] == 1e-4


def test_discrete_data_is_refused(cartpole_dir, tmp_path):
    with pytest.raises(SeqRLError, match="discrete actions.*--algo dt"):
        build("odt", load_dataset(str(cartpole_dir)))
    with pytest.raises(IncompatibleDatasetError, match="has discrete actions"):
        train(parse_train_args(["--algo", "odt", "--data.dataset", str(cartpole_dir), "--output_dir", str(tmp_path / "run"),
                                "--steps", "2", "--eval.final", "false"]))
