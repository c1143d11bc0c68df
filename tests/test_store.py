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


def _log_at_once(uri, exp_id, digest, barrier, raw, errors):
    from mlflow import MlflowClient

    from vanishing.tracking.store import dataset_inputs, log_inputs

    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(exp_id).info.run_id
    inputs = dataset_inputs([{"name": "digits_train", "digest": digest, "source_type": "code",
                              "source": "{}", "context": "training"}])  # fmt: skip
    barrier.wait()
    try:
        (client.log_inputs(run_id, datasets=inputs) if raw else log_inputs(client, run_id, inputs))
    except Exception as e:  # noqa: BLE001 - reported to the test
        errors.put(str(e)[:200])


def concurrent_first_logs(tmp_path, raw: bool, rounds: int = 6, jobs: int = 4) -> list[str]:
    """``jobs`` processes log one new data set at the same moment, ``rounds`` times: the errors."""
    import multiprocessing as mp

    uri = f"sqlite:///{tmp_path / ('raw' if raw else 'ours')}.db"
    tracking = init_study(uri, "race", {"git_commit": "x"})
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    for r in range(rounds):
        barrier = ctx.Barrier(jobs)
        procs = [ctx.Process(target=_log_at_once, args=(uri, tracking["experiment_id"],
                                                        f"d{r}", barrier, raw, errors))
                 for _ in range(jobs)]  # fmt: skip
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
    out = []
    while not errors.empty():
        out.append(errors.get())
    return out


def test_jobs_logging_one_new_data_set_at_once_all_link_it(tmp_path):
    """Training jobs start together and each logs the data set's splits as its runs' inputs: the
    SQL store's look-up-then-insert lets two of them insert the same data set, and one fails on
    the unique key (MLflow's own client does, here); ``log_inputs`` tries again and links the
    data set the other inserted, so every run has its input and the data set is stored once."""
    from mlflow import MlflowClient

    assert any("UNIQUE constraint failed" in e for e in concurrent_first_logs(tmp_path, raw=True))
    assert concurrent_first_logs(tmp_path, raw=False) == []
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'ours'}.db")
    exp = client.get_experiment_by_name("race")
    runs = client.search_runs([exp.experiment_id])
    runs = [r for r in runs if not r.data.tags.get("vanishing.role")]  # the study run aside
    assert len(runs) == 6 * 4
    assert all(len(r.inputs.dataset_inputs) == 1 for r in runs)
    with closing(sqlite3.connect(tmp_path / "ours.db")) as con:
        assert con.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 6
