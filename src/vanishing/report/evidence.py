"""The vocabulary of FINDINGS.md: verdicts, how rows' outcomes tally into them, which rows a claim
reads, and how numbers become sentences. The claims themselves are in ``vanishing.report.claims``.

Each row a claim reads (a comparison, a within-cell test, a fit) has an *outcome*:

- ``holds``: the effect the claim predicts, significant (Holm-adjusted p < ``ALPHA``) or past
  the rule's stated threshold;
- ``opposite``: a significant effect in the other direction (or the rule's stated contrary);
- ``null``: neither (too small, too noisy, or not significant).

A part of a claim tallies its rows (``tally``): *supported* if every row holds, *qualified* if
some do, *contradicted* if none holds and some go the other way, *inconclusive* if all are null,
*not tested* without rows. A claim of several parts combines them (``combine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vanishing.inits import INITS
from vanishing.settings import ARCH_AXES, CELL_KEYS

ALPHA = 0.05
DEEP = 8  # "deep": at least this many hidden layers
SUPPORTED, CONTRADICTED, INCONCLUSIVE, QUALIFIED, NOT_TESTED = (
    "supported", "contradicted", "inconclusive", "qualified", "not tested",
)  # fmt: skip
VERDICTS = (SUPPORTED, QUALIFIED, CONTRADICTED, INCONCLUSIVE, NOT_TESTED)
HOLDS, OPPOSITE, NULL = "holds", "opposite", "null"
MARK = {HOLDS: "[holds]", OPPOSITE: "[opposite]", NULL: "[null]"}


@dataclass(frozen=True)
class Claim:
    """One claim as judged: the brief's words, the rule (printed verbatim), the sub-grid(s) it
    was judged on, the verdict, the one number that decides it, the figure to look at, evidence
    lines, and the reason when it could not be tested."""

    number: int
    title: str
    quote: str
    rule: str
    verdict: str
    grids: str = ""
    decisive: str = ""
    figure: str = ""
    evidence: tuple[str, ...] = ()
    reason: str = ""
    parts: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (label, verdict)


def outcome(diff: float, p: float, sign: int) -> str:
    """``holds`` if diff has ``sign`` with p < ALPHA, ``opposite`` if it has the other sign with
    p < ALPHA, else ``null``."""
    if not (np.isfinite(diff) and np.isfinite(p)) or p >= ALPHA or diff == 0:
        return NULL
    return HOLDS if np.sign(diff) == sign else OPPOSITE


def tally(outcomes: Sequence[str]) -> str:
    """The verdict of one part from its rows' outcomes (see the module docstring)."""
    if len(outcomes) == 0:
        return NOT_TESTED
    if all(o == HOLDS for o in outcomes):
        return SUPPORTED
    if any(o == HOLDS for o in outcomes):
        return QUALIFIED
    if any(o == OPPOSITE for o in outcomes):
        return CONTRADICTED
    return INCONCLUSIVE


def combine(parts: Sequence[str]) -> str:
    """A claim's verdict from its parts': supported only if every part is; contradicted or
    inconclusive if every tested part is; not tested if no part could be; else qualified."""
    tested = [p for p in parts if p != NOT_TESTED]
    if not tested:
        return NOT_TESTED
    if all(p == SUPPORTED for p in parts):
        return SUPPORTED
    for verdict in (CONTRADICTED, INCONCLUSIVE):
        if all(p == verdict for p in tested):
            return verdict
    return QUALIFIED


def same(col: pd.Series, value) -> pd.Series:
    """Equality that survives a CSV round trip (bools and strings compared as text)."""
    return col.astype(str).str.lower() == str(value).lower()


def choose_grid(table: pd.DataFrame, preferred: Sequence[str]) -> str | None:
    """The first of ``preferred`` that the table has rows for, else its first sub-grid (a study
    with its own sub-grid names is judged on its first)."""
    if table is None or table.empty or "grid" not in table:
        return None
    present = list(dict.fromkeys(table["grid"].astype(str)))
    return next((g for g in preferred if g in present), present[0])


SHARED_INITS = tuple(i for i in INITS if i != "auto")  # one scheme for every activation


def rows(table: pd.DataFrame, grid: str | None, min_depth: int = 0, **where) -> pd.DataFrame:
    """Rows of ``table`` in sub-grid ``grid`` with ``column == value`` for each of ``where``
    (a tuple value: any of them) and depth >= ``min_depth`` (where the table has a depth)."""
    if table is None or table.empty or grid is None:
        return pd.DataFrame()
    mask = same(table["grid"], grid)
    for key, value in where.items():
        values = value if isinstance(value, tuple) else (value,)
        mask &= np.logical_or.reduce([same(table[key], v) for v in values])
    out = table[mask]
    if min_depth and "depth" in out:
        depth = pd.to_numeric(out["depth"], errors="coerce")
        if "factor" in out:  # comparing depths: the deeper arm is the treatment
            by_depth = out["factor"].astype(str) == "depth"
            depth = depth.where(~by_depth, pd.to_numeric(out["treatment"], errors="coerce"))
        out = out[depth >= min_depth]
    return out


def plain(**where) -> dict:
    """The ``where`` of plain networks: no norm, no residual connections."""
    return {"norm": "none", "residual": False, **where}


def num(x, digits: int = 3) -> str:
    """A number to ``digits`` significant digits, or 'n/a'."""
    return "n/a" if pd.isna(x) else f"{float(x):.{digits}g}"


