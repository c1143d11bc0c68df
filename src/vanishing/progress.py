"""A study's progress, from the files on disk: what ``vanishing status`` prints, and what each
training job writes while it trains. Torch-free; reads and writes only files, so it works the
same while a study runs locally or on SLURM (on a shared file system) and after it finished.

The files:

- ``results/plan/<job>.json``: each training job's cells (the workflow writes these first);
- ``results/runs/<cell>/DONE.json``: a finished cell (``vanishing.record.is_done``);
- ``results/progress/<job>.json``: written by the training job every few seconds (``JobProgress``):
  its start, the cell it is training, its step, live and diverged replicas, and its estimate.

Work is counted in *units*: a cell's units are its epochs x replicas x (depth + 1), roughly what
training it costs (the cells of a study share their data, so steps per epoch are alike); a
running cell has done the share of its steps that its job reports. The estimated time left is
the units left divided by the units per second done so far (across all jobs: parallel jobs are
in that rate), so it assumes the study keeps running as it did.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vanishing import record
from vanishing.config import Cell, load_cells

log = logging.getLogger(__name__)
PROGRESS_DIR = "progress"
STALE_SECONDS = 120  # a "running" job silent for longer has probably been killed


def cell_units(cell: Cell) -> float:
    """A cell's work: epochs x replicas x (depth + 1) (a profile at init, 0 epochs, counts 1)."""
    return float(max(cell.train.epochs, 1) * len(cell.replicas()) * (cell.model.depth + 1))


def write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def format_seconds(s: float | None) -> str:
    if s is None:
        return "unknown"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class JobProgress:
    """A training job's progress: a log line and ``path`` (JSON) at most every ``every`` seconds,
    and at each cell's start and end. ``cells`` are the job's cells; ``steps`` maps a cell's
    name to its number of training steps."""

    def __init__(self, job: str, cells: list[Cell], steps: dict[str, int], path: Path | None,
                 every: float = 5.0):  # fmt: skip
        self.job, self.path, self.every = job, path, every
        self.names = [c.name for c in cells]
        self.units = {c.name: cell_units(c) for c in cells}
        self.steps = steps
        self.started = time.time()
        self.done_units = 0.0  # trained by this process (skipped cells not counted)
        self.skipped_units = 0.0
        self.cells_done = 0
        self.state = {"cell": None, "index": 0, "step": 0, "steps": 0, "live": 0, "diverged": 0}
        self.last = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def skip(self, name: str) -> None:
        self.skipped_units += self.units[name]
        self.cells_done += 1
        self.write(status="running")

    def start_cell(self, index: int, name: str, replicas: int) -> None:
        steps = self.steps.get(name, 0)
        self.state = {"cell": name, "index": index, "step": 0, "steps": steps, "live": replicas,
                      "diverged": 0}  # fmt: skip
        self.report(force=True)

    def step(self, step: int, live: int, diverged: int) -> None:
        """Called after every training step; reports at most every ``every`` seconds."""
        self.state.update(step=step, live=live, diverged=diverged)
        if time.time() - self.last >= self.every:
            self.report()

    def end_cell(self, name: str, ok: bool) -> None:
        self.done_units += self.units[name]
        self.cells_done += 1
        self.state.update(step=self.state["steps"], cell=None)
        self.write(status="running")

    def current_units(self) -> float:
        """Units done by this process, the running cell's share included."""
        s = self.state
        part = self.units[s["cell"]] * s["step"] / s["steps"] if s["cell"] and s["steps"] else 0
        return self.done_units + part

    def eta(self) -> float | None:
        """Seconds left for this job at its rate so far; None until it has done a cell or 5% of
        its work (the first steps also pay for start-up)."""
        done = self.current_units()
        todo = sum(self.units.values()) - self.skipped_units
        if done <= 0 or (self.done_units == 0 and done < 0.05 * todo):
            return None
        return (todo - done) * (time.time() - self.started) / done

    def report(self, force: bool = False) -> None:
        s = self.state
        self.write(status="running")
        total = len(self.names)
        log.info(
            "progress: cell %d/%d %s: step %d/%d, %d replicas live, %d diverged; job %s so far, "
            "about %s left",
            s["index"], total, s["cell"], s["step"], s["steps"], s["live"], s["diverged"],
            format_seconds(time.time() - self.started), format_seconds(self.eta()),
        )  # fmt: skip

    def write(self, status: str) -> None:
        """The progress file; a failed write (a full disk) is logged and skipped: progress is
        advice, and the job's own next write says what is wrong."""
        self.last = time.time()
        if self.path is None:
            return
        try:
            self._write(status)
        except OSError as e:
            log.warning("progress file %s not written: %s", self.path, e)

    def _write(self, status: str) -> None:
        write_json(
            self.path,
            {
                "job": self.job,
                "status": status,
                "started": self.started,
                "updated": self.last,
                "pid": os.getpid(),
                "host": os.uname().nodename,
                "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
                "cells": self.names,
                "cells_done": self.cells_done,
                "units": self.units,
                "units_done": self.current_units(),
                "units_skipped": self.skipped_units,
                "eta_seconds": self.eta(),
                **self.state,
            },
        )


