"""Mean-field theory: closed forms, quadrature, and wide random MLPs simulated in float64."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps
from synthetic import SETTING_DEFAULTS, probe_inputs

from vanishing import inits
from vanishing.analysis import theory
from vanishing.settings import CELL_KEYS

# ---------------------------------------------------------------- quadrature and closed forms


def gaussian_moment(k: int, q: float) -> float:
    """E[h^k], h ~ N(0, q): 0 for odd k, q^(k/2) (k-1)!! for even k."""
    return 0.0 if k % 2 else q ** (k // 2) * math.prod(range(k - 1, 0, -2))


@pytest.mark.parametrize("q", [0.3, 1.0, 4.0])
def test_quadrature_low_moments(q):
    assert theory.gauss_expect(lambda h: h**2, q) == pytest.approx(q, rel=1e-12)
    assert theory.gauss_expect(lambda h: h**4, q) == pytest.approx(3 * q**2, rel=1e-12)
    assert theory.gauss_expect(lambda h: h**3, q) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    coef=st.lists(st.floats(-3, 3), min_size=1, max_size=12),
    q=st.floats(0.05, 4.0),
)
def test_quadrature_exact_for_polynomials_below_degree_2n(coef, q):
    n = 6  # degree <= 11 = 2n - 1
    poly = np.polynomial.Polynomial(coef)
    exact = sum(c * gaussian_moment(k, q) for k, c in enumerate(coef))
    got = theory.gauss_expect(poly, q, n=n)
    assert got == pytest.approx(exact, rel=1e-9, abs=1e-9 * (1 + np.abs(coef).sum()))


def test_relu_closed_forms_agree_with_quadrature():
    q = 1.7
    m1, m2, d2 = theory.moments("relu", q)
    assert m1 == pytest.approx(math.sqrt(q / (2 * math.pi)))
    assert m2 == pytest.approx(theory.gauss_expect(lambda h: np.maximum(h, 0) ** 2, q), rel=1e-12)
    assert d2 == pytest.approx(theory.gauss_expect(lambda h: (h > 0) * 1.0, q), rel=1e-12)


@pytest.mark.parametrize(("scheme", "expected"), [("kaiming", 1.0), ("pytorch", 1 / 6)])
def test_relu_chi(scheme, expected):
    sw2 = inits.sigma_w2(scheme, 256, 256)
    for q in (0.1, 1.0, 10.0):  # ReLU's chi does not depend on q
        assert theory.chi("relu", q, sw2) == pytest.approx(expected, rel=1e-12)


def test_chi_at_small_q_is_sw2_times_slope_at_zero():
    assert theory.chi("tanh", 1e-10, 1.3) == pytest.approx(1.3, rel=1e-8)
    assert theory.chi("gelu", 1e-10, 2.0) == pytest.approx(2.0 / 4, rel=1e-6)  # gelu'(0) = 1/2
    assert theory.chi("sigmoid", 1e-10, 1.0) == pytest.approx(1 / 16, rel=1e-8)


def test_tanh_fixed_point_solves_the_variance_map():
    sw2, sb2 = 2.0, 0.05
    q_star = theory.fixed_point("tanh", sw2, sb2)
    root = optimize.brentq(lambda q: theory.variance_map("tanh", q, sw2, sb2) - q, 1e-3, 10.0)
    assert q_star == pytest.approx(root, rel=1e-8)
    assert theory.fixed_point("tanh", sw2, sb2, q0=5.0) == pytest.approx(root, rel=1e-8)


def test_batchnorm_relu_factor_is_pi_over_pi_minus_one():
    assert theory.batchnorm_chi("relu") == pytest.approx(math.pi / (math.pi - 1), rel=1e-12)


def test_layernorm_relu_factor_is_one_without_bias():
    for sw2 in (1 / 3, 1.0, 2.0):
        assert theory.layernorm_chi("relu", sw2, 0.0) == pytest.approx(1.0, rel=1e-12)


def test_profile_shape_and_known_slopes():
    args = dict(residual=False, depth=7, width=128, input_dim=40, input_second_moment=0.9)
    flat = theory.predicted_profile("relu", "kaiming", "none", **args)
    assert flat.shape == (7,) and np.allclose(flat, 0.0)
    slope = theory.predicted_slope("relu", "pytorch", "none", **args)
    assert slope == pytest.approx(0.5 * math.log10(6), rel=1e-12)  # chi = 1/6 at every layer
    bn = theory.predicted_profile("relu", "kaiming", "batch", **args)
    step = 0.5 * math.log10(math.pi / (math.pi - 1))
    assert np.diff(bn[1:]) == pytest.approx(np.full(5, -step), rel=1e-12)


def test_profile_is_none_without_input_signal_under_a_norm():
    assert theory.predicted_profile("tanh", "xavier", "batch", False, 5, 64, 10, 0.0) is None


# ---------------------------------------------------------------- simulation of wide random MLPs

WIDTH, DEPTH, N, INPUT_DIM, SEEDS = 512, 10, 256, 64, (0, 1, 2, 3)
ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu}


def linear(gen, scheme, fan_in, fan_out):
    """nn.Linear with Var(W) and Var(b) from vanishing.inits (float64)."""
    lin = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    var_w = inits.weight_variance(scheme, fan_in, fan_out)
    with torch.no_grad():
        if scheme == "pytorch":  # U(-a, a) with a = 1 / sqrt(fan_in), weight and bias
            a = inits.uniform_bound(var_w)
            lin.weight.uniform_(-a, a, generator=gen)
            lin.bias.uniform_(-a, a, generator=gen)
        else:
            lin.weight.normal_(0.0, math.sqrt(var_w), generator=gen)
            lin.bias.zero_()
    return lin


def simulated_log10_rms(act, scheme, norm, residual, seed, x, alpha=1.0):
    """log10 grad_preact_rms per layer (DEPTH,) of one random MLP on inputs x (N, INPUT_DIM);
    a skip adds alpha times the block's output."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (len(x),), generator=gen)
    dims = [x.shape[1]] + [WIDTH] * DEPTH
    preacts = []
    for i in range(DEPTH):
        h = linear(gen, scheme, dims[i], WIDTH)(x)  # (N, WIDTH)
        h.retain_grad()
        preacts.append(h)
        if norm == "layer":
            a = F.layer_norm(h, (WIDTH,))
        elif norm == "batch":
            a = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)
        else:
            a = h
        x = x + alpha * ACT[act](a) if (residual and i > 0) else ACT[act](a)
    F.cross_entropy(linear(gen, scheme, WIDTH, 10)(x), y, reduction="sum").backward()
    return np.array([math.log10(h.grad.pow(2).sum(1).mean().sqrt().item()) for h in preacts])


