"""Per-run metrics derived from the raw tables, and the registry of metrics the statistics use.

``derive`` turns ``runs.csv`` (one row per run), ``layer_gradients.csv`` (per run, probe step and
layer) and ``curves.csv`` (per run and epoch) into one row per run with every metric below. Each
metric has a *kind* that says what one seed-level value of it is (``stats.seed_values``):

- ``init``: measured at step 0, before any update. The lr and the other settings that do not
  change the network at step 0 play no part, so a seed's runs that share ``INIT_KEYS`` are
  averaged into one value (identical copies of one network).
- ``trained``: measured on the run at its cell's selected lr (best mean validation accuracy).
- ``sweep``: a property of a seed's whole lr sweep (one value per cell and seed).

Conventions:

- A diverged run counts as chance accuracy (``1 / n_classes``); its losses stay NaN.
- ``log10_grad_ratio_*`` = log10(grad_preact_rms at layer 1 / at layer ``depth``): negative when
  the gradient shrinks toward the input; ``abs_*`` is its distance from balanced flow.
- ``log10_stream_ratio_*`` = log10(grad_stream_rms at layer 1 / at layer ``depth``): in a
  residual net the gradient on the stream across blocks 2..depth, with no branch gain and no
  stem factor in it (which the layer-1/top ratio of ``grad_preact_rms`` carries: layer 1 has no
  skip and no alpha); in a plain net the gradient on the layers' outputs.
- **Censoring.** A gradient below float32's smallest normal number (``FLOAT32_TINY``, 1.2e-38;
  exactly 0 once it underflows) is not measured, only bounded. Such a ratio enters at its bound,
  log10(FLOAT32_TINY / top layer's rms), which understates the decay (``*_censored`` says so).
- A layer that did not move at all by the end (``weight_distance_rel`` 0: every update was
  rounded away) enters ``log10_distance_ratio_final`` at the bound 2^-24 / the top layer's
  relative distance (``distance_ratio_censored``).
- ``forward_c_top_init``: the correlation c_l of two probe inputs' pre-activations at the top
  hidden layer at step 0, where the layer table has the forward probe ``forward_c`` (NaN
  otherwise): near 1 the forward pass has collapsed every input onto one representation.
- ``stuck_init`` / ``stuck_final``: the probe's ``stuck`` fraction (units whose |phi'| is below
  1% of its maximum on every probe example) averaged over the hidden layers, at step 0 and at
  the last probe; one measure for every activation, where the layer table has it (NaN otherwise).
- **Times to an event** (``steps_to_target``, ``plateau_steps``) are censored at the run's last
  step when the event never happens (``reached_target`` / ``left_plateau`` false); a diverged
  run never reaches the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_EPS = 2.0**-24  # float32's relative precision: a smaller relative change is rounded away
EARLY_STEP = 64  # "early in training": the last probe at or before this step
TARGET_ACCURACY = 0.9  # default target validation accuracy of steps_to_target
PLATEAU_FRACTION = 0.9  # a run has left the plateau once its train loss < this x ln(n_classes)
WINDOW_POINTS = 0.01  # without n_val (older tables): in the lr window within this of the best
WINDOW_Z = 1.96  # with n_val: within the 95% half-width of a difference of two val accuracies
TRAINS_ABOVE_CHANCE = 0.05  # a sweep whose best val accuracy is within this of chance: window 0
RUN = ["cell", "lr", "seed"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # init | trained | sweep
    doc: str


METRICS = {
    m.name: m
    for m in (
        Metric("log10_grad_ratio_init", "init", "log10 of layer-1 / top gradient rms, step 0"),
        Metric("abs_log10_grad_ratio_init", "init", "distance from balanced flow at step 0"),
        Metric("saturation_init", "init", "saturated or dead fraction, mean over layers, step 0"),
        Metric("stuck_init", "init", "stuck fraction (|phi'| < 1% everywhere), layer mean, step 0"),
        Metric("log10_stream_ratio_init", "init", "log10 stream gradient x_1 / x_depth, step 0"),
        Metric("abs_log10_stream_ratio_init", "init", "its distance from balanced flow"),
        Metric("forward_c_top_init", "init", "top layer's c of two probe inputs, step 0"),
        Metric("final_test_accuracy", "trained", "test accuracy after training"),
        Metric("final_val_accuracy", "trained", "validation accuracy after training"),
        Metric("final_train_loss", "trained", "training loss after training"),
        Metric("log10_grad_ratio_early", "trained", f"log10 ratio, last probe <= {EARLY_STEP}"),
        Metric("abs_log10_grad_ratio_early", "trained", "distance from balanced flow, early"),
        Metric("log10_grad_ratio_final", "trained", "log10 ratio at the last probe"),
        Metric("abs_log10_grad_ratio_final", "trained", "distance from balanced flow, at the end"),
        Metric("log10_stream_ratio_final", "trained", "log10 stream gradient ratio at the end"),
        Metric("log10_distance_ratio_final", "trained", "log10 layer-1 / top distance moved"),
        Metric("unchanged_layer1_final", "trained", "fraction of layer-1 weights bitwise at init"),
        Metric("saturation_final", "trained", "saturated or dead fraction, mean over layers, end"),
        Metric("saturation_change", "trained", "saturation_final - saturation_init"),
        Metric("stuck_final", "trained", "stuck fraction, mean over layers, at the end"),
        Metric("grad_ratio_change", "trained", "log10_grad_ratio_final - log10_grad_ratio_init"),
        Metric("reset_drop", "trained", "test accuracy lost by resetting layers 1..depth//2"),
        Metric("steps_to_target", "trained", "first step with val accuracy >= target (censored)"),
        Metric("plateau_steps", "trained", "first step with train loss < 0.9 ln K (censored)"),
        Metric("lr_window", "sweep", "lrs whose val accuracy is within noise of the seed's best"),
        Metric("diverged_fraction", "sweep", "fraction of the seed's lrs that diverged"),
    )
}  # fmt: skip


def kind(metric: str) -> str:
    try:
        return METRICS[metric].kind
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(METRICS)}") from None


def as_bool(s: pd.Series) -> pd.Series:
    """A bool column, whether read as bool or as text."""
    return s.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))


def log10_positive(x) -> pd.Series:
    """log10 of x where x is positive and finite, else NaN."""
    x = pd.to_numeric(pd.Series(x), errors="coerce").astype(float)
    ok = np.isfinite(x) & (x > 0)
    return np.log10(x.where(ok, 1.0)).where(ok)


def _ends(layers: pd.DataFrame, column: str, steps: pd.Series) -> pd.DataFrame:
    """Per run: ``column`` at layer 1 (``first``) and at layer depth (``top``) at the run's
    probe step given by ``steps`` (indexed by RUN)."""
    at = layers.merge(steps.rename("at").reset_index(), on=RUN)
    at = at[at["step"] == at["at"]]
    first = at[at["layer"] == 1].set_index(RUN)[column].rename("first")
    top = at[at["layer"] == at["depth"]].set_index(RUN)[column].rename("top")
    return pd.concat([first, top], axis=1)


def _log_ratio(ends: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(log10 first / top with censoring at the float32 floor, censored flag)."""
    censored = (ends["first"] < FLOAT32_TINY) & (ends["top"] > 0)
    first = ends["first"].where(~censored, FLOAT32_TINY)
    return log10_positive(first / ends["top"]), censored


