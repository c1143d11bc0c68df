"""Rules for the brief's claims about the remedies: batch normalisation (claims 7-9) and
residual connections (claim 10). Registered, with the brief's words, in ``report.claims``."""

from __future__ import annotations

from vanishing.report.evidence import (
    DEEP,
    choose_grid,
    comparison_part,
    deepest,
    divergence_part,
    judged,
    num,
    rows,
    survival_part,
)  # fmt: skip

VERY_DEEP = 64  # residual claims are about very deep models
BN = dict(treatment="batch", residual=False)


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
    window is wider: more rates of the sweep within 1 point of a seed's best validation accuracy
    (a seed whose best is within 0.05 of chance has a window of 0: it trains at no rate); (b)
    fewer runs of the sweep diverge (Fisher's exact test)."""
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
    medians, a run that never gets there censored; log-rank test). The length of the initial
    plateau is reported beside it."""
    steps = survival_part("(a) steps to target", t, grids, "norm_vs_none", "steps_to_target", -1,
                          keys, **BN)  # fmt: skip
    plateau = survival_part("plateau", t, grids, "norm_vs_none", "plateau_steps", -1, keys, **BN)
    r = deepest(rows(t["survival"], steps.grid, DEEP, family="norm_vs_none",
                     metric="steps_to_target", activation="sigmoid", **BN))  # fmt: skip
    decisive = "" if r is None else (
        f"sigmoid depth {int(r['depth'])}: median {num(r['median_treatment'])} steps with batch "
        f"norm vs {num(r['median_baseline'])} without"
    )  # fmt: skip
    return judged([steps], decisive, extra=plateau.lines)


def judge_bn_flow(t, grids, keys) -> dict:
    """Claim 9. In deep nets without residual connections, batch norm keeps the gradient closer
    to balanced flow (smaller abs log10 ratio of layer 1 to the top) than no norm: (a) at init
    (Yang et al. 2019 predict the opposite for plain batch-norm nets: growth toward the input),
    (b) early in training (the last probe at or before step 64), (c) after training."""
    parts = [
        comparison_part(label, t, grids, "norm_vs_none", metric, -1, keys, **BN)
        for label, metric in (
            ("(a) at init", "abs_log10_grad_ratio_init"),
            ("(b) early in training", "abs_log10_grad_ratio_early"),
            ("(c) after training", "abs_log10_grad_ratio_final"),
        )
    ]
    grid = choose_grid(t["selected"], grids)
    extra = explosions(t, grid, "batch norm", norm="batch", residual=False)
    r = deepest(rows(t["comparisons"], parts[0].grid, DEEP, family="norm_vs_none",
                     metric="abs_log10_grad_ratio_init", activation="relu", **BN))  # fmt: skip
    decisive = "" if r is None else (
        f"relu depth {int(r['depth'])} at init: {num(r['mean_treatment'])} decades from balanced "
        f"flow with batch norm vs {num(r['mean_baseline'])} without"
    )  # fmt: skip
    return judged(parts, decisive, extra=extra)


def judge_residual(t, grids, keys) -> dict:
    """Claim 10. In very deep nets (at least 64 hidden layers), residual against plain, without
    a norm and with batch norm (the block of real ResNets): (a) at init the gradient is closer
    to balanced flow (smaller abs log10 ratio); (b) test accuracy is higher. The branch gain
    (residual_scale) of each row is named."""
    parts = [
        comparison_part(label, t, grids, "residual_vs_plain", metric, sign, keys, VERY_DEEP,
                        treatment=True)
        for label, metric, sign in (
            ("(a) flow at init", "abs_log10_grad_ratio_init", -1),
            ("(b) learning", "final_test_accuracy", +1),
        )
    ]  # fmt: skip
    grid = choose_grid(t["selected"], grids)
    extra = explosions(t, grid, "residual connections", VERY_DEEP, residual=True)
    r = deepest(rows(t["comparisons"], parts[1].grid, VERY_DEEP, family="residual_vs_plain",
                     metric="final_test_accuracy", norm="none", treatment=True))  # fmt: skip
    decisive = "" if r is None else (
        f"{r['activation']} depth {int(r['depth'])}: test accuracy {num(r['mean_treatment'], 2)} "
        f"residual vs {num(r['mean_baseline'], 2)} plain"
    )  # fmt: skip
    return judged(parts, decisive, "no residual and plain nets of 64+ layers side by side", extra)
