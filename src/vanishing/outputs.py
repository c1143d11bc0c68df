"""The study's files: which tables each step writes (the contract ``docs/outputs.md`` describes).

Torch-free and pandas-free: training writes the per-cell tables, ``analysis`` reads and extends
them, and the workflow names its outputs from here, so no table name is typed twice.
"""

from __future__ import annotations

# Each finished cell's folder results/runs/<cell>/ holds <table>.csv for each of these, and DONE.
CELL_TABLES = ("runs", "layer_gradients", "curves", "probe_inputs")
DONE = "DONE.json"
# What `vanishing stats` writes into results/tables/, each as .csv and .md; those in TEX also .tex.
# Every table but run_metrics has a ``grid`` column: it is computed within each sub-grid.
STATS_TABLES = ("run_metrics", "summary", "selected", "comparisons", "anova", "depth_slopes",
                "decay_fits", "underflow", "cell_tests", "associations", "survival",
                "survival_curves", "divergence", "theory", "theory_profiles",
                "time_runs", "time_fits")  # fmt: skip
TEX = ("selected", "comparisons", "anova", "depth_slopes", "decay_fits", "survival", "theory")
# The tables the report shows under Statistics.
REPORT_TABLES = ("selected", "comparisons", "anova", "decay_fits", "cell_tests", "survival",
                 "divergence", "theory")  # fmt: skip
