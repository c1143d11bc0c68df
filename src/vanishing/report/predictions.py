"""Theory's prediction for each row of evidence, from the row's settings and none of its data.

Every row a claim reads (``report.evidence.Part``) is put beside what mean-field theory predicts
for the same quantity (``evidence.Prediction``). The predictions come from ``analysis.theory``:

- a gradient ratio at init (``log10_grad_ratio_init``, its absolute value): the predicted
  log10 ratio of layer 1's gradient to the top layer's (theory.csv's ``predicted_log10_ratio``,
  computed from the settings and the probe inputs only) for each arm of a comparison;
- the shape of the decay with depth (claim 1): chi at the fixed point of the variance map,
  below 1 exponential, at 1 (critical) a power law, above 1 growth toward the input
  (``theory.predicted_shape``);
- the float32 floor (claim 5): the predicted ratio against 2^-24;
- saturation's share of the decay (claim 4): 1 - ceiling_slope / predicted_slope.

Theory *decides* a row when it predicts the rule's effect or its contrary by more than the
rule's margin (``evidence.THEORY_MARGIN`` decades for gradient ratios); a predicted tie leaves
the row open, and so does a row outside theory: a trained outcome, a residual branch that is
not centred (it ends in a non-odd activation: mean-field independence fails, docs/theory.md), a
named ``sigma_w2`` whose value the tables do not carry, or settings theory.csv has no
prediction for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vanishing.analysis.metrics import FLOAT32_EPS, kind
from vanishing.analysis.theory import GROUP, predicted_shape
from vanishing.inits import INITS, bias_variance, sigma_w2
from vanishing.report.evidence import (
    HOLDS,
    NULL,
    OPPOSITE,
    THEORY_MARGIN,
    TRAINED,
    Prediction,
    num,
    outside,
    rows,
)
from vanishing.settings import BY_NAME

CENTRED = ("tanh",)  # odd activations: a residual branch ending in one is centred at init
FLOOR = float(np.log10(FLOAT32_EPS))  # -7.22 decades
SATURATION_SHARE = 0.5  # claim 4: saturation causes the decay if it accounts for half of it


def _key(v) -> str:
    """A setting's value as text that survives a CSV round trip (16, 16.0 and '16' agree; so
    do True and 'True', which a column that mixes a factor's levels reads as text)."""
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v).strip().lower()


def lookup(theory: pd.DataFrame, settings: dict) -> pd.Series | None:
    """The row of ``theory`` (theory.csv of one sub-grid) whose group settings agree with
    ``settings`` on every key both have (NaN keys of ``settings`` ignored), or None."""
    if theory is None or theory.empty:
        return None
    mask = np.ones(len(theory), dtype=bool)
    for k, v in settings.items():
        if k in theory and not pd.isna(v):
            mask &= (theory[k].map(_key) == _key(v)).to_numpy()
    return theory[mask].iloc[0] if mask.any() else None


def arm_settings(row: pd.Series, arm: str) -> dict:
    """The group settings (``theory.GROUP``) of one arm (``baseline``/``treatment``) of a row
    of comparisons.csv: the factor at that arm's level, its concrete init scheme; a setting that
    applies only with the factor (a residual branch's gain) only in the treatment's arm."""
    factor = row["factor"]
    out = {k: row.get(k, np.nan) for k in GROUP if k != "init_scheme"}
    out[factor] = row[arm]
    out["init_scheme"] = row.get(f"init_scheme_{arm}", np.nan)
    if arm == "baseline":
        out.update({k: np.nan for k in out if k in BY_NAME and BY_NAME[k].only_if == factor})
    return out


def not_applicable(settings: dict) -> str:
    """Why theory does not apply to a network with these settings, or ''."""
    if _key(settings.get("residual")) in ("true", "1"):
        block = settings.get("block")
        block = "branch_act" if pd.isna(block) else str(block)
        if block == "branch_act" and settings.get("activation") not in CENTRED:
            return (f"a residual branch ending in {settings.get('activation')} is not centred: "
                    "mean-field independence fails")  # fmt: skip
    return ""


def predicted_ratio(theory: pd.DataFrame, settings: dict) -> tuple[float, str]:
    """(predicted log10 layer-1 / top gradient ratio at init, '') or (NaN, why not)."""
    why = not_applicable(settings)
    if why:
        return np.nan, why
    found = lookup(theory, settings)
    if found is None or "predicted_log10_ratio" not in found:
        return np.nan, "theory.csv has no prediction for these settings"
    value = float(found["predicted_log10_ratio"])
    return (value, "") if np.isfinite(value) else (np.nan, "no mean-field form for them")


