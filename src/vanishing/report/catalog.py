"""The registry of figures: each figure's name, its place in the report and the tables it reads.

Light on purpose (no matplotlib): the Snakefile reads it to name the figure outputs and their
report entries, so no figure name is typed twice. Figure ``name`` is drawn by ``plot_<name>`` in
``vanishing.report.figures`` or ``vanishing.report.figures_gradients`` (called with the tables
named here, in this order) and captioned by ``workflow/report/<name>.rst``; a test checks that
each entry has both. Adding a figure is one entry here, its plot function and its caption.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FigureSpec:
    name: str
    category: str  # the report's section
    tables: tuple[str, ...]  # what plot_<name> takes, by table name
    subcategory: str = ""

    @property
    def caption(self) -> str:
        """The caption's path, relative to the workflow's rule files (as report() takes it)."""
        return f"../report/{self.name}.rst"


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("trainability", "Trainability", ("selected",)),
    FigureSpec("gradient_profile_init", "Gradient flow", ("layer_gradients",)),
    FigureSpec("grad_ratio_init", "Gradient flow", ("selected",)),
    FigureSpec("lr_sweep", "Trainability", ("summary",)),
    FigureSpec("training_curves", "Trainability", ("curves", "selected")),
    FigureSpec("gradient_flow_heatmap", "Gradient flow", ("layer_gradients", "selected")),
    FigureSpec("saturation", "Gradient flow", ("layer_gradients", "selected")),
    FigureSpec("theory_overlay", "Theory", ("theory_profiles",)),
)
NAMES = tuple(f.name for f in FIGURES)
TABLES = tuple(dict.fromkeys(t for f in FIGURES for t in f.tables))  # every table a figure reads