def _gradient_metrics(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run: gradient ratios at step 0, early and at the end; weight movement and saturation."""
    g = layers.groupby(RUN)["step"]
    last = g.max()
    early = layers[layers["step"] <= EARLY_STEP].groupby(RUN)["step"].max()
    out = pd.DataFrame(index=last.index)
    for name, steps in (("init", g.min()), ("early", early), ("final", last)):
        ratio, censored = _log_ratio(_ends(layers, "grad_preact_rms", steps))
        out[f"log10_grad_ratio_{name}"] = ratio
        out[f"grad_ratio_{name}_censored"] = censored
        if "grad_stream_rms" in layers:  # tables written before the stream was probed lack it
            ratio, censored = _log_ratio(_ends(layers, "grad_stream_rms", steps))
            out[f"log10_stream_ratio_{name}"] = ratio
            out[f"stream_ratio_{name}_censored"] = censored
    if "weight_distance_rel" in layers:  # tables written before weights were probed lack it
        dist = _ends(layers, "weight_distance_rel", last)
        # a layer that did not move at all moved less than float32 can register: its ratio is
        # censored at that bound (2^-24 of its size), which understates how little it moved
        still = (dist["first"] < FLOAT32_EPS) & (dist["top"] > 0)
        first = dist["first"].where(~still, FLOAT32_EPS)
        out["log10_distance_ratio_final"] = log10_positive(first / dist["top"])
        out["distance_ratio_censored"] = still
        out["unchanged_layer1_final"] = _ends(layers, "weight_unchanged", last)["first"]
    if "forward_c" in layers:  # forward probes (where the tables have them)
        out["forward_c_top_init"] = _ends(layers, "forward_c", g.min())["top"]
    sat = layers.groupby([*RUN, "step"])["saturation"].mean()
    out["saturation_init"] = sat.groupby(RUN).first()
    out["saturation_final"] = sat.groupby(RUN).last()
    if "stuck" in layers:  # tables written before the stuck probe lack it
        stuck = layers.groupby([*RUN, "step"])["stuck"].mean()
        out["stuck_init"] = stuck.groupby(RUN).first()
        out["stuck_final"] = stuck.groupby(RUN).last()
    return out


def _time_to(curves: pd.DataFrame, hit: pd.Series, name: str, flag: str) -> pd.DataFrame:
    """Per run: the first step where ``hit`` holds, or the last step (censored) with ``flag``
    false."""
    c = curves.assign(hit=hit.to_numpy())
    last = c.groupby(RUN)["step"].max()
    first = c[c["hit"]].groupby(RUN)["step"].min()
    out = pd.DataFrame({name: first.reindex(last.index), flag: first.reindex(last.index).notna()})
    out[name] = out[name].fillna(last).astype(float)
    return out


def _curve_metrics(curves: pd.DataFrame, n_classes: pd.Series, target: float) -> pd.DataFrame:
    """Per run: steps to the target validation accuracy, and steps on the initial plateau."""
    k = curves.join(n_classes, on=RUN)["n_classes"].astype(float)
    reached = _time_to(
        curves, curves["val_accuracy"] >= target, "steps_to_target", "reached_target"
    )
    below = curves["train_loss"] < PLATEAU_FRACTION * np.log(k.to_numpy())
    return reached.join(_time_to(curves, below, "plateau_steps", "left_plateau"))


def window_tolerance(best, n_val) -> np.ndarray:
    """How far below a seed's best validation accuracy a rate may fall and still be in its lr
    window: the half-width of the 95% interval of the difference of two accuracies measured on
    ``n_val`` examples each, at the best's accuracy (Agresti-Caffo: two successes and two
    failures added, so a best of 1.0 keeps a tolerance), ``WINDOW_Z`` sqrt(2 p (1 - p) / n);
    ``WINDOW_POINTS`` where ``n_val`` is unknown (NaN)."""
    n = np.asarray(n_val, dtype=float)
    p = (np.asarray(best, dtype=float) * n + 2.0) / (n + 4.0)
    tol = WINDOW_Z * np.sqrt(2.0 * p * (1.0 - p) / (n + 4.0))
    return np.where(np.isfinite(tol), tol, WINDOW_POINTS)


def _sweep_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Per run, its seed's lr-sweep properties (repeated over the seed's lrs): the number of
    rates whose validation accuracy is within noise of the seed's best (``window_tolerance``;
    0 if the best is within ``TRAINS_ABOVE_CHANCE`` of chance: it trains at no rate), and the
    diverged fraction."""
    chance = 1.0 / df["n_classes"].astype(float)
    best = df.groupby(["cell", "seed"])["final_val_accuracy"].transform("max")
    n_val = pd.to_numeric(df["n_val"], errors="coerce") if "n_val" in df else np.nan
    near = df["final_val_accuracy"] >= best - window_tolerance(best, n_val)
    trains = best > chance + TRAINS_ABOVE_CHANCE
    window = (near & trains).groupby([df["cell"], df["seed"]]).transform("sum")
    diverged = df["diverged"].groupby([df["cell"], df["seed"]]).transform("mean")
    return pd.DataFrame({"lr_window": window.astype(float), "diverged_fraction": diverged})


