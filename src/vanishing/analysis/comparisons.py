"""Two-arm comparisons between architectures, with effect sizes, p-values and Holm families.

Arms are independent samples across seeds: seed ``s`` of a residual net and seed ``s`` of a plain
net share nothing but a number, so nothing is paired. Each comparison holds every other setting
of the metric's unit (``stats.unit_keys``) fixed and reports treatment minus baseline.

A *family* is one comparison type x one metric; Holm's step-down correction runs within it.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln
from statsmodels.stats.multitest import multipletests

from vanishing.activations import RECTIFYING, SATURATING
from vanishing.analysis.metrics import derive, kind
from vanishing.analysis.stats import LEVEL, seed_values, select_lr, summarize, unit_keys
from vanishing.settings import BY_NAME, CELL_KEYS

# (family, factor, baseline level, treatment levels; None = every other level in the data).
# The depth family compares each group's deepest net with its shallowest one. The activation
# families come from the activation registry: every saturating activation is a baseline that
# every rectifying one is compared with (a new activation joins them by its registry entry).
FAMILIES = (
    ("residual_vs_plain", "residual", False, (True,)),
    ("norm_vs_none", "norm", "none", ("batch", "layer")),
    *((f"activation_vs_{s}", "activation", s, RECTIFYING) for s in SATURATING),
    ("deepest_vs_shallowest", "depth", None, None),
)
METRICS = (
    "final_test_accuracy",
    "final_train_loss",
    "log10_grad_ratio_init",
    "abs_log10_grad_ratio_init",
    "abs_log10_grad_ratio_early",
    "log10_grad_ratio_final",
    "abs_log10_grad_ratio_final",
    "saturation_final",
    "stuck_final",
    "lr_window",
    "log10_distance_ratio_final",
    "unchanged_layer1_final",
)
# metrics that can be censored, with the flag that says so (metrics.derive): a censored value is
# a bound (the truth is below it), so these are tested by ranks, censored values tied at the bottom
CENSORED = {"log10_distance_ratio_final": "distance_ratio_censored"}
BOTTOM = -1e9  # below every log10 ratio a float can give: a censored value's rank
COLUMNS = (
    "family", "metric", "factor", "baseline", "treatment", *CELL_KEYS,
    "init_scheme_baseline", "init_scheme_treatment", "n_baseline", "n_treatment",
    "mean_baseline", "mean_treatment", "diff", "diff_ci_low", "diff_ci_high", "hedges_g",
    "p_welch", "p_perm", "n_censored_baseline", "n_censored_treatment", "p_rank", "p_holm",
    "p_holm_perm", "untestable",
)  # fmt: skip
EXACT_LIMIT = 50_000  # distinct splits up to which the permutation test enumerates them all


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def hedges_g(baseline, treatment) -> float:
    """Standardised mean difference (treatment - baseline) / pooled sd, times the exact
    small-sample correction J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)), df = n1 + n2 - 2.

    NaN with fewer than two values in an arm or when both arms have zero spread.
    """
    b, t = _finite(baseline), _finite(treatment)
    if len(b) < 2 or len(t) < 2:
        return np.nan
    if np.ptp(b) == 0 and np.ptp(t) == 0:  # exact test: var() of equal floats can be 1e-35
        return np.nan
    df = len(b) + len(t) - 2
    pooled = ((len(b) - 1) * b.var(ddof=1) + (len(t) - 1) * t.var(ddof=1)) / df
    j = math.exp(gammaln(df / 2) - gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return j * (t.mean() - b.mean()) / math.sqrt(pooled)


def permutation_p(baseline, treatment, rng: np.random.Generator) -> float:
    """Two-sided permutation p for the difference of means, arms exchanged as independent groups.

    Exact (every split enumerated) while there are at most ``EXACT_LIMIT`` splits, e.g. 2/20 for
    two fully separated arms of three; otherwise 9999 random splits drawn with ``rng``. NaN with
    fewer than two values in an arm.
    """
    b, t = _finite(baseline), _finite(treatment)
    if len(b) < 2 or len(t) < 2:  # one value per arm: nothing to permute
        return np.nan
    exact = math.comb(len(b) + len(t), len(t)) <= EXACT_LIMIT
    res = stats.permutation_test(
        (t, b),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        permutation_type="independent",
        vectorized=True,
        n_resamples=np.inf if exact else 9999,
        alternative="two-sided",
        rng=rng,
    )
    return float(res.pvalue)


def compare_two(baseline, treatment, rng: np.random.Generator, level: float = LEVEL) -> dict:
    """Difference of means (treatment - baseline) with its Welch interval, Hedges' g, the Welch
    t-test p and the permutation p. Non-finite values are dropped.

    When both arms have zero spread the Welch test and interval are undefined: they, and g, are
    NaN, and the permutation p still says whether the two constants differ.
    """
    b, t = _finite(baseline), _finite(treatment)
    out = dict(n_baseline=len(b), n_treatment=len(t))
    out["mean_baseline"] = b.mean() if len(b) else np.nan
    out["mean_treatment"] = t.mean() if len(t) else np.nan
    out["diff"] = out["mean_treatment"] - out["mean_baseline"]
    out.update(diff_ci_low=np.nan, diff_ci_high=np.nan, p_welch=np.nan)
    if len(b) >= 2 and len(t) >= 2 and (np.ptp(b) > 0 or np.ptp(t) > 0):
        res = stats.ttest_ind(t, b, equal_var=False)
        ci = res.confidence_interval(level)
        out.update(diff_ci_low=float(ci.low), diff_ci_high=float(ci.high))
        out["p_welch"] = float(res.pvalue)
    out["hedges_g"] = hedges_g(b, t)
    out["p_perm"] = permutation_p(b, t, rng)
    out["untestable"] = untestable(b, t)
    return out


def rank_p(baseline, treatment, rng: np.random.Generator) -> float:
    """Two-sided exact permutation p of the rank-sum (Wilcoxon-Mann-Whitney) statistic, ties
    given mid-ranks. With censored values entered at ``BOTTOM`` (all tied below every observed
    value) it is a valid test for data censored at a common bound; two fully censored arms tie
    completely and get p = 1. NaN with fewer than two values in an arm."""
    b, t = _finite(baseline), _finite(treatment)
    if len(b) < 2 or len(t) < 2:
        return np.nan
    ranks = stats.rankdata(np.concatenate([b, t]))
    if np.ptp(ranks) == 0:
        return 1.0
    return permutation_p(ranks[: len(b)], ranks[len(b) :], rng)


def censored_values(df: pd.DataFrame, metric: str, selected) -> pd.DataFrame:
    """``seed_values`` of a censored metric with ``value`` at the bound (as derive enters it),
    ``ranked`` (censored ones at ``BOTTOM``) and ``censored`` (bool)."""
    flag = df[CENSORED[metric]].map(lambda v: str(v).lower() in ("true", "1", "1.0"))
    values = seed_values(df, metric, selected)
    ranked = seed_values(df.assign(**{metric: df[metric].where(~flag, BOTTOM)}), metric, selected)
    return values.assign(ranked=ranked["value"].to_numpy(),
                         censored=(ranked["value"] == BOTTOM).to_numpy())  # fmt: skip


def untestable(b: np.ndarray, t: np.ndarray) -> str:
    """Why two arms (finite values) get no test, or '' when they do."""
    if len(b) == 0 or len(t) == 0:
        return "an arm has no finite value"
    if len(b) < 2 or len(t) < 2:
        return "one seed in an arm: no interval and no test"
    if np.ptp(b) == 0 and np.ptp(t) == 0:
        return "both arms constant: no Welch test (permutation only)"
    return ""


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and do not count in the family."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        # statsmodels' Holm branch calls gc.collect() on every call (~0.05-0.1 s with pandas and
        # scipy loaded, once per family); freezing the heap around it makes that collection free.
        gc.freeze()
        try:
            out[ok] = multipletests(p[ok], method="holm")[1]
        finally:
            gc.unfreeze()
    return out


def _levels(values: pd.Series, base, treats) -> tuple[object, list]:
    present = list(pd.unique(values))
    if base is None:  # depth: shallowest against deepest
        return min(present), [max(present)] if len(present) > 1 else []
    if base not in present:
        return base, []
    treats = [x for x in present if x != base] if treats is None else treats
    return base, [x for x in treats if x in present]


def held(keys, factor: str) -> list[str]:
    """The settings a comparison of ``factor``'s levels holds fixed: ``keys`` but the factor and
    the settings that apply only with it (a residual branch's gain, comparing residual nets
    with plain ones)."""
    return [k for k in keys if k != factor and BY_NAME[k].only_if != factor]


def family_groups(values: pd.DataFrame, family: tuple, fixed: list[str]):
    """(group, baseline level, treatment level, baseline arm, treatment arm) for each pair of
    arms of ``family`` in ``values`` that agree on every setting of ``fixed``."""
    _, factor, base, treats = family
    for _, g in values.groupby(fixed, sort=True, dropna=False):
        lo, his = _levels(g[factor], base, treats)
        for hi in his:
            yield g, lo, hi, g[g[factor] == lo], g[g[factor] == hi]


def pair_row(family: tuple, metric: str, fixed: list[str], g, lo, hi, arm_b, arm_t) -> dict:
    """The identifying columns of one comparison: family, metric, levels, held settings."""
    name, factor, _, _ = family
    row = dict(family=name, metric=metric, factor=factor, baseline=str(lo), treatment=str(hi))
    row.update({k: (g[k].iloc[0] if k in fixed else np.nan) for k in CELL_KEYS})
    for k in CELL_KEYS:  # a setting that applies only with the factor: the treatment's value
        if BY_NAME[k].only_if == factor and k in arm_t:
            row[k] = arm_t[k].iloc[0]
    row["init_scheme_baseline"] = arm_b["init_scheme"].iloc[0]
    row["init_scheme_treatment"] = arm_t["init_scheme"].iloc[0]
    return row


def family_rows(
    values: pd.DataFrame, metric: str, family: tuple, rng: np.random.Generator
) -> list[dict]:
    """Comparisons of one family on one metric's seed-level ``values`` (``stats.seed_values``)."""
    fixed = held(unit_keys(metric), family[1])
    rows = []
    for g, lo, hi, arm_b, arm_t in family_groups(values, family, fixed):
        row = pair_row(family, metric, fixed, g, lo, hi, arm_b, arm_t)
        row.update(compare_two(arm_b["value"], arm_t["value"], rng))
        if "censored" in values:
            row.update(n_censored_baseline=int(arm_b["censored"].sum()),
                       n_censored_treatment=int(arm_t["censored"].sum()),
                       p_rank=rank_p(arm_b["ranked"], arm_t["ranked"], rng))  # fmt: skip
        rows.append(row)
    return rows


