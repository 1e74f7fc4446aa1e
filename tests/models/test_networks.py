"""The batched critic ensemble computes what E separate MLPs would, values and gradients alike."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqrl.models.networks import EnsembleLinear, IdentityEncoder, QEnsemble


def member_mlp(ensemble: QEnsemble, member: int) -> nn.Sequential:
    """Member ``member`` of ``ensemble`` as a plain ``nn.Linear``/``ReLU`` stack with copied weights."""
    layers: list[nn.Module] = []
    for layer in ensemble.layers:
        linear = nn.Linear(layer.in_features, layer.out_features).to(layer.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(layer.weight[member].T)
            linear.bias.copy_(layer.bias[member, 0])
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("hidden_sizes", [[16, 16], [8]])
def test_ensemble_matches_separate_members_forward_and_backward(hidden_sizes):
    torch.manual_seed(0)
    ensemble = QEnsemble(IdentityEncoder(5), 2, hidden_sizes, ensemble_size=3).double()
    observations = torch.randn(7, 1, 5, dtype=torch.float64)
    actions = torch.randn(7, 4, 2, dtype=torch.float64, requires_grad=True)  # 4 actions per state

    q = ensemble(observations, actions)  # [3, 7, 4]
    weights = torch.randn_like(q)
    (q * weights).sum().backward()

    inputs = torch.cat([observations.expand(-1, 4, -1), actions.detach()], dim=-1)  # [7, 4, 7]
    for member in range(3):
        reference = member_mlp(ensemble, member)
        member_inputs = inputs.clone().requires_grad_(True)
        expected = reference(member_inputs).squeeze(-1)  # [7, 4]
        torch.testing.assert_close(q[member], expected)
        (expected * weights[member]).sum().backward()
        for layer, linear in zip(ensemble.layers, reference[::2]):
            torch.testing.assert_close(layer.weight.grad[member], linear.weight.grad.T)
            torch.testing.assert_close(layer.bias.grad[member, 0], linear.bias.grad)
    # Gradients reach the actions too (actor terms go through the critic).
    assert actions.grad is not None and actions.grad.abs().sum() > 0


def test_one_column_layer_passes_gradcheck():
    torch.manual_seed(0)
    layer = EnsembleLinear(2, 6, 1).double()
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_(True)
    bias = layer.bias.detach().clone().requires_grad_(True)

    def apply(x, weight, bias):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(apply, (x, weight, bias))


def test_frozen_weights_get_no_gradient_but_inputs_do():
    from seqrl.models.networks import call_frozen

    torch.manual_seed(0)
    ensemble = QEnsemble(IdentityEncoder(3), 2, [8], ensemble_size=2)
    actions = torch.randn(4, 2, requires_grad=True)
    call_frozen(ensemble, torch.randn(4, 3), actions).sum().backward()
    assert all(p.grad is None for p in ensemble.parameters())
    assert actions.grad is not None and actions.grad.abs().sum() > 0


def test_bf16_autocast_stays_close_to_float32_and_keeps_float32_gradients():
    torch.manual_seed(0)
    ensemble = QEnsemble(IdentityEncoder(5), 2, [64, 64], ensemble_size=2)
    observations, actions = torch.randn(32, 5), torch.rand(32, 2) * 2 - 1
    full = ensemble(observations, actions)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = ensemble(observations, actions)
        low.float().sum().backward()
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), full, atol=0.05, rtol=0.05)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in ensemble.parameters())
