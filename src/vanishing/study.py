"""``vanishing study`` (what ``make study`` runs): Snakemake in a working directory, held by a lock
of our own so that the same command after a crash simply continues.

Snakemake marks a working directory as busy with files in ``.snakemake/locks/`` that name no
process; after a kill -9 or a power loss they stay, and the next ``snakemake`` there refuses
("Directory cannot be locked") until ``snakemake --unlock``. This wrapper holds an exclusive
``flock`` on ``.snakemake/vanishing-study.lock`` for the study's lifetime (Snakemake inherits the
descriptor, so the lock lives as long as either process). The kernel drops the lock when its
holders die, however they die. So when the wrapper can take it, no study started this way still
runs in the directory, and a Snakemake lock left there is stale: it is cleared with
``snakemake --unlock`` (after checking that no ``snakemake`` started by hand works in the
directory), and Snakemake then reruns what was cut off (the default profile sets
``rerun-incomplete``; finished cells are kept). When the lock is taken, the wrapper stops at once
and names the holder's PID.

Before Snakemake starts, the wrapper retrains the cells asked for (``--retrain``, ``make study
RETRAIN=<cell>``: the cell's record is removed and its training job forced to rerun, so the job
trains that cell alone and everything downstream is rebuilt), and stops, naming cells, commits
and the command to retrain them, when finished cells were made by other code (one study, one
code version: ``vanishing.record``).

Torch-free: nothing here needs torch, and Snakemake runs as a subprocess.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from vanishing import disk, record

LOCK = Path(".snakemake") / "vanishing-study.lock"
PLANS, RUNS, JOBS = Path("results") / "plan", Path("results") / "runs", "results/jobs"
SNAKEMAKE_LOCKS = Path(".snakemake") / "locks"
log = logging.getLogger(__name__)


class StudyRunning(RuntimeError):
    """Another study holds the working directory."""


def take_lock(workdir: Path) -> int:
    """An open descriptor holding the exclusive flock of ``workdir``'s study, with this
    process's PID written in the file; raises StudyRunning naming the holder's PID."""
    path = workdir / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "not yet recorded"
        os.close(fd)
        raise StudyRunning(
            f"another study is running in {workdir} (pid {holder}; it holds {path}). "
            "Wait for it to finish, or stop it, then run the same command again."
        ) from None
    record_holder(fd, str(os.getpid()))
    return fd


def record_holder(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{text}\n".encode(), 0)


def snakemake_in(workdir: Path) -> int | None:
    """The PID of a live ``snakemake`` process working in ``workdir`` (one started by hand,
    which takes no flock), or None. Linux: reads /proc."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) != workdir:
                continue
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")[:3]
        except OSError:  # gone, or not ours to read
            continue
        # `snakemake ...` (argv[0], or argv[1] after the interpreter) or `python -m snakemake`
        names = [os.path.basename(a) for a in argv[:2]]
        if "snakemake" in names or argv[1:3] == ["-m", "snakemake"]:
            return int(proc.name)
    return None


def clear_stale_lock(cmd: list[str], workdir: Path) -> None:
    """``snakemake --unlock`` when Snakemake's lock files are left in ``workdir`` (call only while
    holding the study's flock)."""
    left = sorted((workdir / SNAKEMAKE_LOCKS).glob("*.lock"))
    if not left:
        return
    if pid := snakemake_in(workdir):
        raise StudyRunning(
            f"a snakemake process started without `make study` (pid {pid}) works in {workdir}; "
            "wait for it to finish, or stop it, then run the same command again."
        )
    out = subprocess.run([*cmd, "--unlock"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"snakemake --unlock failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    log.info(
        "cleared the Snakemake lock (%d files in %s) that an earlier run left when it was killed",
        len(left),
        workdir / SNAKEMAKE_LOCKS,
    )


def run_snakemake(cmd: list[str], lock_fd: int) -> int:
    """Run Snakemake holding the lock too; SIGTERM and SIGHUP are passed on to it (Ctrl-C
    reaches it from the terminal directly, as the whole foreground process group gets it)."""
    proc = subprocess.Popen(cmd, pass_fds=(lock_fd,))
    record_holder(lock_fd, f"{os.getpid()}, snakemake pid {proc.pid}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: proc.send_signal(signum))
    signal.signal(signal.SIGINT, lambda *_: None)
    return proc.wait()


def planned_jobs(workdir: Path) -> dict[str, str]:
    """Cell name -> its training job, from the plan files an earlier run wrote."""
    out = {}
    for plan in sorted((workdir / PLANS).glob("*.json")):
        for cell in json.loads(plan.read_text()):
            out[cell["cell"]] = plan.stem
    return out


def check_code(workdir: Path, retrain_hint: str) -> None:
    """Raise ``record.CodeChanged`` (before any work) when finished cells of the study (the
    planned ones; every one if nothing is planned yet) were made by other code."""
    planned = planned_jobs(workdir) or None
    version = record.code_version()
    stale = record.stale_cells(workdir / RUNS, version, names=planned)
    if stale:
        raise record.CodeChanged(record.stale_message(stale, version, retrain_hint))


def retrain_targets(workdir: Path, retrain: list[str]) -> list[str]:
    """Forget the finished cells named in ``retrain`` (``stale``: those made by other code) and
    return their training jobs' outputs, for Snakemake's ``--forcerun``: the jobs run again,
    train only the forgotten cells (the others are done) and everything downstream is rebuilt.
    Raises ValueError naming a cell that the study does not have."""
    planned = planned_jobs(workdir)
    cells = []
    for name in retrain:
        if name == "stale":
            cells += record.stale_cells(workdir / RUNS, record.code_version(), planned or None)
        elif name in planned or (workdir / RUNS / name).is_dir():
            cells.append(name)
        else:
            raise ValueError(
                f"no cell {name!r} in the study in {workdir}: RETRAIN takes folder names from "
                f"{workdir / RUNS} (or `stale`), comma-separated"
            )
    jobs = []
    for name in dict.fromkeys(cells):
        record.forget(workdir / RUNS / name)
        if name in planned:
            jobs.append(f"{JOBS}/{planned[name]}.json")
        log.info("retraining %s (job %s)", name, planned.get(name, "none: not planned"))
    return sorted(set(jobs))


def study(
    workdir: Path, configfile: Path | None, snakemake_args: list[str], retrain: list[str] = ()
) -> int:
    """Run (or continue) the study in ``workdir``, first retraining the cells named in
    ``retrain`` (``retrain_targets``); Snakemake's exit status. Stops before any work when
    finished cells were made by other code (``check_code``)."""
    workdir = workdir.resolve()
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(workdir)]
    if configfile:
        if not configfile.is_file():
            raise FileNotFoundError(f"config file {configfile} does not exist")
        cmd += ["--configfile", str(configfile.resolve())]
    cmd += snakemake_args
    fd = take_lock(workdir)
    try:
        clear_stale_lock(cmd, workdir)
        if retrain:
            cmd += ["--forcerun", *retrain_targets(workdir, list(retrain))]
        check_code(workdir, f"vanishing study -d {workdir} --retrain stale"
                   " (make study CONFIG=... DIR=... RETRAIN=stale)")  # fmt: skip
        rc = run_snakemake(cmd, fd)
    finally:
        os.close(fd)
    if rc != 0 and disk.free_bytes(workdir) < disk.NEARLY_FULL_BYTES:
        log.error(
            "No space left on device on %s (%d bytes free), which holds the study in %s: free "
            "space there, then run the same command again (finished cells are kept)",
            disk.mount_point(workdir),
            disk.free_bytes(workdir),
            workdir,
        )
    return rc