# predicted / measured slope (mean of SEEDS, inputs with second moment 1.44) when written
CASES = [
    ("sigmoid", "xavier", "none", False),  # +0.6273 / +0.6275
    ("tanh", "xavier", "none", False),  # +0.0396 / +0.0388
    ("relu", "kaiming", "none", False),  # 0 / -0.0007
    ("relu", "pytorch", "none", False),  # +0.3891 / +0.3904
    ("tanh", "xavier", "layer", False),  # -0.0378 / -0.0390
    ("relu", "kaiming", "layer", False),  # +0.0127 / +0.0156
    ("relu", "kaiming", "batch", False),  # -0.0659 / -0.0675
    ("relu", "kaiming", "none", True),  # -0.1505 / -0.1580
    ("tanh", "xavier", "layer", True),  # -0.1163 / -0.1177
]


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_simulated_slope_matches_prediction(case):
    torch.manual_seed(0)
    x = 1.2 * torch.randn(N, INPUT_DIM, dtype=torch.float64)
    m0 = float(x.pow(2).mean())
    layers = np.arange(1, DEPTH + 1)
    measured = np.mean([theory.fit_slope(layers, simulated_log10_rms(*case, s, x)) for s in SEEDS])
    predicted = theory.predicted_slope(*case, DEPTH, WIDTH, INPUT_DIM, m0)
    # seed-to-seed sd of a slope is up to 0.005 here; finite width and batch bias it by a few
    # 1e-3 per layer (residual ReLU: -0.0075, shrinking about as 1/sqrt(width))
    assert measured == pytest.approx(predicted, abs=0.008 + 0.02 * abs(predicted))


