"""The vocabulary of FINDINGS.md: verdicts, how rows' outcomes tally into them, which rows a claim
reads, and how numbers become sentences. The claims themselves are in ``vanishing.report.claims``.

Each row a claim reads (a comparison, a within-cell test, a fit) has an *outcome*:

- ``holds``: the effect the claim predicts, significant (Holm-adjusted p < ``ALPHA``) or past
  the rule's stated threshold;
- ``opposite``: a significant effect in the other direction (or the rule's stated contrary);
- ``null``: neither (too small, too noisy, or not significant).

Beside its outcome every row has theory's prediction (``Prediction``, made from its settings
and none of its data: ``report.predictions``) and its relation to it: *as theory predicts*,
*departs from theory* or *outside theory*. A row whose outcome theory decides is no evidence for
or against the brief. A part of a claim tallies the rows theory leaves open (``tally``):
*supported* if every row holds, *qualified* if some do, *contradicted* if none holds and some go
the other way, *inconclusive* if all are null, *not tested* without rows, and *foregone* when
theory decides all of them. A claim of several parts combines them (``combine``). The p-values
of a claim's rows are Holm-adjusted over that claim's rows alone (``holm_within``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
FOREGONE = "foregone"  # theory decides every row: no evidence for or against the brief
VERDICTS = (SUPPORTED, QUALIFIED, CONTRADICTED, INCONCLUSIVE, FOREGONE, NOT_TESTED)
HOLDS, OPPOSITE, NULL = "holds", "opposite", "null"
AS_PREDICTED, DEPARTS = "as theory predicts", "departs from theory"
OUTSIDE_THEORY = "outside theory"
THEORY_MARGIN = 0.25  # decades: theory decides a difference of gradient ratios beyond this
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
    theory: str = ""  # what theory predicts for the design's rows, before the data
    data: str = ""  # what the data show over every row
    judged_on: str = ""  # the parts with rows theory leaves open


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
    """A claim's verdict from its parts' (foregone parts do not count): supported only if every
    other part is; contradicted or inconclusive if every tested part is; foregone if theory
    decides every part that has rows; not tested if no part could be; else qualified."""
    counted = [p for p in parts if p != FOREGONE]
    tested = [p for p in counted if p != NOT_TESTED]
    if not tested:
        return FOREGONE if FOREGONE in parts else NOT_TESTED
    if all(p == SUPPORTED for p in counted):
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


@dataclass(frozen=True)
class Prediction:
    """Theory's prediction for one row, made from the row's settings and none of its data:
    ``outcome`` HOLDS or OPPOSITE (theory *decides* the row: the effect the claim predicts, or
    the contrary, by more than the rule's margin), NULL (theory expects no effect beyond the
    margin: the row stays open) or '' (outside theory: the row stays open); ``text`` says what
    it predicts, or why it does not apply."""

    outcome: str
    text: str

    @property
    def decides(self) -> bool:
        return self.outcome in (HOLDS, OPPOSITE)


def outside(why: str) -> Prediction:
    """Theory does not apply to the row (``why``): it is open."""
    return Prediction("", f"outside theory ({why})")


TRAINED = outside("a trained outcome: mean-field theory describes the net at init")


def relation(mark: str, pred: Prediction) -> str:
    """The row's outcome against theory's: *as theory predicts*, *departs from theory*, or
    *outside theory*."""
    if pred.outcome == "":
        return OUTSIDE_THEORY
    return AS_PREDICTED if mark == pred.outcome else DEPARTS


@dataclass(frozen=True)
class Part:
    """One part of a claim before it is judged: its rows (``table``), each row's outcome
    (``mark(row)``, which reads ``row["p_holm"]``: the claim's own Holm adjustment of the raw
    p-values in column ``p`` across all its rows), its sentence (``line(row, mark)``) and theory's
    prediction for it (``theory(row)``, outside theory unless given)."""

    label: str
    table: pd.DataFrame
    mark: Callable
    line: Callable
    grid: str = ""
    p: str | None = None
    theory: Callable = field(default=lambda r: TRAINED)
    reason: str = ""  # why the part cannot be tested, where its inputs are absent


@dataclass(frozen=True)
class Judged:
    """A part judged: its verdict on the rows theory leaves open (FOREGONE when theory decides
    every row), the data's tally over all rows, an evidence line per row, the count of rows
    theory decides and of those where the data depart from theory."""

    label: str
    verdict: str
    data: str
    lines: tuple[str, ...]
    grid: str
    n_rows: int
    n_decided: int
    n_departs: int
    reason: str = ""
    n_holds: int = 0
    n_opposite: int = 0
    predicted: tuple[str, ...] = ()  # theory's outcome per row ('' outside theory)


def part(label: str, table: pd.DataFrame, mark, line, grid: str = "", p: str | None = None,
         theory=None, reason: str = "") -> Part:  # fmt: skip
    """A part judged row by row (see ``Part``)."""
    table = pd.DataFrame() if table is None else table
    return Part(label, table, mark, line, grid, p, theory or (lambda r: TRAINED), reason)


def holm_within(parts: Sequence[Part]) -> list[pd.DataFrame]:
    """Each part's table with ``p_holm`` set to the Holm adjustment of its raw p (column
    ``part.p``) over every row of the claim: a claim's power does not depend on how many rows
    other claims read from the same sub-grid. Parts without a raw p keep their tables."""
    from vanishing.analysis.comparisons import holm  # no torch: analysis' statistics

    raw = [
        pd.to_numeric(pt.table[pt.p], errors="coerce").to_numpy(dtype=float)
        if pt.p and len(pt.table) else np.array([])
        for pt in parts
    ]  # fmt: skip
    adjusted = holm(np.concatenate(raw)) if raw else np.array([])
    out, start = [], 0
    for pt, r in zip(parts, raw, strict=True):
        table = pt.table
        if pt.p and len(table):
            table = table.assign(p_holm=adjusted[start : start + len(r)])
        start += len(r)
        out.append(table)
    return out


def judge_part(pt: Part, table: pd.DataFrame) -> Judged:
    """Marks, theory and lines of one part's rows, and its verdict on the open rows."""
    marks, open_marks, lines, decided, departs, predicted = [], [], [], 0, 0, []
    for _, row in table.iterrows():
        m, pred = pt.mark(row), pt.theory(row)
        rel = relation(m, pred)
        marks.append(m)
        predicted.append(pred.outcome)
        decided += pred.decides
        departs += rel == DEPARTS
        if not pred.decides:
            open_marks.append(m)
        tag = "theory decides this row" if pred.decides else "open"
        lines.append(f"{pt.label} {pt.line(row, m)} Theory: {pred.text}: *{rel}* ({tag}).")
    verdict = tally(open_marks) if open_marks or not marks else FOREGONE
    return Judged(pt.label, verdict, tally(marks), tuple(lines), pt.grid, len(marks), decided,
                  departs, pt.reason, marks.count(HOLDS), marks.count(OPPOSITE),
                  tuple(predicted))  # fmt: skip


