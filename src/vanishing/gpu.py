"""One local GPU per training process, shared by at most ``jobs_per_gpu`` processes.

Snakemake runs local jobs side by side but assigns them no devices (``resources: gpu=1`` is
only a counter). Before torch is imported, each training process takes an exclusive
``flock`` on one file ``<lock_dir>/gpu{i}.slot{k}.lock`` and sets ``CUDA_VISIBLE_DEVICES=i``.
The kernel drops the lock when the process ends, however it ends, so no slot stays taken
after a crash. Under SLURM, which has already set ``CUDA_VISIBLE_DEVICES`` for the job,
nothing is done.

Environment:
    VANISHING_GPUS          number of GPUs to assume (tests simulate GPUs with it)
    VANISHING_GPU_LOCK_DIR  folder of the lock files (default /tmp/vanishing-gpu-locks-<uid>)
    VANISHING_GPU_WAIT      seconds to wait for a free slot before failing (default 24 h)

Standard library only: importing torch first would fix the visible devices too early.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 24 * 3600.0  # a queued job may wait as long as others train; a hang is rarer
POLL_S = 0.5
REPORT_EVERY_S = 60.0  # log that we are still waiting this often


@dataclass(frozen=True)
class GpuSlot:
    """The GPU (as CUDA_VISIBLE_DEVICES names it) and the slot on it that this process holds."""

    gpu: str
    slot: int
    path: Path


# The slot this process holds and the open descriptor that holds it, for the process's life.
_held: tuple[GpuSlot, int] | None = None


def _scheduler_assigned() -> bool:
    """True when a scheduler (SLURM) has already chosen this job's devices."""
    return "SLURM_JOB_ID" in os.environ and "CUDA_VISIBLE_DEVICES" in os.environ


def _nvidia_smi_count() -> int:
    """GPUs that ``nvidia-smi -L`` lists (its ``GPU i: ...`` lines); 0 without a driver."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=False
        )
    except (FileNotFoundError, PermissionError, subprocess.TimeoutExpired):
        return 0
    if out.returncode != 0:
        log.warning("nvidia-smi -L failed (%d): %s", out.returncode, out.stderr.strip())
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def visible_gpus() -> list[str] | None:
    """Device names a process may choose from, or None when a scheduler already chose.

    ``VANISHING_GPUS=n`` gives ``0..n-1``; a ``CUDA_VISIBLE_DEVICES`` set by hand (no SLURM)
    restricts the choice to its entries (up to the first negative one, as CUDA reads it);
    otherwise every GPU that ``nvidia-smi -L`` lists.
    """
    if _scheduler_assigned():
        return None
    forced = os.environ.get("VANISHING_GPUS")
    if forced is not None:
        try:
            n = int(forced)
        except ValueError:
            raise ValueError(f"VANISHING_GPUS must be an integer, got {forced!r}") from None
        return [str(i) for i in range(max(n, 0))]
    by_hand = os.environ.get("CUDA_VISIBLE_DEVICES")
    if by_hand is not None:
        names = []
        for name in (s.strip() for s in by_hand.split(",")):
            if not name or name.startswith("-"):
                break
            names.append(name)
        return names
    return [str(i) for i in range(_nvidia_smi_count())]


def gpu_count() -> int:
    """Number of GPUs this process may choose from; -1 when a scheduler already assigned one."""
    names = visible_gpus()
    return -1 if names is None else len(names)


def default_lock_dir() -> Path:
    """``VANISHING_GPU_LOCK_DIR``, or a per-user folder under /tmp (shared by all studies)."""
    return Path(
        os.environ.get("VANISHING_GPU_LOCK_DIR") or f"/tmp/vanishing-gpu-locks-{os.getuid()}"
    )


def lock_path(lock_dir: Path, gpu: str, slot: int) -> Path:
    """The lock file of ``slot`` on ``gpu``; a UUID-style device name is made filename-safe."""
    return lock_dir / f"gpu{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu)}.slot{slot}.lock"


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None if another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _is_free(path: Path) -> bool:
    fd = _try_lock(path)
    if fd is None:
        return False
    os.close(fd)  # closing the only descriptor releases the lock
    return True


def _holders(lock_dir: Path, gpus: list[str], jobs_per_gpu: int) -> list[str]:
    """The pids written into the taken slots' files (for error messages)."""
    pids = []
    for gpu in gpus:
        for k in range(jobs_per_gpu):
            path = lock_path(lock_dir, gpu, k)
            try:
                pids.append(path.read_text().split()[0])
            except (OSError, IndexError):
                pass
    return pids


