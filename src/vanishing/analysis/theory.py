"""Mean-field predictions of grad_preact_rms across layers at initialisation, without torch.

The model (``vanishing.models``): h_l = W_l x_{l-1} + b_l, a_l = norm(h_l), x_l = phi(a_l), or
x_l = x_{l-1} + phi(a_l) for l >= 2 with a residual skip. In the wide limit every unit of h_l is
Gaussian across units, and with gradient independence (Schoenholz et al. 2017) the squared
gradient norms obey a product of per-layer factors:

    E||dL/dh_l||^2 = k_l * a_l * G_l,        G_{l-1} = G_l * (r_l + sigma_w2_l * k_l * a_l)

with G_l = E||dL/dx_l||^2, a_l = E[phi'(u_l)^2] (u_l the activation's input), k_l = 1/s_l^2 the
norm's Jacobian gain (s_l: the std the norm divides by; k = 1 without a norm) and r_l = 1 across a
skip, else 0. Plain nets without a norm reduce to chi_l = sigma_w2 * E[phi'(h_l)^2] (Poole et al.
2016). The forward pass fixes u_l and s_l:

- none:  u_l ~ N(0, q_l), q_l = sigma_w2 p_{l-1} + sigma_b2 with p = E[x^2] (E[phi^2], not Var).
- layer: u_l ~ N(0, 1); s_l^2 = q_l, the spread of h_l across units of one example. The mean of
  phi does not cancel: the random weights mix x's mean into every unit's variance.
- batch: u_l ~ N(0, 1); s_l^2 = sigma_w2 v_{l-1}, with v = Var of one unit of x over the batch.
  This is the large-batch limit of Yang et al. (2019); for ReLU a plain net gives
  E[phi'^2] / Var(phi) = pi / (pi - 1) per layer. Finite batches (B) shift it by O(1/B): the
  backward projection removes the batch mean and the z direction, and 1/s^2 fluctuates.

Inputs: each probe example runs through the maps with its own second moment (mean of x^2 over
features, the table ``probe_inputs``) and the predicted squared gradient norms are averaged over
examples, as the probe averages them (``predicted_profile``); batch norm uses the mean. Further
approximations: the O(1/width) projections of layer norm are dropped. With a skip, x accumulates:
p, the mean over units and v are carried forward (the block's output is independent of x_{l-1}
per unit).

Where the measurements part from these predictions, and why, is in ``docs/theory.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special, stats

from vanishing import activations
from vanishing.analysis import blocks
from vanishing.config import branch_gain
from vanishing.inits import bias_variance, resolve_init, resolve_sigma_w2, sigma_w2
from vanishing.meanfield import (  # noqa: F401 (the quadrature, maps and scales, re-exported)
    N_QUAD,
    chi,
    chi_at_fixed_point,
    fixed_point,
    gauss_expect,
    moments,
    q_star,
    solve_sigma_w2,
    variance_map,
    xi_c,
)
from vanishing.settings import DEFAULT_BLOCK, FIXUP, INIT_KEYS, NORMS, parse_scale, parse_sigma_w2

FLAT = 1e-9  # |predicted slope| below this is flat: no relative error
# A group is one network at step 0: every setting that changes it, with the concrete init scheme
# in place of the configured one (init: auto and init: xavier give a sigmoid net the same init).
GROUP = tuple("init_scheme" if k == "init" else k for k in INIT_KEYS)
THEORY = {"none": "mean-field", "batch": "batchnorm-yang2019", "layer": "layernorm"}
STATS_COLUMNS = (
    "n_seeds",
    "ceiling_slope",
    "predicted_log10_ratio",
    "predicted_slope",
    "measured_slope",
    "measured_slope_ci_low",
    "measured_slope_ci_high",
    "relative_error",
    "theory",
)
TABLE_COLUMNS = (*GROUP, *STATS_COLUMNS)  # of theory.csv
PROFILE_COLUMNS = (*GROUP, "layer", "predicted_log10_rms", "measured_log10_rms")


def batchnorm_chi(activation: str) -> float:
    """Large-batch per-layer factor of a plain batch-norm net: E[phi'(z)^2] / Var(phi(z)), z~N(0,1).

    Independent of the weight scale (batch norm divides it out); pi / (pi - 1) for ReLU.
    """
    m1, m2, d2 = moments(activation, 1.0)
    return d2 / (m2 - m1**2)


def layernorm_chi(activation: str, sw2: float, sb2: float) -> float:
    """Per-layer factor of a plain layer-norm net: sw2 E[phi'(z)^2] / (sw2 E[phi(z)^2] + sb2)."""
    _, m2, d2 = moments(activation, 1.0)
    return sw2 * d2 / (sw2 * m2 + sb2)


def _layer_scales(init_scheme, depth, width, input_dim, sw2="auto", sb2="auto", activation=None):
    """Per-layer (sigma_w2, sigma_b2) arrays (depth,): layer 1 maps input_dim -> width. The
    settings ``sw2`` and ``sb2`` (numbers, ``auto``, or for sw2 a named point solved for
    ``activation``) override the scheme's as the model draws them (``inits``)."""
    fans = [input_dim] + [width] * (depth - 1)
    sb2 = parse_scale(sb2)
    w = resolve_sigma_w2(parse_sigma_w2(sw2), activation, bias_variance(init_scheme, width, sb2))
    sw2 = np.array([sigma_w2(init_scheme, f, width, w) for f in fans])
    sb2 = np.array([bias_variance(init_scheme, f, sb2) for f in fans])
    return sw2, sb2


def _norm_gain(norm: str, q: float, batch_var: float) -> float:
    """1 / s^2: none 1, layer 1 / (spread of h across units), batch 1 / (variance over batch)."""
    if norm == "none":
        return 1.0
    return 1.0 / (q if norm == "layer" else batch_var)


def _forward(activation, norm, residual, sw2, sb2, m0, alpha=1.0):
    """Per-layer (a_l, k_l, c_l) arrays (depth, n): E[phi'(u_l)^2], the norm's gain 1 / s_l^2
    and the coherent mode's factor (``blocks.coherent_gain``; 1 with a norm or without a skip),
    for n inputs whose second moments (mean of x^2 over features) are m0 (n,); a skip adds
    alpha * phi(a_l) (the ``branch_act`` block)."""
    depth = len(sw2)
    a, k = np.empty((depth, len(m0))), np.empty((depth, len(m0)))
    c = np.ones((depth, len(m0)))
    # of x_{l-1}: E[x^2], mean over units, variance over the batch (inputs are standardised)
    p, mu, v = m0, np.zeros_like(m0), m0
    for i in range(depth):
        q = sw2[i] * p + sb2[i]
        k[i] = _norm_gain(norm, q, sw2[i] * v)
        if residual and i > 0 and norm == "none":
            c[i] = blocks.coherent_gain(activation, q, mu, sw2[i], alpha)
        m1, m2, a[i] = moments(activation, q if norm == "none" else np.ones_like(q))
        if residual and i > 0:
            p, mu = p + 2.0 * alpha * mu * m1 + alpha**2 * m2, mu + alpha * m1
            v = v + alpha**2 * (m2 - m1**2)
        else:
            p, mu, v = m2, m1, m2 - m1**2
    return a, k, c


class Maps(NamedTuple):
    """The mean-field backward maps of a network at init (``mean_field_maps``), each (depth, n)
    over layers l = 1..depth and the n probe examples (or their bins) it follows."""

    step: np.ndarray  # G_{l-1} / G_l: the layer's factor on squared gradient norms
    own: np.ndarray  # E||dL/dh_l||^2 / G_l
    coherent: np.ndarray | None  # c_l of the branch_act block's coherent mode, None where 1
    norm: str
    width: int
    input_dim: int


def mean_field_maps(
    activation: str,
    init_scheme: str,
    norm: str,
    residual: bool,
    depth: int,
    width: int,
    input_dim: int,
    input_second_moment,
    residual_scale: float | str = 1.0,
    sigma_w2: float | str = "auto",
    sigma_b2: float | str = "auto",
    block: str = "branch_act",
) -> Maps:
    """The per-layer maps of a network at init, the one source of ``predicted_profile`` and
    ``predicted_jacobian_log10_mean`` (which take these arguments).

    Layer 1 is nearest the input. ``input_second_moment`` is the mean of x^2 over features of
    each probe example (an array), or one value for all. The measured rms is over the examples
    of the probe batch, so the prediction is too: each example's forward variances and squared
    gradient norms follow from its own second moment, and their mean over examples is taken
    (the gradient reaching the top layer is taken equal across examples: the softmax is near
    uniform at init). This matters where the variance map is not linear in q: with GELU and He
    init q shrinks toward 0 for small inputs but not for large ones, and the few examples with
    large inputs carry most of the gradient (digits, depth 32: per-layer slope 0.004, not the 0.097
    the mean input gives). Batch norm pools examples in its statistics: it uses the mean.

    Every norm (none, batch, layer) with or without the skip has a form (see the module
    docstring); the skip's branch carries the gain alpha of ``residual_scale`` (its value at
    init for the learnable gains; ``fixup``'s blocks have zero weights). ``block`` (with a
    skip): ``branch_act`` gives G_{l-1} = G_l (1 + alpha^2 sigma_w2 k a) and E||dL/dh_l||^2 =
    alpha^2 k a G_l for l >= 2, plus, without a norm, the coherent mode of its non-centred
    branch (``blocks.coherent_gain``): G_l = G_l(independent part) + G_l(coherent part); ``pre``
    and ``post`` have the maps of ``vanishing.analysis.blocks``. The maps are not finite where
    the forward variances overflow or a norm meets a zero-variance input. ``sigma_w2`` and
    ``sigma_b2`` are the settings of that name (``_layer_scales``).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    m0 = np.atleast_1d(np.asarray(input_second_moment, dtype=float))
    if m0.ndim != 1 or len(m0) == 0:
        raise ValueError("input_second_moment must be a number or a non-empty 1-d array")
    if norm == "batch":
        m0 = m0.mean(keepdims=True)
    scheme = resolve_init(init_scheme, activation)
    sw2, sb2 = _layer_scales(scheme, depth, width, input_dim, sigma_w2, sigma_b2, activation)
    residual = bool(residual)
    alpha = branch_gain(residual_scale, depth) if residual else 1.0
    if residual and residual_scale == FIXUP:  # the blocks' Linear starts at 0
        sw2[1:], sb2[1:] = 0.0, 0.0
    coherent = None
    with np.errstate(all="ignore"):
        if residual and block in ("pre", "post"):
            maps = blocks.pre_maps if block == "pre" else blocks.post_maps
            m0 = blocks.example_bins(m0)
            step, own = maps(activation, norm, sw2, sb2, m0, alpha)  # (depth, n)
        else:
            a, k, c = _forward(activation, norm, residual, sw2, sb2, m0, alpha)  # (depth, n)
            skip = (np.arange(depth) > 0) & residual
            r = skip.astype(float)[:, None]
            gain2 = np.where(skip, alpha**2, 1.0)[:, None]  # the branch's gain, squared
            step = r + gain2 * sw2[:, None] * k * a  # G_{l-1} / G_l, l = 1..depth
            own = gain2 * k * a
            coherent = c if bool((c != 1.0).any()) else None
    return Maps(step, own, coherent, norm, width, input_dim)


def predicted_profile(*args, **kwargs) -> np.ndarray | None:
    """Predicted log10 grad_preact_rms per layer (depth,), relative to layer ``depth`` (= 0), of
    the network of ``mean_field_maps`` (same arguments): the mean over examples of each one's
    squared gradient norms. None only where it is not finite (the forward variances overflow,
    a norm meets a zero-variance input, or alpha = 0: skipinit's blocks pass no gradient to h_l
    at init).
    """
    m = mean_field_maps(*args, **kwargs)
    width = m.width
    with np.errstate(all="ignore"):
        log_g_rel = _log_rel(np.log10(m.step))
        if m.coherent is not None:  # two modes: the coherent one starts at 1/width of G_depth
            log_coh = _log_rel(2.0 * np.log10(m.coherent)) - np.log10(width)
            log_g_rel = np.logaddexp(
                (log_g_rel + np.log10(1.0 - 1.0 / width)) * np.log(10.0), log_coh * np.log(10.0)
            ) / np.log(10.0)
        log_rms2 = np.log10(m.own) + log_g_rel  # (depth, n), relative to its G_depth
        # log10 of the mean over examples of 10^log_rms2, without overflow
        n = log_rms2.shape[1]
        mean_log_rms2 = special.logsumexp(log_rms2 * np.log(10.0), axis=1) - np.log(n)
        mean_log_rms2 /= np.log(10.0)
        profile = 0.5 * (mean_log_rms2 - mean_log_rms2[-1])
    return profile if np.all(np.isfinite(profile)) else None


def _log_rel(log_step: np.ndarray) -> np.ndarray:
    """log10 G_l - log10 G_depth (depth, n) from log10 G_{l-1} / G_l per layer (depth, n):
    the sum of the steps of layers l+1..depth."""
    n = log_step.shape[1]
    return np.vstack([np.cumsum(log_step[:0:-1], axis=0)[::-1], np.zeros(n)])


def predicted_slope(*args, **kwargs) -> float:
    """Slope per layer of ``predicted_profile`` (same arguments; least squares over layers);
    NaN where there is no profile."""
    profile = predicted_profile(*args, **kwargs)
    if profile is None:
        return float("nan")
    return fit_slope(np.arange(1, len(profile) + 1), profile)


def fixed_point_chi(activation: str, sw2: float, sb2: float) -> float:
    """chi at the depth limit of the variance map: sw2 E[phi'(h)^2], h ~ N(0, q*). Below 1 the
    gradient vanishes exponentially toward the input (ordered), above 1 it grows (chaotic), at 1
    (the critical point) neither: the decay is at most a power law in depth."""
    return chi(activation, fixed_point(activation, sw2, sb2), sw2)


CRITICAL = 1e-3  # |log10 chi*| below this: the critical point (tanh at sigma_w2 = 1: exactly 0)


def predicted_shape(activation: str, sw2: float, sb2: float) -> tuple[str, float]:
    """(shape, decades per layer) of the layer-1 / top gradient ratio against depth that
    mean-field theory predicts for a deep plain net, from chi* alone (no data): ``exponential``
    (chi* < 1; -0.5 log10 chi* decades lost per layer), ``power law`` (critical: chi* = 1) or
    ``explodes`` (chi* > 1: the gradient grows toward the input). Decades per layer are negative
    when the gradient shrinks toward the input."""
    c = fixed_point_chi(activation, sw2, sb2)
    rate = 0.5 * float(np.log10(c)) if c > 0 else float("-inf")
    if abs(rate) < CRITICAL:
        return "power law", 0.0
    return ("exponential" if rate < 0 else "explodes"), rate


def ceiling_slope(
    activation: str, init_scheme: str, width: int, sw2: float | str = "auto", sb2="auto"
) -> float:
    """The per-layer slope a plain net would have if every unit sat where phi' is largest:
    -0.5 log10(sigma_w2 * max_slope^2) (square layers). Nothing saturated, only the activation's
    largest slope: sigmoid's 1/4 under Xavier init gives +0.602 decades per layer by itself.
    ``sw2``, ``sb2``: the settings (``_layer_scales``)."""
    scheme = resolve_init(init_scheme, activation)
    top = activations.get(activation).max_slope
    (scale,), _ = _layer_scales(scheme, 1, width, width, sw2, sb2, activation)
    return float(-0.5 * np.log10(scale * top**2))


def fit_slope(layer, log10_rms) -> float:
    """Least-squares slope of log10 grad_preact_rms against layer (finite points only; NaN if < 2).

    Positive: the gradient grows toward the output, i.e. vanishes toward the input.
    """
    x, y = np.asarray(layer, dtype=float), np.asarray(log10_rms, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of values with a Student-t interval; low = high = NaN for one value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (float("nan"),) * 3
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return mean, mean - half, mean + half


def _step0(runs: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """Step-0 layer rows (one per run and layer) with their run's scheme and input dimension."""
    run_key = ["cell", "lr", "seed"]
    extra = ["init_scheme", "input_dim"]
    keep = [c for c in (*GROUP, *run_key, "layer", "grad_preact_rms") if c not in extra]
    l0 = layers.loc[layers["step"] == 0, keep]
    df = l0.merge(runs[run_key + extra], on=run_key, how="inner", validate="many_to_one")
    df["log10_rms"] = np.log10(df["grad_preact_rms"].where(df["grad_preact_rms"] > 0))
    return df


def _predictions(df: pd.DataFrame, probe_inputs: pd.DataFrame) -> dict[tuple, np.ndarray | None]:
    """Predicted profile per group key, from its runs' input dimension and the per-example
    second moments of its cells' probe batches (``probe_inputs``: cell, second_moment)."""
    moments = probe_inputs.groupby("cell")["second_moment"].apply(np.asarray)
    out = {}
    for key, g in df.groupby(list(GROUP), sort=True):
        k = dict(zip(GROUP, key, strict=True))
        if k.get("arch", "mlp") == "cnn":  # conv nets: their own theory (Xiao et al. 2018)
            from vanishing.analysis.conv_theory import conv_profile

            args = (k["norm"], bool(k["residual"]), int(k["depth"]), int(k["width"]))
            out[key] = conv_profile(k["activation"], k["init_scheme"], *args)
            continue
        cells = g["cell"].unique()
        missing = [c for c in cells if c not in moments.index]
        if missing:
            raise ValueError(f"probe_inputs has no rows for cells {missing[:3]}")
        out[key] = predicted_profile(
            k["activation"],
            k["init_scheme"],
            k["norm"],
            bool(k["residual"]),
            int(k["depth"]),
            int(k["width"]),
            int(g["input_dim"].iloc[0]),
            np.concatenate([moments[c] for c in cells]),
            k["residual_scale"],
            k.get("sigma_w2", "auto"),
            k.get("sigma_b2", "auto"),
            k.get("block", DEFAULT_BLOCK),
        )
    return out


def theory_label(group: dict) -> str:
    """Which form predicts a group: the norm's (``THEORY``), and for a residual net its block
    (``+pre``, ``+post``; ``+branch_act``, ``+coherent`` where its coherent mode enters)."""
    label = THEORY[group["norm"]]
    if str(group["residual"]).lower() != "true":
        return label
    block = group.get("block", DEFAULT_BLOCK)
    coherent = block == "branch_act" and group["norm"] == "none"
    return f"{label}+{block}" + ("+coherent" if coherent else "")


def _relative_error(measured: float, predicted: float) -> float:
    """(measured - predicted) / |predicted|; NaN without a prediction or for a flat one."""
    if not np.isfinite(predicted) or abs(predicted) < FLAT:
        return float("nan")
    return (measured - predicted) / abs(predicted)


def _ceiling(group: dict) -> float:
    """``ceiling_slope`` for a plain group (no norm, no skip); NaN for the others."""
    if group["norm"] != "none" or str(group["residual"]).lower() == "true":
        return float("nan")
    return ceiling_slope(
        group["activation"],
        group["init_scheme"],
        int(group["width"]),
        group.get("sigma_w2", "auto"),
        group.get("sigma_b2", "auto"),
    )


def theory_table(
    runs: pd.DataFrame, layers: pd.DataFrame, probe_inputs: pd.DataFrame
) -> pd.DataFrame:
    """Predicted vs measured step-0 slope of log10 grad_preact_rms per layer, one row per group.

    A group is (activation, init_scheme, norm, residual, residual_scale, depth, width, data)
    (``GROUP``). The lr and other optimiser settings do not touch the init, so a group's runs
    that share a seed are averaged into one value per seed (identical copies when they share
    the init). The measured slope is
    the mean over seeds of per-run least-squares slopes, with a 95% t interval across seeds.
    """
    df = _step0(runs, layers)
    # a conv net's top layer is its classifier (h = the logits), which its theory leaves out
    top_classifier = (df.get("arch", "mlp") == "cnn") & (df["layer"] == df["depth"])
    df = df.assign(log10_rms=df["log10_rms"].mask(top_classifier))
    run_slopes = df.groupby([*GROUP, "seed", "cell", "lr"], sort=True).apply(
        lambda r: fit_slope(r["layer"], r["log10_rms"]), include_groups=False
    )
    seed_slopes = run_slopes.groupby(level=[*GROUP, "seed"]).mean()
    predictions = _predictions(df, probe_inputs)
    rows = []
    for key, s in seed_slopes.groupby(level=list(GROUP), sort=True):
        profile = predictions[key]
        k = dict(zip(GROUP, key, strict=True))
        pred = np.nan if profile is None else fit_slope(np.arange(1, len(profile) + 1), profile)
        ratio = np.nan if profile is None else float(profile[0])  # layer 1 against layer depth
        mean, low, high = mean_ci(s)
        rows.append(
            {
                **dict(zip(GROUP, key, strict=True)),
                "n_seeds": int(s.notna().sum()),
                "ceiling_slope": _ceiling(dict(zip(GROUP, key, strict=True))),
                "predicted_log10_ratio": ratio,
                "predicted_slope": pred,
                "measured_slope": mean,
                "measured_slope_ci_low": low,
                "measured_slope_ci_high": high,
                "relative_error": _relative_error(mean, pred),
                "theory": "none" if profile is None else theory_label(k),
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def theory_profiles(
    runs: pd.DataFrame, layers: pd.DataFrame, probe_inputs: pd.DataFrame
) -> pd.DataFrame:
    """Long table (group keys, layer, predicted_log10_rms, measured_log10_rms) for an overlay.

    Both are log10 grad_preact_rms relative to layer ``depth``; the measured one is the mean over
    seeds of each seed's mean over its runs. predicted_log10_rms is NaN where no form exists.
    """
    df = _step0(runs, layers)
    run_key = [*GROUP, "seed", "cell", "lr"]
    top = df.loc[df["layer"] == df["depth"], [*run_key, "log10_rms"]]
    df = df.merge(top.rename(columns={"log10_rms": "top"}), on=run_key, how="left")
    df["rel"] = df["log10_rms"] - df["top"]
    per_seed = df.groupby([*GROUP, "seed", "layer"])["rel"].mean().reset_index()
    measured = per_seed.groupby([*GROUP, "layer"])["rel"].mean().rename("measured_log10_rms")
    out = []
    for key, profile in _predictions(df, probe_inputs).items():
        depth = int(key[GROUP.index("depth")])
        pred = np.full(depth, np.nan) if profile is None else profile
        keys = dict(zip(GROUP, key, strict=True))
        layer = np.arange(1, depth + 1)
        out.append(pd.DataFrame({**keys, "layer": layer, "predicted_log10_rms": pred}))
    if not out:
        return pd.DataFrame(columns=list(PROFILE_COLUMNS))
    table = pd.concat(out, ignore_index=True)
    return table.merge(measured.reset_index(), on=[*GROUP, "layer"], how="left")


def predicted_jacobian_log10_mean(*args, **kwargs) -> float:
    """Mean-field log10 of ``jacobian_sv2_mean``, the mean squared singular value of the
    input-output Jacobian d x_depth / d x_0 at init (``training/jacobian.py``), of the network
    of ``mean_field_maps`` (same arguments): tr(J^T J) is width * prod_l step_l (each layer's
    factor on squared norms: r_l + alpha^2 sigma_w2_l k_l a_l, chi_l for a plain net, so the
    product is chi^depth at the fixed point), averaged over the probe examples
    (``input_second_moment``: the mean of x^2 of each, the first ``N_INPUTS`` probe examples for
    the measured value) and divided by the min(width, input_dim) singular values. NaN with
    batch norm (no per-example Jacobian is measured) or where the maps overflow."""
    m = mean_field_maps(*args, **kwargs)
    if m.norm == "batch":
        return float("nan")
    with np.errstate(all="ignore"):
        log_tr = np.log10(m.step).sum(axis=0)  # (n,)
        n = len(log_tr)
        mean = special.logsumexp(log_tr * np.log(10.0)) / np.log(10.0) - np.log10(n)
    value = mean + np.log10(m.width / min(m.width, m.input_dim))
    return float(value) if np.isfinite(value) else float("nan")
