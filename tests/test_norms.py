"""The written-out batch norm and layer norm against autograd through the textbook formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vanishing.config import ModelConfig
from vanishing.training.models import BatchedMLP
from vanishing.training.norms import (
    EPS,
    BatchNorm,
    LayerNorm,
    batch_norm_eval,
    update_running_stats,
)

R, B, W = 3, 16, 8


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(R, B, W, generator=gen) * 3 + 1  # a mean the norm has to remove
    gamma = torch.rand(R, W, generator=gen) + 0.5
    beta = torch.randn(R, W, generator=gen)
    g = torch.randn(R, B, W, generator=gen)  # the gradient arriving from above
    return h, gamma, beta, g


def textbook_batch_norm(h, gamma, beta):
    mean = h.mean(1, keepdim=True)
    var = ((h - mean) ** 2).mean(1, keepdim=True)  # biased, per replica and unit
    return (h - mean) / torch.sqrt(var + EPS) * gamma.unsqueeze(1) + beta.unsqueeze(1)


def textbook_layer_norm(h, gamma, beta):
    return F.layer_norm(h, (W,), eps=EPS) * gamma.unsqueeze(1) + beta.unsqueeze(1)


def grads(fn, h, gamma, beta, g):
    h, gamma, beta = (t.clone().requires_grad_(True) for t in (h, gamma, beta))
    out = fn(h, gamma, beta)
    dh, dgamma, dbeta = torch.autograd.grad(out, (h, gamma, beta), g)
    return out.detach(), dh, dgamma, dbeta


@pytest.mark.parametrize("scratch", [False, True])
def test_batch_norm_and_its_gradients_match_the_formula(scratch):
    h, gamma, beta, g = inputs()
    got = grads(
        lambda h, gm, bt: BatchNorm.apply(h * 1, None, gm, bt, None, scratch), h, gamma, beta, g
    )
    want = grads(textbook_batch_norm, h, gamma, beta, g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scratch", [False, True])
def test_layer_norm_and_its_gradients_match_the_formula(scratch):
    h, gamma, beta, g = inputs(1)
    got = grads(lambda h, gm, bt: LayerNorm.apply(h * 1, gm, bt, scratch), h, gamma, beta, g)
    want = grads(textbook_layer_norm, h, gamma, beta, g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_bias_cancels_and_moves_only_the_running_mean():
    """BN(h + b) = BN(h) with b's gradient exactly 0; the running mean is that of h + b and
    the running variance the unbiased n / (n - 1) one, per replica and unit."""
    h, gamma, beta, g = inputs(2)
    bias = torch.randn(R, W, requires_grad=True)
    mean, var, batch_stats = torch.zeros(R, W), torch.ones(R, W), []
    out = BatchNorm.apply(h.clone(), bias, gamma, beta, batch_stats, True)
    update_running_stats([mean], [var], batch_stats, [bias.detach()], B, 1.0)
    torch.testing.assert_close(
        out, textbook_batch_norm(h + bias.detach().unsqueeze(1), gamma, beta)
    )
    (db,) = torch.autograd.grad(out, bias, g, allow_unused=True, materialize_grads=True)
    assert (db == 0).all()
    torch.testing.assert_close(mean, h.mean(1) + bias.detach())
    torch.testing.assert_close(var, h.var(1, unbiased=True))


def test_eval_mode_uses_the_running_statistics():
    h, gamma, beta, _ = inputs(3)
    mean, var, bias = torch.randn(R, W), torch.rand(R, W) + 0.1, torch.randn(R, W)
    want = (h + bias.unsqueeze(1) - mean.unsqueeze(1)) / torch.sqrt(var.unsqueeze(1) + EPS)
    want = want * gamma.unsqueeze(1) + beta.unsqueeze(1)
    torch.testing.assert_close(batch_norm_eval(h, bias, gamma, beta, mean, var), want)
    torch.testing.assert_close(
        batch_norm_eval(h + bias.unsqueeze(1), None, gamma, beta, mean, var), want
    )


def test_reestimated_statistics_are_those_of_the_whole_batch():
    """momentum 1 (``reestimate_batch_stats``): the running statistics of layer 1 become the
    mean and unbiased variance of its pre-activations over all examples, bias included."""
    cfg = ModelConfig("relu", depth=2, norm="batch", residual=False, width=W)
    net = BatchedMLP(cfg, 5, 3, seeds=[0, 1])
    with torch.no_grad():
        net.biases[0].normal_()
    x = torch.randn(2, 40, 5)
    net.reestimate_batch_stats(x)
    h = torch.bmm(x, net.weights[0].detach()) + net.biases[0].detach().unsqueeze(1)
    torch.testing.assert_close(net.running_mean_0, h.mean(1))
    torch.testing.assert_close(net.running_var_0, h.var(1, unbiased=True))
    assert net.bn_momentum == 0.1
