"""sigma_w2 / sigma_b2 as settings: the weights drawn, the named points solved by mean-field
quadrature, the depth scale xi_c, and theory following the setting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vanishing import meanfield
from vanishing.analysis import theory
from vanishing.config import ModelConfig, expand_cells
from vanishing.training.models import BatchedMLP, draw_linear


def model(activation="tanh", **kw) -> ModelConfig:
    return ModelConfig(activation, depth=kw.pop("depth", 2), norm="none", residual=False, **kw)


@pytest.mark.parametrize(("scheme", "sw2", "sb2"), [("lecun", 2.5, 0.3), ("pytorch", 0.7, 0.1)])
def test_drawn_weights_and_biases_have_the_asked_variances(scheme, sw2, sb2):
    gen = torch.Generator().manual_seed(0)
    fan_in, fan_out, reps = 200, 150, 20
    draws = [draw_linear(gen, scheme, fan_in, fan_out, sw2, sb2) for _ in range(reps)]
    ws, bs = zip(*draws, strict=True)
    w, b = torch.stack(ws).double(), torch.stack(bs).double()
    n_w, n_b = w.numel(), b.numel()
    # the sample second moment of n entries of a zero-mean variable: relative sd sqrt(2/n)
    # for a normal, sqrt(0.8/n) for a uniform; 5 sd either side
    assert (w**2).mean().item() * fan_in == pytest.approx(sw2, rel=5 * math.sqrt(2 / n_w))
    assert (b**2).mean().item() == pytest.approx(sb2, rel=5 * math.sqrt(2 / n_b))


@pytest.mark.parametrize(("fan_in", "fan_out"), [(64, 64), (40, 64), (64, 10)])
def test_orthogonal_weights_are_orthogonal_times_the_scale(fan_in, fan_out):
    sw2 = 1.7
    gen = torch.Generator().manual_seed(1)
    w, b = draw_linear(gen, "orthogonal", fan_in, fan_out, sw2, 0.0)
    w = w.double()  # (fan_in, fan_out)
    gain2 = sw2 * max(fan_in, fan_out) / fan_in
    small = min(fan_in, fan_out)
    gram = w @ w.T if fan_in <= fan_out else w.T @ w  # (small, small)
    torch.testing.assert_close(gram, gain2 * torch.eye(small, dtype=torch.float64), atol=1e-5,
                               rtol=1e-5)  # fmt: skip
    # Var(W) * fan_in, as inits.py defines it for orthogonal matrices: the mean of W^2
    assert (w**2).mean().item() * fan_in == pytest.approx(sw2, rel=1e-5)
    assert not b.any()


def test_auto_draws_the_same_weights_as_before():
    """sigma_w2 and sigma_b2 at auto leave the generator's stream and the scheme alone."""
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    w_a, _ = draw_linear(gen_a, "orthogonal", 64, 64)
    w_b, _ = draw_linear(gen_b, "orthogonal", 64, 64, 1.0, 0.0)  # the scheme's own numbers
    torch.testing.assert_close(w_a, w_b)


def test_the_model_draws_every_layer_at_the_setting():
    cfg = model("relu", depth=3, width=128, init="kaiming", sigma_w2=0.5, sigma_b2=0.2)
    net = BatchedMLP(cfg, input_dim=50, n_classes=10, seeds=list(range(8)))
    for w, b in zip(net.weights, net.biases, strict=True):
        fan_in = w.shape[1]
        n = w.numel()
        assert (w.detach().double() ** 2).mean().item() * fan_in == pytest.approx(
            0.5, rel=5 * math.sqrt(2 / n)
        )
        assert (b.detach().double() ** 2).mean().item() == pytest.approx(
            0.2, rel=5 * math.sqrt(2 / b.numel())
        )


@pytest.mark.parametrize(
    ("activation", "sb2", "expected"),
    [("tanh", 0.0, 1.0), ("relu", 0.0, 2.0), ("relu", 0.3, 2.0), ("tanh", 0.05, 1.76)],
)
def test_critical_sigma_w2(activation, sb2, expected):
    """tanh at sb2 = 0: chi = sw2 phi'(0)^2 at q* = 0, so 1; relu: sw2 / 2, so 2; tanh at
    sb2 = 0.05: 1.76 (Schoenholz et al. 2017, fig. 1)."""
    sw2 = meanfield.solve_sigma_w2(activation, sb2)
    assert sw2 == pytest.approx(expected, abs=0.005)
    assert meanfield.chi_at_fixed_point(activation, sw2, sb2) == pytest.approx(1.0, abs=1e-8)


def test_chi_targets_below_one():
    assert meanfield.solve_sigma_w2("tanh", 0.0, 0.5) == pytest.approx(0.5, abs=1e-8)
    assert meanfield.solve_sigma_w2("relu", 0.0, 0.5) == pytest.approx(1.0, abs=1e-8)
    s = meanfield.solve_sigma_w2("sigmoid", 0.0, 0.5)
    assert meanfield.chi_at_fixed_point("sigmoid", s, 0.0) == pytest.approx(0.5, abs=1e-8)


def test_no_critical_point_is_an_error_that_says_so():
    # sigmoid's chi peaks near 1.08 (sigma_w2 ~ 200): no chi = 2 anywhere
    with pytest.raises(ValueError, match="sigmoid has no sigma_w2 .* chi = 2"):
        meanfield.solve_sigma_w2("sigmoid", 0.0, 2.0)
    # gelu at sb2 = 0: q* jumps from 0 to unbounded, chi from sw2/4 < 1 past 1
    with pytest.raises(ValueError, match="gelu has no sigma_w2 with chi = 1 .* jumps"):
        meanfield.solve_sigma_w2("gelu", 0.0, 1.0)
    with pytest.raises(ValueError, match="chi<number>"):
        meanfield.parse_target("chaos")


