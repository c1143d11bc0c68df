"""Claim 3's conv part: degradation (He et al. 2016), judged on plain conv nets with batch norm.

He et al. found that a deeper plain conv net with batch norm trains to a *higher training
error* than a shallower one although its gradients are healthy (batch norm keeps them from
vanishing), so its poor learning is not the vanishing gradient's doing. The brief says
vanishing gradients lead to poor learning; this part asks whether, where poor learning with
depth is seen in conv nets, vanishing gradients come with it.

Rule, per group of plain batch-norm conv nets (``arch: cnn``, ``norm: batch``, no residual),
from comparisons.csv's ``deepest_vs_shallowest`` row on ``final_train_loss`` and selected.csv's
row of the deepest cell (at its selected lr):

- the deeper net trains worse when its final training loss is higher, Holm p < ``ALPHA``;
- its gradients are *balanced* when the 95% intervals over seeds of ``log10_grad_ratio_init``
  and ``log10_grad_ratio_final`` (log10 of layer 1's gradient over the top layer's) both lie
  within ``DECADE`` (1) of 0; *vanishing* when either mean is a decade or more below 0 (an
  underflow, -inf, included); *exploding* when none vanishes and either mean is a decade or
  more above 0 (batch norm's gradient explosion toward the input, Yang et al. 2019);
- outcome ``holds`` (the brief's story: poor learning with vanishing gradients): worse and
  vanishing; ``opposite`` (poor learning that vanishing gradients do not explain): worse and
  balanced, or worse and exploding; ``null`` otherwise (no significant loss gap, or balance
  unclear).

The first version of this rule counted an exploding gradient as the brief's story ("unbalanced
either way"); it was changed after a tiny conv study (the depth-56 plain batch-norm net trained
worse with layer 1's gradient 10^+3 times the top's) and before the default study's data,
because the brief's mechanism is gradients that become *small*: an explosion is not it.

The part is ``contradicted`` when every group degrades with balanced or exploding gradients;
then ``DEGRADED`` is the sentence FINDINGS prints: poor learning there is not caused by
vanishing gradients. Torch-free; reads the statistics tables only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vanishing.report import evidence
from vanishing.report.evidence import ALPHA, HOLDS, MARK, NULL, OPPOSITE, Part, num
from vanishing.settings import CELL_KEYS

GRIDS = ("conv",)  # the sub-grids it prefers (else any with conv nets)
DECADE = 1.0  # "within a decade of balanced": |log10 layer-1 / top| below this
LABEL = "(f) degradation, plain conv nets with batch norm"
DEGRADED = (
    "poor learning in deeper plain conv nets with batch norm is not caused by vanishing gradients"
)
WHERE = dict(arch="cnn", norm="batch", residual=False)
BALANCE = ("log10_grad_ratio_init", "log10_grad_ratio_final")


def _conv_grid(table: pd.DataFrame) -> str | None:
    """The first of ``GRIDS`` with conv rows, else the first sub-grid that has any."""
    if table is None or table.empty or "arch" not in table:
        return None
    conv = table[table["arch"].astype(str) == "cnn"]
    return evidence.choose_grid(conv, GRIDS) if len(conv) else None


def _deepest_cell(comparison: pd.Series, selected: pd.DataFrame) -> pd.Series | None:
    """selected.csv's row of the comparison's deeper arm: the same grid and settings, depth =
    the treatment's."""
    if selected is None or selected.empty:
        return None
    mask = selected["grid"].astype(str) == str(comparison["grid"])
    mask &= pd.to_numeric(selected["depth"]) == float(comparison["treatment"])
    for key in CELL_KEYS:
        if key in ("depth", "lr") or key not in selected or pd.isna(comparison.get(key)):
            continue
        value, col = comparison[key], selected[key]
        number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        if np.isfinite(number) and not isinstance(value, bool | np.bool_):  # 2 == 2.0 as text
            mask &= pd.to_numeric(col, errors="coerce") == number
        else:
            mask &= col.astype(str).str.lower() == str(value).lower()
    found = selected[mask]
    return found.iloc[0] if len(found) else None


