"""The README's `make study` on the tiny study when things go wrong: killed with SIGKILL (the whole
process group, at a random moment inside training), started twice in one directory, and run out
of disk space. Each time the same command afterwards finishes the study with the same numbers as
an uninterrupted run, and nothing finished is lost. What each test asserts holds however the
machine's load shifts its timing (the disk fills at a point the test fixes)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from conftest import snakemake_env
from study import (
    N_CELLS,
    alive_in_group,
    check_mlflow_runs,
    check_tables,
    finish,
    start,
    store_runs,
    write_config,
)

pytestmark = pytest.mark.e2e

# differ between two runs of the same study (git_commit: when a commit lands between the
# reference and a later study; within one study the code version is checked by the code)
VARYING = ["mlflow_run_id", "train_seconds", "git_commit"]
KEYS = ["cell", "lr", "seed"]


def wait_for(what, desc: str, timeout: float = 300, every: float = 0.05):
    """Poll ``what()`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := what():
            return got
        time.sleep(every)
    raise TimeoutError(f"waited {timeout} s for {desc}")


def done_cells(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "runs").glob("*/DONE.json"))


def run_statuses(workdir: Path) -> list[tuple[str, str, int]]:
    """(status, lifecycle_stage, count) of every run in the SQLite store, deleted ones too."""
    with closing(sqlite3.connect(workdir / "results" / "mlflow.db", timeout=30)) as db:
        return db.execute(
            "SELECT status, lifecycle_stage, COUNT(*) FROM runs GROUP BY 1, 2"
        ).fetchall()


def n_runs(workdir: Path, status: str, stage: str | None = None) -> int:
    return sum(n for s, st, n in run_statuses(workdir) if s == status and stage in (None, st))


def table(path: Path, keys=KEYS) -> pd.DataFrame:
    df = pd.read_csv(path)
    df = df.drop(columns=[c for c in VARYING if c in df.columns])
    return df.sort_values([k for k in keys if k in df.columns]).reset_index(drop=True)


def assert_same_numbers(workdir: Path, reference: Path, cells: list[str] | None = None) -> None:
    """runs.csv and layer_gradients.csv (the study's tables, or the files of ``cells``) hold
    exactly the reference's numbers, apart from run ids and timings (and the sub-grids column,
    which only the study's runs.csv has)."""
    for name, keys in [("runs", KEYS), ("layer_gradients", [*KEYS, "step", "layer"])]:
        if cells is None:
            got = table(workdir / "results" / "tables" / f"{name}.csv", keys)
            want = table(reference / "results" / "tables" / f"{name}.csv", keys)
        else:
            got = pd.concat(
                [table(workdir / "results" / "runs" / c / f"{name}.csv", keys) for c in cells]
            )
            want = table(reference / "results" / "tables" / f"{name}.csv", keys)
            want = want[want["cell"].isin(cells)].drop(columns=["grids"], errors="ignore")
            got = got.sort_values(keys).reset_index(drop=True)
            want = want.sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.fixture(scope="module")
def reference(tiny_study):
    """The session's tiny study (``study.run_watched``): an uninterrupted `make study`; while
    it trained, a second one in the same directory."""
    second = tiny_study.second
    assert second["first_alive"], "the first study ended before the second was started"
    return tiny_study.workdir, second


def test_the_reference_study_is_complete(reference):
    workdir, _ = reference
    runs = check_tables(workdir / "results")
    check_mlflow_runs(store_runs(workdir), runs)


def test_a_second_study_in_the_same_directory_refuses_naming_the_first(reference):
    """The second `make study` stops at once with a message naming the directory and the PID
    of the running study's wrapper, and leaves the first alone (it completed, above)."""
    workdir, second = reference
    out = second["out"]
    said = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"another study is running in {workdir} (pid {second['holder']}," in said, said
    assert "vanishing study" in second["holder_cmdline"]  # the pid named is the first's wrapper
    assert second["seconds"] < 60  # it refused before any Snakemake work
    assert "Building DAG" not in said and "--unlock" not in said


def test_kill_9_of_the_whole_study_then_the_same_command_continues(reference, tmp_path):
    """SIGKILL to `make study`'s process group at a random moment inside training leaves
    Snakemake's lock, cells half trained and RUNNING MLflow runs; the same command again clears
    the stale lock, keeps the finished cells, retrains the rest and ends with the numbers of an
    uninterrupted run, one FINISHED run per replica and per cell and no RUNNING run, not even a
    deleted one."""
    ref, _ = reference
    workdir = tmp_path / "study"
    workdir.mkdir()
    write_config(workdir)
    seed = int(os.environ.get("VANISHING_TEST_SEED", time.time_ns() % 10**6))
    delay = random.Random(seed).uniform(0.0, 1.5)
    print(f"kill {delay:.2f} s after the first finished cell (VANISHING_TEST_SEED={seed})")
    proc = start(workdir)
    try:
        wait_for(lambda: done_cells(workdir), "a finished cell")
        time.sleep(delay)
        # the study's parent run and at least one replica's are RUNNING
        wait_for(lambda: n_runs(workdir, "RUNNING") >= 2, "a RUNNING replica", timeout=60)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    wait_for(lambda: not alive_in_group(proc.pid), "the study's processes to die", timeout=30)
    # the state a crash leaves
    assert list((workdir / ".snakemake" / "locks").glob("*.lock")), "no stale Snakemake lock"
    before = {p.parent.name: pd.read_csv(p.parent / "runs.csv") for p in done_cells(workdir)}
    assert 1 <= len(before) < N_CELLS
    assert not (workdir / "results" / "tables" / "runs.csv").exists()
    cut_off = n_runs(workdir, "RUNNING") - 1  # replicas that were training, parent aside
    assert cut_off >= 1

    out = finish(workdir)
    said = out.stdout + out.stderr
    assert out.returncode == 0, said[-6000:]
    assert "cleared the Snakemake lock" in said
    runs = check_tables(workdir / "results")
    assert_same_numbers(workdir, ref)
    check_mlflow_runs(store_runs(workdir), runs)
    assert n_runs(workdir, "RUNNING") == 0
    assert n_runs(workdir, "FAILED", "deleted") >= cut_off
    # one per replica, one per cell and the study's parent run
    assert n_runs(workdir, "FINISHED", "active") == len(runs) + runs["cell"].nunique() + 1
    # cells finished before the kill were kept, not retrained
    for cell, was in before.items():
        now = runs[runs["cell"] == cell].sort_values(["lr", "seed"])["mlflow_run_id"]
        assert sorted(now) == sorted(was["mlflow_run_id"]), cell


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no `mount` command: the full-disk test needs a small tmpfs")
    if out.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({out.stderr.strip() or out.returncode}): the full-disk "
            "test needs mount permission (root with CAP_SYS_ADMIN)"
        )


def unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True, timeout=60).returncode:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=60)


def fill_after_first_cell(mnt: Path, filler: Path, stop: threading.Event) -> dict:
    """Start a thread that waits for the study's first finished cell (its DONE.json) and then
    fills the disk: ``filler`` grows until the file system refuses (ENOSPC). Returns what it
    saw (the finished cells when it filled, the bytes it wrote); ``stop`` ends the wait."""
    seen: dict = {}

    def fill():
        while not stop.is_set():
            if cells := done_cells(mnt):
                seen["done_when_filled"] = [p.parent.name for p in cells]
                break
            time.sleep(0.02)
        else:
            return
        written = 0
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    written += f.write(b"\0" * (1 << 20))
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                with contextlib.suppress(OSError):  # the last few pages
                    while True:
                        written += f.write(b"\0" * 4096)
        seen["filler_bytes"] = written
        seen["free_after"] = shutil.disk_usage(mnt).free

    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    seen["thread"] = thread
    return seen


def test_a_full_disk_fails_the_study_naming_it_and_a_rerun_completes(reference, tmp_path):
    """The study's working directory on a small tmpfs that fills up during training, at a point
    fixed by the test: one training job at a time, and the disk filled (a filler file grown until
    the file system refuses) as soon as the first cell is finished, so that the next cell cannot
    be written. The study fails naming the file system and the file being written, the cells
    finished before stay intact with the unconstrained run's numbers, and after the filler is
    deleted the same command completes."""
    ref, _ = reference
    mnt = tmp_path / "disk"
    mount_tmpfs(mnt, "64m")
    stop = threading.Event()
    try:
        write_config(mnt)
        filler = mnt / "filler"
        seen = fill_after_first_cell(mnt, filler, stop)
        study = [str(Path(sys.executable).parent / "vanishing"), "study", "--directory", str(mnt),
                 "--configfile", str(mnt / "tiny.yaml"), "--", "--cores", "1"]  # fmt: skip
        full = subprocess.run(study, capture_output=True, text=True, env=snakemake_env(),
                              timeout=900)  # fmt: skip
        stop.set()
        seen["thread"].join(timeout=60)
        said = full.stdout + full.stderr
        print({k: v for k, v in seen.items() if k != "thread"})
        assert seen.get("done_when_filled"), said[-4000:]  # the disk filled after a cell
        assert seen["free_after"] < (1 << 20)
        assert full.returncode != 0, said[-4000:]
        assert f"No space left on device on {mnt}" in said, said[-6000:]
        logs = "".join(p.read_text() for p in (mnt / "results" / "logs" / "train").glob("*.log"))
        assert f"No space left on device on {mnt}" in logs and "while writing" in logs
        finished = [p.parent.name for p in done_cells(mnt)]
        ids = {c: pd.read_csv(mnt / "results" / "runs" / c / "runs.csv") for c in finished}
        assert set(seen["done_when_filled"]) <= set(finished)
        assert 1 <= len(finished) < N_CELLS, finished
        for cell in finished:
            assert json.loads((mnt / "results" / "runs" / cell / "DONE.json").read_text())[
                "spec_hash"
            ]
        assert_same_numbers(mnt, ref, cells=finished)

        filler.unlink()
        again = finish(mnt)
        assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
        runs = check_tables(mnt / "results")
        assert_same_numbers(mnt, ref)
        check_mlflow_runs(store_runs(mnt), runs)
        assert n_runs(mnt, "RUNNING") == 0
        for cell, was in ids.items():  # kept, not retrained
            now = runs.loc[runs["cell"] == cell, "mlflow_run_id"]
            assert sorted(now) == sorted(was["mlflow_run_id"]), cell
    finally:
        stop.set()
        unmount(mnt)
