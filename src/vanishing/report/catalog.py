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


# Categories are the report's sections; subcategories group the figures that a claim of
# FINDINGS rests on, so they sit side by side: how the gradient decays with depth at init (claims
# 1, 3 and the init parts of 4 and 5), how it and saturation evolve in training (2, 4), accuracy
# (2, 4, 5), and the mean-field prediction (6).
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("trainability", "Trainability", ("selected",), "Accuracy at the selected lr"),
    FigureSpec("gradient_profile_init", "Gradient flow", ("layer_gradients",),
               "Decay with depth at init"),
    FigureSpec("grad_ratio_init", "Gradient flow", ("selected",), "Decay with depth at init"),
    FigureSpec("lr_sweep", "Trainability", ("summary",), "Across learning rates"),
    FigureSpec("training_curves", "Trainability", ("curves", "selected"),
               "Accuracy at the selected lr"),
    FigureSpec("gradient_flow_heatmap", "Gradient flow", ("layer_gradients", "selected"),
               "During training"),
    FigureSpec("saturation", "Gradient flow", ("layer_gradients", "selected"), "During training"),
    FigureSpec("theory_overlay", "Theory", ("theory_profiles",), "Mean-field prediction"),
)  # fmt: skip
NAMES = tuple(f.name for f in FIGURES)
TABLES = tuple(dict.fromkeys(t for f in FIGURES for t in f.tables))  # every table a figure reads
