"""The MLflow bookkeeping against a real SQLite store: a retrained cell leaves no RUNNING run."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from vanishing.tracking.store import CellRuns, init_study

SETTINGS = [{"activation": "relu", "lr": 0.1, "seed": s} for s in (0, 1)]


def test_retraining_a_cell_fails_then_deletes_the_runs_a_killed_attempt_left(tmp_path):
    db = tmp_path / "mlflow.db"
    tracking = init_study(f"sqlite:///{db}", "store-test", {"git_commit": "x"})
    first = CellRuns(tracking)
    killed = [*first.start("c", SETTINGS, {}), first.cell_run_id]  # then killed: RUNNING forever
    second = CellRuns(tracking)
    other = [*second.start("d", SETTINGS, {}), second.cell_run_id]  # another cell, untouched
    again = CellRuns(tracking)
    fresh = [*again.start("c", SETTINGS, {}), again.cell_run_id]
    for run_id in fresh:
        again.finish(run_id)
    with closing(sqlite3.connect(db)) as con:
        query = "SELECT run_uuid, status, lifecycle_stage FROM runs"
        rows = {run: (status, stage) for run, status, stage in con.execute(query)}
    assert {rows[r] for r in killed} == {("FAILED", "deleted")}
    assert {rows[r] for r in fresh} == {("FINISHED", "active")}
    assert {rows[r] for r in other} == {("RUNNING", "active")}
    assert len(rows) == 3 * (2 + 1) + 1  # a cell run and two replicas per start, the study run