def grows(ratio: float) -> str:
    """' (grows toward the input: explodes)' for a positive log ratio."""
    return " (grows toward the input: explodes)" if ratio > 0 else ""


def comparison_theory(t: dict, grid: str | None, metric: str, sign: int):
    """Theory for rows of comparisons.csv on ``metric``: each arm's predicted ratio at init, the
    predicted difference (treatment - baseline; of absolute values for ``abs_*``), decided when it
    is at least ``THEORY_MARGIN`` decades. Trained metrics are outside theory."""
    if kind(metric) != "init" or "grad_ratio" not in metric:
        return lambda r: TRAINED
    theory = rows(t.get("theory"), grid)

    def predict(r: pd.Series) -> Prediction:
        pb, why_b = predicted_ratio(theory, arm_settings(r, "baseline"))
        pt, why_t = predicted_ratio(theory, arm_settings(r, "treatment"))
        if why_b or why_t:
            return outside(why_t or why_b)
        if metric.startswith("abs_"):
            diff = abs(pt) - abs(pb)
        else:
            diff = pt - pb
        text = (f"log10 ratio {num(pt)}{grows(pt)} vs {num(pb)}{grows(pb)}, so {metric} "
                f"differs by {num(diff)}")  # fmt: skip
        if abs(diff) < THEORY_MARGIN:
            return Prediction(NULL, f"{text} (within {THEORY_MARGIN} decades: no effect)")
        return Prediction(HOLDS if np.sign(diff) == sign else OPPOSITE, text)

    return predict


def scales(row: pd.Series) -> tuple[float, float] | None:
    """(sigma_w2, sigma_b2) of a square hidden layer of the row's net: the resolved values
    (``sigma_w2_value``/``sigma_b2_value``) where the tables carry them, a number given as the
    setting, else the init scheme's; None for a named point whose value is not carried."""
    init = str(row.get("init_scheme", ""))
    width = int(float(row.get("width", 64)))
    out = []
    for name, scheme_value in (("sigma_w2", sigma_w2), ("sigma_b2", None)):
        resolved, setting = row.get(f"{name}_value", np.nan), row.get(name, "auto")
        if not pd.isna(resolved):
            out.append(float(resolved))
        elif not pd.isna(setting) and _key(setting) not in ("auto", "nan"):
            try:
                out.append(float(setting))
            except ValueError:
                return None
        elif init in INITS and init != "auto":
            out.append(sigma_w2(init, width, width) if scheme_value else bias_variance(init, width))
        else:
            return None
    return out[0], out[1]


def shape_theory(r: pd.Series) -> Prediction:
    """Claim 1: theory's shape of the decay for a plain group (row of decay_fits.csv):
    exponential holds the claim; a power law (critical) or growth toward the input is its
    contrary."""
    s = scales(r)
    if s is None:
        return outside(f"sigma_w2 = {r.get('sigma_w2')} without its value")
    shape, rate = predicted_shape(str(r["activation"]), *s)
    text = f"chi* gives {shape} ({num(rate)} decades per layer; sigma_w2 {num(s[0])})"
    return Prediction(HOLDS if shape == "exponential" else OPPOSITE, text)


def floor_theory(t: dict, grid: str | None):
    """Claim 5(a): the predicted ratio at init against float32's 2^-24 (rows of
    underflow.csv), decided when it is more than ``THEORY_MARGIN`` decades from the floor."""
    theory = rows(t.get("theory"), grid)

    def predict(r: pd.Series) -> Prediction:
        settings = {k: r.get(k, np.nan) for k in GROUP}
        ratio, why = predicted_ratio(theory, settings)
        if why:
            return outside(why)
        text = f"layer 1 gets 10^{num(ratio)} of the top layer's gradient (floor 10^{num(FLOOR)})"
        if abs(ratio - FLOOR) < THEORY_MARGIN:
            return Prediction(NULL, text + ", at the floor")
        return Prediction(HOLDS if ratio < FLOOR else OPPOSITE, text)

    return predict


def share_theory(r: pd.Series) -> Prediction:
    """Claim 4(b) before the data: saturation's share of the decay theory predicts,
    1 - ceiling_slope / predicted_slope (both from the settings alone)."""
    pred, ceil = float(r["predicted_slope"]), float(r["ceiling_slope"])
    if not (np.isfinite(pred) and pred > 0 and np.isfinite(ceil)):
        return outside("theory predicts no decay to share out")
    share = 1 - ceil / pred
    text = f"predicted {num(pred)} decades per layer: saturation's share {num(share, 2)}"
    return Prediction(HOLDS if share >= SATURATION_SHARE else OPPOSITE, text)