# Scaled residual branches, x_l = x_{l-1} + alpha phi(a_l) (predicted / measured / predicted
# with alpha = 1, when written): the gain enters the forward and the backward recursion.
SCALED = [
    (("relu", "kaiming", "none", True), "inv_sqrt_depth"),  # -0.0480 / -0.0494 / -0.1505
    (("tanh", "xavier", "none", True), 0.3),  # -0.0436 / -0.0440 / -0.1051
    (("tanh", "xavier", "layer", True), 0.5),  # -0.0795 / -0.0805 / -0.1163
]


@pytest.mark.parametrize(("case", "scale"), SCALED, ids=[f"{c[0][0]}-{c[0][2]}" for c in SCALED])
def test_simulated_slope_with_scaled_residual_branch(case, scale):
    torch.manual_seed(0)
    x = 1.2 * torch.randn(N, INPUT_DIM, dtype=torch.float64)
    m0 = float(x.pow(2).mean())
    alpha = DEPTH**-0.5 if scale == "inv_sqrt_depth" else scale
    layers = np.arange(1, DEPTH + 1)
    measured = np.mean(
        [theory.fit_slope(layers, simulated_log10_rms(*case, s, x, alpha)) for s in SEEDS]
    )
    predicted = theory.predicted_slope(*case, DEPTH, WIDTH, INPUT_DIM, m0, scale)
    assert measured == pytest.approx(predicted, abs=0.008 + 0.02 * abs(predicted))
    unscaled = theory.predicted_slope(*case, DEPTH, WIDTH, INPUT_DIM, m0, 1.0)
    assert abs(unscaled - measured) > 0.03


# Inputs whose per-example second moments spread over five decades (log-normal scale): the
# prediction averages the examples' squared gradients, as the probe does; one made from the mean
# second moment misses (predicted per example / from the mean / measured when written).
UNEQUAL = [
    ("tanh", "xavier", "none", False, 0.0623),  # +0.0264 / +0.0623 / +0.0262
    ("tanh", "xavier", "layer", False, -0.0174),  # -0.0756 / -0.0174 / -0.0767
    ("gelu", "kaiming", "none", False, -0.0051),  # +0.0036 / -0.0051 / +0.0020
]


@pytest.mark.parametrize("case", UNEQUAL, ids=["-".join(map(str, c[:3])) for c in UNEQUAL])
def test_simulated_slope_with_unequal_input_norms(case):
    *case, from_mean = case
    gen = torch.Generator().manual_seed(1)
    scale = torch.exp(torch.randn(N, 1, dtype=torch.float64, generator=gen))
    x = scale * torch.randn(N, INPUT_DIM, dtype=torch.float64, generator=gen)
    m0 = x.pow(2).mean(1).numpy()  # per example
    layers = np.arange(1, DEPTH + 1)
    measured = np.mean([theory.fit_slope(layers, simulated_log10_rms(*case, s, x)) for s in SEEDS])
    predicted = theory.predicted_slope(*case, DEPTH, WIDTH, INPUT_DIM, m0)
    assert measured == pytest.approx(predicted, abs=0.008 + 0.02 * abs(predicted))
    mean_only = theory.predicted_slope(*case, DEPTH, WIDTH, INPUT_DIM, m0.mean())
    assert mean_only == pytest.approx(from_mean, abs=1e-4)


def test_equal_inputs_give_the_single_input_profile():
    args = ("gelu", "kaiming", "none", False, 12, 64, 10)
    one = theory.predicted_profile(*args, 0.7)
    assert theory.predicted_profile(*args, np.full(5, 0.7)) == pytest.approx(one, rel=1e-12)
    # two examples: the mean of their squared norms, not the norm at the mean input
    mixed = theory.predicted_profile(*args, [0.1, 5.0])
    assert not np.allclose(mixed, theory.predicted_profile(*args, 2.55), atol=1e-3)
    with pytest.raises(ValueError, match="non-empty"):
        theory.predicted_profile(*args, [])


def test_batch_norm_uses_the_mean_input():
    args = ("tanh", "xavier", "batch", False, 6, 64, 10)
    mixed = theory.predicted_profile(*args, [0.5, 1.5])
    assert mixed == pytest.approx(theory.predicted_profile(*args, 1.0), rel=1e-12)


