"""Rules for the brief's claims about the remedies: batch normalisation (claims 7-9) and
residual connections (claim 10), and this study's own claim about mean-field theory (11), as
``figures_remedies`` draws their figures. Registered, with the brief's words, in
``report.registry``; bound by name (``judge_<name>``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from vanishing.report.claims_conv import _conv_grid as conv_grid
from vanishing.report.evidence import (
    CONTRADICTED,
    DEEP,
    HOLDS,
    MARK,
    NOT_TESTED,
    NULL,
    OPPOSITE,
    SUPPORTED,
    Part,
    choose_grid,
    combine,
    deepest,
    judged,
    num,
    outside,
    part,
    rows,
)
from vanishing.report.parts import (
    comparison_part,
    divergence_part,
    survival_line,
    survival_part,
)

VERY_DEEP = 64  # residual claims are about very deep models
THEORY_TOLERANCE = 0.15  # claim 11: relative, on the per-layer slope
THEORY_DECADES = 0.25  # claim 11: absolute, on the decades over the whole net
BN = dict(treatment="batch", residual=False)
CONV_VERY_DEEP = 20  # claim 10 on conv nets: He et al. (2016) call 20-110 conv layers very deep
CNN = dict(arch="cnn")
FLOW = (("at init", "abs_log10_grad_ratio_init", -1),
        ("early in training", "abs_log10_grad_ratio_early", -1),
        ("after training", "abs_log10_grad_ratio_final", -1))  # fmt: skip
RESIDUAL = (("flow at init", "abs_log10_grad_ratio_init", -1),
            ("learning", "final_test_accuracy", +1))  # fmt: skip


def conv_parts(t, mlp: Part, first: str, family: str, specs, keys, min_depth: int,
               **where) -> list[Part]:  # fmt: skip
    """A claim's rule on the conv nets (``arch: cnn``) of the sub-grid ``claims_conv`` reads
    (``conv`` first): one part per (label, metric, sign) of ``specs``, lettered from ``first``
    and labelled ``conv nets``; none where that grid has no rows of ``family`` at ``min_depth``
    or deeper (a study without conv nets is judged as before), or where it is the grid the MLP
    part ``mlp`` already reads (a study without the claim's own sub-grids: judged once)."""
    grid = conv_grid(t.get("comparisons"))
    if grid == mlp.grid or rows(t.get("comparisons"), grid, min_depth, family=family, **CNN,
                                **where).empty:  # fmt: skip
        return []
    return [
        comparison_part(f"({chr(ord(first) + i)}) conv nets, {label}", t, (grid,), family,
                        metric, sign, keys, min_depth, **CNN, **where)
        for i, (label, metric, sign) in enumerate(specs)
    ]  # fmt: skip


def agreement(parts, n_mlp: int) -> str:
    """Whether the MLPs (the first ``n_mlp`` of a claim's (label, verdict) parts) and the conv
    nets (the rest, the same rules in the same order) agree: they agree when every rule has the
    same verdict on both (the claim holds on both, fails on both, or is equally open), else they
    differ, and the rules whose verdicts differ are named; '' without conv parts."""
    if len(parts) <= n_mlp:
        return ""
    mlp, conv = parts[:n_mlp], parts[n_mlp:]
    v_mlp, v_conv = combine([v for _, v in mlp]), combine([v for _, v in conv])
    if NOT_TESTED in (v_mlp, v_conv):
        return f"MLPs {v_mlp}, conv nets {v_conv}: nothing to compare"
    pairs = [(label.split(") ", 1)[-1], a, b) for (label, a), (_, b) in zip(mlp, conv, strict=True)]
    if all(a == b for _, a, b in pairs):
        both = {SUPPORTED: "the claim holds on both", CONTRADICTED: "the claim fails on both"}
        return f"MLPs and conv nets agree: {both.get(v_mlp, f'{v_mlp} on both')}"
    apart = "; ".join(f"{rule}: MLPs {a}, conv nets {b}" for rule, a, b in pairs if a != b)
    return f"MLPs and conv nets differ: MLPs {v_mlp}, conv nets {v_conv} ({apart})"


def with_conv(fields: dict, n_mlp: int, conv_number: str) -> dict:
    """A claim's fields with the MLP/conv agreement (and the conv nets' deciding number) added
    to its decisive text."""
    said = agreement(fields["parts"], n_mlp)
    decisive = "; ".join(s for s in (fields["decisive"], conv_number, said) if s)
    return {**fields, "decisive": decisive}


def explosions(t, grid: str, what: str, min_depth: int = DEEP, **where) -> list[str]:
    """Deep cells whose gradient grows toward the input at init: the 95% interval of their mean
    log10_grad_ratio_init lies above 0 (selected.csv)."""
    cells = rows(t["selected"], grid, min_depth, **where)
    if len(cells):
        cells = cells[cells["log10_grad_ratio_init_ci_low"] > 0]
    return [
        f"At init the gradient grows toward the input with {what}: {r.activation}, depth "
        f"{int(r.depth)}: log10_grad_ratio_init {num(r.log10_grad_ratio_init_mean)} "
        f"[{num(r.log10_grad_ratio_init_ci_low)}, {num(r.log10_grad_ratio_init_ci_high)}]."
        for r in cells.itertuples()
    ]


def judge_stabilises(t, grids, keys) -> dict:
    """Claim 7. In deep nets without residual connections, batch norm against none: (a) the lr
    window is wider: more rates of the sweep whose validation accuracy is within noise of a
    seed's best (within the 95% half-width of a difference of two accuracies on the validation
    set's size, 1.96 sqrt(2 p (1 - p) / n_val); one point where n_val is not recorded; a seed
    whose best is within 0.05 of chance has a window of 0: it trains at no rate); (b) fewer runs
    of the sweep diverge (Fisher's exact test)."""
    window = comparison_part("(a) lr window", t, grids, "norm_vs_none", "lr_window", +1, keys,
                             **BN)  # fmt: skip
    diverge = divergence_part("(b) divergence", t, grids, "norm_vs_none", -1, keys, **BN)
    r = deepest(rows(t["comparisons"], window.grid, DEEP, family="norm_vs_none",
                     metric="lr_window", activation="sigmoid", **BN))  # fmt: skip
    decisive = "" if r is None else (
        f"sigmoid depth {int(r['depth'])}: {num(r['mean_treatment'], 2)} rates with batch norm "
        f"vs {num(r['mean_baseline'], 2)} without"
    )  # fmt: skip
    return judged([window, diverge], decisive)


def judge_accelerates(t, grids, keys) -> dict:
    """Claim 8. In deep nets without residual connections, batch norm reaches the target
    validation accuracy in fewer steps than no norm (each at its selected lr; Kaplan-Meier
    medians, a run that never gets there censored; log-rank test), judged only where both arms
    reach the target (both medians finite): where only batch norm gets there it *enables*
    training, which says nothing of speed; those rows are listed apart. The length of the
    initial plateau is reported beside it."""
    grid = choose_grid(t["survival"], grids)
    table = rows(t["survival"], grid, DEEP, family="norm_vs_none", metric="steps_to_target",
                 **BN)  # fmt: skip
    both = table
    if len(table):
        both = table[np.isfinite(table["median_treatment"]) & np.isfinite(table["median_baseline"])]
    steps = survival_part("(a) steps to target", t, grids, "norm_vs_none", "steps_to_target", -1,
                          keys, **BN)  # fmt: skip
    steps = replace(steps, table=both, reason="no deep cell where both arms reach the target")
    extra = []
    for _, r in table.drop(both.index).iterrows():
        who = "batch norm enables" if np.isfinite(r["median_treatment"]) else "neither arm reaches"
        extra.append(f"{who} the target here ({survival_line(r, NULL, keys)}): not a question of "
                     "speed")  # fmt: skip
    plateau = rows(t["survival"], grid, DEEP, family="norm_vs_none", metric="plateau_steps", **BN)
    extra += [f"plateau: {survival_line(r, NULL, keys)}" for _, r in plateau.iterrows()]
    r = deepest(rows(t["survival"], grid, DEEP, family="norm_vs_none",
                     metric="steps_to_target", activation="sigmoid", **BN))  # fmt: skip
    decisive = "" if r is None else (
        f"sigmoid depth {int(r['depth'])}: median {num(r['median_treatment'])} steps with batch "
        f"norm vs {num(r['median_baseline'])} without"
    )  # fmt: skip
    return judged([steps], decisive, extra=extra)


def judge_bn_flow(t, grids, keys) -> dict:
    """Claim 9. In deep nets without residual connections, batch norm keeps the gradient closer
    to balanced flow (smaller abs log10 ratio of layer 1 to the top) than no norm: (a) at init
    (Yang et al. 2019 predict the opposite for plain batch-norm nets: growth toward the input),
    (b) early in training (the last probe at or before step 64), (c) after training. (d)-(f),
    where the study has conv nets with and without batch norm (the ``conv`` sub-grid first):
    the same three on the conv nets, their rows Holm-adjusted apart from the MLPs', and whether
    MLPs and conv nets agree (each rule with the same verdict on both)."""
    parts = [
        comparison_part(f"({letter}) {label}", t, grids, "norm_vs_none", metric, sign, keys, **BN)
        for letter, (label, metric, sign) in zip("abc", FLOW, strict=True)
    ]
    conv = conv_parts(t, parts[0], "d", "norm_vs_none", FLOW, keys, DEEP, **BN)
    grid = choose_grid(t["selected"], grids)
    extra = explosions(t, grid, "batch norm", norm="batch", residual=False)
    if conv:
        extra += explosions(t, conv[0].grid, "batch norm (conv nets)", norm="batch",
                            residual=False, **CNN)  # fmt: skip
    r = deepest(rows(t["comparisons"], parts[0].grid, DEEP, family="norm_vs_none",
                     metric="abs_log10_grad_ratio_init", activation="relu", **BN))  # fmt: skip
    decisive = "" if r is None else (
        f"relu depth {int(r['depth'])} at init: {num(r['mean_treatment'])} decades from balanced "
        f"flow with batch norm vs {num(r['mean_baseline'])} without"
    )  # fmt: skip
    c = deepest(conv[0].table) if conv else None
    conv_number = "" if c is None else (
        f"conv nets, {c['activation']} depth {int(c['depth'])} at init: "
        f"{num(c['mean_treatment'])} decades with batch norm vs {num(c['mean_baseline'])} without"
    )  # fmt: skip
    return with_conv(judged(parts, decisive, extra=extra, apart=conv), len(parts), conv_number)


def judge_residual(t, grids, keys) -> dict:
    """Claim 10. In very deep nets (at least 64 hidden layers), residual against plain, without
    a norm and with batch norm (the block of real ResNets): (a) at init the gradient is closer
    to balanced flow (smaller abs log10 ratio); (b) test accuracy is higher. The branch gain
    (residual_scale) of each row is named. (c)-(d), where the study has residual and plain conv
    nets of at least 20 conv layers (He et al. 2016 call 20-110 very deep; the ``conv``
    sub-grid first): the same two on the conv nets, their rows Holm-adjusted apart from the
    MLPs', and whether MLPs and conv nets agree (each rule with the same verdict on both)."""
    parts = [
        comparison_part(f"({letter}) {label}", t, grids, "residual_vs_plain", metric, sign, keys,
                        VERY_DEEP, treatment=True)
        for letter, (label, metric, sign) in zip("ab", RESIDUAL, strict=True)
    ]  # fmt: skip
    conv = conv_parts(t, parts[0], "c", "residual_vs_plain", RESIDUAL, keys, CONV_VERY_DEEP,
                      treatment=True)  # fmt: skip
    grid = choose_grid(t["selected"], grids)
    extra = explosions(t, grid, "residual connections", VERY_DEEP, residual=True)
    if conv:
        extra += explosions(t, conv[0].grid, "residual connections (conv nets)", CONV_VERY_DEEP,
                            residual=True, **CNN)  # fmt: skip
    r = deepest(rows(t["comparisons"], parts[1].grid, VERY_DEEP, family="residual_vs_plain",
                     metric="final_test_accuracy", norm="none", treatment=True))  # fmt: skip
    decisive = "" if r is None else (
        f"{r['activation']} depth {int(r['depth'])}: test accuracy {num(r['mean_treatment'], 2)} "
        f"residual vs {num(r['mean_baseline'], 2)} plain"
    )  # fmt: skip
    c = deepest(rows(conv[1].table, conv[1].grid, norm="batch")) if conv else None
    conv_number = "" if c is None else (
        f"conv nets with batch norm, depth {int(c['depth'])}: test accuracy "
        f"{num(c['mean_treatment'], 2)} residual vs {num(c['mean_baseline'], 2)} plain"
    )  # fmt: skip
    fields = judged(parts, decisive, "no residual and plain nets of 64+ layers side by side", extra,
                    conv)  # fmt: skip
    return with_conv(fields, len(parts), conv_number)


BLOCKS_GRID = "blocks"  # the default study's step-0 profiles of the post and branch_act blocks


def block_note(r) -> str:
    """`` (pre block, residual_scale inv_sqrt_depth)`` for a residual group's row (every block
    and branch gain is judged), else nothing."""
    if str(r.get("residual", "")).lower() != "true" or "block" not in r:
        return ""
    scale = f", residual_scale {r['residual_scale']}" if "residual_scale" in r else ""
    return f" ({r['block']} block{scale})"


def judge_theory(t, grids, keys) -> dict:
    """Claim 11 (this study's own). For every group at depth >= 8 with a prediction (plain,
    batch norm, layer norm, residual with each block: pre, post, branch_act, also from the
    ``blocks`` sub-grid; the known misses included), the measured per-layer slope
    of log10 grad_preact_rms at init matches the mean-field prediction: over the whole net
    (slope x (depth - 1)) the measured decades are within 0.25 of the predicted ones, or, where
    the prediction is large, the slope is within 15% of it. A miss: within neither and the
    prediction outside the measured 95% interval; null: within neither, the prediction inside
    the interval. Theory is the claim here: no row is decided before the data."""
    grid = choose_grid(t["theory"], grids)
    theory = rows(t["theory"], grid, DEEP)
    extra = rows(t["theory"], BLOCKS_GRID, DEEP) if grid != BLOCKS_GRID else pd.DataFrame()
    if len(extra):  # the other blocks' step-0 profiles, where a study has them apart
        theory = pd.concat([theory, extra], ignore_index=True)
    if len(theory):
        theory = theory[
            np.isfinite(theory["predicted_slope"]) & np.isfinite(theory["measured_slope"])
        ]
        theory = theory.assign(
            decades_error=(theory["measured_slope"] - theory["predicted_slope"])
            * (pd.to_numeric(theory["depth"]) - 1)
        )

    def close(r) -> bool:
        relative = np.isfinite(r["relative_error"]) and abs(r["relative_error"]) <= THEORY_TOLERANCE
        return abs(r["decades_error"]) <= THEORY_DECADES or relative

    def mark(r):
        inside = r["measured_slope_ci_low"] <= r["predicted_slope"] <= r["measured_slope_ci_high"]
        if close(r):
            return HOLDS
        return NULL if inside else OPPOSITE

    def line(r, m):
        return (
            f"{r['activation']} ({r['init_scheme']}), norm {r['norm']}, residual {r['residual']}"
            f"{block_note(r)}, depth {int(r['depth'])}: predicted {num(r['predicted_slope'])}, "
            f"measured "
            f"{num(r['measured_slope'])} [{num(r['measured_slope_ci_low'])}, "
            f"{num(r['measured_slope_ci_high'])}] decades per layer: {num(r['decades_error'], 2)} "
            f"decades off over the net, relative error {num(r['relative_error'], 2)}, "
            f"{int(r['n_seeds'])} seeds {MARK[m]}"
        )

    def test_of_theory(r):
        return outside("the claim tests theory itself")

    p = part("(a) slopes", theory, mark, line, grid, theory=test_of_theory)
    held = sum(close(r) for _, r in theory.iterrows()) if len(theory) else 0
    decisive = (f"{held} of {len(theory)} groups within {THEORY_DECADES} decades or "
                f"{THEORY_TOLERANCE:.0%}") if len(theory) else ""  # fmt: skip
    return judged([p], decisive, "no groups with a prediction at depth >= 8")
