"""Synthetic statistics tables (the shape ``vanishing stats`` writes) for the findings tests:
rows built one by one, every setting column from the registry's defaults unless given."""

from __future__ import annotations

import numpy as np
import pandas as pd
from synthetic import SETTING_DEFAULTS

from vanishing.outputs import STATS_TABLES
from vanishing.settings import CELL_KEYS

FACTOR = {"residual_vs_plain": "residual", "norm_vs_none": "norm",
          "activation_vs_sigmoid": "activation", "activation_vs_tanh": "activation",
          "deepest_vs_shallowest": "depth"}  # fmt: skip
SIG, NS = 0.001, 0.5  # a significant and a non-significant p


def settings(grid: str, **given) -> dict:
    s = {k: SETTING_DEFAULTS[k] for k in CELL_KEYS}
    s.update(given)
    s["cell"] = "_".join(f"{k}~{s[k]}" for k in CELL_KEYS)
    return {"grid": grid, **s}


def comparison(family, metric, baseline, treatment, diff, p, grid="main", **given) -> dict:
    row = settings(grid, **given)
    row[FACTOR[family]] = np.nan
    row.pop("cell")
    base = 1.0
    row.update(family=family, metric=metric, factor=FACTOR[family], baseline=str(baseline),
               treatment=str(treatment), init_scheme_baseline="xavier",
               init_scheme_treatment="kaiming", n_baseline=5, n_treatment=5,
               mean_baseline=base, mean_treatment=base + diff, diff=diff,
               diff_ci_low=diff - 0.1, diff_ci_high=diff + 0.1, hedges_g=np.sign(diff) * 3,
               p_welch=p, p_perm=p, p_holm=p, p_holm_perm=p)  # fmt: skip
    return row


def cell_test(metric, mean, p, grid="main", p_tost=np.nan, margin=np.nan, **given) -> dict:
    row = settings(grid, **given)
    row.update(metric=metric, null=0.0, margin=margin, init_scheme="xavier", lr=0.1, n=5,
               mean=mean, ci_low=mean - 0.1, ci_high=mean + 0.1, p_t=p, p_holm=p,
               p_tost=p_tost)  # fmt: skip
    return row


def decay_fit(activation, shape, exp_slope=-0.5, grid="profile", init_scheme="xavier",
              **given) -> dict:  # fmt: skip
    row = settings(grid, activation=activation, **given)
    row.update(init_scheme=init_scheme, n_obs=40, n_depths=8, n_censored=0, depth_min=2,
               depth_max=256, exp_intercept=0.0, exp_slope=exp_slope, exp_r2=0.9,
               pow_intercept=0.0, pow_exponent=-1.0, pow_r2=0.8, p_reject_exponential=0.5,
               p_reject_power=0.001, shape=shape)  # fmt: skip
    return row


def underflow(activation, depth, n_below, n_seeds=10, grid="profile", **given) -> dict:
    row = settings(grid, activation=activation, depth=depth, **given)
    row.update(init_scheme="xavier", n_seeds=n_seeds, n_below_floor=n_below, n_censored=n_below,
               max_log10_grad_ratio_init=-40.0 if n_below == n_seeds else -1.0)  # fmt: skip
    return row


def selected(activation, depth, grid="main", **metrics) -> dict:
    row = settings(grid, activation=activation, depth=depth, **metrics.pop("settings", {}))
    row.update(init_scheme="xavier", n_classes=10, selected_lr=0.1, lr=0.1, n_lrs=5,
               lr_at_edge=False, final_test_accuracy_mean=0.9, final_test_accuracy_ci_low=0.85,
               final_test_accuracy_ci_high=0.95, unchanged_layer1_final_mean=0.5,
               log10_grad_ratio_init_mean=-1.0, log10_grad_ratio_init_ci_low=-1.1,
               log10_grad_ratio_init_ci_high=-0.9, final_val_accuracy_mean=0.9)  # fmt: skip
    row.update(metrics)
    return row


def survival(family, metric, baseline, treatment, diff, p, grid="main", **given) -> dict:
    row = comparison(family, metric, baseline, treatment, 0.0, p, grid, **given)
    for k in ("mean_baseline", "mean_treatment", "diff_ci_low", "diff_ci_high", "hedges_g",
              "p_welch", "p_perm", "p_holm_perm"):  # fmt: skip
        row.pop(k)
    row.update(events_baseline=5, events_treatment=5, median_baseline=100.0,
               median_treatment=100.0 + diff, diff_median=diff, p_logrank=p, p_holm=p)  # fmt: skip
    return row


def divergence(family, baseline, treatment, diff, p, grid="main", **given) -> dict:
    row = comparison(family, "diverged", baseline, treatment, diff, p, grid, **given)
    row.update(diverged_baseline=10, diverged_treatment=int(10 + 25 * diff), n_baseline=25,
               n_treatment=25, rate_baseline=0.4, rate_treatment=0.4 + diff,
               p_fisher=p)  # fmt: skip
    return row


def association(x, y, rho, p, scope="all", grid="main") -> dict:
    return dict(grid=grid, x=x, y=y, scope=scope, n_cells=30, rho=rho, p_value=p)


def theory(activation, depth, predicted, measured, grid="profile", ci=0.02, ceiling=np.nan,
           init_scheme="xavier", **given) -> dict:  # fmt: skip
    row = settings(grid, activation=activation, depth=depth, **given)
    row.pop("init")
    rel = (measured - predicted) / abs(predicted) if abs(predicted) > 1e-9 else np.nan
    row.update(init_scheme=init_scheme, n_seeds=10, ceiling_slope=ceiling,
               predicted_slope=predicted, measured_slope=measured,
               measured_slope_ci_low=measured - ci, measured_slope_ci_high=measured + ci,
               relative_error=rel, theory="mean-field")  # fmt: skip
    return row


def tables(**given: list[dict]) -> dict[str, pd.DataFrame]:
    """Every statistics table by name: the given rows, the others empty."""
    return {name: pd.DataFrame(given.get(name, [])) for name in STATS_TABLES}
