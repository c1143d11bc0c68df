"""Every statistics table of a study, built in one function, and the one reader of tables.

``build_tables`` turns the aggregated tables (runs, layer gradients, curves, probe inputs) into
every statistics table by name (``outputs.STATS_TABLES``), within each sub-grid: summaries, the
lr selection, comparisons, ANOVA, depth slopes, decay shapes, the float32 floor, within-cell
tests, associations, times to events, divergence and the mean-field theory tables.
``write_tables`` writes each as CSV (the source every other tool reads), Markdown (for reading
on GitHub) and, for the tables in ``outputs.TEX``, LaTeX (booktabs, three significant digits,
constant columns moved into the caption). ``read_tables`` is how statistics, figures and
findings read them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from vanishing.analysis.cells import associations, cell_tests, floor_table
from vanishing.analysis.comparisons import comparisons, trained
from vanishing.analysis.decay import decay_fits
from vanishing.analysis.events import divergence, survival, survival_curves
from vanishing.analysis.metrics import TARGET_ACCURACY, derive
from vanishing.analysis.stats import depth_slopes, factorial_anova, select_lr, summarize
from vanishing.analysis.theory import PROFILE_COLUMNS, TABLE_COLUMNS, theory_profiles, theory_table
from vanishing.analysis.time_profiles import time_fits, time_runs
from vanishing.config import MAIN
from vanishing.outputs import STATS_TABLES, TEX
from vanishing.recurrent import RECURRENT

ANOVA_METRICS = ("log10_grad_ratio_init", "final_test_accuracy")


def read_tables(tables_dir: Path, names) -> dict[str, pd.DataFrame | None]:
    """``{name: tables_dir/name.csv}`` for each name; None where the file does not exist, an
    empty frame where it holds no columns."""
    out = {}
    for name in names:
        path = Path(tables_dir) / f"{name}.csv"
        try:
            out[name] = pd.read_csv(path) if path.exists() else None
        except pd.errors.EmptyDataError:
            out[name] = pd.DataFrame()
    return out


def grid_names(runs: pd.DataFrame) -> list[str]:
    """The study's sub-grids, in order of first appearance (``grids`` holds a run's, spaced)."""
    if "grids" not in runs:
        return [MAIN]
    return list(dict.fromkeys(g for gs in runs["grids"].astype(str) for g in gs.split()))


def in_grid(table: pd.DataFrame | None, runs: pd.DataFrame, grid: str) -> pd.DataFrame | None:
    """The rows of ``table`` (keyed by ``cell``) whose cell belongs to sub-grid ``grid``."""
    if table is None:
        return None
    if "grids" not in runs or "cell" not in table:
        return table
    cells = runs.loc[runs["grids"].astype(str).str.split().map(lambda gs: grid in gs), "cell"]
    return table[table["cell"].isin(set(cells))]


class Inputs(NamedTuple):
    """The aggregated tables the statistics read; all but ``runs`` may be None."""

    runs: pd.DataFrame
    layers: pd.DataFrame | None
    curves: pd.DataFrame | None
    probe_inputs: pd.DataFrame | None

    def in_grid(self, grid: str) -> Inputs:
        """Each table's rows of the cells of sub-grid ``grid`` (``in_grid``)."""
        return Inputs(*(in_grid(table, self.runs, grid) for table in self))


def grid_tables(
    inputs: Inputs, rng: np.random.Generator, target: float = TARGET_ACCURACY
) -> dict[str, pd.DataFrame]:
    """The statistics tables of one sub-grid's runs (every table of ``STATS_TABLES`` but
    ``run_metrics``)."""
    runs, layers, curves, probe_inputs = inputs
    df = derive(runs, layers, curves, target)
    summary = summarize(df)
    selected = select_lr(summary)
    anova = [factorial_anova(df, m) for m in ANOVA_METRICS]
    anova = [a for a in anova if len(a)] or anova[:1]
    have_theory = layers is not None and probe_inputs is not None
    through_time = time_runs(runs, layers)  # the recurrent nets' (issue 18)
    if "arch" in runs:  # mean-field theory of MLPs: not for the recurrent nets
        runs = runs[~runs["arch"].isin(RECURRENT)]
        have_theory = have_theory and len(runs) > 0
    return {
        "summary": summary,
        "selected": selected,
        "comparisons": comparisons(df, rng, selected),
        "anova": pd.concat(anova, ignore_index=True),
        "depth_slopes": depth_slopes(df),
        "decay_fits": decay_fits(df),
        "underflow": floor_table(df),
        "cell_tests": cell_tests(df, selected) if trained(df) else pd.DataFrame(),
        "associations": associations(df, selected) if trained(df) else pd.DataFrame(),
        "survival": survival(df, selected),
        "survival_curves": survival_curves(df, selected),
        "divergence": divergence(df),
        "theory": (
            theory_table(runs, layers, probe_inputs)
            if have_theory
            else pd.DataFrame(columns=TABLE_COLUMNS)
        ),
        "theory_profiles": (
            theory_profiles(runs, layers, probe_inputs)
            if have_theory
            else pd.DataFrame(columns=PROFILE_COLUMNS)
        ),
        "time_runs": through_time,
        "time_fits": time_fits(through_time),
    }


def build_tables(
    runs: pd.DataFrame,
    layers: pd.DataFrame | None,
    curves: pd.DataFrame | None,
    probe_inputs: pd.DataFrame | None,
    rng: np.random.Generator,
    target: float = TARGET_ACCURACY,
) -> dict[str, pd.DataFrame]:
    """Every statistics table by name, in ``STATS_TABLES`` order: ``run_metrics`` (every run
    with its derived metrics), and the others computed within each sub-grid, with a ``grid``
    column first. ``layers``, ``curves`` and ``probe_inputs`` may be None: the metrics and
    tables that need them are then empty."""
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in STATS_TABLES}
    inputs = Inputs(runs, layers, curves, probe_inputs)
    for grid in grid_names(runs):
        for name, df in grid_tables(inputs.in_grid(grid), rng, target).items():
            parts[name].append(df.assign(grid=grid)[["grid", *df.columns]])
    out = {"run_metrics": derive(runs, layers, curves, target)}
    for name in STATS_TABLES[1:]:
        frames = [f for f in parts[name] if len(f.columns) > 1]
        out[name] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return {name: out[name] for name in STATS_TABLES}


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
    runs: pd.DataFrame,
    layers: pd.DataFrame | None,
    out_dir: Path,
    probe_inputs: pd.DataFrame | None = None,
    curves: pd.DataFrame | None = None,
    seed: int = 0,
    target: float = TARGET_ACCURACY,
) -> list[Path]:
    """Write ``{name}.csv`` and ``{name}.md`` for every table of ``build_tables``, and
    ``{name}.tex`` for those in ``TEX``; return the paths.

    ``seed`` seeds the Generator of the Monte Carlo permutation tests (only used where an exact
    test would need more than ``comparisons.EXACT_LIMIT`` splits), so reruns give equal tables.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs, layers, curves, probe_inputs, np.random.default_rng(seed), target)
    paths = []
    for name, df in tables.items():
        paths.append(out_dir / f"{name}.csv")
        df.to_csv(paths[-1], index=False)
        paths.append(out_dir / f"{name}.md")
        paths[-1].write_text(to_markdown(df))
        if name in TEX:
            paths.append(out_dir / f"{name}.tex")
            paths[-1].write_text(to_latex(df, name))
    return paths
