"""Per-cell estimates with intervals, learning-rate selection, seed-level values and ANOVA.

Everything here reads the ``runs.csv`` / ``layer_gradients.csv`` tables (see docs/outputs.md) as
DataFrames and returns DataFrames; nothing draws and nothing needs torch.

Conventions used throughout:

- **Trainability accuracy.** A diverged run has NaN accuracies in ``runs.csv``; here its
  ``final_test_accuracy`` and ``final_val_accuracy`` count as chance, ``1 / n_classes``: a run that
  blew up did not learn. Its ``final_train_loss`` stays NaN and is left out of loss statistics.
- **Gradient ratio.** ``log10_grad_ratio_init = log10(grad_ratio_init)`` is the number of decades
  by which the gradient at layer 1 (nearest the input) is smaller (< 0) or larger (> 0) than at
  layer ``depth``, at step 0. It does not depend on the learning rate, so seed-level values are
  deduplicated across lrs (and every other setting that cannot change step 0, see ``INIT_KEYS``).
- **Selected lr.** Accuracy-type metrics are read at each cell's lr with the best mean
  ``final_val_accuracy`` (``select_lr``), never at the best test accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.proportion import proportion_confint

from vanishing.analysis.metrics import derive, kind
from vanishing.settings import ARCH_AXES, CELL_KEYS, COLUMNS, INIT_KEYS

SUMMARY_METRICS = (
    "final_test_accuracy", "final_val_accuracy", "final_train_loss", "log10_grad_ratio_init",
    "log10_grad_ratio_final", "log10_distance_ratio_final", "unchanged_layer1_final",
    "reset_drop", "saturation_init", "saturation_final", "log10_stream_ratio_init",
    "forward_c_top_init", "stuck_init", "stuck_final",
)  # fmt: skip
LEVEL = 0.95


def t_interval(x, level: float = LEVEL) -> tuple[float, float, float, float]:
    """Mean, sd (ddof 1) and the two-sided t-interval ``mean +- t_{(1+level)/2, n-1} sd / sqrt(n)``.

    ``x``: 1-D values, one per seed; non-finite values are dropped. With one value the sd and the
    interval are NaN; with zero spread the interval collapses onto the mean.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return (np.nan,) * 4
    mean = float(x.mean())
    if n == 1:
        return mean, np.nan, np.nan, np.nan
    sd = float(x.std(ddof=1)) if np.ptp(x) > 0 else 0.0
    half = stats.t.ppf((1 + level) / 2, n - 1) * sd / np.sqrt(n)
    return mean, sd, mean - half, mean + half


