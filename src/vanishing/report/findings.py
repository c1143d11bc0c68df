"""Generate ``results/FINDINGS.md`` from the statistics tables, one section per claim.

Every claim carries a rule fixed here in advance and printed with it, the evidence from the
tables (differences with 95% intervals and Holm-adjusted p-values, regression slopes, theory
errors) and a verdict: supported / not supported / qualified / not tested (see
``evidence.tally`` and ``evidence.combine``). Nothing in FINDINGS.md is written by hand.

Claims 3-5 are judged on deep cells only (``depth >= DEEP``): at one or two hidden layers there
is too little depth for gradients to vanish, and the claims are about deep networks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vanishing.activations import SATURATING
from vanishing.analysis.tables import read_tables
from vanishing.report.evidence import (
    ALPHA,
    DEEP,
    NOT_TESTED,
    Claim,
    combine,
    context_keys,
    judge_rows,
    num,
    pick,
    render,
    render_verdicts_rst,
    same,
    tally,
)

THEORY_TOLERANCE = 0.25
PLAIN = {"norm": "none", "residual": False}


def _untested(title: str, rule: str, reason: str) -> dict:
    return dict(title=title, rule=rule, verdict=NOT_TESTED, reason=reason)


def decay_with_depth(slopes: pd.DataFrame) -> dict:
    """Claim 1, from ``depth_slopes``."""
    title = "With sigmoid or tanh, the gradient reaching the lower layers shrinks exponentially"
    title += " with depth"
    rule = (
        "for each group of plain networks (norm none, no residual connections) with sigmoid or "
        "tanh, regress seed-level log10_grad_ratio_init (at step 0, one value per seed, "
        "deduplicated across lrs) on depth by OLS across at least two depths. A straight line "
        "in log10 is exponential decay; its slope is the decades lost per hidden layer and R^2 "
        "says how straight the line is. The rule holds for a group if the slope's 95% interval "
        "lies entirely below 0. Supported if it holds for every group of both activations, not "
        "supported if for none, qualified otherwise; not tested if either activation has no "
        "such group."
    )
    if slopes.empty:
        return _untested(title, rule, "no depth_slopes table")
    rows = slopes[same(slopes["norm"], "none") & same(slopes["residual"], False)]
    rows = rows[rows["activation"].isin(SATURATING) & np.isfinite(rows["slope"])]
    missing = [a for a in SATURATING if a not in set(rows["activation"])]
    if missing:
        reason = f"no plain {' or '.join(missing)} networks at two or more depths in the grid"
        return _untested(title, rule, reason)
    ok = list(rows["slope_ci_high"] < 0)
    evidence = tuple(
        f"{r.activation} ({r.init_scheme} init, width {int(r.width)}, {r.data}): slope "
        f"{num(r.slope)} decades per layer [{num(r.slope_ci_low)}, {num(r.slope_ci_high)}], "
        f"i.e. x{num(r.factor_per_layer)} per layer, R^2 = {num(r.r2, 2)}, depths "
        f"{int(r.depth_min)}-{int(r.depth_max)}, n = {int(r.n_obs)}"
        + (" [holds]" if k else " [fails]")
        for r, k in zip(rows.itertuples(), ok, strict=True)
    )
    return dict(title=title, rule=rule, verdict=tally(ok), evidence=evidence)


def saturating_train_poorly(comp: pd.DataFrame, keys) -> dict:
    """Claim 2, from the deepest-vs-shallowest family on final test accuracy."""
    title = "Deep sigmoid and tanh networks train poorly"
    rule = (
        "for plain sigmoid and tanh networks, compare final test accuracy of the deepest net "
        f"in the grid (which must have depth >= {DEEP}) with the shallowest "
        "(family deepest_vs_shallowest). The rule holds for a cell if the deep net is worse "
        f"(diff < 0) with Holm p < {ALPHA}. Supported if it holds for every cell of both "
        "activations, not supported if for none, qualified otherwise; not tested if either "
        "activation lacks such a pair."
    )
    rows = {a: pick(comp, "deepest_vs_shallowest", "final_test_accuracy", activation=a, **PLAIN)
            for a in SATURATING}  # fmt: skip
    missing = [a for a, r in rows.items() if r.empty]
    if missing:
        reason = f"no plain {' or '.join(missing)} networks at a shallow depth and at >= {DEEP}"
        return _untested(title, rule, reason)
    verdict, evidence = judge_rows(pd.concat(rows.values()), sign=-1, keys=keys)
    return dict(title=title, rule=rule, verdict=verdict, evidence=tuple(evidence))


def relu_keeps_gradients(comp: pd.DataFrame, keys) -> dict:
    """Claim 3, from the activation families on log10_grad_ratio_init."""
    title = "ReLU keeps the gradient at the lower layers larger than sigmoid or tanh"
    rule = (
        f"at every depth >= {DEEP} of plain networks, compare log10_grad_ratio_init at step 0 "
        "of relu with sigmoid (family activation_vs_sigmoid) and with tanh "
        "(activation_vs_tanh), each with its configured init (the schemes are listed). The "
        f"rule holds for a cell if relu's ratio is larger (diff > 0) with Holm p < {ALPHA}. "
        "Supported if it holds for every cell against both, not supported if for none, "
        "qualified otherwise; not tested if either pair is missing."
    )
    metric = "log10_grad_ratio_init"
    rows = {base: pick(comp, f"activation_vs_{base}", metric, treatment="relu", **PLAIN)
            for base in SATURATING}  # fmt: skip
    missing = [b for b, r in rows.items() if r.empty]
    if missing:
        reason = f"no deep plain relu and {' or '.join(missing)} networks side by side"
        return _untested(title, rule, reason)
    both = pd.concat(rows.values())
    verdict, evidence = judge_rows(both, sign=+1, keys=keys)
    inits = both[["baseline", "init_scheme_baseline", "treatment", "init_scheme_treatment"]]
    schemes = "; ".join(
        f"{r.treatment} with {r.init_scheme_treatment} vs {r.baseline} with "
        f"{r.init_scheme_baseline}"
        for r in inits.drop_duplicates().itertuples()
    )
    evidence = [f"Initialisation compared: {schemes}.", *evidence]
    return dict(title=title, rule=rule, verdict=verdict, evidence=tuple(evidence))


def batch_norm_helps(comp: pd.DataFrame, selected: pd.DataFrame, keys) -> dict:
    """Claim 4, from the norm family (batch vs none) at init, after training and on accuracy."""
    title = "Batch normalisation improves gradient flow and trainability"
    rule = (
        f"in deep plain networks (depth >= {DEEP}, no residual), compare batch norm with no "
        "norm (family norm_vs_none) in three parts: (a) at init, abs_log10_grad_ratio_init "
        "(distance from balanced flow) is smaller; (b) after training (last probed step, at "
        "the selected lr), abs_log10_grad_ratio_final is smaller; (c) final test accuracy is "
        f"higher. A part holds for a cell if the difference has that sign with Holm p < {ALPHA}"
        "; each part is supported / not supported / qualified over its cells. The claim is "
        "supported only if all three parts are supported, not supported if every tested part "
        "is not supported, qualified otherwise (also when a part could not be tested); not "
        "tested if no part could be. Batch norm without skips is known to make gradients grow "
        "toward the input at init; where the mean log10_grad_ratio_init of a batch-norm cell "
        "has its 95% interval above 0 this is listed."
    )
    parts = {
        "(a) at init": ("abs_log10_grad_ratio_init", -1),
        "(b) after training": ("abs_log10_grad_ratio_final", -1),
        "(c) accuracy": ("final_test_accuracy", +1),
    }
    verdicts, evidence = _judge_parts(
        comp, "norm_vs_none", parts, keys, treatment="batch", residual=False
    )
    evidence += _explosions(selected, "batch", False, "batch norm")
    if all(v == NOT_TESTED for v in verdicts):
        return _untested(title, rule, "no deep plain networks with and without batch norm")
    return dict(title=title, rule=rule, verdict=combine(verdicts), evidence=tuple(evidence))


def _judge_parts(comp: pd.DataFrame, family: str, parts: dict, keys, **where) -> tuple[list, list]:
    """(verdict per part, evidence lines) of a claim judged in parts: ``parts`` maps a label to
    (metric, sign); each part's rows are the family's comparisons on that metric at ``where``."""
    verdicts, evidence = [], []
    for label, (metric, sign) in parts.items():
        verdict, lines = judge_rows(pick(comp, family, metric, **where), sign, keys)
        verdicts.append(verdict)
        evidence += [f"{label}: {verdict}."] + [f"{label} {line}" for line in lines]
    return verdicts, evidence


def _explosions(selected: pd.DataFrame, norm: str, residual: bool, what: str) -> list[str]:
    """Deep cells (this norm and residual) whose gradient grows toward the input at init: the
    95% interval of their mean log10_grad_ratio_init lies above 0."""
    if selected.empty:
        return []
    cells = selected[same(selected["norm"], norm) & same(selected["residual"], residual)]
    cells = cells[(cells["depth"] >= DEEP) & (cells["log10_grad_ratio_init_ci_low"] > 0)]
    return [
        f"At init, gradients grow toward the input with {what}: {r.activation}, depth "
        f"{int(r.depth)}: log10_grad_ratio_init {num(r.log10_grad_ratio_init_mean)} "
        f"[{num(r.log10_grad_ratio_init_ci_low)}, {num(r.log10_grad_ratio_init_ci_high)}]."
        for r in cells.itertuples()
    ]


def residual_helps(comp: pd.DataFrame, selected: pd.DataFrame, keys) -> dict:
    """Claim 5, from the residual family at init and on accuracy."""
    title = "Residual connections let gradients reach the lower layers and make very deep nets"
    title += " trainable"
    rule = (
        f"in deep networks without normalisation (depth >= {DEEP}, norm none), compare "
        "residual with plain (family residual_vs_plain) in two parts: (a) at init, "
        "abs_log10_grad_ratio_init (distance from balanced flow) is smaller: the gradient "
        "reaching layer 1 at step 0 neither vanishes nor explodes as much; (b) final test "
        "accuracy is higher. A part holds for a cell if the difference has that sign with Holm "
        f"p < {ALPHA}. Supported if both parts hold in every cell, not supported if every "
        "tested part holds in none, qualified otherwise; not tested if the grid has no such "
        "pairs. Where the mean log10_grad_ratio_init of a residual cell has its 95% interval "
        "above 0 (the gradient grows toward the input) this is listed."
    )
    parts = {
        "(a) at init": ("abs_log10_grad_ratio_init", -1),
        "(b) accuracy": ("final_test_accuracy", +1),
    }
    verdicts, evidence = _judge_parts(
        comp, "residual_vs_plain", parts, keys, treatment=True, norm="none"
    )
    evidence += _explosions(selected, "none", True, "residual connections")
    if all(v == NOT_TESTED for v in verdicts):
        return _untested(title, rule, "no deep residual and plain networks side by side")
    return dict(title=title, rule=rule, verdict=combine(verdicts), evidence=tuple(evidence))


def theory_matches(theory: pd.DataFrame | None) -> dict:
    """Claim 6, from the mean-field theory table."""
    title = "Measured gradient decay at init matches mean-field theory for plain networks"
    rule = (
        f"for every plain network group (norm none, no residual) with depth >= {DEEP} in the "
        "theory table, the measured per-layer slope agrees with the mean-field prediction if "
        f"|relative_error| < {THEORY_TOLERANCE:.0%} or the predicted slope lies inside the "
        "measured slope's 95% interval. relative_error is (measured - predicted) / "
        "|predicted|, NaN for a flat prediction, where only the interval test applies; groups "
        "without a prediction are skipped. Supported if every group agrees, not supported if "
        "none does, qualified otherwise; not tested without a theory table or such groups."
    )
    if theory is None or theory.empty:
        return _untested(title, rule, "no theory table")
    rows = theory[same(theory["norm"], "none") & same(theory["residual"], False)]
    rows = rows[rows["depth"] >= DEEP]
    judged = np.isfinite(rows["measured_slope"]) & np.isfinite(rows["predicted_slope"])
    skipped = int((~judged).sum())
    rows = rows[judged]
    if rows.empty:
        return _untested(title, rule, f"the theory table has no plain groups with depth >= {DEEP}")
    close = rows["relative_error"].abs() < THEORY_TOLERANCE
    inside = rows["predicted_slope"].between(
        rows["measured_slope_ci_low"], rows["measured_slope_ci_high"]
    )
    ok = list(close | inside)
    evidence = tuple(
        f"{r.activation} ({r.init_scheme} init), depth {int(r.depth)}, width {int(r.width)}, "
        f"{r.data}: predicted {num(r.predicted_slope)}, measured {num(r.measured_slope)} "
        f"[{num(r.measured_slope_ci_low)}, {num(r.measured_slope_ci_high)}], relative error "
        f"{num(r.relative_error, 2)}, n = {int(r.n_seeds)} seeds"
        + (" [holds]" if k else " [fails]")
        for r, k in zip(rows.itertuples(), ok, strict=True)
    )
    if skipped:
        evidence += (f"{skipped} plain deep group(s) without a prediction or measurement skipped.",)
    return dict(title=title, rule=rule, verdict=tally(ok), evidence=evidence)


NEEDS = ("comparisons", "selected", "depth_slopes", "theory")


def evaluate(tables_dir: Path) -> list[Claim]:
    """All six claims judged on the CSV tables in ``tables_dir`` (a missing table is empty)."""
    t = {k: pd.DataFrame() if v is None else v for k, v in read_tables(tables_dir, NEEDS).items()}
    comp, selected = t["comparisons"], t["selected"]
    keys = context_keys(comp)
    judged = [
        decay_with_depth(t["depth_slopes"]),
        saturating_train_poorly(comp, keys),
        relu_keeps_gradients(comp, keys),
        batch_norm_helps(comp, selected, keys),
        residual_helps(comp, selected, keys),
        theory_matches(t["theory"]),
    ]
    return [Claim(number=i, **c) for i, c in enumerate(judged, start=1)]


def write_findings(tables_dir: Path, out_path: Path, rst_path: Path | None = None) -> list[Claim]:
    """Judge every claim on the tables in ``tables_dir`` (``NEEDS``), write the Markdown to
    ``out_path`` (e.g. results/FINDINGS.md) and the verdict table as reStructuredText to
    ``rst_path`` (for the report's front page), return the claims."""
    claims = evaluate(tables_dir)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render(claims, sources=str(tables_dir)))
    if rst_path is not None:
        Path(rst_path).write_text(render_verdicts_rst(claims))
    return claims
