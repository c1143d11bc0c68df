"""Tracking: the MLflow store, provenance of every result, and local GPU slots."""