def summarize(runs: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """One row per (cell, lr): seeds, metric means with t-intervals, and the divergence rate.

    For each metric in ``SUMMARY_METRICS`` the columns ``{metric}_n``, ``_mean``, ``_sd``,
    ``_ci_low``, ``_ci_high``. Accuracies of diverged runs count as chance (``1 / n_classes``);
    ``final_train_loss`` is over non-diverged runs only (``final_train_loss_n`` says how many).

    The interval across seeds is the Student t-interval: with 3-5 seeds a normal interval is too
    narrow and a bootstrap percentile interval cannot reach its nominal coverage (it has at most a
    handful of distinct resamples); the t-interval is exact for normal seed-to-seed noise and
    is the standard choice. ``divergence_rate`` has a Wilson score interval
    (``statsmodels proportion_confint``), which stays inside [0, 1] and behaves at 0/n and n/n.

    Keeps every setting column, ``cell``, ``init_scheme`` and ``n_classes``, and marks the
    row ``select_lr`` picks for its cell in a bool column ``selected``.
    """
    df = derive(runs)
    rows = []
    for (_, _), g in df.groupby(["cell", "lr"], sort=True):
        row = {k: g[k].iloc[0] for k in (*COLUMNS, "cell", "init_scheme", "n_classes")}
        row["n_seeds"] = len(g)
        for metric in SUMMARY_METRICS:
            x = g[metric].to_numpy(dtype=float)
            mean, sd, low, high = t_interval(x, level)
            row[f"{metric}_n"] = int(np.isfinite(x).sum())
            row.update({f"{metric}_mean": mean, f"{metric}_sd": sd})
            row.update({f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        k = int(g["diverged"].sum())
        low, high = proportion_confint(k, len(g), alpha=1 - level, method="wilson")
        row.update(n_diverged=k, divergence_rate=k / len(g))
        row.update(divergence_rate_ci_low=float(low), divergence_rate_ci_high=float(high))
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["selected"] = summary.index.isin(_best_rows(summary))
    return summary


def _best_rows(summary: pd.DataFrame) -> pd.Index:
    """Index of each cell's row with the best mean validation accuracy (ties: the smaller lr)."""
    order = summary.sort_values(
        ["cell", "final_val_accuracy_mean", "lr"], ascending=[True, False, True], na_position="last"
    )
    return order.drop_duplicates("cell").index


def select_lr(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the summary row of the lr with the best mean ``final_val_accuracy``.

    Adds ``selected_lr``, ``n_lrs`` (lrs tried for the cell) and ``lr_at_edge``: True when more
    than one lr was tried and the chosen one is the smallest or the largest, a sign that the lr
    grid may not bracket the optimum. Test accuracy plays no part in the choice.
    """
    lrs = summary.groupby("cell")["lr"].agg(["min", "max", "nunique"])
    chosen = summary.loc[_best_rows(summary)].sort_values("cell").reset_index(drop=True)
    chosen["selected"] = True
    chosen["selected_lr"] = chosen["lr"]
    edge = lrs.loc[chosen["cell"]]
    chosen["n_lrs"] = edge["nunique"].to_numpy()
    at_edge = (chosen["lr"].to_numpy() == edge["min"].to_numpy()) | (
        chosen["lr"].to_numpy() == edge["max"].to_numpy()
    )
    chosen["lr_at_edge"] = at_edge & (chosen["n_lrs"].to_numpy() > 1)
    return chosen


def unit_keys(metric: str) -> tuple[str, ...]:
    """The settings that identify one seed-level value of ``metric``: ``INIT_KEYS`` for a
    metric of step 0, every cell setting otherwise."""
    return INIT_KEYS if kind(metric) == "init" else CELL_KEYS


def seed_values(
    runs: pd.DataFrame, metric: str, selected: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per (unit, seed) with the metric in ``value``; units are given by ``unit_keys``.

    ``runs``: the per-run table of ``metrics.derive`` (raw runs.csv is derived here, without
    the metrics that need layers or curves). By the metric's kind (``metrics.METRICS``): init
    metrics are averaged over runs that share ``INIT_KEYS`` and seed (the same network at
    step 0, trained with different lrs; settings outside ``INIT_KEYS`` are kept where they agree
    and NaN otherwise); trained metrics are the runs at each cell's selected lr (``selected``,
    ``select_lr``'s table, saves recomputing it); sweep metrics are one value per cell and seed.
    Carries ``init_scheme`` along.
    """
    df = derive(runs)
    k = kind(metric)
    if k == "init":
        keys = [*INIT_KEYS, "seed"]
        g = df.groupby(keys, sort=True, dropna=False)
        out = g[metric].mean().rename("value").reset_index()
        rest = [c for c in (*CELL_KEYS, "init_scheme") if c not in keys]
        same = g[rest].agg(lambda s: s.iloc[0] if s.nunique(dropna=False) == 1 else np.nan)
        return out.merge(same.reset_index(), on=keys)[[*CELL_KEYS, "init_scheme", "seed", "value"]]
    if k == "sweep":
        df = df.drop_duplicates(["cell", "seed"]).assign(lr=np.nan)
    else:
        chosen = select_lr(summarize(df)) if selected is None else selected
        df = df.merge(chosen[["cell", "lr"]], on=["cell", "lr"])
    keep = [*CELL_KEYS, "cell", "init_scheme", "lr", "seed", metric]
    out = df[keep].rename(columns={metric: "value"})
    return out.sort_values([*CELL_KEYS, "seed"]).reset_index(drop=True)


def depth_slopes(runs: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """OLS slope of seed-level ``log10_grad_ratio_init`` on ``depth``, per group of the other
    ``INIT_KEYS``: decades of gradient lost (< 0) or gained per extra hidden layer, at step 0.

    Columns: the group keys, ``init_scheme``, ``n_obs``, ``n_depths``, ``depth_min``,
    ``depth_max``, ``slope``, ``slope_ci_low``, ``slope_ci_high`` (t-based), ``p_value``, ``r2``
    and ``factor_per_layer = 10 ** slope``. A straight line in log10 is exponential decay in the
    ratio; ``r2`` says how straight. Groups with one depth or fewer than 3 values get NaN.
    """
    v = seed_values(runs, "log10_grad_ratio_init").dropna(subset=["value"])
    keys = [k for k in INIT_KEYS if k != "depth"]
    rows = []
    for key, g in v.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        row["init_scheme"] = g["init_scheme"].iloc[0]
        n_depths = g["depth"].nunique()
        row.update(n_obs=len(g), n_depths=n_depths)
        row.update(depth_min=g["depth"].min(), depth_max=g["depth"].max())
        fit = None
        if n_depths >= 2 and len(g) >= 3:
            fit = smf.ols("value ~ depth", data=g.astype({"depth": float})).fit()
        if fit is None:
            row.update(slope=np.nan, slope_ci_low=np.nan, slope_ci_high=np.nan)
            row.update(p_value=np.nan, r2=np.nan)
        else:
            low, high = fit.conf_int(alpha=1 - level).loc["depth"]
            row.update(slope=fit.params["depth"], slope_ci_low=low, slope_ci_high=high)
            row.update(p_value=fit.pvalues["depth"], r2=fit.rsquared)
        row["factor_per_layer"] = 10.0 ** row["slope"]
        rows.append(row)
    return pd.DataFrame(rows)


ANOVA_COLUMNS = ("metric", "term", "df", "sum_sq", "F", "p_value", "partial_eta_sq", "n_obs")
# The architecture axes, as model terms (depth: see ``depth_term``).
FACTORS = {k: f"C({k})" for k in ARCH_AXES if k != "depth"}


def depth_term(metric: str) -> str:
    """Depth enters linearly for the log gradient ratios (exponential decay is a straight line
    in depth) and as log2 depth for the other metrics (the grid doubles depth)."""
    return "depth" if "log10_grad_ratio" in metric else "np.log2(depth)"


def factorial_anova(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Type II ANOVA of a seed-level metric on activation, depth, norm and residual.

    ``runs``: the per-run table of ``metrics.derive``. The OLS model has the four main effects
    and all their two-way interactions; the three- and four-way interactions are left out because
    with 3-5 seeds per cell they would spend most of the residual degrees of freedom on effects
    nobody can interpret. Depth enters as one slope (``depth_term``). A factor with a single level
    in the data is dropped, and so is a term aliased by earlier ones (a grid without some
    combinations); other settings that vary (data, width, init, ...) enter as main effects only,
    as blocks. Rows: one per term plus ``Residual``, with ``partial_eta_sq =
    SS_effect / (SS_effect + SS_residual)``. Empty when nothing varies or no residual df is left.

    ``final_test_accuracy`` (at the selected lr, chance for diverged runs) is bounded in [0, 1]
    and piles up at chance and near 1, so its residuals are far from normal and the F p-values are
    rough; read its partial eta squared as a description, not a test. ``log10_grad_ratio_init``
    (deduplicated across lrs) is unbounded and close to linear in depth, and suits the model.
    """
    v = seed_values(runs, metric).dropna(subset=["value"]).copy()
    keys = unit_keys(metric)
    terms = {**FACTORS, "depth": depth_term(metric)}
    factors = [terms[k] for k in ARCH_AXES if v[k].nunique() > 1]
    empty = pd.DataFrame(columns=[*ANOVA_COLUMNS, "formula"])
    if not factors:
        return empty
    for k in ("residual", *(k for k in keys if k not in ARCH_AXES)):
        v[k] = v[k].astype(str)  # NaN settings (momentum under adam) become a level, not a drop
    pairs = [f"{a}:{b}" for a, b in combinations(factors, 2)]
    formula = "value ~ " + " + ".join(_estimable(v, [*factors, *pairs, *_blocks(v, keys)]))
    fit = smf.ols(formula, data=v).fit()
    if fit.df_resid < 1:
        return empty
    try:
        table = anova_lm(fit, typ=2)
    except (ValueError, np.linalg.LinAlgError):  # a term fully aliased by others: no test
        return empty
    ss_resid = table.loc["Residual", "sum_sq"]
    table["partial_eta_sq"] = table["sum_sq"] / (table["sum_sq"] + ss_resid)
    table.loc["Residual", "partial_eta_sq"] = np.nan
    out = table.rename(columns={"PR(>F)": "p_value"}).rename_axis("term").reset_index()
    out["term"] = out["term"].map(_term_name)
    out["metric"], out["n_obs"], out["formula"] = metric, len(v), formula
    return out[[*ANOVA_COLUMNS, "formula"]]


def _estimable(v: pd.DataFrame, terms: Sequence[str]) -> list[str]:
    """The terms, in order, that each add as many independent columns as they have: a term
    aliased (fully or partly) by earlier ones, as when the grid lacks some combinations, is
    dropped rather than left to make the Type II tests undefined."""
    kept, rank, ncols = [], 1, 1
    for term in terms:
        x = smf.ols("value ~ " + " + ".join([*kept, term]), data=v).exog
        new_rank = np.linalg.matrix_rank(x)
        if new_rank - rank == x.shape[1] - ncols:
            kept.append(term)
            rank, ncols = new_rank, x.shape[1]
    return kept


def _blocks(v: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """``C(k)`` for the non-factor settings that vary, one per distinct partition of the rows
    (optimizer and momentum often split the runs identically; the second adds nothing)."""
    blocks, seen = [], set()
    for k in keys:
        codes = tuple(pd.factorize(v[k])[0])
        if k not in ARCH_AXES and len(set(codes)) > 1 and codes not in seen:
            seen.add(codes)
            blocks.append(f"C({k})")
    return blocks


def _term_name(term: str) -> str:
    """``C(norm):np.log2(depth)`` -> ``norm:log2_depth``."""
    parts = [p.removeprefix("C(").removesuffix(")") for p in term.split(":")]
    return ":".join("log2_depth" if p.startswith("np.log2(depth") else p for p in parts)
