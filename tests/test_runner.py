"""A cell folder counts as done only with DONE.json for the same settings and every table."""

from __future__ import annotations

import json

from vanishing.aggregate import TABLES
from vanishing.config import Cell, DataConfig, ModelConfig, TrainConfig
from vanishing.runner import DONE, cell_spec, is_done, spec_hash


def finished_cell(tmp_path, spec):
    d = tmp_path / "cell"
    d.mkdir()
    for table in TABLES:
        (d / f"{table}.csv").write_text("a\n1\n")
    (d / DONE).write_text(json.dumps({"spec_hash": spec_hash(spec)}))
    return d


def spec(lr=0.1):
    cell = Cell("c", DataConfig(), ModelConfig("relu", 2, "none", False, 8), TrainConfig())
    return cell_spec(cell, [0, 1], [lr])


def test_done_needs_marker_same_settings_and_every_table(tmp_path):
    d = finished_cell(tmp_path, spec())
    assert is_done(d, spec())
    assert not is_done(d, spec(lr=0.2))  # other settings: retrain
    (d / "probe_inputs.csv").unlink()  # a folder written before that table existed
    assert not is_done(d, spec())


def test_no_marker_not_done(tmp_path):
    d = finished_cell(tmp_path, spec())
    (d / DONE).unlink()
    assert not is_done(d, spec())
