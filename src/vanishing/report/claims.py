"""The registry of claims: the brief split into the claims this study tests, each with the
brief's words, the sub-grids it is judged on (the first of them the study has), the figure that
shows its evidence, and its rule. The rules of the claims about the problem (1-6) and the
theory (11) are here; those about the remedies (7-10) in ``vanishing.report.remedies``.

Every rule is fixed here before the data, reads the statistics tables only, and can come out
either way (``tests/test_findings.py`` builds synthetic studies for each verdict). A judge takes
the tables by name, the preferred sub-grids and the settings sentences name, and returns the
fields of its ``evidence.Claim`` (``evidence.judged``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vanishing.activations import SATURATING
from vanishing.report import claims_conv, remedies
from vanishing.report.claims_time import CLAIMS_TIME
from vanishing.report.evidence import (
    ALPHA,
    DEEP,
    HOLDS,
    MARK,
    NULL,
    OPPOSITE,
    SHARED_INITS,
    association_part,
    cell_part,
    choose_grid,
    comparison_part,
    deepest,
    judged,
    num,
    part,
    plain,
    rows,
    survival_part,
)  # fmt: skip

HUNDREDS = 100  # "hundreds of layers": at least this many
THEORY_TOLERANCE = 0.15
SATURATION_SHARE = 0.5  # saturation causes the decay if it accounts for at least half of it
CHANCE_MARGIN = 0.1  # a cell "learned" if its test accuracy beats chance by more than this
SATURATING_PLAIN = dict(activation=SATURATING, **plain())


def judge_decay(t, grids, keys) -> dict:
    """Claim 1. In each plain sigmoid and tanh group, log10(layer-1 / top gradient) at step 0 is
    fitted across depths as exponential (linear in depth) and as a power law (linear in log
    depth). A group holds if the J tests keep the exponential and reject the power law (and the
    ratio falls with depth); it is contrary if they keep the power law instead, or the ratio
    does not fall; null otherwise (both or neither rejected)."""

    def mark(r):
        if r["shape"] == "power law" or not r["exp_slope"] < 0:
            return OPPOSITE
        return HOLDS if r["shape"] == "exponential" else NULL

    def line(r, m):
        return (
            f"{r['activation']} ({r['init_scheme']} init), depths {int(r['depth_min'])}-"
            f"{int(r['depth_max'])}, n = {int(r['n_obs'])} ({int(r['n_censored'])} censored, left "
            f"out): {num(r['exp_slope'])} decades per layer (R^2 {num(r['exp_r2'], 2)}), power "
            f"law exponent {num(r['pow_exponent'])} (R^2 {num(r['pow_r2'], 2)}); J tests: p "
            f"{num(r['p_reject_exponential'], 2)} against the exponential, "
            f"{num(r['p_reject_power'], 2)} against the power law: {r['shape']} {MARK[m]}"
        )

    grid = choose_grid(t["decay_fits"], grids)
    fits = rows(t["decay_fits"], grid, **SATURATING_PLAIN)
    if len(fits):
        fits = fits[fits["shape"].fillna("").astype(str) != ""]
    decisive = "; ".join(f"{r.activation}: {r.shape}" for r in fits.itertuples())
    return judged([part("(a) shape", fits, mark, line, grid)], decisive,
                  "no plain sigmoid or tanh networks at three or more depths")  # fmt: skip


def judge_updates(t, grids, keys) -> dict:
    """Claim 2. In deep plain sigmoid and tanh cells, layer 1 has moved less, relative to its
    size, than the top layer by the end of training: log10 of the ratio of their relative
    distances from init is below 0 (one-sample t-test over seeds, Holm). Judged under SGD (a)
    and Adam (b); the fraction of layer-1 weights still bitwise at init is reported."""
    metric = "log10_distance_ratio_final"
    sgd = cell_part("(a) SGD", t, grids, metric, -1, keys, optimizer="sgd", **SATURATING_PLAIN)
    adam = cell_part("(b) Adam", t, ("adam", *grids), metric, -1, keys, optimizer="adam",
                     **SATURATING_PLAIN)  # fmt: skip
    sel = rows(t["selected"], choose_grid(t["selected"], grids), DEEP, optimizer="sgd",
               **SATURATING_PLAIN)  # fmt: skip
    extra = [
        f"not at all: {r.activation}, depth {int(r.depth)} (SGD): "
        f"{num(r.unchanged_layer1_final_mean, 2)} of layer 1's weights bitwise unchanged after "
        "training (float32 drops an update below ~2^-24 of a weight)"
        for r in sel.itertuples()
    ]
    r = deepest(rows(t["cell_tests"], sgd.grid, DEEP, metric=metric, optimizer="sgd",
                     **SATURATING_PLAIN))  # fmt: skip
    decisive = "" if r is None else (
        f"{r['activation']} depth {int(r['depth'])}, SGD: layer 1 moved 10^{num(r['mean'], 2)} "
        "as far as the top layer"
    )  # fmt: skip
    return judged([sgd, adam], decisive, extra=extra)


def judge_stagnation(t, grids, keys) -> dict:
    """Claim 3. In plain sigmoid and tanh nets: (a) the deepest ends with a higher training loss
    than the shallowest; (b) it reaches the target validation accuracy later (log-rank; a run
    that never gets there is censored); (c) in deep cells that learned (test accuracy above
    chance + 0.1), resetting layers 1..depth//2 to their initial values loses nothing: the drop
    is within +-0.02 by TOST (contrary: a significant drop); (d) across all cells a smaller
    gradient ratio at init goes with a higher final training loss (Spearman rho < 0). Plain
    ReLU cells are the control for (c). (e), where the study has plain batch-norm conv nets:
    degradation (``claims_conv``), whose contrary says poor learning there is not caused by
    vanishing gradients."""
    family = "deepest_vs_shallowest"
    loss = comparison_part("(a) training loss", t, grids, family, "final_train_loss", +1, keys,
                           **SATURATING_PLAIN)  # fmt: skip
    late = survival_part("(b) steps to target", t, grids, family, "steps_to_target", +1, keys,
                         **SATURATING_PLAIN)  # fmt: skip
    grid = choose_grid(t["cell_tests"], grids)
    sel = rows(t["selected"], choose_grid(t["selected"], grids), DEEP, **SATURATING_PLAIN)
    learned = set()
    if len(sel):
        chance = 1 / sel["n_classes"].astype(float)
        learned = set(sel.loc[sel["final_test_accuracy_mean"] > chance + CHANCE_MARGIN, "cell"])
    resets = rows(t["cell_tests"], grid, DEEP, metric="reset_drop", **SATURATING_PLAIN)
    resets = resets[resets["cell"].isin(learned)] if len(resets) else resets

    def mark(r):
        if r["p_tost"] < ALPHA:
            return HOLDS
        return OPPOSITE if r["mean"] > 0 and r["p_holm"] < ALPHA else NULL

    def line(r, m):
        return (
            f"reset_drop ({r['activation']}, depth {int(r['depth'])}): {num(r['mean'])} "
            f"[{num(r['ci_low'])}, {num(r['ci_high'])}]; TOST p (within +-{num(r['margin'])}) "
            f"{num(r['p_tost'], 2)}, Holm p (a drop) {num(r['p_holm'], 2)} {MARK[m]}"
        )

    reset = part("(c) layer reset", resets, mark, line, grid)
    control = rows(t["cell_tests"], grid, DEEP, metric="reset_drop", activation="relu", **plain())
    extra = [
        f"control: {line(r, NULL).removesuffix(' ' + MARK[NULL])}" for _, r in control.iterrows()
    ]
    link = association_part("(d) across cells", t, grids, "log10_grad_ratio_init",
                            "final_train_loss", -1)  # fmt: skip
    r = deepest(rows(t["comparisons"], loss.grid, DEEP, family=family, metric="final_train_loss",
                     **SATURATING_PLAIN))  # fmt: skip
    decisive = "" if r is None else (
        f"{r['activation']}: training loss {num(r['mean_treatment'])} at depth "
        f"{r['treatment']} vs {num(r['mean_baseline'])} at depth {r['baseline']}"
    )  # fmt: skip
    conv = claims_conv.degradation_part(t, keys)  # None without conv nets
    said = claims_conv.degradation_sentence(conv)
    decisive = "; ".join(s for s in (decisive, said) if s)
    return judged([loss, late, reset, link, *([conv] if conv else [])], decisive, extra=extra)


def judge_mechanism(t, grids, keys) -> dict:
    """Claim 4. (a) At a shared init (the matched-init sub-grid: PyTorch's default and LeCun's,
    the same weight scale for every activation), relu keeps a larger log10 ratio at init than
    sigmoid and than tanh in deep plain nets. (b) Saturation, not the activation's largest
    slope, explains the decay at init: in deep plain sigmoid/tanh groups the share of the
    measured per-layer decay beyond what the largest slope alone gives (theory.csv's
    ceiling_slope) is at least 0.5 (contrary: below 0.5). (c) Training saturates more units
    (saturation_change > 0) while the gradient ratio falls (grad_ratio_change < 0), both
    significant in the same cell (contrary: saturation falls)."""
    parts = [
        comparison_part(f"(a) relu vs {b}", t, grids, f"activation_vs_{b}",
                        "log10_grad_ratio_init", +1, keys, treatment="relu", init=SHARED_INITS,
                        **plain())
        for b in SATURATING
    ]  # fmt: skip
    grid = choose_grid(t["theory"], grids)
    theory = rows(t["theory"], grid, DEEP, **SATURATING_PLAIN)
    theory = theory.assign(share=1 - theory["ceiling_slope"] / theory["measured_slope"]) if len(
        theory
    ) else theory  # fmt: skip

    def share_mark(r):
        if not (r["measured_slope"] > 0 and np.isfinite(r["share"])):
            return NULL
        return HOLDS if r["share"] >= SATURATION_SHARE else OPPOSITE

    def share_line(r, m):
        return (
            f"{r['activation']} ({r['init_scheme']} init), depth {int(r['depth'])}: "
            f"{num(r['measured_slope'])} decades per layer measured, {num(r['ceiling_slope'])} "
            f"from the largest slope alone: saturation's share {num(r['share'], 2)} {MARK[m]}"
        )

    parts.append(part("(b) saturation at init", theory, share_mark, share_line, grid))
    cell_grid = choose_grid(t["cell_tests"], grids)
    sat = rows(t["cell_tests"], cell_grid, DEEP, metric="saturation_change", **SATURATING_PLAIN)
    grad = rows(t["cell_tests"], cell_grid, DEEP, metric="grad_ratio_change", **SATURATING_PLAIN)
    falls = (
        set(grad.loc[(grad["mean"] < 0) & (grad["p_holm"] < ALPHA), "cell"]) if len(grad) else set()
    )

    def train_mark(r):
        significant = r["p_holm"] < ALPHA
        if significant and r["mean"] > 0 and r["cell"] in falls:
            return HOLDS
        return OPPOSITE if significant and r["mean"] < 0 else NULL

    def train_line(r, m):
        return (
            f"{r['activation']}, depth {int(r['depth'])}: saturation_change {num(r['mean'])} "
            f"[{num(r['ci_low'])}, {num(r['ci_high'])}], Holm p {num(r['p_holm'], 2)}; gradient "
            f"ratio {'falls' if r['cell'] in falls else 'does not fall significantly'} {MARK[m]}"
        )

    parts.append(part("(c) saturation in training", sat, train_mark, train_line, cell_grid))
    sig = theory[theory["activation"] == "sigmoid"] if len(theory) else theory
    r = deepest(sig)
    decisive = "" if r is None else f"sigmoid: saturation's share of the decay {num(r['share'], 2)}"
    return judged(parts, decisive)


def judge_hundreds(t, grids, keys) -> dict:
    """Claim 5. With at least 100 hidden layers in plain sigmoid and tanh nets: (a) at init,
    layer 1 gets less than 2^-24 of the top layer's gradient (below float32's relative
    precision; underflow counts) in every seed (contrary: in none); (b) trained, they do not
    learn: the upper end of the 95% interval of test accuracy is within 0.1 of chance
    (contrary: its lower end is above chance + 0.1)."""
    grid = choose_grid(t["underflow"], grids)
    floors = rows(t["underflow"], grid, HUNDREDS, **SATURATING_PLAIN)

    def floor_mark(r):
        if r["n_below_floor"] == r["n_seeds"]:
            return HOLDS
        return OPPOSITE if r["n_below_floor"] == 0 else NULL

    def floor_line(r, m):
        return (
            f"{r['activation']}, depth {int(r['depth'])}: {int(r['n_below_floor'])} of "
            f"{int(r['n_seeds'])} seeds below 2^-24 of the top layer ({int(r['n_censored'])} "
            f"underflow float32); least decayed seed 10^{num(r['max_log10_grad_ratio_init'], 3)} "
            f"{MARK[m]}"
        )

    at_init = part("(a) at init", floors, floor_mark, floor_line, grid)
    sel_grid = choose_grid(t["selected"], ("deep", *grids))
    sel = rows(t["selected"], sel_grid, HUNDREDS, **SATURATING_PLAIN)
    sel = sel[pd.to_numeric(sel["epochs"]) > 0] if len(sel) else sel

    def learn_mark(r):
        chance = 1 / float(r["n_classes"])
        if r["final_test_accuracy_ci_high"] <= chance + CHANCE_MARGIN:
            return HOLDS
        return OPPOSITE if r["final_test_accuracy_ci_low"] > chance + CHANCE_MARGIN else NULL

    def learn_line(r, m):
        return (
            f"{r['activation']}, depth {int(r['depth'])}: test accuracy "
            f"{num(r['final_test_accuracy_mean'])} [{num(r['final_test_accuracy_ci_low'])}, "
            f"{num(r['final_test_accuracy_ci_high'])}] at lr {num(r['selected_lr'])}, chance "
            f"{num(1 / float(r['n_classes']))} {MARK[m]}"
        )

    trained = part("(b) learning", sel, learn_mark, learn_line, sel_grid)
    r = deepest(floors[floors["activation"] == "sigmoid"] if len(floors) else floors)
    decisive = "" if r is None else (
        f"sigmoid depth {int(r['depth'])}: {int(r['n_below_floor'])}/{int(r['n_seeds'])} seeds "
        "below 2^-24"
    )  # fmt: skip
    return judged([at_init, trained], decisive, "no plain sigmoid or tanh nets of 100+ layers")


def judge_relu(t, grids, keys) -> dict:
    """Claim 6. In deep plain nets relu keeps a gradient closer to balanced flow at init than
    sigmoid and than tanh (smaller abs_log10_grad_ratio_init): (a) each with its own init (the
    main sub-grid), (b) at a shared init (the matched-init sub-grid); (c) at the end of training
    relu's dead fraction is smaller than sigmoid's and tanh's saturated fraction. Own init
    means init auto; a shared init any one scheme for all (pytorch, lecun, ...)."""
    own = [g for g in grids if g != "matched_init"]
    parts = []
    for label, where_grids, metric, init in (
        ("(a) own init", own, "abs_log10_grad_ratio_init", "auto"),
        ("(b) shared init", ("matched_init", *own), "abs_log10_grad_ratio_init", SHARED_INITS),
        ("(c) saturated/dead units", own, "saturation_final", "auto"),
    ):
        for b in SATURATING:
            family = f"activation_vs_{b}"
            parts.append(comparison_part(f"{label}, vs {b}", t, where_grids, family, metric, -1,
                                         keys, treatment="relu", init=init, **plain()))  # fmt: skip
    r = deepest(rows(t["comparisons"], parts[0].grid, DEEP, family="activation_vs_sigmoid",
                     metric="abs_log10_grad_ratio_init", treatment="relu", **plain()))  # fmt: skip
    decisive = "" if r is None else (
        f"depth {int(r['depth'])}: relu {num(r['mean_treatment'])} vs sigmoid "
        f"{num(r['mean_baseline'])} decades from balanced flow"
    )  # fmt: skip
    return judged(parts, decisive)


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
    batch norm, layer norm, residual with each block: pre, post, branch_act; the known misses
    included), the measured per-layer slope
    of log10 grad_preact_rms at init is within 15% of the mean-field prediction (or, for a flat
    prediction, the prediction lies in the measured 95% interval). A miss: outside 15% and the
    prediction outside the interval; null: within neither, or inside the interval only."""
    grid = choose_grid(t["theory"], grids)
    theory = rows(t["theory"], grid, DEEP)
    extra = rows(t["theory"], BLOCKS_GRID, DEEP) if grid != BLOCKS_GRID else pd.DataFrame()
    if len(extra):  # the other blocks' step-0 profiles, where a study has them apart
        theory = pd.concat([theory, extra], ignore_index=True)
    if len(theory):
        theory = theory[
            np.isfinite(theory["predicted_slope"]) & np.isfinite(theory["measured_slope"])
        ]

    def mark(r):
        inside = r["measured_slope_ci_low"] <= r["predicted_slope"] <= r["measured_slope_ci_high"]
        close = abs(r["relative_error"]) <= THEORY_TOLERANCE
        if close or (not np.isfinite(r["relative_error"]) and inside):
            return HOLDS
        return NULL if inside or not np.isfinite(r["relative_error"]) else OPPOSITE

    def line(r, m):
        return (
            f"{r['activation']} ({r['init_scheme']}), norm {r['norm']}, residual {r['residual']}"
            f"{block_note(r)}, depth {int(r['depth'])}: predicted {num(r['predicted_slope'])}, "
            f"measured {num(r['measured_slope'])} [{num(r['measured_slope_ci_low'])}, "
            f"{num(r['measured_slope_ci_high'])}], relative error {num(r['relative_error'], 2)}, "
            f"{int(r['n_seeds'])} seeds {MARK[m]}"
        )

    p = part("(a) slopes", theory, mark, line, grid)
    held = sum(ln.endswith(MARK[HOLDS]) for ln in p.lines)
    decisive = f"{held} of {len(p.lines)} groups within 15%" if p.lines else ""
    return judged([p], decisive, "no groups with a prediction at depth >= 8")