def _claim_once(lock_dir: Path, gpus: list[str], jobs_per_gpu: int) -> tuple[GpuSlot, int] | None:
    """Take a free slot on the least-loaded GPU (ties: lowest slot, then first GPU), if any.

    Loads are read by probing each lock; a probe may race with another process, which only
    makes the choice less balanced, never shares a slot: the final flock decides.
    """
    load = {
        g: sum(not _is_free(lock_path(lock_dir, g, k)) for k in range(jobs_per_gpu)) for g in gpus
    }
    order = sorted(
        ((g, k) for g in gpus for k in range(jobs_per_gpu)),
        key=lambda gk: (load[gk[0]], gk[1], gpus.index(gk[0])),
    )
    for gpu, k in order:
        path = lock_path(lock_dir, gpu, k)
        fd = _try_lock(path)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {os.uname().nodename} {time.time():.3f}\n".encode())
            return GpuSlot(gpu, k, path), fd
    return None


def claim_gpu(
    jobs_per_gpu: int, lock_dir: Path | None = None, timeout: float | None = None
) -> GpuSlot | None:
    """Hold one of ``jobs_per_gpu`` slots on a visible GPU and point CUDA_VISIBLE_DEVICES at it.

    Waits (polling every 0.5 s) while every slot is taken, for ``timeout`` seconds
    (default ``VANISHING_GPU_WAIT`` or 24 h). Returns None, changing nothing, when a
    scheduler has already assigned the device; returns the held slot when called again.
    Call before torch is imported: CUDA reads CUDA_VISIBLE_DEVICES once.
    """
    global _held
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu must be at least 1, got {jobs_per_gpu}")
    gpus = visible_gpus()
    if gpus is None:
        log.info(
            "GPU assigned by the scheduler: CUDA_VISIBLE_DEVICES=%s (SLURM job %s)",
            os.environ["CUDA_VISIBLE_DEVICES"],
            os.environ["SLURM_JOB_ID"],
        )
        return None
    if _held is not None:
        return _held[0]
    if not gpus:
        raise RuntimeError(
            "compute.accelerator is 'gpu' but no GPU is visible "
            "(nvidia-smi found none; set VANISHING_GPUS to override)"
        )
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if timeout is None:
        timeout = float(os.environ.get("VANISHING_GPU_WAIT") or DEFAULT_WAIT_S)
    t0 = time.monotonic()
    reported = None
    while (got := _claim_once(lock_dir, gpus, jobs_per_gpu)) is None:
        waited = time.monotonic() - t0
        if waited >= timeout:
            raise RuntimeError(
                f"no free GPU slot after {waited:.0f} s: all {len(gpus) * jobs_per_gpu} slots "
                f"({len(gpus)} GPUs x {jobs_per_gpu} jobs per GPU) in {lock_dir} are held "
                f"(pids {', '.join(_holders(lock_dir, gpus, jobs_per_gpu)) or 'unknown'}); "
                "raise compute.jobs_per_gpu, run fewer jobs at once, or set VANISHING_GPU_WAIT"
            )
        if reported is None or time.monotonic() - reported >= REPORT_EVERY_S:
            log.info("all GPU slots in %s are taken; waiting (%.0f s so far)", lock_dir, waited)
            reported = time.monotonic()
        time.sleep(min(POLL_S, max(timeout - waited, 0.0)))
    _held = got
    slot = got[0]
    os.environ["CUDA_VISIBLE_DEVICES"] = slot.gpu
    log.info(
        "GPU %s slot %d of %d taken (%s); CUDA_VISIBLE_DEVICES=%s",
        slot.gpu,
        slot.slot,
        jobs_per_gpu,
        slot.path,
        slot.gpu,
    )
    return slot


def release_gpu() -> None:
    """Give back the held slot (the process's exit does this too); for tests and long sessions."""
    global _held
    if _held is not None:
        os.close(_held[1])
        _held = None