def trained(runs: pd.DataFrame) -> bool:
    """Whether any run of the table trained (a profile at init has epochs 0)."""
    return bool((pd.to_numeric(runs["epochs"], errors="coerce") > 0).any())


def comparisons(
    runs: pd.DataFrame, rng: np.random.Generator, selected: pd.DataFrame | None = None
) -> pd.DataFrame:
    """All families (``FAMILIES``) on all metrics (``METRICS``) as one long table (``COLUMNS``).

    ``runs``: the per-run table of ``metrics.derive``. Trained metrics are read at each cell's
    selected lr (accuracy: chance for diverged runs), init metrics deduplicated across lrs,
    sweep metrics one per cell and seed; a table of profiles at init (epochs 0) gets the init
    metrics only. Settings not held fixed are NaN. A censored metric (``CENSORED``) also gets
    each arm's censored count and ``p_rank``, the rank test valid for it. ``p_holm`` adjusts
    ``p_rank`` (where there is one; else ``p_welch``, falling back to ``p_perm`` where Welch is
    undefined) within each family and metric; ``p_holm_perm`` adjusts ``p_perm``.
    """
    df = derive(runs)
    selected = select_lr(summarize(df)) if selected is None else selected
    rows = []
    for metric in METRICS:
        if kind(metric) != "init" and not trained(df):
            continue
        censored = metric in CENSORED and CENSORED[metric] in df
        values = censored_values(df, metric, selected) if censored else seed_values(
            df, metric, selected)  # fmt: skip
        for family in FAMILIES:
            rows += family_rows(values, metric, family, rng)
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if not c.startswith("p_holm")])
    out["untestable"] = out["untestable"].fillna("")
    primary = out["p_rank"].fillna(out["p_welch"]).fillna(out["p_perm"])
    out["p_holm"] = primary.groupby([out["family"], out["metric"]]).transform(holm)
    out["p_holm_perm"] = out["p_perm"].groupby([out["family"], out["metric"]]).transform(holm)
    return out[list(COLUMNS)]
