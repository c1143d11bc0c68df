"""Analysis: aggregation, statistics, comparisons, theory and the tables (no torch)."""
