"""A cell folder counts as done only with DONE.json for the same settings and every table."""

from __future__ import annotations

import json

from vanishing.config import make_cell
from vanishing.outputs import CELL_TABLES, DONE
from vanishing.training.runner import is_done, spec_hash


def finished_cell(tmp_path, cell):
    d = tmp_path / "cell"
    d.mkdir()
    for table in CELL_TABLES:
        (d / f"{table}.csv").write_text("a\n1\n")
    (d / DONE).write_text(json.dumps({"spec_hash": spec_hash(cell.spec())}))
    return d


def spec(lr=0.1, grids=("main",)):
    values = dict(activation="relu", depth=2, norm="none", residual=False, width=8)
    return make_cell(values, "c", [0, 1], [lr], grids)


def test_done_needs_marker_same_settings_and_every_table(tmp_path):
    d = finished_cell(tmp_path, spec())
    assert is_done(d, spec())
    assert not is_done(d, spec(lr=0.2))  # other settings: retrain
    assert is_done(d, spec(grids=("main", "deep")))  # in another sub-grid too: nothing to redo
    (d / "probe_inputs.csv").unlink()  # a folder written before that table existed
    assert not is_done(d, spec())


def test_no_marker_not_done(tmp_path):
    d = finished_cell(tmp_path, spec())
    (d / DONE).unlink()
    assert not is_done(d, spec())
