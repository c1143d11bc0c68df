"""The rows a claim reads, as parts of a claim (``evidence.Part``): comparisons between arms,
within-cell tests, times to events, divergence counts and associations across cells, each with
its outcome rule and the sentence FINDINGS prints for it. The raw p-value each part names is
Holm-adjusted over the claim's own rows (``evidence.judged``); theory's prediction for each
comparison of a gradient ratio at init comes from ``report.predictions``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from vanishing.report.evidence import (
    DEEP,
    HOLDS,
    MARK,
    NULL,
    OPPOSITE,
    Part,
    choose_grid,
    context,
    num,
    outcome,
    part,
    rows,
)
from vanishing.settings import ARCH_AXES


def describe(row: pd.Series, mark: str, keys: Sequence[str] = ARCH_AXES) -> str:
    """One comparison (a row of comparisons.csv) as a sentence with its interval, effect size
    and p-values, then its outcome."""
    if censored(row):
        return (
            f"{row['metric']}: {row['factor']} {row['treatment']} - {row['baseline']} "
            f"({context(row, keys)}): {bound(row, 'treatment')} vs {bound(row, 'baseline')} "
            f"(a censored value is a bound; no mean difference), rank test Holm p = "
            f"{num(row['p_holm'], 2)} (exact rank-sum p = {num(row['p_rank'], 2)}, censored "
            f"values tied at the bottom) {MARK[mark]}"
        )
    return (
        f"{row['metric']}: {row['factor']} {row['treatment']} - {row['baseline']} "
        f"({context(row, keys)}): {num(row['mean_treatment'])} vs {num(row['mean_baseline'])}, "
        f"diff {num(row['diff'])} [{num(row['diff_ci_low'])}, {num(row['diff_ci_high'])}], "
        f"g = {num(row['hedges_g'])}, Holm p = {num(row['p_holm'], 2)} "
        f"(Welch p = {num(row['p_welch'], 2)}, permutation p = {num(row['p_perm'], 2)}; "
        f"n = {row['n_treatment']} vs {row['n_baseline']}{_why(row)}) {MARK[mark]}"
    )


def censored(row: pd.Series) -> bool:
    """Whether an arm of a comparison holds censored values (bounds, not measurements)."""
    return any(row.get(f"n_censored_{a}", 0) > 0 for a in ("baseline", "treatment"))


def bound(row: pd.Series, arm: str) -> str:
    """An arm's mean log10 value, as a bound where some of its seeds are censored: '< 10^-5.4
    (5 of 5 seeds at the bound)'; the mean of bounds bounds the mean from above."""
    k, n, mean = row.get(f"n_censored_{arm}", 0), row[f"n_{arm}"], row[f"mean_{arm}"]
    if not k > 0:
        return f"10^{num(mean, 2)}"
    return f"< 10^{num(mean, 2)} ({int(k)} of {int(n)} seeds censored)"


def _why(row: pd.Series) -> str:
    """'; no test: <reason>' where comparisons.csv says why a row has no test."""
    reason = row.get("untestable", "")
    return f"; no test: {reason}" if isinstance(reason, str) and reason else ""


def comparison_part(label, t, grids, family, metric, sign, keys, min_depth=DEEP,
                    deepest_only=False, **where) -> Part:  # fmt: skip
    """ "The difference (treatment - baseline) of ``metric`` has ``sign``" over the rows of
    comparisons.csv of one family, in the first of ``grids`` the table has (``deepest_only``:
    only its rows at the sub-grid's largest depth). The raw p is the exact rank test's where
    the table has one, else Welch's (the permutation p where Welch is undefined); theory
    predicts the rows of a metric at init (``report.predictions``)."""
    from vanishing.report.predictions import comparison_theory  # it reads evidence too

    grid = choose_grid(t["comparisons"], grids)
    table = rows(t["comparisons"], grid, min_depth, family=family, metric=metric, **where)
    if deepest_only and len(table):
        depth = pd.to_numeric(table["depth"], errors="coerce")
        table = table[depth == depth.max()]
    if len(table):
        rank = table["p_rank"] if "p_rank" in table else np.nan
        table = table.assign(p_raw=pd.Series(rank, index=table.index).fillna(table["p_welch"])
                             .fillna(table["p_perm"]))  # fmt: skip
    return part(label, table, lambda r: outcome(r["diff"], r["p_holm"], sign),
                lambda r, m: describe(r, m, keys), grid, "p_raw",
                comparison_theory(t, grid, metric, sign))  # fmt: skip


def cell_line(row: pd.Series, mark: str, keys) -> str:
    """One within-cell test (a row of cell_tests.csv) as a sentence."""
    return (
        f"{row['metric']} ({context(row, keys)}, lr {num(row['lr'])}): mean {num(row['mean'])} "
        f"[{num(row['ci_low'])}, {num(row['ci_high'])}] against {num(row['null'])}, Holm p = "
        f"{num(row['p_holm'], 2)}, n = {int(row['n'])} {MARK[mark]}"
    )


