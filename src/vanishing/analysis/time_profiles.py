"""The recurrent nets' gradient through time: per run, how fast log10 ||dL/dh_t|| falls from the
loss (step T) back to the information (step 8, ``sequences.WINDOW``), theory's prediction
beside it, and across T whether that fall is exponential or a power law in the distance.

Torch-free. Reads ``layer_gradients`` (for a recurrent net ``layer`` is the time step t and
``grad_preact_rms`` the state's gradient, see ``training/probes_time.py``) and ``runs``.

- ``time_runs``: one row per recurrent run and stage (``init``: step 0; ``final``: the last
  probe), with ``time_slope`` (OLS slope of log10 grad_preact_rms on t over t = 8..T, decades
  per step: above 0 the gradient shrinks going back in time), ``log10_grad_ratio_time``
  (log10 of the rms at step 8 over that at step T, below 0 when it vanishes) and
  ``ratio_censored`` (the rms at step 8 underflowed float32: the ratio is then the bound
  log10(FLOAT32_TINY / rms_T), and the true ratio is below it), ``predicted_slope`` and
  ``predicted_log10_ratio`` (``predicted_factors``), and the run's final test accuracy and
  chance level.
- ``time_fits``: per group of the settings that fix the net at step 0 other than seq_len,
  ``decay.fit_shapes`` of the step-0 log10 ratio against the distance d = T - 8: the J tests
  of an exponential (linear in d) against a power law (linear in log10 d). Censored ratios are
  left out and counted.

Theory (computed from the settings alone, never the run's data): per blank step after the
window, the factor chi_t by which the squared gradient norm shrinks going one step back.
Elman nets: mean-field (Poole et al. 2016; Chen, Pennington & Schoenholz 2018 for recurrent
nets), chi_t = sigma_w2 E[phi'(a)^2] with a ~ N(0, q_t) and q_{t+1} = sigma_w2 E[phi(a)^2] +
sigma_b2 + the input's variance (0 for cmudict's blank steps, E[v^2] / D = 1/6 for adding's
distractors), from q = 1 at the window's end. IRNN (identity W, relu): 1 exactly while the input
is 0 (h_t = relu(h_{t-1}) = h_{t-1}, h >= 0), so predicted only for cmudict. Gated nets: the
Jacobian at the zero state (the state a blank input lets decay), squared-norm factor
GRU: E[z]^2 + E[(1 - z) r]^2 sigma_w2 = 1/4 + sigma_w2 / 16 (z = r = sigmoid(0));
LSTM: sigmoid(1)^2 + (i o)^2 sigma_w2 = 0.534 + sigma_w2 / 16 (forget bias 1, i = o = 1/2);
exact at the zero state, approximate while the state is not yet 0 (adding's inputs keep it
away from 0, so these two are not predicted there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.special import expit

from vanishing.analysis.decay import fit_shapes
from vanishing.analysis.metrics import FLOAT32_TINY
from vanishing.analysis.theory import chi, variance_map
from vanishing.inits import resolve_init
from vanishing.recurrent import RECURRENT
from vanishing.settings import CELL_KEYS, INIT_KEYS
from vanishing.training.sequences import CHANCE, WINDOW

INPUT_VARIANCE = {"cmudict": 0.0, "adding": 1.0 / 6.0}  # per unit, on a blank step
STAGES = ("init", "final")
RUN_COLUMNS = ("stage", "step", "time_slope", "log10_grad_ratio_time", "ratio_censored",
               "predicted_slope", "predicted_log10_ratio", "final_val_accuracy",
               "final_test_accuracy", "chance")  # fmt: skip


def _scale(value, default: float) -> float:
    return default if value in (None, "auto") or pd.isna(value) else float(value)


def predicted_factors(arch, activation, init, sigma_w2, sigma_b2, data, seq_len) -> np.ndarray:
    """chi_t for the blank steps t = 9..T (see the module's docstring), (T - 8,); NaN where
    theory gives no prediction."""
    n = int(seq_len) - WINDOW
    nan = np.full(n, np.nan)
    scheme = init if init == "identity" else resolve_init(init, activation)
    # Var(W) * H: the scheme's for a square H x H matrix, or the given sigma_w2 (a gain^2 on a
    # structured matrix); orthogonal and identity have second moment 1 / H
    base = {"xavier": 1.0, "lecun": 1.0, "kaiming": 2.0, "pytorch": 1.0 / 3.0}.get(scheme, 1.0)
    sw2, sb2 = _scale(sigma_w2, base), _scale(sigma_b2, 0.0)
    if arch == "gru":
        return nan if data != "cmudict" else np.full(n, 0.25 + sw2 / 16.0)
    if arch == "lstm":
        return nan if data != "cmudict" else np.full(n, expit(1.0) ** 2 + sw2 / 16.0)
    if scheme == "identity":
        return np.full(n, sw2) if activation == "relu" and data == "cmudict" else nan
    q, out = 1.0, []
    for _ in range(n):
        out.append(chi(activation, q, sw2))
        q = variance_map(activation, q, sw2, sb2 + INPUT_VARIANCE[data])
    return np.asarray(out)


def _fit(t: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return np.nan
    return float(sm.OLS(y[ok], sm.add_constant(t[ok])).fit().params[1])


def _profile_row(g: pd.DataFrame) -> dict:
    """time_slope, the ratio and its censoring from one run's profile at one step."""
    g = g.sort_values("layer")
    t, rms = g["layer"].to_numpy(float), g["grad_preact_rms"].to_numpy(float)
    seq_len = int(t.max())
    tail = t >= WINDOW
    with np.errstate(divide="ignore"):
        logs = np.where(rms > 0, np.log10(rms), np.nan)
    top, at_window = rms[-1], rms[t == WINDOW][0] if (t == WINDOW).any() else np.nan
    censored = bool(at_window == 0 and top > 0)
    ratio = np.log10(max(at_window, FLOAT32_TINY) / top) if top > 0 else np.nan
    return dict(time_slope=_fit(t[tail], logs[tail]), log10_grad_ratio_time=ratio,
                ratio_censored=censored, seq_len=seq_len)  # fmt: skip


def time_runs(runs: pd.DataFrame, layers: pd.DataFrame | None) -> pd.DataFrame:
    """One row per recurrent run and stage (``RUN_COLUMNS`` after the settings and seed)."""
    cols = [*CELL_KEYS, "lr", "seed", "cell", *RUN_COLUMNS]
    if layers is None or "arch" not in runs or not runs["arch"].isin(RECURRENT).any():
        return pd.DataFrame(columns=cols)
    rec = runs[runs["arch"].isin(RECURRENT)]
    lay = layers[layers["cell"].isin(set(rec["cell"]))]
    rows = []
    for (cell, lr, seed), g in lay.groupby(["cell", "lr", "seed"], sort=True):
        run = rec[(rec["cell"] == cell) & (rec["lr"] == lr) & (rec["seed"] == seed)].iloc[0]
        chis = predicted_factors(run["arch"], run["activation"], run["init"], run["sigma_w2"],
                                 run["sigma_b2"], run["data"], run["seq_len"])  # fmt: skip
        theory = dict(predicted_slope=-0.5 * np.log10(chis).mean(),
                      predicted_log10_ratio=0.5 * np.log10(chis).sum())  # fmt: skip
        steps = sorted(g["step"].unique())
        for stage, step in zip(STAGES, (steps[0], steps[-1]), strict=True):
            if stage == "final" and step == steps[0]:
                continue  # a profile at init: nothing trained
            row = {k: run[k] for k in CELL_KEYS if k in run}
            row.update(lr=lr, seed=seed, cell=cell, stage=stage, step=int(step), **theory)
            row.update(_profile_row(g[g["step"] == step]))
            row.update(
                {k: run.get(k, np.nan) for k in ("final_val_accuracy", "final_test_accuracy")}
            )
            row["chance"] = CHANCE.get(run["data"], np.nan)
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)


