"""Two-arm comparisons of times to an event and of divergence counts.

- ``survival``: steps to the target validation accuracy and steps on the initial plateau, per
  arm at each cell's selected lr. A run that never gets there is censored at its last step, not
  dropped: Kaplan-Meier medians per arm (``SurvfuncRight``; NaN while fewer than half have got
  there) and the log-rank test (``survdiff``); ``diff_median`` is treatment minus baseline with a
  never-reached median taken as the last step (so it is a bound). Holm within family and metric.
- ``divergence``: diverged runs out of all runs of a cell's lr sweep (every lr and seed), per
  arm, with Fisher's exact test.

Arms are formed as in ``comparisons`` (same families, every other cell setting held fixed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from vanishing.analysis.comparisons import (
    FAMILIES,
    family_groups,
    held,
    holm,
    pair_row,
    trained,
)
from vanishing.analysis.metrics import derive
from vanishing.analysis.stats import select_lr, summarize
from vanishing.settings import CELL_KEYS

EVENTS = (("steps_to_target", "reached_target"), ("plateau_steps", "left_plateau"))
SURVIVAL_FAMILIES = ("norm_vs_none", "residual_vs_plain", "activation_vs_sigmoid",
                     "activation_vs_tanh", "deepest_vs_shallowest")  # fmt: skip


def km_median(time, event) -> float:
    """Kaplan-Meier median of the times; NaN while fewer than half the runs had the event."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=int)
    if len(time) == 0 or event.sum() == 0:
        return np.nan
    return float(SurvfuncRight(time, event).quantile(0.5))


def logrank(t_b, e_b, t_t, e_t) -> float:
    """Log-rank p of two arms; NaN without an event in either (nothing to compare)."""
    e_b, e_t = np.asarray(e_b, dtype=int), np.asarray(e_t, dtype=int)
    if e_b.sum() + e_t.sum() == 0 or len(e_b) == 0 or len(e_t) == 0:
        return np.nan
    time = np.concatenate([t_b, t_t]).astype(float)
    group = np.r_[np.zeros(len(e_b)), np.ones(len(e_t))]
    try:
        return float(survdiff(time, np.r_[e_b, e_t], group)[1])
    except np.linalg.LinAlgError:
        return np.nan


def _at_selected(df: pd.DataFrame, selected: pd.DataFrame | None) -> pd.DataFrame:
    chosen = select_lr(summarize(df)) if selected is None else selected
    return df.merge(chosen[["cell", "lr"]], on=["cell", "lr"])


def survival(runs: pd.DataFrame, selected: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (family, event, pair of arms): runs, events, KM medians, log-rank p."""
    df = derive(runs)
    if not trained(df) or "reached_target" not in df or df["reached_target"].isna().all():
        return pd.DataFrame()
    at = _at_selected(df, selected)
    rows = []
    for name in SURVIVAL_FAMILIES:
        family = next(f for f in FAMILIES if f[0] == name)
        fixed = held(CELL_KEYS, family[1])
        for metric, flag in EVENTS:
            block = []
            for g, lo, hi, b, t in family_groups(at, family, fixed):
                row = pair_row(family, metric, fixed, g, lo, hi, b, t)
                e_b, e_t = b[flag].astype(bool), t[flag].astype(bool)
                m_b, m_t = km_median(b[metric], e_b), km_median(t[metric], e_t)
                last = max(b[metric].max(), t[metric].max())
                row.update(n_baseline=len(b), n_treatment=len(t))
                row.update(events_baseline=int(e_b.sum()), events_treatment=int(e_t.sum()))
                row.update(median_baseline=m_b, median_treatment=m_t)
                row["diff_median"] = np.nan_to_num(m_t, nan=last) - np.nan_to_num(m_b, nan=last)
                row["p_logrank"] = logrank(b[metric], e_b, t[metric], e_t)
                block.append(row)
            p = holm([r["p_logrank"] for r in block])
            rows += [{**r, "p_holm": q} for r, q in zip(block, p, strict=True)]
    return pd.DataFrame(rows)


def divergence(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, pair of arms): diverged runs of the whole lr sweep per arm, their
    rates, the difference (treatment - baseline) and Fisher's exact p; Holm within family."""
    df = derive(runs)
    if not trained(df):
        return pd.DataFrame()
    rows = []
    for family in FAMILIES:
        fixed = held(CELL_KEYS, family[1])
        block = []
        for g, lo, hi, b, t in family_groups(df, family, fixed):
            row = pair_row(family, "diverged", fixed, g, lo, hi, b, t)
            k_b, k_t = int(b["diverged"].sum()), int(t["diverged"].sum())
            row.update(n_baseline=len(b), n_treatment=len(t), diverged_baseline=k_b)
            row.update(diverged_treatment=k_t, rate_baseline=k_b / len(b))
            row["rate_treatment"] = k_t / len(t)
            row["diff"] = row["rate_treatment"] - row["rate_baseline"]
            table = [[k_t, len(t) - k_t], [k_b, len(b) - k_b]]
            row["p_fisher"] = float(stats.fisher_exact(table)[1])
            block.append(row)
        p = holm([r["p_fisher"] for r in block])
        rows += [{**r, "p_holm": q} for r, q in zip(block, p, strict=True)]
    return pd.DataFrame(rows)


def survival_curves(runs: pd.DataFrame, selected: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (cell, step) at the selected lr: ``reached``, the Kaplan-Meier estimate of the
    fraction of runs that reached the target validation accuracy by that step (1 - S(t); runs
    that never got there are censored at their last step), from step 0, and ``n_runs``."""
    df = derive(runs)
    if not trained(df) or "reached_target" not in df or df["reached_target"].isna().all():
        return pd.DataFrame()
    rows = []
    for cell, g in _at_selected(df, selected).groupby("cell", sort=True):
        head = {k: g[k].iloc[0] for k in (*CELL_KEYS, "lr")}
        time, event = g["steps_to_target"].to_numpy(float), g["reached_target"].astype(int)
        steps, reached = [0.0], [0.0]
        if event.sum():
            sf = SurvfuncRight(time, event.to_numpy())
            steps += list(sf.surv_times)
            reached += list(1 - sf.surv_prob)
        steps.append(float(np.nanmax(time)))
        reached.append(reached[-1])
        rows += [{**head, "cell": cell, "step": s, "reached": r, "n_runs": len(g)}
                 for s, r in zip(steps, reached, strict=True)]  # fmt: skip
    return pd.DataFrame(rows)
