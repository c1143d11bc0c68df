"""A user browsing while the study runs: `mlflow ui` open on the embedded store and polling it,
and a reader holding one long read transaction, slow nothing down enough to fail the study,
and nothing is lost."""

from __future__ import annotations

import sqlite3
import threading
import time

import pandas as pd
import pytest
from study import check_mlflow_runs, check_tables, snakemake, store_runs, write_config
from test_clusters import rest

from vanishing.tracking.processes import free_port, start_ui, stop

pytestmark = pytest.mark.e2e


def test_a_study_with_a_browser_and_a_long_reader_on_its_store(tmp_path):
    write_config(tmp_path)
    snakemake(tmp_path, "--until", "tracking")  # the store exists; nothing trained yet
    db = tmp_path / "results" / "mlflow.db"
    port = free_port()
    ui = start_ui(f"sqlite:///{db}", port, tmp_path / "ui.log")  # as `make ui` runs it
    finished = threading.Event()
    seen = {"polls": 0, "held": []}

    def poll():  # a user clicking around in the UI: search the runs again and again
        uri = f"http://127.0.0.1:{port}"
        exp = rest(uri, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny")
        body = {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 500}
        while not finished.is_set():
            rest(uri, "/api/2.0/mlflow/runs/search", body)
            seen["polls"] += 1
            time.sleep(0.2)

    def hold():  # a reader with one long read transaction (a snapshot of the store)
        con = sqlite3.connect(db, timeout=60)
        con.execute("BEGIN")
        while not finished.is_set():
            seen["held"].append(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
            time.sleep(0.5)
        con.rollback()
        con.close()

    try:
        threads = [threading.Thread(target=f, daemon=True) for f in (poll, hold)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        snakemake(tmp_path)
        took = time.monotonic() - t0
    finally:
        finished.set()
        stop(ui)
    runs = check_tables(tmp_path / "results")
    check_mlflow_runs(store_runs(tmp_path), runs)
    assert seen["polls"] > 10 and len(seen["held"]) > 10
    assert len(set(seen["held"])) == 1  # the reader kept its snapshot all along: it held on
    assert took < 600
    assert pd.read_csv(tmp_path / "results" / "tables" / "runs.csv")["diverged"].notna().all()
