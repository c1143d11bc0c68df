"""A study's progress from its files: what a training job reports while it trains (at most one
line every few seconds), and what ``vanishing status`` makes of plan files, DONE markers and
progress files, with hand-computed counts and estimates."""

from __future__ import annotations

import json
import logging

import pytest

from vanishing import progress, record
from vanishing.config import make_cell, save_cells
from vanishing.outputs import CELL_TABLES, DONE


def cell(name: str, depth: int, epochs: int = 2):
    values = dict(activation="relu", depth=depth, norm="none", residual=False, epochs=epochs)
    return make_cell(values, name, seeds=[0, 1], lrs=[0.1])  # 2 replicas


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress.time, "time", c)
    return c


def test_units_are_epochs_times_replicas_times_depth_plus_one():
    assert progress.cell_units(cell("a", depth=3, epochs=5)) == 5 * 2 * 4
    assert progress.cell_units(cell("b", depth=1, epochs=0)) == 1 * 2 * 2  # a profile at init


def test_a_job_reports_at_most_every_few_seconds(tmp_path, clock, caplog):
    a, b = cell("a", 1), cell("b", 3)  # units 2*2*2 = 8 and 2*2*4 = 16
    path = tmp_path / "progress" / "job.json"
    job = progress.JobProgress("job", [a, b], {"a": 10, "b": 10}, path, every=5.0)
    caplog.set_level(logging.INFO, logger="vanishing.progress")
    job.start_cell(1, "a", 2)
    assert json.loads(path.read_text())["eta_seconds"] is None  # nothing done yet
    for i in range(1, 11):  # ten steps in 9 s: lines (and the file) at the start and at 5 s
        clock.t += 1.0 if i > 1 else 0.0
        job.step(i, live=2 if i < 5 else 1, diverged=0 if i < 5 else 1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "cell 1/2 a: step 0/10" in lines[0]
    assert "step 6/10, 1 replicas live, 1 diverged" in lines[1]
    state = json.loads(path.read_text())
    assert (state["step"], state["live"], state["diverged"]) == (6, 1, 1)
    # 6 of a's 10 steps = 4.8 of 24 units in 5 s: 19.2 units left take 20 s
    assert state["eta_seconds"] == pytest.approx(20.0)
    clock.t = 1000.0 + 12.0
    job.end_cell("a", ok=True)
    state = json.loads(path.read_text())
    assert state["cells_done"] == 1 and state["units_done"] == 8
    assert state["eta_seconds"] == pytest.approx(16 * 12.0 / 8)  # 16 units left at 8 per 12 s
    job.write(status="done")
    assert json.loads(path.read_text())["status"] == "done"


def write_study(results, clock, *, done=(), running=None, updated_ago=1.0, started_ago=100.0):
    """Two jobs of two cells each; ``done`` cells have DONE.json; ``running`` = (job, cell,
    step, steps) is a job's progress file mid-cell."""
    jobs = {"j1": [cell("a", 1), cell("b", 3)], "j2": [cell("c", 1), cell("d", 7)]}
    (results / "plan").mkdir(parents=True)
    for job, cells in jobs.items():
        (results / "plan" / f"{job}.json").write_text(save_cells(cells))
        for c in cells:
            if c.name in done:
                (results / "runs" / c.name).mkdir(parents=True)
                for table in CELL_TABLES:
                    (results / "runs" / c.name / f"{table}.csv").write_text("a\n1\n")
                record.write(results / "runs" / c.name, c, "a" * 40)
    if running:
        job, name, step, steps = running
        units = {c.name: progress.cell_units(c) for c in jobs[job]}
        finished = sum(u for n, u in units.items() if n in done)
        (results / "progress").mkdir()
        (results / "progress" / f"{job}.json").write_text(
            json.dumps(
                {
                    "job": job,
                    "status": "running",
                    "started": clock.t - started_ago,
                    "updated": clock.t - updated_ago,
                    "cells": list(units),
                    "units": units,
                    "units_done": finished + units[name] * step / steps,
                    "cell": name,
                    "step": step,
                    "steps": steps,
                    "live": 2,
                    "diverged": 0,
                }
            )
        )
    return jobs


def test_status_of_a_study_in_progress(tmp_path, clock):
    results = tmp_path / "results"
    write_study(results, clock, done={"a"}, running=("j1", "b", 5, 10))
    st = progress.study_status(results)
    assert (st.cells, st.done, st.running) == (4, 1, 1)
    assert st.elapsed_seconds == pytest.approx(100.0)
    # units: a 8 (done), b 16 (half done), c 8, d 32 -> done 8 + 8 = 16 in 100 s; left 8 + 8 + 32
    assert st.left_seconds == pytest.approx(48 * 100.0 / 16)
    j1, j2 = st.jobs
    assert (j1.status, j1.cell, j1.step, j1.steps, j1.done) == ("running", "b", 5, 10, 1)
    assert (j2.status, j2.done) == ("waiting", 0)
    text = progress.format_status(st)
    assert "cells: 1 of 4 done (25%)" in text and "training b step 5/10" in text


def test_a_silent_job_is_stale_and_a_changed_cell_is_not_done(tmp_path, clock):
    results = tmp_path / "results"
    jobs = write_study(results, clock, done={"a"}, running=("j1", "b", 5, 10), updated_ago=600)
    marker = results / "runs" / "a" / DONE
    assert progress.study_status(results).jobs[0].status == "stale"
    assert progress.study_status(results).running == 0
    marker.write_text(json.dumps({"spec_hash": "other settings"}))
    assert progress.study_status(results).done == 0
    assert jobs["j1"][0].name == "a"


def test_status_of_a_finished_study(tmp_path, clock):
    results = tmp_path / "results"
    write_study(results, clock, done={"a", "b", "c", "d"}, running=("j1", "b", 10, 10),
                updated_ago=30.0, started_ago=130.0)  # fmt: skip
    st = progress.study_status(results)
    assert (st.cells, st.done, st.running, st.left_seconds) == (4, 4, 0, 0.0)
    assert st.elapsed_seconds == pytest.approx(100.0)  # from the first start to the last update
    assert [j.status for j in st.jobs] == ["done", "done"]


def test_no_plan_yet(tmp_path):
    st = progress.study_status(tmp_path / "results")
    assert st.cells == 0 and "no training jobs planned yet" in progress.format_status(st)


def test_a_full_disk_skips_the_progress_file_and_says_so(tmp_path, monkeypatch, caplog):
    """Progress is advice: a write that fails (ENOSPC) is logged, the job goes on, and no
    temporary file is left behind."""
    import errno

    path = tmp_path / "progress" / "j.json"
    job = progress.JobProgress("j", [cell("a", 1)], {"a": 10}, path)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(progress.Path, "write_text", full)
    with caplog.at_level(logging.WARNING, logger="vanishing.progress"):
        job.write(status="running")
    assert "not written: [Errno 28] No space left on device" in caplog.text
    assert list(path.parent.iterdir()) == []