def test_groups_use_their_own_cells_probe_inputs():
    runs, layers = make_tables({0: 0.1}, depth=5)
    runs["init_scheme"] = "xavier"
    runs["activation"] = layers["activation"] = "tanh"
    wide = theory.theory_table(runs, layers, probe_inputs(runs, [0.01, 30.0]))
    narrow = theory.theory_table(runs, layers, probe_inputs(runs, [1.0]))
    expected = theory.predicted_slope("tanh", "xavier", "none", False, 5, 32, 64, [0.01, 30.0])
    assert wide["predicted_slope"].item() == pytest.approx(expected, rel=1e-12)
    assert wide["predicted_slope"].item() != pytest.approx(narrow["predicted_slope"].item())
    with pytest.raises(ValueError, match="no rows for cells"):
        theory.theory_table(runs, layers, probe_inputs(runs.assign(cell="other"), [1.0]))


# ---------------------------------------------------------------- tables


def make_tables(slopes: dict[int, float], lrs=(0.1, 0.01), depth=4):
    """runs/layers tables for one group whose seed s has log10 rms = slopes[s] * layer + c."""
    cell = {k: SETTING_DEFAULTS[k] for k in CELL_KEYS}
    cell |= {"activation": "relu", "norm": "none", "residual": False, "depth": depth}
    cell |= {"width": 32, "cell": "c1"}
    inputs = {"init_scheme": "kaiming", "input_dim": 64}
    runs, layers = [], []
    for seed, slope in slopes.items():
        for lr in lrs:
            run = {**cell, "lr": lr, "seed": seed}
            runs.append({**run, **inputs})
            for step in (0, 50):  # step 50 must be ignored
                for layer in range(1, depth + 1):
                    rms = 10.0 ** (slope * layer + 0.3 + step)
                    layers.append({**run, "step": step, "layer": layer, "grad_preact_rms": rms})
    return pd.DataFrame(runs), pd.DataFrame(layers)


def test_theory_table_two_seeds():
    runs, layers = make_tables({0: 0.10, 1: 0.20})
    table = theory.theory_table(runs, layers, probe_inputs(runs, [0.8]))
    assert list(table.columns) == list(theory.TABLE_COLUMNS)
    (row,) = table.to_dict("records")
    half = sps.t.ppf(0.975, 1) * 0.05  # sd = 0.1 / sqrt(2), over sqrt(2)
    assert row["n_seeds"] == 2
    assert row["measured_slope"] == pytest.approx(0.15)
    assert row["measured_slope_ci_low"] == pytest.approx(0.15 - half)
    assert row["measured_slope_ci_high"] == pytest.approx(0.15 + half)
    assert row["predicted_slope"] == pytest.approx(0.0, abs=1e-12)  # ReLU with He init: flat
    assert np.isnan(row["relative_error"])  # undefined for a flat prediction
    assert row["theory"] == "mean-field"


def test_theory_table_one_seed_and_relative_error():
    runs, layers = make_tables({3: 0.5})
    runs["init_scheme"] = "pytorch"
    (row,) = theory.theory_table(runs, layers, probe_inputs(runs, [0.8])).to_dict("records")
    pred = 0.5 * math.log10(6)
    assert row["n_seeds"] == 1 and row["measured_slope"] == pytest.approx(0.5)
    assert np.isnan(row["measured_slope_ci_low"]) and np.isnan(row["measured_slope_ci_high"])
    assert row["predicted_slope"] == pytest.approx(pred)
    assert row["relative_error"] == pytest.approx((0.5 - pred) / pred)


def test_theory_profiles():
    runs, layers = make_tables({0: 0.10, 1: 0.20}, depth=3)
    prof = theory.theory_profiles(runs, layers, probe_inputs(runs, [0.8]))
    assert list(prof.columns) == [
        *theory.GROUP,
        "layer",
        "predicted_log10_rms",
        "measured_log10_rms",
    ]
    assert prof["layer"].tolist() == [1, 2, 3]
    assert prof["measured_log10_rms"].to_numpy() == pytest.approx([-0.3, -0.15, 0.0])
    assert prof["predicted_log10_rms"].to_numpy() == pytest.approx([0.0, 0.0, 0.0])