@dataclass(frozen=True)
class ClaimSpec:
    number: int
    title: str
    quote: str  # the brief's words
    grids: tuple[str, ...]  # sub-grids it is judged on, in order of preference
    figure: str  # the figure that shows its evidence (report/catalog.py)
    judge: Callable


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(1, "Gradients shrink exponentially toward the lower layers",
              "when these gradients are propagated backward through each layer, they can "
              "become exponentially smaller", ("profile", "main"), "decay_shapes", judge_decay),
    ClaimSpec(2, "The lower layers' weights are updated very little or not at all",
              "the lower layers of the network receive very tiny gradients, which means their "
              "weights are updated very little or not at all", ("main",), "update_ledger",
              judge_updates),
    ClaimSpec(3, "This leads to poor learning or stagnation",
              "This leads to poor learning or stagnation", ("main",), "layer_reset",
              judge_stagnation),
    ClaimSpec(4, "Sigmoid and tanh cause it, by squashing their inputs into a narrow range",
              "activation functions such as the sigmoid or hyperbolic tangent (tanh), which "
              "squashes input values into a narrow range, causing gradients to diminish as they "
              "propagate back", ("matched_init", "main"), "saturation_mechanism",
              judge_mechanism),
    ClaimSpec(5, "With hundreds of layers the gradients shrink toward zero",
              "if hundreds of layers are present, the gradients can shrink toward zero, leading "
              "to ineffective learning", ("profile", "deep", "main"), "deep_profiles",
              judge_hundreds),
    ClaimSpec(6, "ReLU does not saturate and keeps larger gradients",
              "activation functions like ReLU (Rectified Linear Unit), which do not saturate for "
              "positive inputs and help maintain larger gradients", ("main", "matched_init"),
              "activations_matched", judge_relu),
    ClaimSpec(7, "Batch normalisation stabilises training",
              "batch normalization can stabilize ... training", ("main",), "lr_window",
              remedies.judge_stabilises),
    ClaimSpec(8, "Batch normalisation accelerates training",
              "batch normalization can ... accelerate training", ("main",), "steps_to_target",
              remedies.judge_accelerates),
    ClaimSpec(9, "Batch normalisation improves gradient flow",
              "by improving gradient flow through the network", ("main",), "bn_flow",
              remedies.judge_bn_flow),
    ClaimSpec(10, "Residual shortcuts let gradients flow through very deep nets and help them "
              "learn", "shortcut connections that allow gradients to flow more easily back "
              "through the network, helping to improve learning in very deep models",
              ("deep", "main"), "residual_deep", remedies.judge_residual),
    ClaimSpec(11, "Measured profiles at init match mean-field theory (this study's claim)",
              "", ("profile", "main"), "theory_overlay", judge_theory),
    *(ClaimSpec(*spec) for spec in CLAIMS_TIME),  # through time (issue 18)
)  # fmt: skip