def cell_part(label, t, grids, metric, sign, keys, min_depth=DEEP, **where) -> Part:
    """ "The cell's seed mean of ``metric`` differs from the null with ``sign``" over the rows of
    cell_tests.csv, in the first of ``grids`` the table has."""
    grid = choose_grid(t["cell_tests"], grids)
    table = rows(t["cell_tests"], grid, min_depth, metric=metric, **where)
    return part(label, table, lambda r: outcome(r["mean"] - r["null"], r["p_holm"], sign),
                lambda r, m: cell_line(r, m, keys), grid, "p_t")  # fmt: skip


def survival_line(row: pd.Series, mark: str, keys) -> str:
    """One time-to-event comparison (a row of survival.csv) as a sentence."""
    return (
        f"{row['metric']}: {row['factor']} {row['treatment']} - {row['baseline']} "
        f"({context(row, keys)}): median {num(row['median_treatment'])} vs "
        f"{num(row['median_baseline'])} steps (NaN: fewer than half got there), "
        f"{int(row['events_treatment'])}/{int(row['n_treatment'])} vs "
        f"{int(row['events_baseline'])}/{int(row['n_baseline'])} got there, log-rank Holm p = "
        f"{num(row['p_holm'], 2)} {MARK[mark]}"
    )


def survival_part(label, t, grids, family, metric, sign, keys, min_depth=DEEP, **where) -> Part:
    """ "Treatment's median time minus baseline's has ``sign``" over rows of survival.csv (a
    median never reached counts as the last step), significant by the log-rank test."""
    grid = choose_grid(t["survival"], grids)
    table = rows(t["survival"], grid, min_depth, family=family, metric=metric, **where)
    return part(label, table, lambda r: outcome(r["diff_median"], r["p_holm"], sign),
                lambda r, m: survival_line(r, m, keys), grid, "p_logrank")  # fmt: skip


def divergence_part(label, t, grids, family, sign, keys, min_depth=DEEP, **where) -> Part:
    """ "Treatment's divergence rate over the lr sweep minus baseline's has ``sign``" over rows of
    divergence.csv (Fisher's exact test, Holm)."""
    grid = choose_grid(t["divergence"], grids)
    table = rows(t["divergence"], grid, min_depth, family=family, **where)

    def line(r, m):
        return (
            f"diverged: {r['factor']} {r['treatment']} - {r['baseline']} "
            f"({context(r, keys)}): {int(r['diverged_treatment'])}/{int(r['n_treatment'])} vs "
            f"{int(r['diverged_baseline'])}/{int(r['n_baseline'])} runs of the sweep, Fisher "
            f"Holm p = {num(r['p_holm'], 2)} {MARK[m]}"
        )

    return part(label, table, lambda r: outcome(r["diff"], r["p_holm"], sign), line, grid,
                "p_fisher")  # fmt: skip


def association_part(label, t, grids, x, y, sign, scope="all") -> Part:
    """ "Spearman's rho across cells between ``x`` and ``y`` has ``sign``" (associations.csv)."""
    grid = choose_grid(t["associations"], grids)
    table = rows(t["associations"], grid, x=x, y=y, scope=scope)

    def line(r, m):
        return (
            f"Spearman rho({r['x']}, {r['y']}) over {int(r['n_cells'])} cells ({r['scope']}): "
            f"{num(r['rho'], 2)}, Holm p = {num(r['p_holm'], 2)} {MARK[m]}"
        )

    return part(label, table, lambda r: outcome(r["rho"], r["p_holm"], sign), line, grid,
                "p_value")  # fmt: skip


MATCHED_CHI = "matched_chi"  # the sub-grid where every activation sits at the same chi


def matched_chi_parts(label, t, metric, sign, keys, rectifier="relu") -> list[Part]:
    """``rectifier`` against each saturating activation on ``metric`` in the matched-chi
    sub-grid (each activation at its own critical point, and all at one chi < 1: the rows pair
    activations at the same ``sigma_w2`` point), one part per baseline; none where the study has
    no such sub-grid (the claim is then judged without it)."""
    from vanishing.activations import SATURATING

    comp = t.get("comparisons")
    if comp is None or comp.empty or MATCHED_CHI not in set(comp["grid"].astype(str)):
        return []
    return [
        comparison_part(f"{label}, vs {b}", t, (MATCHED_CHI,), f"activation_vs_{b}", metric, sign,
                        keys, treatment=rectifier, norm="none", residual=False)
        for b in SATURATING
    ]  # fmt: skip


OPTIMIZERS = "optimizers"  # the sub-grid of deep plain sigmoid nets under several optimizers
TINY_EPS = 1e-8  # Adam with an epsilon below this rescales even a vanishing gradient
COLLAPSED = 0.99  # forward collapse: the top layer's c at init at least this


