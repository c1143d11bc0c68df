"""A training job whose finished cells were made by other code refuses before any work (the
path of Snakemake called directly, without ``vanishing study``'s check)."""

from __future__ import annotations

import pytest

from vanishing import record
from vanishing.config import make_cell
from vanishing.outputs import CELL_TABLES


def test_a_job_with_cells_made_by_other_code_stops_before_any_work(tmp_path, monkeypatch):
    from vanishing.training.runner import run_job

    cells = [make_cell(dict(activation="relu", depth=d, norm="none", residual=False, epochs=1),
                       f"c{d}", [0], [0.1]) for d in (2, 3)]  # fmt: skip
    done = tmp_path / "runs" / "c2"
    done.mkdir(parents=True)
    for table in CELL_TABLES:
        (done / f"{table}.csv").write_text("a\n1\n")
    record.write(done, cells[0], "1a" * 20)
    monkeypatch.setenv(record.CODE_VERSION_ENV, "2b" * 20)
    progress = tmp_path / "progress" / "job.json"
    tracking = {"tracking_uri": "sqlite:///nowhere.db"}  # never opened: nothing is logged
    with pytest.raises(record.CodeChanged, match="made by " + "1a" * 20 + ": c2"):
        run_job(cells, tmp_path / "runs", tracking, "cpu", "job", progress)
    assert not progress.exists() and not (tmp_path / "runs" / ".job.reserve").exists()
    assert not (tmp_path / "runs" / "c3").exists()  # nothing trained
