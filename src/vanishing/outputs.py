"""The study's files: which tables each step writes (the contract ``docs/outputs.md`` describes).

Torch-free and pandas-free: training writes the per-cell tables, ``analysis`` reads and extends
them, and the workflow names its outputs from here, so no table name is typed twice.
"""

from __future__ import annotations

# Each finished cell's folder results/runs/<cell>/ holds <table>.csv for each of these, and DONE.
CELL_TABLES = ("runs", "layer_gradients", "curves", "probe_inputs")
DONE = "DONE.json"
# What `vanishing stats` writes into results/tables/, each as .csv and .md; those in TEX also .tex.
STATS_TABLES = ("summary", "selected", "comparisons", "anova", "depth_slopes", "theory",
                "theory_profiles")  # fmt: skip
TEX = ("selected", "comparisons", "anova", "depth_slopes", "theory")
# The tables the report shows under Statistics.
REPORT_TABLES = ("selected", "comparisons", "anova", "theory")
