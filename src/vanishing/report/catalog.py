"""The registry of figures: each figure's name, its place in the report, the tables it reads and
the sub-grid it draws.

Light on purpose (no matplotlib): the Snakefile reads it to name the figure outputs and their
report entries, so no figure name is typed twice. Figure ``name`` is drawn by ``plot_<name>`` in
one of ``report.figures``'s modules (called with the tables named here, in this order, each
restricted to the first of ``grids`` the study has, or with ``together`` to all of them and
skipped where the study has none) and captioned by
``workflow/report/<name>.rst``; a test checks that each entry has both. Adding a figure is one
entry here, its plot function and its caption.
"""

from __future__ import annotations

from dataclasses import dataclass

from vanishing.report import registry

OVERVIEW, CLAIMS = "Overview", "Claims"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    category: str  # the report's section
    subcategory: str  # within it: a topic, or the claim the figure shows the evidence of
    tables: tuple[str, ...]  # what plot_<name> takes, by table name
    grids: tuple[str, ...] = ("main",)  # the sub-grid it draws: the first of these the study has
    varies: tuple[str, ...] = ()  # settings besides the four axes the figure shows side by side
    together: bool = False  # draw every one of grids the study has, together, and only those

    @property
    def caption(self) -> str:
        """The caption's path, relative to the workflow's rule files (as report() takes it)."""
        return f"../report/{self.name}.rst"


# Categories are the report's sections: an overview of the study, then one subcategory per claim
# of FINDINGS, holding the figure its rule reads (``report.registry``: a claim's figure is typed
# once, in its claim's entry).
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("trainability", OVERVIEW, "Trainability", ("selected",)),
    FigureSpec("lr_sweep", OVERVIEW, "Trainability", ("summary",)),
    FigureSpec("training_curves", OVERVIEW, "Trainability", ("curves", "selected")),
    FigureSpec("gradient_profile_init", OVERVIEW, "Gradient flow", ("layer_gradients",)),
    FigureSpec("grad_ratio_init", OVERVIEW, "Gradient flow", ("selected",)),
    FigureSpec("gradient_flow_heatmap", OVERVIEW, "Gradient flow",
               ("layer_gradients", "selected")),
    FigureSpec("saturation", OVERVIEW, "Gradient flow", ("layer_gradients", "selected")),
    FigureSpec("theory_overlay", OVERVIEW, "Theory", ("theory_profiles",), ("profile", "main")),
    # issue 16: the step-0 sweep of sigma_w2 (sigmoid's own sub-grid beside the others) and the
    # trained phase diagram; skipped in a study without these sub-grids
    FigureSpec("criticality_sweep", OVERVIEW, "Criticality", ("run_metrics", "selected", "theory"),
               ("criticality", "criticality_sigmoid"), ("init", "sigma_w2"), together=True),
    FigureSpec("phase_diagram", OVERVIEW, "Criticality", ("selected",), ("phase",),
               ("sigma_w2", "sigma_b2"), together=True),
    # one per claim figure, from the registry of claims: section Claims, subcategory the claims
    # it shows (claims 12 and 13 share theirs)
    *(FigureSpec(c.figure, CLAIMS, "Claim " + "-".join(str(n) for n in registry.shown_by(c.figure)),
                 c.tables, c.grids, c.varies)
      for c in registry.CLAIMS if registry.shown_by(c.figure)[0] == c.number),
)  # fmt: skip
BY_NAME = {f.name: f for f in FIGURES}
NAMES = tuple(BY_NAME)
# every table a figure reads, and run_metrics, which says which sub-grids each cell is in
TABLES = tuple(dict.fromkeys(("run_metrics", *(t for f in FIGURES for t in f.tables))))
