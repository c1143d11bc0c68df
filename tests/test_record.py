"""A cell's record (DONE.json, ``vanishing.record``): done only with the marker for the same
settings and every table; the code that made it, and cells made by other code found by name."""

from __future__ import annotations

import json

import pytest

from vanishing import record
from vanishing.config import make_cell
from vanishing.outputs import CELL_TABLES, DONE


def spec(name="c", lr=0.1, grids=("main",)):
    values = dict(activation="relu", depth=2, norm="none", residual=False, width=8)
    return make_cell(values, name, [0, 1], [lr], grids)


def finished_cell(root, cell, version="a" * 40):
    d = root / cell.name
    d.mkdir(parents=True)
    for table in CELL_TABLES:
        (d / f"{table}.csv").write_text("a\n1\n")
    record.write(d, cell, version, timing={"fit_seconds": 1.5})
    return d


def test_done_needs_marker_same_settings_and_every_table(tmp_path):
    d = finished_cell(tmp_path, spec())
    assert record.is_done(d, spec())
    assert not record.is_done(d, spec(lr=0.2))  # other settings: retrain
    assert record.is_done(
        d, spec(grids=("main", "deep"))
    )  # in another sub-grid too: nothing to redo
    (d / "probe_inputs.csv").unlink()  # a folder written before that table existed
    assert not record.is_done(d, spec())


def test_no_marker_or_half_a_marker_is_not_done(tmp_path):
    d = finished_cell(tmp_path, spec())
    (d / DONE).write_text('{"spec_hash": ')  # half a file
    assert record.read(d) is None and not record.is_done(d, spec())
    record.forget(d)
    assert not (d / DONE).exists() and not record.is_done(d, spec())


def test_the_record_names_its_code_and_keeps_what_it_is_given(tmp_path):
    d = finished_cell(tmp_path, spec(), version="b" * 40 + "-dirty")
    got = json.loads((d / DONE).read_text())
    assert got["code"] == {"git_commit": "b" * 40, "dirty": True}
    assert got["timing"] == {"fit_seconds": 1.5} and got["spec"]["cell"] == "c"
    assert record.version_of(got) == "b" * 40 + "-dirty"
    assert record.version_of({"spec_hash": "x"}) is None  # from before records named their code


def test_stale_cells_are_those_made_by_other_code(tmp_path):
    finished_cell(tmp_path, spec("old"), version="1" * 40)
    finished_cell(tmp_path, spec("new"), version="2" * 40)
    legacy = finished_cell(tmp_path, spec("legacy"), version="2" * 40)
    (legacy / DONE).write_text(json.dumps({"spec_hash": "x"}))
    assert record.stale_cells(tmp_path, "2" * 40) == {"old": "1" * 40, "legacy": "unknown"}
    assert record.stale_cells(tmp_path, "2" * 40, names=["new", "old"]) == {"old": "1" * 40}
    assert record.stale_cells(tmp_path, "1" * 40, names=["old"]) == {}
    text = record.stale_message({"old": "1" * 40}, "2" * 40, "RETRAIN=stale")
    assert "made by " + "1" * 40 + ": old" in text and "RETRAIN=stale" in text


def test_the_code_version_honours_the_environment(monkeypatch):
    monkeypatch.setenv(record.CODE_VERSION_ENV, "c" * 40)
    assert record.code_version() == "c" * 40
    monkeypatch.delenv(record.CODE_VERSION_ENV)
    assert record.code_version() == record.git_commit()


@pytest.mark.parametrize(
    ("versions", "said"),
    [
        (["a" * 40], "from the code at commit `" + "a" * 40 + "`."),
        (["a" * 40 + "-dirty"], "`" + "a" * 40 + "` with uncommitted changes."),
        (["a" * 40, "b" * 40], "from 2 code versions"),
    ],
)
def test_findings_name_the_commit(versions, said):
    assert said in record.code_line(versions)
