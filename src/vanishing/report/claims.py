"""Rules for the brief's claims about the problem (1-6), as ``figures_claims`` draws their
figures; those about the remedies and theory (7-11) are in ``vanishing.report.remedies``. Each
claim is one entry of ``report.registry`` (number, title, the brief's words, sub-grids, figure,
families); its rule is ``judge_<name>`` (``registry.judge``).

Every rule is fixed here before the data, reads the statistics tables only, and can come out
either way (``tests/test_findings.py`` builds synthetic studies for each verdict). A judge takes
the tables by name, the preferred sub-grids and the settings sentences name, and returns the
fields of its ``evidence.Claim`` (``evidence.judged``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vanishing.activations import SATURATING
from vanishing.report import claims_conv
from vanishing.report.evidence import (
    ALPHA,
    DEEP,
    HOLDS,
    MARK,
    NULL,
    OPPOSITE,
    SHARED_INITS,
    choose_grid,
    deepest,
    holm_within,
    judged,
    num,
    part,
    plain,
    rows,
)
from vanishing.report.parts import (
    association_part,
    bound,
    cause_part,
    comparison_part,
    matched_chi_parts,
    survival_part,
    unchanged_lines,
)
from vanishing.report.predictions import (
    SATURATION_SHARE,
    floor_theory,
    shape_theory,
    share_theory,
)

HUNDREDS = 100  # "hundreds of layers": at least this many
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
        grows = " (the gradient grows toward the input: it explodes)" if r["exp_slope"] > 0 else ""
        return (
            f"{r['activation']} ({r['init_scheme']} init), depths {int(r['depth_min'])}-"
            f"{int(r['depth_max'])}, n = {int(r['n_obs'])} ({int(r['n_censored'])} censored, left "
            f"out): {num(r['exp_slope'])} decades per layer{grows} (R^2 {num(r['exp_r2'], 2)}), "
            f"power law exponent {num(r['pow_exponent'])} (R^2 {num(r['pow_r2'], 2)}); J tests: p "
            f"{num(r['p_reject_exponential'], 2)} against the exponential, "
            f"{num(r['p_reject_power'], 2)} against the power law: {r['shape']} {MARK[m]}"
        )

    grid = choose_grid(t["decay_fits"], grids)
    fits = rows(t["decay_fits"], grid, **SATURATING_PLAIN)
    if len(fits):
        fits = fits[fits["shape"].fillna("").astype(str) != ""]
    decisive = "; ".join(f"{r.activation}: {r.shape}" for r in fits.itertuples())
    return judged([part("(a) shape", fits, mark, line, grid, theory=shape_theory)], decisive,
                  "no plain sigmoid or tanh networks at three or more depths")  # fmt: skip


def judge_updates(t, grids, keys) -> dict:
    """Claim 2. In deep plain sigmoid and tanh cells, layer 1 moves less, relative to its size
    and to the top layer's move, than in a healthy control at the same depth: log10 of the
    ratio of layer 1's relative distance from init to the top layer's is smaller than in (a) a
    critical ReLU net (relu, He init) and (b) the same net with batch norm, under SGD, and (c)
    than the critical ReLU net under Adam. Tested as differences (control - saturating > 0); a
    layer that did not move is censored at float32's bound, so arms with censored seeds are
    compared by an exact rank test with censored values tied at the bottom, and printed as
    bounds. "Not at all": the fraction of layer 1's weights bitwise unchanged is reported per
    cell beside its control's.

    Each part is judged at its sub-grid's largest depth only, fixed before the data: the brief
    speaks of deep nets, and Holm over the claim's rows must leave an outcome room to be
    significant. With 5 vs 5 seeds the exact rank test's smallest p is 2/252 = 0.0079; over
    the 16 rows of every depth >= 8 Holm lifts it to 0.13, so no data could make a row hold;
    over the 6 rows at the largest depth to 0.048."""
    metric = "log10_distance_ratio_final"
    at_deepest = dict(deepest_only=True)
    parts = [
        comparison_part(f"(a) SGD, relu control vs {b}", t, grids, f"activation_vs_{b}", metric,
                        +1, keys, treatment="relu", init="auto", optimizer="sgd", **at_deepest,
                        **plain())
        for b in SATURATING
    ]  # fmt: skip
    parts.append(comparison_part("(b) SGD, batch-norm control", t, grids, "norm_vs_none", metric,
                                 +1, keys, treatment="batch", activation=SATURATING,
                                 optimizer="sgd", residual=False, **at_deepest))  # fmt: skip
    parts += [
        comparison_part(f"(c) Adam, relu control vs {b}", t, ("adam", *grids),
                        f"activation_vs_{b}", metric, +1, keys, treatment="relu", init="auto",
                        optimizer="adam", **at_deepest, **plain())
        for b in SATURATING
    ]  # fmt: skip
    extra = unchanged_lines(t, choose_grid(t["selected"], grids))
    r = deepest(
        rows(
            t["comparisons"],
            parts[0].grid,
            DEEP,
            family="activation_vs_sigmoid",
            metric=metric,
            treatment="relu",
            init="auto",
            optimizer="sgd",
            **plain(),
        )
    )
    decisive = "" if r is None else (
        f"depth {int(r['depth'])}, SGD: layer 1 of sigmoid moved {bound(r, 'baseline')} as far as "
        f"its top layer, of the relu control {bound(r, 'treatment')}"
    )  # fmt: skip
    return judged(parts, decisive, extra=extra)


def judge_stagnation(t, grids, keys) -> dict:
    """Claim 3. In plain sigmoid and tanh nets: (a) the deepest ends with a higher training loss
    than the shallowest; (b) it reaches the target validation accuracy later (log-rank; a run
    that never gets there is censored); (c) in every deep cell (those at chance included),
    resetting layers 1..depth//2 to their initial values loses nothing: the drop is within
    +-0.02 by TOST (contrary: a significant drop), with the plain ReLU cell of the same depth
    beside it as the control; (d) across all cells a smaller gradient ratio at init goes with a
    higher final training loss (Spearman rho < 0); (e) where the study has the optimizers
    sub-grid (deep plain sigmoid under SGD, Adam at eps 1e-8, Adam at a negligible eps,
    layer-wise normalised SGD), what stalls them: *gradient size* (holds) if an optimizer that
    rescales each gradient trains them (test accuracy's lower 95% end above chance + 0.1) while
    SGD does not; *forward collapse* (contrary) if none trains and the top layer's correlation
    c of two inputs at init is at least 0.99. (f), where the study has plain batch-norm conv nets:
    degradation (``claims_conv``), whose contrary says poor learning there is not caused by
    vanishing gradients."""
    family = "deepest_vs_shallowest"
    loss = comparison_part("(a) training loss", t, grids, family, "final_train_loss", +1, keys,
                           **SATURATING_PLAIN)  # fmt: skip
    late = survival_part("(b) steps to target", t, grids, family, "steps_to_target", +1, keys,
                         **SATURATING_PLAIN)  # fmt: skip
    grid = choose_grid(t["cell_tests"], grids)
    resets = rows(t["cell_tests"], grid, DEEP, metric="reset_drop", **SATURATING_PLAIN)
    control = rows(t["cell_tests"], grid, DEEP, metric="reset_drop", activation="relu", **plain())

    def mark(r):
        if r["p_tost"] < ALPHA:
            return HOLDS
        return OPPOSITE if r["mean"] > 0 and r["p_holm"] < ALPHA else NULL

    def beside(r) -> str:
        """The relu control's drop at the same depth (and other settings of the row)."""
        same = control
        for k in ("depth", "optimizer", "init"):
            if len(same) and k in same:
                same = same[same[k].astype(str) == str(r[k])]
        if not len(same):
            return "; no relu control at this depth"
        c = same.iloc[0]
        return f"; relu control {num(c['mean'])} [{num(c['ci_low'])}, {num(c['ci_high'])}]"

    def line(r, m):
        return (
            f"reset_drop ({r['activation']}, depth {int(r['depth'])}): {num(r['mean'])} "
            f"[{num(r['ci_low'])}, {num(r['ci_high'])}]{beside(r)}; TOST p (within "
            f"+-{num(r['margin'])}) {num(r['p_tost'], 2)}, Holm p (a drop) "
            f"{num(r['p_holm'], 2)} {MARK[m]}"
        )

    reset = part("(c) layer reset", resets, mark, line, grid, "p_t")
    extra = []
    link = association_part("(d) across cells", t, grids, "log10_grad_ratio_init",
                            "final_train_loss", -1)  # fmt: skip
    r = deepest(rows(t["comparisons"], loss.grid, DEEP, family=family, metric="final_train_loss",
                     **SATURATING_PLAIN))  # fmt: skip
    decisive = "" if r is None else (
        f"{r['activation']}: training loss {num(r['mean_treatment'])} at depth "
        f"{r['treatment']} vs {num(r['mean_baseline'])} at depth {r['baseline']}"
    )  # fmt: skip
    cause = cause_part(t, CHANCE_MARGIN, keys)
    conv = claims_conv.degradation_part(t, keys)  # None without conv nets
    parts = [loss, late, reset, link, *cause, *([conv] if conv else [])]
    if conv:  # the sentence reads the conv rows with the claim's own Holm p, as the verdict does
        said = claims_conv.degradation_sentence(conv, holm_within(parts)[-1])
        decisive = "; ".join(s for s in (decisive, said) if s)
    return judged(parts, decisive, extra=extra)


def judge_mechanism(t, grids, keys) -> dict:
    """Claim 4. (a) At a shared init (the matched-init sub-grid: PyTorch's default and LeCun's,
    the same weight scale for every activation), relu keeps a larger log10 ratio at init than
    sigmoid and than tanh in deep plain nets, and, where the study has the matched-chi
    sub-grid, also with every activation at the same chi (there theory expects no difference,
    so the data decide). (b) Saturation, not the activation's largest
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
    parts += matched_chi_parts("(a) matched chi", t, "log10_grad_ratio_init", +1, keys)
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

    parts.append(part("(b) saturation at init", theory, share_mark, share_line, grid,
                      theory=share_theory))  # fmt: skip
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
        ratio = "falls" if r["cell"] in falls else "does not fall significantly"
        change = f"saturation_change {num(r['mean'])} [{num(r['ci_low'])}, {num(r['ci_high'])}]"
        where = f"{r['activation']}, depth {int(r['depth'])}"
        return f"{where}: {change}, Holm p {num(r['p_holm'], 2)}; gradient ratio {ratio} {MARK[m]}"

    parts.append(part("(c) saturation in training", sat, train_mark, train_line, cell_grid,
                      "p_t"))  # fmt: skip
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

    at_init = part("(a) at init", floors, floor_mark, floor_line, grid,
                   theory=floor_theory(t, grid))  # fmt: skip
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
    main sub-grid), (b) at a shared init (the matched-init sub-grid) and, where the study has
    it, at matched chi (every activation at the same chi: the matched-chi sub-grid). Own init
    means init auto; a shared init any one scheme for all (pytorch, lecun, ...). (c) Trained at
    their own init (main sub-grid), relu nets have fewer stuck units than sigmoid and than tanh
    nets: smaller ``stuck_final`` (units whose |phi'| < 1% of its maximum on every probe example,
    mean over layers: one measure for dead and saturated units), Holm-significant; contrary
    where relu's is significantly larger; null otherwise."""
    own = [g for g in grids if g != "matched_init"]
    parts = []
    for label, where_grids, init in (
        ("(a) own init", own, "auto"),
        ("(b) shared init", ("matched_init", *own), SHARED_INITS),
    ):
        for b in SATURATING:
            parts.append(comparison_part(f"{label}, vs {b}", t, where_grids,
                                         f"activation_vs_{b}", "abs_log10_grad_ratio_init", -1,
                                         keys, treatment="relu", init=init, **plain()))  # fmt: skip
    parts += matched_chi_parts("(b) matched chi", t, "abs_log10_grad_ratio_init", -1, keys)
    for b in SATURATING:
        parts.append(comparison_part(f"(c) stuck units in training, vs {b}", t, own,
                                     f"activation_vs_{b}", "stuck_final", -1, keys,
                                     treatment="relu", init="auto", **plain()))  # fmt: skip
    r = deepest(rows(t["comparisons"], parts[0].grid, DEEP, family="activation_vs_sigmoid",
                     metric="abs_log10_grad_ratio_init", treatment="relu", **plain()))  # fmt: skip
    decisive = "" if r is None else (
        f"depth {int(r['depth'])}: relu {num(r['mean_treatment'])} vs sigmoid "
        f"{num(r['mean_baseline'])} decades from balanced flow"
    )  # fmt: skip
    return judged(parts, decisive)
