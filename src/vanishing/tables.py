"""Write the statistics tables of ``results/tables/`` as CSV, Markdown and LaTeX.

CSV is the source every other tool reads (``findings`` included); the ``.md`` files are for
reading on GitHub and the ``.tex`` files (booktabs, three significant digits, constant columns
moved into the caption) for the paper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vanishing.comparisons import comparisons
from vanishing.stats import depth_slopes, factorial_anova, select_lr, summarize

ANOVA_METRICS = ("log10_grad_ratio_init", "final_test_accuracy")
TEX_TABLES = ("selected", "comparisons", "anova", "depth_slopes")


def build_tables(
    runs: pd.DataFrame, layers: pd.DataFrame | None, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Every statistics table by name: summary, selected, comparisons, anova, depth_slopes."""
    summary = summarize(runs)
    selected = select_lr(summary)
    anova = [factorial_anova(runs, m, layers) for m in ANOVA_METRICS]
    anova = [a for a in anova if len(a)] or anova[:1]
    return {
        "summary": summary,
        "selected": selected,
        "comparisons": comparisons(runs, layers, rng, selected),
        "anova": pd.concat(anova, ignore_index=True),
        "depth_slopes": depth_slopes(runs),
    }


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub table (``tabulate``, which snakemake already requires), floats to 4 digits."""
    return df.to_markdown(index=False, floatfmt=".4g", missingval="") + "\n"


TEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
}  # fmt: skip


def tex_escape(text: str) -> str:
    """Text safe to put in LaTeX (captions; cells are escaped by the Styler)."""
    return "".join(TEX_SPECIALS.get(c, c) for c in str(text))


def _number(x) -> str:
    """Integers as integers, other floats to three significant digits."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:.3g}"


def to_latex(df: pd.DataFrame, name: str) -> str:
    """A booktabs table of the columns that vary (without ``cell``, which repeats the
    settings); the constant ones go into the caption."""
    df = df.drop(columns=["cell"], errors="ignore")
    constant = [c for c in df.columns if len(df) > 1 and df[c].nunique(dropna=False) == 1]
    if len(constant) == len(df.columns):
        constant = []
    shown = df.drop(columns=constant)
    fixed = ", ".join(f"{c} = {df[c].iloc[0]}" for c in constant)
    caption = name.replace("_", " ") + (f" (fixed: {fixed})" if fixed else "")
    floats = shown.select_dtypes("float").columns
    styler = shown.style.hide(axis="index").format(na_rep="--", escape="latex")
    styler = styler.format(_number, subset=list(floats), na_rep="--")
    styler = styler.format_index(escape="latex", axis=1)
    return styler.to_latex(hrules=True, caption=tex_escape(caption), label=f"tab:{name}")


def write_tables(
    runs: pd.DataFrame, layers: pd.DataFrame | None, out_dir: Path, seed: int = 0
) -> list[Path]:
    """Write ``{name}.csv`` and ``{name}.md`` for every table of ``build_tables`` and
    ``{name}.tex`` for selected, comparisons, anova and depth_slopes; return the paths.

    ``seed`` seeds the Generator of the Monte Carlo permutation tests (only used where an exact
    test would need more than ``comparisons.EXACT_LIMIT`` splits), so reruns give equal tables.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs, layers, np.random.default_rng(seed))
    paths = []
    for name, df in tables.items():
        paths.append(out_dir / f"{name}.csv")
        df.to_csv(paths[-1], index=False)
        paths.append(out_dir / f"{name}.md")
        paths[-1].write_text(to_markdown(df))
        if name in TEX_TABLES:
            paths.append(out_dir / f"{name}.tex")
            paths[-1].write_text(to_latex(df, name))
    return paths