@dataclass
class JobStatus:
    job: str
    cells: int
    done: int
    status: str  # waiting | running | done | failed | stale
    cell: str | None = None
    step: int = 0
    steps: int = 0
    live: int = 0
    diverged: int = 0
    updated_ago: float | None = None


@dataclass
class StudyStatus:
    cells: int
    done: int
    running: int
    elapsed_seconds: float | None
    left_seconds: float | None
    jobs: list[JobStatus] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def study_status(results: Path, now: float | None = None) -> StudyStatus:
    """Progress of the study whose outputs are in ``results``: plan files, DONE markers and the
    training jobs' progress files."""
    now = time.time() if now is None else now
    results = Path(results)
    jobs, units_total, units_left = [], 0.0, 0.0
    starts, units_done, last = [], 0.0, None
    total = done = running = 0
    for plan in sorted((results / "plan").glob("*.json")):
        cells = load_cells(plan.read_text())
        finished = [record.is_done(results / "runs" / c.name, c) for c in cells]
        prog = read_progress(results / PROGRESS_DIR / plan.name)
        units = {c.name: cell_units(c) for c in cells}
        total += len(cells)
        done += sum(finished)
        units_total += sum(units.values())
        left = sum(u for c, u, f in zip(cells, units.values(), finished, strict=True) if not f)
        job = JobStatus(plan.stem, len(cells), sum(finished), "waiting")
        if all(finished):
            job.status = "done"
        if prog:
            starts.append(prog["started"])
            units_done += prog.get("units_done", 0.0)
            last = max(last or 0.0, prog["updated"])
            job.updated_ago = now - prog["updated"]
            if not all(finished):
                job.status = prog["status"]
                if job.status == "running" and job.updated_ago > STALE_SECONDS:
                    job.status = "stale"
            if job.status == "running" and prog.get("cell"):
                job.cell, job.step, job.steps = prog["cell"], prog["step"], prog["steps"]
                job.live, job.diverged = prog["live"], prog["diverged"]
                if prog["cell"] in units and prog["steps"]:
                    left -= units[prog["cell"]] * prog["step"] / prog["steps"]
        running += job.status == "running"
        units_left += max(left, 0.0)
        jobs.append(job)
    elapsed = left_seconds = None
    if starts:
        end = now if running or done < total else (last or now)
        elapsed = max(end - min(starts), 0.0)
        if done == total:
            left_seconds = 0.0
        elif units_done > 0:
            left_seconds = units_left * elapsed / units_done
    return StudyStatus(total, done, running, elapsed, left_seconds, jobs)


def read_progress(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def format_status(st: StudyStatus) -> str:
    if st.cells == 0:
        return "no training jobs planned yet (no results/plan/*.json): has the study started?"
    lines = [
        f"cells: {st.done} of {st.cells} done ({st.done / st.cells:.0%}); "
        f"{st.running} training job(s) running",
        f"time so far: {format_seconds(st.elapsed_seconds)}; "
        f"estimated time left: {format_seconds(st.left_seconds)}",
    ]
    for j in st.jobs:
        line = f"  {j.job}: {j.done}/{j.cells} cells, {j.status}"
        if j.status == "running" and j.cell:
            line += (
                f", training {j.cell} step {j.step}/{j.steps}, {j.live} live, {j.diverged} diverged"
            )
        if j.updated_ago is not None and j.status in ("running", "stale"):
            line += f" (updated {format_seconds(j.updated_ago)} ago)"
        lines.append(line)
    return "\n".join(lines)
