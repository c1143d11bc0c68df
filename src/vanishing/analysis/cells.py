"""Tests within cells (one sample of seeds against a fixed value), the float32 floor of the
gradient at layer 1, and associations across cells.

- ``cell_tests``: per cell, at its selected lr, the seed mean of a metric with its t-interval,
  the two-sided one-sample t-test against ``null`` and, where a claim is "no difference", the
  TOST equivalence test within +-margin (``statsmodels.stats.weightstats``); Holm within each
  metric.
- ``floor_table``: per network at step 0 (``INIT_KEYS``), how many seeds pass layer 1 less than
  ``FLOOR`` of the top layer's gradient (2^-24, float32's relative precision: an update that
  small next to the top layer's is lost in rounding), and how many underflow float32 entirely.
- ``associations``: Spearman's rank correlation across cells (seed means at the selected lr)
  between the gradient ratio at init and what training achieved.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from vanishing.analysis.comparisons import holm
from vanishing.analysis.metrics import FLOAT32_EPS, derive
from vanishing.analysis.stats import LEVEL, seed_values, select_lr, summarize, t_interval
from vanishing.settings import CELL_KEYS, INIT_KEYS

FLOOR = FLOAT32_EPS
RESET_MARGIN = 0.02  # accuracy: resetting the lower half "loses nothing" within 2 points
# (metric, value under the null, equivalence margin or None)
TESTS = (
    ("log10_distance_ratio_final", 0.0, None),
    ("reset_drop", 0.0, RESET_MARGIN),
    ("saturation_change", 0.0, None),
    ("grad_ratio_change", 0.0, None),
)
TEST_COLUMNS = (
    "metric", "null", "margin", *CELL_KEYS, "cell", "init_scheme", "lr", "n", "mean", "ci_low",
    "ci_high", "p_t", "p_holm", "p_tost",
)  # fmt: skip
ASSOCIATIONS = (("log10_grad_ratio_init", "final_train_loss"),
                ("log10_grad_ratio_init", "final_test_accuracy"))  # fmt: skip


def one_sample(x, null: float, margin: float | None, level: float = LEVEL) -> dict:
    """Mean with its t-interval, the t-test p against ``null`` and the TOST p within
    ``null +- margin`` (NaN without a margin, or with fewer than two finite values)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    mean, _, low, high = t_interval(x, level)
    out = dict(n=len(x), mean=mean, ci_low=low, ci_high=high, p_t=np.nan, p_tost=np.nan)
    if len(x) >= 2 and np.ptp(x) > 0:
        out["p_t"] = float(stats.ttest_1samp(x, null).pvalue)
    elif len(x) >= 2:  # constant: the test is degenerate but the answer is plain
        out["p_t"] = 1.0 if x[0] == null else 0.0
    if margin is not None and len(x) >= 2:
        if np.ptp(x) > 0:
            zeros = np.full(len(x), null)
            out["p_tost"] = float(ttost_paired(x, zeros, -margin, margin)[0])
        else:
            out["p_tost"] = 0.0 if abs(x[0] - null) < margin else 1.0
    return out


def cell_tests(runs: pd.DataFrame, selected: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (metric of ``TESTS``, cell): the within-cell tests (``TEST_COLUMNS``)."""
    df = derive(runs)
    rows = []
    for metric, null, margin in TESTS:
        v = seed_values(df, metric, selected)
        block = []
        for _, g in v.groupby(list(CELL_KEYS), sort=True, dropna=False):
            row = {k: g[k].iloc[0] for k in (*CELL_KEYS, "cell", "init_scheme", "lr")}
            row.update(metric=metric, null=null, margin=np.nan if margin is None else margin)
            row.update(one_sample(g["value"], null, margin))
            block.append(row)
        p = holm([r["p_t"] for r in block])
        rows += [{**r, "p_holm": q} for r, q in zip(block, p, strict=True)]
    return pd.DataFrame(rows, columns=list(TEST_COLUMNS))


def floor_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per network at step 0 (``INIT_KEYS``): seeds, seeds whose layer-1 gradient is
    below ``FLOOR`` of the top layer's (censored ones included), seeds censored (below float32's
    range), and the largest seed-level log10 ratio (the least decayed seed; a bound if censored)."""
    df = derive(runs)
    cols = [*INIT_KEYS, "seed"]
    per_seed = df.groupby(cols, dropna=False).agg(
        value=("log10_grad_ratio_init", "mean"),
        censored=("grad_ratio_init_censored", "max"),
        init_scheme=("init_scheme", "first"),
    )
    per_seed = per_seed.reset_index()
    per_seed["below"] = per_seed["censored"].astype(bool) | (per_seed["value"] < np.log10(FLOOR))
    out = per_seed.groupby(list(INIT_KEYS), dropna=False).agg(
        init_scheme=("init_scheme", "first"),
        n_seeds=("seed", "size"),
        n_below_floor=("below", "sum"),
        n_censored=("censored", "sum"),
        max_log10_grad_ratio_init=("value", "max"),
    )
    return out.reset_index()


def associations(runs: pd.DataFrame, selected: pd.DataFrame | None = None) -> pd.DataFrame:
    """Spearman's rho across cells between seed means at each cell's selected lr, for each pair
    of ``ASSOCIATIONS``: over all cells (``scope`` all) and within each activation."""
    df = derive(runs)
    chosen = select_lr(summarize(df)) if selected is None else selected
    at = df.merge(chosen[["cell", "lr"]], on=["cell", "lr"])
    metrics = sorted({m for pair in ASSOCIATIONS for m in pair})
    table = at.groupby("cell")[[*metrics, "activation"]].agg(
        {**{m: "mean" for m in metrics}, "activation": "first"}
    )
    rows = []
    for x, y in ASSOCIATIONS:
        scopes = [("all", table)] + [(a, g) for a, g in table.groupby("activation")]
        for scope, g in scopes:
            ok = g[[x, y]].dropna()
            row = dict(x=x, y=y, scope=scope, n_cells=len(ok), rho=np.nan, p_value=np.nan)
            if len(ok) >= 3 and ok[x].nunique() > 1 and ok[y].nunique() > 1:
                res = stats.spearmanr(ok[x], ok[y])
                row.update(rho=float(res.statistic), p_value=float(res.pvalue))
            rows.append(row)
    return pd.DataFrame(rows, columns=["x", "y", "scope", "n_cells", "rho", "p_value"])