def context_keys(table: pd.DataFrame) -> tuple[str, ...]:
    """The settings a sentence about a row of ``table`` names: the architecture axes and every
    other cell setting that takes more than one value in the table."""
    varying = [k for k in CELL_KEYS if k in table and table[k].nunique(dropna=True) > 1]
    return tuple(k for k in CELL_KEYS if k in ARCH_AXES or k in varying)


def context(row: pd.Series, keys: Sequence[str] = ARCH_AXES, skip: Sequence[str] = ()) -> str:
    """``activation=relu, depth=16, norm=none`` for the settings ``keys`` a row holds fixed."""
    parts = []
    for key in keys:
        if key in row and key not in skip and not pd.isna(row[key]):
            value = int(row[key]) if key in ("depth", "width") else row[key]
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def describe(row: pd.Series, mark: str, keys: Sequence[str] = ARCH_AXES) -> str:
    """One comparison (a row of comparisons.csv) as a sentence with its interval, effect size
    and p-values, then its outcome."""
    return (
        f"{row['metric']}: {row['factor']} {row['treatment']} - {row['baseline']} "
        f"({context(row, keys)}): {num(row['mean_treatment'])} vs {num(row['mean_baseline'])}, "
        f"diff {num(row['diff'])} [{num(row['diff_ci_low'])}, {num(row['diff_ci_high'])}], "
        f"g = {num(row['hedges_g'])}, Holm p = {num(row['p_holm'], 2)} "
        f"(Welch p = {num(row['p_welch'], 2)}, permutation p = {num(row['p_perm'], 2)}; "
        f"n = {row['n_treatment']} vs {row['n_baseline']}{_why(row)}) {MARK[mark]}"
    )


def _why(row: pd.Series) -> str:
    """'; no test: <reason>' where comparisons.csv says why a row has no test."""
    reason = row.get("untestable", "")
    return f"; no test: {reason}" if isinstance(reason, str) and reason else ""


@dataclass(frozen=True)
class Part:
    """One part of a claim: its label, verdict, and an evidence line per row it read."""

    label: str
    verdict: str
    lines: tuple[str, ...] = ()
    grid: str = ""


def part(label: str, table: pd.DataFrame, mark, line, grid: str = "") -> Part:
    """A part judged row by row: ``mark(row)`` gives each row's outcome, ``line(row, mark)``
    its evidence sentence."""
    marks, lines = [], []
    for _, row in table.iterrows():
        marks.append(mark(row))
        lines.append(f"{label} {line(row, marks[-1])}")
    return Part(label, tally(marks), tuple(lines), grid)


def comparison_part(label, t, grids, family, metric, sign, keys, min_depth=DEEP, **where) -> Part:
    """ "The difference (treatment - baseline) of ``metric`` has ``sign``" over the rows of
    comparisons.csv of one family, in the first of ``grids`` the table has."""
    grid = choose_grid(t["comparisons"], grids)
    table = rows(t["comparisons"], grid, min_depth, family=family, metric=metric, **where)
    return part(label, table, lambda r: outcome(r["diff"], r["p_holm"], sign),
                lambda r, m: describe(r, m, keys), grid)  # fmt: skip


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
                lambda r, m: cell_line(r, m, keys), grid)  # fmt: skip


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
                lambda r, m: survival_line(r, m, keys), grid)  # fmt: skip


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

    return part(label, table, lambda r: outcome(r["diff"], r["p_holm"], sign), line, grid)


def association_part(label, t, grids, x, y, sign, scope="all") -> Part:
    """ "Spearman's rho across cells between ``x`` and ``y`` has ``sign``" (associations.csv)."""
    grid = choose_grid(t["associations"], grids)
    table = rows(t["associations"], grid, x=x, y=y, scope=scope)

    def line(r, m):
        return (
            f"Spearman rho({r['x']}, {r['y']}) over {int(r['n_cells'])} cells ({r['scope']}): "
            f"{num(r['rho'], 2)}, p = {num(r['p_value'], 2)} {MARK[m]}"
        )

    return part(label, table, lambda r: outcome(r["rho"], r["p_value"], sign), line, grid)


def deepest(table: pd.DataFrame) -> pd.Series | None:
    """The row with the largest depth (the treatment's, comparing depths), or None."""
    if table is None or table.empty:
        return None
    depth = pd.to_numeric(table["depth"], errors="coerce")
    if "factor" in table:
        by_depth = table["factor"].astype(str) == "depth"
        depth = depth.where(~by_depth, pd.to_numeric(table["treatment"], errors="coerce"))
    return None if depth.isna().all() else table.loc[depth.idxmax()]


def judged(parts: Sequence[Part], decisive: str = "", reason: str = "", extra=()) -> dict:
    """The Claim fields of a claim made of ``parts``: combined verdict, one verdict line and the
    rows' lines per part, the sub-grids read, and ``extra`` evidence lines."""
    verdict = combine([p.verdict for p in parts])
    lines = []
    for p in parts:
        lines += [
            f"{p.label}: {p.verdict}" + (f" (sub-grid {p.grid})." if p.grid else "."),
            *p.lines,
        ]
    grids = " and ".join(dict.fromkeys(p.grid for p in parts if p.grid))
    if verdict != NOT_TESTED:
        reason = ""
    elif not reason:
        reason = "the tables lack the cells its parts need"
    return dict(verdict=verdict, parts=tuple((p.label, p.verdict) for p in parts), grids=grids,
                evidence=(*lines, *extra), decisive=decisive, reason=reason)  # fmt: skip


def min_permutation_p(n1: int, n2: int) -> float:
    """The smallest two-sided p an exact permutation test of n1 vs n2 values can give."""
    from math import comb

    return min(1.0, 2.0 / comb(n1 + n2, n1)) if n1 and n2 else 1.0
