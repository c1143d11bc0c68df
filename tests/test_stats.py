"""Statistics on tiny hand-computed tables: intervals, selection, comparisons, Holm, ANOVA."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from synthetic import CELL_SETTINGS, make_runs

from vanishing.analysis.comparisons import compare_two, comparisons, hedges_g, holm, permutation_p
from vanishing.analysis.stats import (
    depth_slopes,
    factorial_anova,
    seed_values,
    select_lr,
    summarize,
    t_interval,
)
from vanishing.analysis.tables import write_tables


def test_t_interval_matches_hand_computation():
    mean, sd, low, high = t_interval([1.0, 2.0, 3.0])
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (mean, sd) == (2.0, 1.0)
    assert low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert half == pytest.approx(2.4841377, rel=1e-6)


def test_t_interval_degenerate_inputs():
    assert t_interval([4.0])[0] == 4.0 and np.isnan(t_interval([4.0])[2])
    assert t_interval([2.0, 2.0, np.nan])[1:] == (0.0, 2.0, 2.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=8))
def test_t_interval_contains_mean_and_is_symmetric(x):
    mean, _, low, high = t_interval(x)
    assert low <= mean + 1e-9 and mean <= high + 1e-9
    assert (mean - low) == pytest.approx(high - mean, abs=1e-6)


def test_summarize_counts_diverged_as_chance_and_keeps_settings():
    runs = make_runs(
        [
            dict(seed=0, final_test_accuracy=0.8, final_val_accuracy=0.7, grad_ratio_init=0.01),
            dict(seed=1, final_test_accuracy=0.6, final_val_accuracy=0.5, grad_ratio_init=0.1),
            dict(seed=2, diverged=True, grad_ratio_init=1.0),
        ]
    )
    s = summarize(runs)
    assert len(s) == 1
    row = s.iloc[0]
    assert row["final_test_accuracy_mean"] == pytest.approx((0.8 + 0.6 + 0.1) / 3)
    assert row["final_val_accuracy_mean"] == pytest.approx((0.7 + 0.5 + 0.1) / 3)
    assert row["final_train_loss_n"] == 2 and row["final_train_loss_mean"] == 0.5
    assert row["log10_grad_ratio_init_mean"] == pytest.approx(-1.0)
    assert row["n_seeds"] == 3 and row["n_diverged"] == 1
    assert row["divergence_rate"] == pytest.approx(1 / 3)
    low, high = row["divergence_rate_ci_low"], row["divergence_rate_ci_high"]
    assert (low, high) == pytest.approx((0.0615, 0.7923), abs=1e-4)  # Wilson, 1 of 3
    assert set(CELL_SETTINGS) <= set(s.columns) and {"lr", "cell", "selected"} <= set(s.columns)


def _two_lr_runs(val_small, test_small, val_large, test_large, lrs=(0.01, 0.1)):
    rows = []
    for lr, val, test in ((lrs[0], val_small, test_small), (lrs[1], val_large, test_large)):
        rows += [dict(lr=lr, seed=s, final_val_accuracy=val, final_test_accuracy=test)
                 for s in range(3)]  # fmt: skip
    return make_runs(rows)


def test_select_lr_uses_validation_not_test():
    s = summarize(_two_lr_runs(val_small=0.9, test_small=0.5, val_large=0.6, test_large=0.95))
    sel = select_lr(s)
    assert len(sel) == 1 and sel["selected_lr"].iloc[0] == 0.01
    assert sel["final_test_accuracy_mean"].iloc[0] == pytest.approx(0.5)
    assert list(s.sort_values("lr")["selected"]) == [True, False]


def test_lr_at_edge():
    runs = _two_lr_runs(0.5, 0.5, 0.9, 0.9)
    middle = make_runs([dict(lr=0.05, seed=s, final_val_accuracy=0.95) for s in range(3)])
    assert bool(select_lr(summarize(runs))["lr_at_edge"].iloc[0]) is True
    inner = select_lr(summarize(pd.concat([runs, middle])))
    assert inner["selected_lr"].iloc[0] == 0.05 and not inner["lr_at_edge"].iloc[0]
    single = select_lr(summarize(runs[runs["lr"] == 0.1]))
    assert single["n_lrs"].iloc[0] == 1 and not single["lr_at_edge"].iloc[0]


def test_permutation_p_for_separated_groups_of_three():
    rng = np.random.default_rng(0)
    assert permutation_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], rng) == pytest.approx(2 / 20)
    assert permutation_p([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], rng) == pytest.approx(1.0)


def test_holm_order_and_nan():
    # sorted p: 0.01*4=0.04, 0.02*3=0.06, 0.03*2=0.06 (monotone), 0.04*1 -> 0.06
    adjusted = holm([0.03, 0.01, np.nan, 0.04, 0.02])
    assert np.isnan(adjusted[2])
    assert adjusted[[1, 4, 0, 3]] == pytest.approx([0.04, 0.06, 0.06, 0.06])


def test_compare_two_sign_effect_size_and_welch():
    b, t = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    out = compare_two(b, t, np.random.default_rng(0))
    assert out["diff"] == 3.0
    j = math.gamma(2) / (math.sqrt(2) * math.gamma(1.5))  # exact correction, df = 4
    assert out["hedges_g"] == pytest.approx(3.0 * j) and hedges_g(t, b) == pytest.approx(-3 * j)
    half = sps.t.ppf(0.975, 4) * math.sqrt(2 / 3)
    assert (out["diff_ci_low"], out["diff_ci_high"]) == pytest.approx((3 - half, 3 + half))
    assert out["p_welch"] == pytest.approx(2 * sps.t.sf(3 / math.sqrt(2 / 3), 4))
    assert out["p_perm"] == pytest.approx(0.1)


def test_compare_two_zero_variance_arms():
    out = compare_two([0.1, 0.1, 0.1], [0.9, 0.9, 0.9], np.random.default_rng(0))
    assert out["diff"] == pytest.approx(0.8)
    assert np.isnan(out["hedges_g"]) and np.isnan(out["p_welch"]) and np.isnan(out["diff_ci_low"])
    assert out["p_perm"] == pytest.approx(0.1)


def _grid(activations, depths, residuals=(False,), norms=("none",), lrs=(0.1,), seeds=range(3)):
    """Runs whose gradient ratio at init decays by 10x per layer for sigmoid, not for relu."""
    rows = []
    for a, d, r, n, lr, s in product(activations, depths, residuals, norms, lrs, seeds):
        slope = -1.0 if a == "sigmoid" and not r else 0.0
        acc = 0.9 - (0.5 if a == "sigmoid" and d > 4 and not r else 0) + 0.01 * s
        rows.append(dict(activation=a, depth=d, residual=r, norm=n, lr=lr, seed=s))
        rows[-1].update(grad_ratio_init=10 ** (slope * d + 0.01 * s))
        rows[-1].update(final_test_accuracy=acc, final_val_accuracy=acc)
    return make_runs(rows)


def test_seed_values_dedupes_init_metric_across_lrs():
    runs = _grid(["sigmoid"], [2], lrs=(0.01, 0.1))
    init = seed_values(runs, "log10_grad_ratio_init")
    assert len(init) == 3 and init["value"].to_numpy() == pytest.approx([-2.0, -1.99, -1.98])
    assert len(seed_values(runs, "final_test_accuracy")) == 3


def test_comparisons_table_directions_and_holm_family():
    runs = _grid(["sigmoid", "relu"], [2, 8], residuals=(False, True))
    comp = comparisons(runs, np.random.default_rng(0))
    act = comp[(comp["family"] == "activation_vs_sigmoid") & (comp["depth"] == 8)]
    act = act[(act["metric"] == "log10_grad_ratio_init") & (act["residual"] == False)]  # noqa: E712
    assert len(act) == 1 and act["diff"].iloc[0] == pytest.approx(8.0)
    assert act["treatment"].iloc[0] == "relu" and act["baseline"].iloc[0] == "sigmoid"
    fam = comp[
        (comp["family"] == "residual_vs_plain") & (comp["metric"] == "log10_grad_ratio_init")
    ]
    assert np.allclose(fam["p_holm"], holm(fam["p_welch"].fillna(fam["p_perm"])))
    assert set(comp["family"]) >= {"residual_vs_plain", "activation_vs_sigmoid",
                                   "deepest_vs_shallowest"}  # fmt: skip


def test_depth_slopes_recover_decay():
    slopes = depth_slopes(_grid(["sigmoid", "relu"], [2, 4, 8]))
    by_act = slopes.set_index("activation")
    assert by_act.loc["sigmoid", "slope"] == pytest.approx(-1.0)
    assert by_act.loc["relu", "slope"] == pytest.approx(0.0, abs=1e-9)
    assert by_act.loc["sigmoid", "slope_ci_high"] < 0


def test_factorial_anova_drops_single_level_factors():
    """The log gradient ratio is linear in depth (exponential decay): a linear depth term;
    accuracy gets log2 depth."""
    runs = _grid(["sigmoid", "relu"], [2, 4, 8])
    table = factorial_anova(runs, "log10_grad_ratio_init")
    assert set(table["term"]) == {"activation", "depth", "activation:depth", "Residual"}
    # the ratio is linear in depth with an activation-dependent slope: only the seed offsets
    # (0, 0.01, 0.02 in each of the 6 cells) are left, 6 x 2e-4
    assert table.set_index("term").loc["Residual", "sum_sq"] == pytest.approx(0.0012, rel=1e-6)
    assert set(factorial_anova(runs, "final_test_accuracy")["term"]) >= {"log2_depth"}
    inter = table.set_index("term").loc["activation:depth"]
    assert 0 < inter["partial_eta_sq"] <= 1
    assert "norm" not in table["formula"].iloc[0]
    assert factorial_anova(_grid(["relu"], [2]), "log10_grad_ratio_init").empty


def test_write_tables_writes_every_format(tmp_path):
    runs = _grid(["sigmoid", "relu"], [2, 8], lrs=(0.01, 0.1))
    paths = write_tables(runs, None, tmp_path)
    names = {p.name for p in paths}
    for table in ("summary", "selected", "comparisons", "anova", "depth_slopes"):
        assert {f"{table}.csv", f"{table}.md"} <= names
    assert {"selected.tex", "comparisons.tex", "anova.tex"} <= names
    selected = pd.read_csv(tmp_path / "selected.csv")
    assert len(selected) == 4 and selected["selected"].all()
    assert "\\toprule" in (tmp_path / "comparisons.tex").read_text()
    assert (tmp_path / "summary.md").read_text().startswith("|")


def test_factorial_anova_drops_terms_the_grid_cannot_estimate():
    plain = _grid(["sigmoid", "relu"], [2, 4, 8])
    runs = pd.concat([plain, _grid(["relu"], [2, 4, 8], residuals=(True,))], ignore_index=True)
    table = factorial_anova(runs, "final_test_accuracy")
    terms = set(table["term"])
    assert {"activation", "residual", "log2_depth", "log2_depth:residual"} <= terms
    assert "activation:residual" not in terms  # no residual sigmoid: aliased, dropped
    assert np.isfinite(table.set_index("term").loc["residual", "F"])


def test_the_lr_window_counts_rates_within_validation_noise():
    """With 360 validation examples and a best of 0.95, the half-width of a difference of two
    accuracies is 1.96 sqrt(2 p (1 - p) / n) with p = (0.95 * 360 + 2) / 364: 0.0331; a rate at
    0.93 is in the window, one at 0.91 is not; without n_val the old one point applies."""
    from vanishing.analysis.metrics import derive, window_tolerance

    p = (0.95 * 360 + 2) / 364
    assert window_tolerance(0.95, 360) == pytest.approx(1.96 * np.sqrt(2 * p * (1 - p) / 364))
    assert window_tolerance(0.95, np.nan) == 0.01
    rows = [dict(lr=lr, final_val_accuracy=acc, n_val=360)
            for lr, acc in ((0.01, 0.91), (0.03, 0.93), (0.1, 0.95))]  # fmt: skip
    assert derive(make_runs(rows))["lr_window"].tolist() == [2.0, 2.0, 2.0]
    old = [{k: v for k, v in r.items() if k != "n_val"} for r in rows]
    assert derive(make_runs(old))["lr_window"].tolist() == [1.0, 1.0, 1.0]