def test_a_grid_without_the_critical_point_fails_before_any_work():
    grid = {"activation": ["gelu"], "depth": [4], "norm": ["none"], "residual": [False],
            "sigma_w2": ["critical"]}  # fmt: skip
    config = {"grids": {"g": grid}, "seeds": [0], "pack": [],
              "data": {}, "model": {}, "train": {"lr": [0.1], "probe_size": 8}}  # fmt: skip
    with pytest.raises(ValueError, match="grids.g, cell .*gelu.*: sigma_w2: gelu has no"):
        expand_cells(config)


def test_hidden_scales_as_the_runs_table_records_them():
    assert model("relu").hidden_scales == (2.0, 0.0)  # auto: He
    assert model("tanh", init="pytorch", width=64).hidden_scales == (1 / 3, 1 / (3 * 64))
    sw2, sb2 = model("tanh", sigma_w2="critical", sigma_b2=0.05).hidden_scales
    assert (sw2, sb2) == (pytest.approx(1.7609, abs=1e-3), 0.05)
    assert model("relu", sigma_w2="chi0.5").hidden_scales == (pytest.approx(1.0), 0.0)


def test_xi_c_in_the_ordered_phase_is_minus_one_over_log_chi():
    """tanh, sb2 = 0, sw2 = 0.5: q* = 0, chi = 0.5, xi_c = 1 / ln 2."""
    assert meanfield.xi_c("tanh", 0.5, 0.0) == pytest.approx(1 / math.log(2), rel=1e-9)
    assert meanfield.xi_c("tanh", 1.0, 0.0) == math.inf


def test_xi_c_in_the_chaotic_phase_uses_the_c_map_fixed_point():
    sw2, sb2 = 2.0, 0.05
    q, c = meanfield.q_star("tanh", sw2, sb2), meanfield.c_star("tanh", sw2, sb2)
    assert 0 < c < 1
    assert meanfield.correlation_map("tanh", c, q, sw2, sb2) == pytest.approx(c, abs=1e-9)
    # the c-map's slope at c*, by a finite difference, is exp(-1 / xi_c)
    eps = 1e-5
    up, down = (meanfield.correlation_map("tanh", c + d, q, sw2, sb2) for d in (eps, -eps))
    assert (up - down) / (2 * eps) == pytest.approx(
        math.exp(-1 / meanfield.xi_c("tanh", sw2, sb2)), rel=1e-4
    )
    # xi_c diverges toward the critical point from both sides
    crit = meanfield.solve_sigma_w2("tanh", sb2)
    near = [meanfield.xi_c("tanh", crit * k, sb2) for k in (0.9, 0.99, 1.01, 1.1)]
    assert near[1] > near[0] and near[2] > near[3] and min(near[1:3]) > 20


def test_theory_follows_the_setting():
    """A deep plain tanh net at sb2 = 0: q -> 0, chi -> sw2, so log10 rms rises by
    -0.5 log10(sw2) per layer toward the output (deep layers only: the first ones are still
    nonlinear)."""
    kw = dict(norm="none", residual=False, depth=400, width=64, input_dim=64,
              input_second_moment=1.0)  # fmt: skip
    for sw2 in (0.5, 0.8):
        prof = theory.predicted_profile("tanh", "lecun", sigma_w2=sw2, sigma_b2=0.0, **kw)
        assert prof[-1] - prof[-2] == pytest.approx(-0.5 * math.log10(sw2), rel=1e-3)
    crit = theory.predicted_profile("relu", "lecun", sigma_w2="critical", **kw)
    np.testing.assert_allclose(crit, 0.0, atol=1e-9)  # He scale: flat
    assert theory.ceiling_slope("tanh", "lecun", 64, 0.25) == pytest.approx(0.5 * math.log10(4))


def test_adam_eps_applies_only_to_adam_so_sgd_cells_are_not_repeated():
    grid = {"activation": ["sigmoid"], "depth": [4], "norm": ["none"], "residual": [False],
            "optimizer": ["sgd", "adam", "lnsgd"], "adam_eps": [1e-8, 1e-30]}  # fmt: skip
    config = {"grids": {"optimizers": grid}, "seeds": [0], "pack": [],
              "data": {}, "model": {}, "train": {"lr": [0.1], "probe_size": 8}}  # fmt: skip
    cells = expand_cells(config)
    arms = sorted((c.train.optimizer, c.train.adam_eps) for c in cells)
    assert arms == [("adam", 1e-30), ("adam", 1e-8), ("lnsgd", 1e-8), ("sgd", 1e-8)]


def test_full_config_is_valid_and_its_named_points_resolve():
    """config/full.yaml, merged over the default study as the Snakefile merges it: passes the
    schema (sigmoid's sigma_w2 up to 200), and every named sigma_w2 resolves."""
    import yaml
    from conftest import REPO, validated

    from vanishing.config import apply_design

    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    full = yaml.safe_load((REPO / "config" / "full.yaml").read_text())
    cells = expand_cells(validated(apply_design({**default, **full}, full)))
    assert {g for c in cells for g in c.grids} == set(full["grids"])
    named = {(c.model.activation, c.model.sigma_w2): c.model.sigma_w2_resolved for c in cells
             if c.model.sigma_w2 in ("critical", "chi0.5")}  # fmt: skip
    assert named[("sigmoid", "critical")] == pytest.approx(116.95, abs=0.01)
    assert named[("relu", "chi0.5")] == pytest.approx(1.0)
