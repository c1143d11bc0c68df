"""Tracking: the MLflow store, what its pages show and run names, and provenance of results."""