def deepest(table: pd.DataFrame) -> pd.Series | None:
    """The row with the largest depth (the treatment's, comparing depths), or None."""
    if table is None or table.empty:
        return None
    depth = pd.to_numeric(table["depth"], errors="coerce")
    if "factor" in table:
        by_depth = table["factor"].astype(str) == "depth"
        depth = depth.where(~by_depth, pd.to_numeric(table["treatment"], errors="coerce"))
    return None if depth.isna().all() else table.loc[depth.idxmax()]


def _head(d: Judged) -> str:
    """A part's verdict line: on which rows it was judged, and where it was judged."""
    head = f"{d.label}: {d.verdict}"
    if d.verdict == FOREGONE:
        head += f" (theory decides all {d.n_rows} rows; the data alone: {d.data})"
    elif d.n_decided:
        head += (f" on the {d.n_rows - d.n_decided} rows theory leaves open ({d.n_decided} it "
                 "decides are left out)")  # fmt: skip
    if d.verdict == NOT_TESTED and d.reason:
        head += f" ({d.reason})"
    return head + (f" (sub-grid {d.grid})." if d.grid else ".")


def summaries(done: Sequence[Judged]) -> tuple[str, str]:
    """(what theory predicts, what the data show) over every row of a claim's parts."""
    n = sum(d.n_rows for d in done)
    if not n:
        return "no rows", "no rows"
    departs = sum(d.n_departs for d in done)
    pred = [p for d in done for p in d.predicted]
    h, o, u = pred.count(HOLDS), pred.count(OPPOSITE), pred.count(NULL)
    theory = (f"decides {h + o} of {n} rows ({h} as the brief says, {o} against it)" if h + o
              else f"decides none of the {n} rows")  # fmt: skip
    theory += f"; expects no effect in {u}" if u else ""
    theory += f"; {n - h - o - u} outside theory" if n - h - o - u else ""
    held, opp = sum(d.n_holds for d in done), sum(d.n_opposite for d in done)
    data = f"{held} of {n} rows hold, {opp} opposite, {n - held - opp} null"
    return theory, data + (f"; {departs} depart from theory" if departs else "")


def judged(parts: Sequence[Part], decisive="", reason="", extra=(), apart=()) -> dict:
    """The Claim fields of a claim made of ``parts``: p-values Holm-adjusted over the claim's
    own rows, each row beside theory's prediction, each part judged on the rows theory leaves
    open, the combined verdict, one verdict line and the rows' lines per part, the sub-grids
    read, and ``extra`` evidence lines. ``apart``: parts after them, Holm-adjusted as a family
    of their own (the claim on another architecture: ``parts``' rows stay as they were)."""
    done = [judge_part(*x) for ps in (parts, apart) for x in zip(ps, holm_within(ps), strict=True)]
    verdict = combine([d.verdict for d in done])
    lines = []
    for d in done:
        lines += [_head(d), *d.lines]
    grids = " and ".join(dict.fromkeys(d.grid for d in done if d.grid))
    if verdict != NOT_TESTED:
        reason = ""
    elif not reason:
        reason = "; ".join(d.reason for d in done if d.reason) or (
            "the tables lack the cells its parts need")  # fmt: skip
    theory, data = summaries(done)
    judged_on = ", ".join(d.label for d in done if d.verdict not in (FOREGONE, NOT_TESTED))
    return dict(verdict=verdict, parts=tuple((d.label, d.verdict) for d in done), grids=grids,
                evidence=(*lines, *extra), decisive=decisive, reason=reason, theory=theory,
                data=data, judged_on=judged_on)  # fmt: skip


def min_permutation_p(n1: int, n2: int) -> float:
    """The smallest two-sided p an exact permutation test of n1 vs n2 values can give."""
    from math import comb

    return min(1.0, 2.0 / comb(n1 + n2, n1)) if n1 and n2 else 1.0