def rescales(r) -> bool:
    """Whether a cell's optimizer rescales each gradient to a fixed size: layer-wise normalised
    SGD, or Adam with an epsilon below ``TINY_EPS`` (at 1e-8 Adam floors tiny gradients)."""
    if str(r.get("optimizer")) == "lnsgd":
        return True
    eps = pd.to_numeric(pd.Series([r.get("adam_eps", np.nan)]), errors="coerce").iloc[0]
    return str(r.get("optimizer")) == "adam" and eps < TINY_EPS


def cause_part(t, margin: float, keys) -> list[Part]:
    """What stalls deep plain sigmoid/tanh nets, in the optimizers sub-grid (none where the
    study lacks it): per depth and activation, *gradient size* if an optimizer that rescales
    each gradient (``rescales``) trains (test accuracy's lower 95% end above chance + margin)
    while SGD does not (upper end within it); *forward collapse* if no optimizer trains and the
    top layer's c at init (``forward_c_top_init``) is at least ``COLLAPSED``. Gradient size holds
    the claim (the vanishing gradient is the cause), forward collapse is its contrary."""
    sel = rows(t.get("selected"), OPTIMIZERS, DEEP, norm="none", residual=False)
    if sel.empty:
        return []
    sel = sel[sel["activation"].isin(_saturating())]
    groups = [g for _, g in sel.groupby(["activation", "depth"], sort=True)]
    table = pd.DataFrame([_cause_row(g, margin) for g in groups])

    def mark(r):
        return {"gradient size": HOLDS, "forward collapse": OPPOSITE}.get(r["cause"], NULL)

    def line(r, m):
        return (f"{r['activation']}, depth {int(r['depth'])}: {r['arms']}; top layer's c at init "
                f"{num(r['forward_c'], 3)}: {r['cause']} {MARK[m]}")  # fmt: skip

    return [part("(e) cause", table, mark, line, OPTIMIZERS)]


def _saturating() -> tuple[str, ...]:
    from vanishing.activations import SATURATING

    return SATURATING


def _cause_row(g: pd.DataFrame, margin: float) -> dict:
    """One (activation, depth) group of the optimizers sub-grid judged for its cause."""
    chance = 1 / g["n_classes"].astype(float)
    trains = g["final_test_accuracy_ci_low"] > chance + margin
    stalls = g["final_test_accuracy_ci_high"] <= chance + margin
    sgd = g["optimizer"].astype(str) == "sgd"
    rescaled = g.apply(rescales, axis=1).astype(bool)
    c = g["forward_c_top_init_mean"] if "forward_c_top_init_mean" in g else pd.Series(np.nan)
    c_top = float(pd.to_numeric(c, errors="coerce").mean())
    if (trains & rescaled).any() and sgd.any() and stalls[sgd].all():
        cause = "gradient size"
    elif not trains.any() and c_top >= COLLAPSED:
        cause = "forward collapse"
    else:
        cause = "neither decided"
    arms = ", ".join(
        f"{r.optimizer}{'' if pd.isna(getattr(r, 'adam_eps', np.nan)) else f' eps {r.adam_eps:g}'}"
        f" {num(r.final_test_accuracy_mean, 2)}"
        for r in g.itertuples()
    )
    return dict(activation=g["activation"].iloc[0], depth=g["depth"].iloc[0], arms=
                f"test accuracy {arms}", forward_c=c_top, cause=cause)  # fmt: skip


def unchanged_lines(t, grid: str | None) -> list[str]:
    """Claim 2's "not at all": per deep plain sigmoid/tanh cell under SGD, the fraction of layer
    1's weights bitwise unchanged after training (mean and 95% interval over seeds), beside the
    plain relu control's at the same depth (selected.csv)."""
    sel = rows(t.get("selected"), grid, DEEP, optimizer="sgd", norm="none", residual=False,
               activation=_saturating())  # fmt: skip
    controls = rows(t.get("selected"), grid, DEEP, optimizer="sgd", activation="relu",
                    norm="none", residual=False)  # fmt: skip

    def unchanged(r) -> str:
        low = getattr(r, "unchanged_layer1_final_ci_low", np.nan)
        high = getattr(r, "unchanged_layer1_final_ci_high", np.nan)
        return f"{num(r.unchanged_layer1_final_mean, 2)} [{num(low, 2)}, {num(high, 2)}]"

    lines = []
    for r in sel.itertuples():
        ctl = controls[controls["depth"] == r.depth] if len(controls) else controls
        beside = "; relu control " + unchanged(next(ctl.itertuples())) if len(ctl) else ""
        lines.append(f"not at all: {r.activation}, depth {int(r.depth)} (SGD): fraction of layer "
                     f"1's weights bitwise unchanged after training {unchanged(r)}{beside} "
                     "(float32 drops an update below ~2^-24 of a weight)")  # fmt: skip
    return lines