def derive(
    runs: pd.DataFrame,
    layers: pd.DataFrame | None = None,
    curves: pd.DataFrame | None = None,
    target: float = TARGET_ACCURACY,
) -> pd.DataFrame:
    """A copy of ``runs`` with every metric of ``METRICS`` (those that need ``layers`` or
    ``curves`` only when given; NaN otherwise). Idempotent: a derived table is returned as is."""
    if "abs_log10_grad_ratio_init" in runs.columns:
        return runs
    out = runs.copy()
    for col in ("residual", "diverged"):
        out[col] = as_bool(out[col])
    chance = 1.0 / out["n_classes"].astype(float)
    for col in ("final_test_accuracy", "final_val_accuracy"):
        out[col] = out[col].astype(float).where(~out["diverged"], chance)
    out["log10_grad_ratio_init"] = log10_positive(out["grad_ratio_init"]).to_numpy()
    out["grad_ratio_init_censored"] = False
    idx = pd.MultiIndex.from_frame(out[RUN])
    if layers is not None and len(layers):
        extra = _gradient_metrics(layers).reindex(idx)
        for col in extra.columns:
            out[col] = extra[col].to_numpy()
    if curves is not None and len(curves):
        n_classes = out.set_index(RUN)["n_classes"]
        extra = _curve_metrics(curves, n_classes, target).reindex(idx)
        for col in extra.columns:
            out[col] = extra[col].to_numpy()
    for name in ("init", "early", "final"):
        if f"log10_grad_ratio_{name}" in out:
            out[f"abs_log10_grad_ratio_{name}"] = out[f"log10_grad_ratio_{name}"].abs()
    if "log10_stream_ratio_init" in out:
        out["abs_log10_stream_ratio_init"] = out["log10_stream_ratio_init"].abs()
    if "reset_test_accuracy" in out:
        out["reset_drop"] = out["final_test_accuracy"] - out["reset_test_accuracy"].astype(float)
    if "saturation_final" in out:
        out["saturation_change"] = out["saturation_final"] - out["saturation_init"]
    if "log10_grad_ratio_final" in out:
        out["grad_ratio_change"] = out["log10_grad_ratio_final"] - out["log10_grad_ratio_init"]
    out = pd.concat([out, _sweep_metrics(out)], axis=1)
    for m in METRICS:
        if m not in out:
            out[m] = np.nan
    return out