FIT_GROUP = tuple(k for k in INIT_KEYS if k not in ("seq_len", "depth"))


def time_fits(table: pd.DataFrame) -> pd.DataFrame:
    """Per group of ``FIT_GROUP`` at step 0: ``fit_shapes`` of log10_grad_ratio_time against
    d = T - 8 (its ``depth_*`` columns are then distances in steps), seeds averaged over lrs
    (the same network), censored ratios left out; with the predicted decades per step."""
    cols = [*FIT_GROUP, "n_censored", "predicted_slope", "n_obs", "depth_min", "depth_max",
            "exp_slope", "exp_r2", "pow_exponent", "pow_r2", "p_reject_exponential",
            "p_reject_power", "shape"]  # fmt: skip
    init = table[table["stage"] == "init"] if len(table) else table
    if not len(init):
        return pd.DataFrame(columns=cols)
    keys = [*FIT_GROUP, "seq_len", "seed"]
    per_seed = init.groupby(keys, dropna=False, sort=True).agg(
        value=("log10_grad_ratio_time", "mean"), censored=("ratio_censored", "max"),
        predicted_slope=("predicted_slope", "first"))  # fmt: skip
    per_seed = per_seed.reset_index()
    rows = []
    for key, g in per_seed.groupby(list(FIT_GROUP), dropna=False, sort=True):
        kept = g[~g["censored"].astype(bool)]
        fit = fit_shapes(kept["seq_len"] - WINDOW, kept["value"])
        rows.append({**dict(zip(FIT_GROUP, key, strict=True)), **fit,
                     "n_censored": int(g["censored"].astype(bool).sum()),
                     "predicted_slope": g["predicted_slope"].mean(), "n_obs": len(kept),
                     "depth_min": kept["seq_len"].min() - WINDOW,
                     "depth_max": kept["seq_len"].max() - WINDOW})  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


