"""How the gradient at layer 1 falls with depth: exponential or power law, and where float32 stops.

Exponential decay (each layer multiplies the gradient by the same factor) makes log10 of the
layer-1 / top ratio linear in depth; a power law makes it linear in log10(depth). Mean-field
theory gives both: sigmoid with Xavier init decays exponentially (phi' <= 1/4), tanh with Xavier
init (sigma_w2 = 1, no bias: the critical point) as a power law. The two models are not nested,
so each is tested against the other with the J test of Davidson & MacKinnon (1981)
(``statsmodels.stats.diagnostic.compare_j``): a model is rejected when the other's fitted values
add to it. Censored ratios (below float32's range, ``metrics.FLOAT32_TINY``) carry no shape and
are left out of the fits; they are counted.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.diagnostic import compare_j

from vanishing.analysis.metrics import derive
from vanishing.analysis.stats import seed_values
from vanishing.settings import INIT_KEYS

ALPHA = 0.05
MIN_DEPTHS = 3  # distinct depths a shape needs
SHAPES = ("exponential", "power law", "neither", "indistinguishable")
COLUMNS = (
    "init_scheme", "n_obs", "n_depths", "n_censored", "depth_min", "depth_max",
    "exp_intercept", "exp_slope", "exp_r2", "pow_intercept", "pow_exponent", "pow_r2",
    "p_reject_exponential", "p_reject_power",
    "shape",
)  # fmt: skip


def shape(p_reject_exponential: float, p_reject_power: float, alpha: float = ALPHA) -> str:
    """The verdict of the two J tests: the model that survives while the other is rejected;
    ``neither`` when both are rejected, ``indistinguishable`` when neither is; '' untested."""
    if not (np.isfinite(p_reject_exponential) and np.isfinite(p_reject_power)):
        return ""
    exp_ok, pow_ok = p_reject_exponential >= alpha, p_reject_power >= alpha
    if exp_ok and not pow_ok:
        return "exponential"
    if pow_ok and not exp_ok:
        return "power law"
    return "indistinguishable" if exp_ok else "neither"


def fit_shapes(depth, value) -> dict:
    """OLS of ``value`` (log10 ratio) on depth and on log10(depth), and the J tests both ways.

    ``exp_slope`` is decades per layer; ``pow_exponent`` the exponent b of ratio ~ depth^b.
    """
    d, y = np.asarray(depth, dtype=float), np.asarray(value, dtype=float)
    out = dict(exp_intercept=np.nan, exp_slope=np.nan, exp_r2=np.nan, pow_intercept=np.nan,
               pow_exponent=np.nan, pow_r2=np.nan)  # fmt: skip
    out.update(p_reject_exponential=np.nan, p_reject_power=np.nan)
    if len(np.unique(d)) < MIN_DEPTHS or len(y) < MIN_DEPTHS + 2 or np.ptp(y) == 0:
        return {**out, "shape": ""}
    exp = sm.OLS(y, sm.add_constant(d)).fit()
    pow_ = sm.OLS(y, sm.add_constant(np.log10(d))).fit()
    out.update(exp_intercept=exp.params[0], exp_slope=exp.params[1], exp_r2=exp.rsquared)
    out.update(pow_intercept=pow_.params[0], pow_exponent=pow_.params[1], pow_r2=pow_.rsquared)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a perfect fit gives a zero residual variance
        # compare_j(x, z) adds x's fitted values to z: its p rejects z
        p_exp = compare_j(pow_, exp, result_object=True).pvalue
        p_pow = compare_j(exp, pow_, result_object=True).pvalue
    out.update(p_reject_exponential=float(p_exp), p_reject_power=float(p_pow))
    return {**out, "shape": shape(out["p_reject_exponential"], out["p_reject_power"])}


def decay_fits(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group of ``INIT_KEYS`` other than depth: the two shapes fitted to seed-level
    ``log10_grad_ratio_init`` across depths, censored values left out (``COLUMNS``)."""
    df = derive(runs)
    censored = df["grad_ratio_init_censored"].astype(bool)
    values = seed_values(df[~censored], "log10_grad_ratio_init").dropna(subset=["value"])
    lost = seed_values(df[censored], "log10_grad_ratio_init") if censored.any() else None
    keys = [k for k in INIT_KEYS if k != "depth"]
    rows = []
    for key, g in values.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        n_cens = 0
        if lost is not None:
            match = np.ones(len(lost), dtype=bool)
            for k, v in row.items():
                match &= (lost[k] == v).to_numpy() | (pd.isna(v) & lost[k].isna()).to_numpy()
            n_cens = int(match.sum())
        row.update(init_scheme=g["init_scheme"].iloc[0], n_obs=len(g), n_censored=n_cens)
        row.update(n_depths=g["depth"].nunique(), depth_min=g["depth"].min())
        row["depth_max"] = g["depth"].max()
        row.update(fit_shapes(g["depth"], g["value"]))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *COLUMNS])