def balance(cell: pd.Series | None) -> str:
    """``balanced``, ``vanishing``, ``exploding`` or ``unclear`` for a selected.csv row (module
    docstring)."""
    if cell is None:
        return "unclear"
    lows = [float(cell.get(f"{m}_ci_low", np.nan)) for m in BALANCE]
    highs = [float(cell.get(f"{m}_ci_high", np.nan)) for m in BALANCE]
    means = [float(cell.get(f"{m}_mean", np.nan)) for m in BALANCE]
    if all(-DECADE < lo and hi < DECADE for lo, hi in zip(lows, highs, strict=True)):
        return "balanced"  # (NaN bounds compare False: not balanced)
    if any(m <= -DECADE for m in means if not np.isnan(m)):
        return "vanishing"
    if any(m >= DECADE for m in means if not np.isnan(m)):
        return "exploding"
    return "unclear"


def degradation_part(t: dict, keys) -> Part | None:
    """The part (module docstring), or None when the study has no plain batch-norm conv nets at
    two depths (then claim 3 is judged as before)."""
    grid = _conv_grid(t.get("comparisons"))
    table = evidence.rows(t.get("comparisons"), grid, family="deepest_vs_shallowest",
                          metric="final_train_loss", **WHERE)  # fmt: skip
    if table.empty:
        return None
    cells = {i: _deepest_cell(r, t.get("selected")) for i, r in table.iterrows()}
    state = {i: balance(c) for i, c in cells.items()}
    rank = table["p_rank"] if "p_rank" in table else np.nan
    table = table.assign(_row=table.index, p_raw=pd.Series(rank, index=table.index)
                         .fillna(table["p_welch"]).fillna(table["p_perm"]))  # fmt: skip

    def mark(r):
        worse = r["diff"] > 0 and r["p_holm"] < ALPHA
        if not worse:
            return NULL
        return {"balanced": OPPOSITE, "exploding": OPPOSITE, "vanishing": HOLDS}.get(
            state[r["_row"]], NULL
        )

    def line(r, m):
        c = cells[r["_row"]]
        grads = "no selected row for the deeper cell" if c is None else ", ".join(
            f"{b.removeprefix('log10_grad_ratio_')} {num(c.get(f'{b}_mean'), 2)} "
            f"[{num(c.get(f'{b}_ci_low'), 2)}, {num(c.get(f'{b}_ci_high'), 2)}]"
            for b in BALANCE
        )  # fmt: skip
        return (
            f"final_train_loss, depth {r['treatment']} - {r['baseline']} "
            f"({evidence.context(r, keys, skip=('depth',))}): {num(r['mean_treatment'])} vs "
            f"{num(r['mean_baseline'])}, diff {num(r['diff'])}, Holm p {num(r['p_holm'], 2)}; "
            f"deeper net's log10 layer-1/top gradient: {grads} "
            f"({state[r['_row']]}, a decade = {num(DECADE)}) {MARK[m]}"
        )

    return evidence.part(LABEL, table, mark, line, grid, "p_raw")


def degradation_sentence(p: Part | None, table: pd.DataFrame | None = None) -> str:
    """What FINDINGS says of the part: ``DEGRADED`` where every group degraded with balanced or
    exploding gradients, a qualified form where some did, else nothing. ``table``: the part's
    rows with the claim's own Holm p (``evidence.holm_within``; default its own)."""
    if p is None:
        return ""
    table = p.table if table is None else table
    degraded = sum(p.mark(r) == OPPOSITE for _, r in table.iterrows())
    if degraded and degraded == len(table):
        return f"degradation: {DEGRADED}"
    if degraded:
        return f"degradation in {degraded} of {len(table)} groups: there, {DEGRADED}"
    return ""
