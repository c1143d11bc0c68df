"""The input-output Jacobian's spectrum at init: against autograd by hand, all ones for an
orthogonal net in its linear regime, the product of sigma_w2 on average for a Gaussian one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vanishing.config import ModelConfig
from vanishing.training.jacobian import (
    SPREAD_BOUND,
    jacobians,
    measure_isometry,
    spectrum_stats,
)
from vanishing.training.models import BatchedMLP


def test_jacobian_rows_equal_autograd_of_the_forward_by_hand():
    """depth 3, tanh, residual (alpha 1, the branch_act block), layer norm:
    x1 = tanh(LN(x W0 + b0)), x_l = x_{l-1} + tanh(LN(x_{l-1} W + b)); J = d x3 / d x."""
    cfg = ModelConfig(
        "tanh", depth=3, norm="layer", residual=True, width=5, sigma_b2=0.2, block="branch_act"
    )
    net = BatchedMLP(cfg, 4, 3, seeds=[0, 1])
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    got = jacobians(net, x)  # (2, 3, 5, 4)
    assert got.shape == (2, 3, 5, 4)
    ln = torch.nn.functional.layer_norm
    for r in range(2):
        w = [net.weights[i][r].detach() for i in range(3)]
        b = [net.biases[i][r].detach() for i in range(3)]

        def top(v, w=w, b=b):
            h = torch.tanh(ln(v @ w[0] + b[0], (5,)))
            for i in (1, 2):
                h = h + torch.tanh(ln(h @ w[i] + b[i], (5,)))
            return h

        for j in range(3):
            ref = torch.autograd.functional.jacobian(top, x[r, j])  # (5, 4)
            torch.testing.assert_close(got[r, j], ref, rtol=1e-4, atol=1e-6)


def test_an_orthogonal_net_in_its_linear_regime_is_isometric():
    """Orthogonal weights (sigma_w2 = 1, no bias), tanh on inputs of 1e-4: tanh' = 1 - O(1e-8),
    so J is a product of orthogonal matrices and every squared singular value is 1."""
    cfg = ModelConfig("tanh", 32, "none", False, width=16, init="orthogonal", sigma_b2=0.0)
    net = BatchedMLP(cfg, 16, 10, seeds=[0, 1, 2])
    x = 1e-4 * torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(1))
    s = measure_isometry(net, x)
    np.testing.assert_allclose(s["jacobian_sv2_mean"], 1.0, atol=1e-5)
    np.testing.assert_allclose(s["jacobian_sv2_std"], 0.0, atol=1e-5)
    np.testing.assert_allclose(s["jacobian_sv2_log10_spread"], 0.0, atol=1e-5)
    assert not s["jacobian_sv2_censored"].any()


def test_a_gaussian_linear_net_has_mean_the_product_of_sigma_w2():
    """Gaussian weights, linear regime: E[mean sigma^2] = E tr(J^T J) / d = prod_l sigma_w2 (square
    layers), over replicas; the spread is wide even so (no isometry)."""
    depth, sw2, R = 6, 1.5, 24
    cfg = ModelConfig("tanh", depth, "none", False, width=32, init="lecun", sigma_w2=sw2,
                      sigma_b2=0.0)  # fmt: skip
    net = BatchedMLP(cfg, 32, 10, seeds=list(range(R)))
    x = 1e-5 * torch.randn(R, 4, 32, generator=torch.Generator().manual_seed(2))
    mean = measure_isometry(net, x)["jacobian_sv2_mean"].numpy()
    se = mean.std(ddof=1) / math.sqrt(R)
    assert mean.mean() == pytest.approx(sw2**depth, abs=4 * se)
    assert se < 0.1 * sw2**depth  # the test can fail: the estimate is tight


def test_spread_is_censored_where_float32_cannot_resolve_the_smallest():
    jac = torch.zeros(4, 1, 2, 2)
    jac[3, 0] = torch.tensor([[float("inf"), 1.0], [float("nan"), 0.0]])  # overflowed
    jac[0, 0] = torch.diag(torch.tensor([1.0, 0.1]))  # sigma^2 1 and 0.01: spread 2
    jac[1, 0] = torch.diag(torch.tensor([1.0, 1e-9]))  # below 2^-23 of the largest
    s = spectrum_stats(jac)  # replica 2: all zero (underflowed)
    assert s["jacobian_sv2_log10_spread"][0].item() == pytest.approx(2.0)
    assert s["jacobian_sv2_mean"][0].item() == pytest.approx(0.505)
    assert s["jacobian_sv2_log10_spread"][1].item() == pytest.approx(SPREAD_BOUND)
    assert s["jacobian_sv2_censored"].tolist() == [False, True, True, True]
    assert s["jacobian_sv2_mean"][3].item() == math.inf
    assert math.isnan(s["jacobian_sv2_log10_spread"][3].item())
    assert math.isnan(s["jacobian_sv2_log10_spread"][2].item())
    assert s["jacobian_sv2_mean"][2].item() == 0.0


def test_batch_norm_has_no_per_example_jacobian():
    cfg = ModelConfig("relu", 3, "batch", False, width=8)
    s = measure_isometry(BatchedMLP(cfg, 4, 3, seeds=[0]), torch.randn(1, 8, 4))
    assert math.isnan(s["jacobian_sv2_mean"][0].item()) and not s["jacobian_sv2_censored"][0]


def test_theory_of_the_mean_against_the_measured_one():
    """Gaussian tanh nets in the linear regime: chi = sigma_w2 per layer, so the prediction is
    depth * log10(sigma_w2); a critical ReLU net (He): 0; a wider first layer (input_dim 16 <
    width 32) adds log10(32 / 16)."""
    from vanishing.analysis import theory

    kw = dict(norm="none", residual=False, width=32, input_dim=32, input_second_moment=1e-10)
    assert theory.predicted_jacobian_log10_mean(
        "tanh", "lecun", depth=6, sigma_w2=1.5, sigma_b2=0.0, **kw
    ) == pytest.approx(6 * math.log10(1.5), abs=1e-6)
    kw.update(input_second_moment=[0.5, 2.0])
    assert theory.predicted_jacobian_log10_mean("relu", "kaiming", depth=9, **kw) == pytest.approx(
        0.0, abs=1e-12
    )
    kw.update(input_dim=16)
    assert theory.predicted_jacobian_log10_mean("relu", "kaiming", depth=9, **kw) == pytest.approx(
        math.log10(2.0), abs=1e-12
    )
    kw.update(norm="batch")
    assert math.isnan(theory.predicted_jacobian_log10_mean("relu", "kaiming", depth=9, **kw))
