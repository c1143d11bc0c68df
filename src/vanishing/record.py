"""A finished cell's record, ``results/runs/<cell>/DONE.json``: the one module that writes and
reads it, with one meaning.

A cell is *done* when its folder holds DONE.json for the same settings (``spec_hash`` of
``Cell.spec()``) and every table of ``outputs.CELL_TABLES``; DONE.json is written last and
atomically, so a kill -9 or a full disk never leaves half of one. It also records the code that
made the cell (``code``: git commit and dirty flag, ``code_version``), its timings, its MLflow
cell run and the data set's splits.

One study, one code version: a cell made by other code than the running one is *stale*
(``stale_cells``). ``vanishing study`` stops before any work when it finds one, naming the cells,
their commits and the command that retrains them; a training job started otherwise (Snakemake
called directly) refuses before training anything (``CodeChanged``).

Torch-free and pandas-free: ``vanishing status`` and ``vanishing study`` read it too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vanishing.config import Cell, spec_hash
from vanishing.outputs import CELL_TABLES, DONE
from vanishing.tracking.provenance import git_commit

CODE_VERSION_ENV = "VANISHING_CODE_VERSION"  # overrides the git commit (tests change it)


class CodeChanged(RuntimeError):
    """Finished cells were made by other code than the running one."""


def code_version() -> str:
    """The running code's version: HEAD's commit, ``-dirty`` with uncommitted changes to tracked
    files, 'unknown' outside a checkout; ``$VANISHING_CODE_VERSION`` when set."""
    return os.environ.get(CODE_VERSION_ENV) or git_commit()


def code_record(version: str) -> dict:
    """DONE.json's ``code``: {"git_commit": ..., "dirty": ...} of a ``code_version`` string."""
    return {"git_commit": version.removesuffix("-dirty"), "dirty": version.endswith("-dirty")}


def version_of(record: dict) -> str | None:
    """The ``code_version`` string a DONE.json's contents record (None before it did)."""
    code = record.get("code")
    if not code:
        return None
    return code["git_commit"] + ("-dirty" if code["dirty"] else "")


def read(cell_dir: Path) -> dict | None:
    """The contents of ``cell_dir``'s DONE.json, or None (none, or unreadable)."""
    try:
        return json.loads((Path(cell_dir) / DONE).read_text())
    except (OSError, ValueError):
        return None


def is_done(cell_dir: Path, cell: Cell) -> bool:
    """``cell_dir`` holds DONE.json for ``cell``'s settings and every table of a cell."""
    record = read(cell_dir)
    if record is None or record.get("spec_hash") != spec_hash(cell.spec()):
        return False
    return all((Path(cell_dir) / f"{t}.csv").exists() for t in CELL_TABLES)


def forget(cell_dir: Path) -> None:
    """Make a finished cell unfinished (its next training job trains it again)."""
    (Path(cell_dir) / DONE).unlink(missing_ok=True)


def write(cell_dir: Path, cell: Cell, version: str, **extra) -> dict:
    """Mark ``cell_dir`` done for ``cell`` by code ``version`` (write it after every table);
    ``extra`` (timing, MLflow run, data sets) is recorded beside. Returns what was written."""
    spec = cell.spec()
    record = {"spec_hash": spec_hash(spec), "spec": spec, "code": code_record(version), **extra}
    write_atomically(Path(cell_dir) / DONE, json.dumps(record, indent=2))
    return record


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees all of it or none:
    write a temporary file beside it, flush it to disk, rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def stale_cells(runs_root: Path, version: str, names=None) -> dict[str, str]:
    """Cell name -> the code version that made it, for the finished cells under ``runs_root``
    (only ``names``, if given) made by other code than ``version`` ('unknown' for a record from
    before DONE.json named its code)."""
    out = {}
    for marker in sorted(Path(runs_root).glob(f"*/{DONE}")):
        name = marker.parent.name
        if names is not None and name not in names:
            continue
        record = read(marker.parent)
        if record is None:
            continue
        made_by = version_of(record) or "unknown"
        if made_by != version:
            out[name] = made_by
    return out


def stale_message(stale: dict[str, str], version: str, retrain: str) -> str:
    """What to say when ``stale`` cells (``stale_cells``) were found: which cells, which
    commits, and ``retrain``, the command that retrains them with the running code."""
    by_commit: dict[str, list[str]] = {}
    for cell, made_by in stale.items():
        by_commit.setdefault(made_by, []).append(cell)
    lines = [
        f"{len(stale)} finished cell(s) were made by other code than the running one "
        f"({version}); a study's numbers come from one code version:"
    ]
    for made_by, cells in by_commit.items():
        shown = ", ".join(cells[:5]) + (f" and {len(cells) - 5} more" if len(cells) > 5 else "")
        lines.append(f"  made by {made_by}: {shown}")
    lines.append(f"Retrain them with this code: {retrain}")
    lines.append("(or run the study in a new directory, or check out the code that made them)")
    return "\n".join(lines)


def code_line(versions: list[str]) -> str:
    """FINDINGS' line naming the code its numbers come from (the runs' ``code_version``s)."""
    if len(versions) == 1:
        made = versions[0]
        dirty = " with uncommitted changes" if made.endswith("-dirty") else ""
        commit = made.removesuffix("-dirty")
        return f"Every number below comes from the code at commit `{commit}`{dirty}."
    shown = ", ".join(f"`{v}`" for v in versions)
    return f"**The numbers below come from {len(versions)} code versions** ({shown}): rerun."
