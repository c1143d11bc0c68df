"""Helpers for FINDINGS.md: the Claim record, row selection, verdict tallies and formatting.

``findings`` states the claims and their rules; this module only picks rows out of the tables
and turns them into sentences, so the rules stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vanishing.settings import ARCH_AXES, CELL_KEYS

ALPHA = 0.05
DEEP = 8
SUPPORTED, NOT_SUPPORTED, QUALIFIED, NOT_TESTED = (
    "supported", "not supported", "qualified", "not tested",
)  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One claim as judged: its rule (printed verbatim), verdict, evidence lines, and the reason
    when it could not be tested."""

    number: int
    title: str
    rule: str
    verdict: str
    evidence: tuple[str, ...] = ()
    reason: str = ""


def same(col: pd.Series, value) -> pd.Series:
    """Equality that survives a CSV round trip (bools and strings compared as text)."""
    return col.astype(str).str.lower() == str(value).lower()


def pick(
    comp: pd.DataFrame, family: str, metric: str, treatment: str | None = None, **fixed
) -> pd.DataFrame:
    """Rows of ``comparisons`` for one family and metric, optionally one treatment level and
    settings held fixed at given values, restricted to deep cells (``depth >= DEEP``) unless
    the family varies depth itself."""
    if comp.empty:
        return comp
    mask = same(comp["family"], family) & same(comp["metric"], metric)
    if treatment is not None:
        mask &= same(comp["treatment"], treatment)
    for key, value in fixed.items():
        mask &= same(comp[key], value)
    rows = comp[mask]
    if family == "deepest_vs_shallowest":
        return rows[pd.to_numeric(rows["treatment"], errors="coerce") >= DEEP]
    return rows[pd.to_numeric(rows["depth"], errors="coerce") >= DEEP]


def significant(row: pd.Series, sign: int) -> bool:
    """Whether the difference has the given sign (+1 / -1) and Holm p < ``ALPHA``."""
    return bool(np.sign(row["diff"]) == sign and row["p_holm"] < ALPHA)


def tally(ok: Sequence[bool]) -> str:
    """supported if all hold, not supported if none, qualified if some; not tested if empty."""
    if len(ok) == 0:
        return NOT_TESTED
    return SUPPORTED if all(ok) else NOT_SUPPORTED if not any(ok) else QUALIFIED


def combine(parts: Sequence[str]) -> str:
    """Verdict of a claim made of parts: supported only if every part is, not supported if
    every tested part is not, not tested if no part could be tested, else qualified."""
    tested = [p for p in parts if p != NOT_TESTED]
    if not tested:
        return NOT_TESTED
    if all(p == SUPPORTED for p in parts):
        return SUPPORTED
    if all(p == NOT_SUPPORTED for p in tested):
        return NOT_SUPPORTED
    return QUALIFIED


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


def describe(row: pd.Series, verdict: bool | None = None, keys: Sequence[str] = ARCH_AXES) -> str:
    """One comparison as a sentence with its interval, effect size and p-values."""
    mark = "" if verdict is None else (" [holds]" if verdict else " [fails]")
    return (
        f"{row['metric']}: {row['factor']} {row['treatment']} - {row['baseline']} "
        f"({context(row, keys)}): {num(row['mean_treatment'])} vs {num(row['mean_baseline'])}, "
        f"diff {num(row['diff'])} [{num(row['diff_ci_low'])}, {num(row['diff_ci_high'])}], "
        f"g = {num(row['hedges_g'])}, Holm p = {num(row['p_holm'], 2)} "
        f"(Welch p = {num(row['p_welch'], 2)}, permutation p = {num(row['p_perm'], 2)}; "
        f"n = {row['n_treatment']} vs {row['n_baseline']}){mark}"
    )


def judge_rows(
    rows: pd.DataFrame, sign: int, keys: Sequence[str] = ARCH_AXES
) -> tuple[str, list[str]]:
    """Verdict of 'diff has this sign and is significant' over rows, and one line per row
    naming the settings ``keys``."""
    ok = [significant(r, sign) for _, r in rows.iterrows()]
    lines = [describe(r, k, keys) for (_, r), k in zip(rows.iterrows(), ok, strict=True)]
    return tally(ok), lines


def render(claims: Sequence[Claim], sources: str) -> str:
    """The Markdown text of FINDINGS.md: conventions, a verdict table, one section per claim."""
    lines = [
        "# Findings",
        "",
        f"Generated by `vanishing.findings` from `{sources}`; do not edit by hand.",
        "",
        "Conventions. Differences are treatment minus baseline with 95% Welch intervals; arms "
        "are independent samples across seeds. *Significant* means Holm-adjusted p < "
        f"{ALPHA} (Holm over the Welch t-test p within a family = one comparison type x one "
        "metric; the exact permutation p is shown too). *Deep* means depth >= "
        f"{DEEP} hidden layers. Accuracy is final test accuracy at the lr with the best mean "
        "validation accuracy; a diverged run counts as chance (1 / n_classes). "
        "log10_grad_ratio = log10(gradient RMS at layer 1 / at the last hidden layer): negative "
        "means the gradient shrinks on its way to the input; abs_log10_grad_ratio is its "
        "distance from balanced flow. A verdict is *supported* if the rule holds in every "
        "evaluated cell, *not supported* if in none, *qualified* if in some, *not tested* if the "
        "tables lack the cells.",
        "",
        "| claim | verdict |",
        "|---|---|",
        *[f"| {c.number}. {c.title} | {c.verdict} |" for c in claims],
        "",
    ]
    for c in claims:
        lines += [f"## {c.number}. {c.title}", "", f"**Verdict: {c.verdict}.**", ""]
        lines += [f"Rule: {c.rule}", ""]
        if c.reason:
            lines += [f"Reason: {c.reason}", ""]
        if c.evidence:
            lines += ["Evidence:", "", *[f"- {e}" for e in c.evidence], ""]
    return "\n".join(lines)


def render_verdicts_rst(claims: Sequence[Claim]) -> str:
    """FINDINGS' verdict table in reStructuredText (a list table), for the report's front page,
    with each untested claim's reason."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 70 30", "",
             "   * - claim", "     - verdict"]  # fmt: skip
    for c in claims:
        verdict = f"**{c.verdict}**" + (f" ({_rst_text(c.reason)})" if c.reason else "")
        # "1\\." keeps docutils from reading the cell as an enumerated list
        lines += [f"   * - {c.number}\\. {_rst_text(c.title)}", f"     - {verdict}"]
    return "\n".join(lines) + "\n"


def _rst_text(text: str) -> str:
    """``text`` safe inside a reStructuredText table cell (no stray markup characters)."""
    for char in "\\`|*_":
        text = text.replace(char, "\\" + char)
    return text