PANEL_KEYS = ("arch", "activation", "init", "sigma_w2")


def time_profile_means(layers: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds (and lrs, at step 0: the same nets) of log10 grad_preact_rms per
    recurrent cell, stage and time step t (``layer``); steps that underflowed (rms 0) are left
    out of the mean and counted in ``n_censored``. Columns: ``PANEL_KEYS``, seq_len, stage, t,
    log10_rms, n_censored."""
    cols = [*PANEL_KEYS, "seq_len", "stage", "t", "log10_rms", "n_censored"]
    rec = runs[runs["arch"].isin(RECURRENT)] if "arch" in runs else runs.iloc[:0]
    lay = layers[layers["cell"].isin(set(rec["cell"]))]
    if lay.empty:
        return pd.DataFrame(columns=cols)
    first = lay.groupby("cell")["step"].transform("min")
    last = lay.groupby("cell")["step"].transform("max")
    lay = lay.assign(stage=np.where(lay["step"] == first, "init",
                                    np.where(lay["step"] == last, "final", "")))  # fmt: skip
    lay = lay[lay["stage"] != ""]
    settings = rec.drop_duplicates("cell")[["cell", *PANEL_KEYS, "seq_len"]]
    lay = lay.drop(columns=[c for c in (*PANEL_KEYS, "seq_len") if c in lay]).merge(settings)
    rms = lay["grad_preact_rms"].astype(float)
    lay = lay.assign(log10_rms=np.log10(rms.where(rms > 0)), zero=rms == 0)
    keys = [*PANEL_KEYS, "seq_len", "stage", "layer"]
    out = lay.groupby(keys, dropna=False).agg(log10_rms=("log10_rms", "mean"),
                                              n_censored=("zero", "sum"))  # fmt: skip
    return out.reset_index().rename(columns={"layer": "t"})[cols]
