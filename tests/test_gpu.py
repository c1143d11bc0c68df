"""GPU slots: real processes and real flocks on a temporary lock folder (GPUs simulated with
VANISHING_GPUS or a stand-in nvidia-smi)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vanishing.gpu import claim_gpu, gpu_count, lock_path, release_gpu, visible_gpus

NO_GPU = (
    "compute.accelerator is 'gpu' but no GPU is visible "
    "(nvidia-smi found none; set VANISHING_GPUS to override)"
)

# A training job stand-in: claim a slot, say so, hold it for `hold` seconds, record the interval.
WORKER = """
import json, logging, os, sys, time
from pathlib import Path
from vanishing.gpu import claim_gpu
logging.basicConfig(level=logging.INFO)
lock_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
slot = claim_gpu(int(sys.argv[4]), lock_dir)
hold = float(sys.argv[3])
start = time.time()
Path(str(out) + ".claimed").write_text(json.dumps({"gpu": slot.gpu, "slot": slot.slot}))
time.sleep(hold)
out.write_text(json.dumps({
    "pid": os.getpid(), "cvd": os.environ["CUDA_VISIBLE_DEVICES"], "gpu": slot.gpu,
    "slot": slot.slot, "start": start, "end": time.time(),
}))
"""


def worker_env(**extra: str) -> dict:
    """The test's environment without any real scheduler or GPU settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "VANISHING_GPU"))}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env | extra


def start_worker(lock_dir: Path, out: Path, hold: float, jobs_per_gpu: int, **env: str):
    args = [sys.executable, "-c", WORKER, str(lock_dir), str(out), str(hold), str(jobs_per_gpu)]
    return subprocess.Popen(args, env=worker_env(**env), stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def hold(path: Path) -> int:
    """Take ``path``'s lock in this process (another open file description: it conflicts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


@pytest.fixture
def clean_env(monkeypatch):
    """No scheduler, no forced GPU count, no device list; the module holds no slot after."""
    for key in list(os.environ):
        if key.startswith(("SLURM_", "VANISHING_GPU")):
            monkeypatch.delenv(key)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield monkeypatch
    release_gpu()


def test_concurrent_processes_never_share_a_slot(tmp_path):
    """6 jobs, 2 GPUs x 2 slots: at most 2 run per GPU at any moment, and all 6 run."""
    locks = tmp_path / "locks"
    procs = [
        start_worker(locks, tmp_path / f"run{i}.json", 1.0, 2, VANISHING_GPUS="2") for i in range(6)
    ]
    for p in procs:
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
    runs = [json.loads((tmp_path / f"run{i}.json").read_text()) for i in range(6)]
    assert len({r["pid"] for r in runs}) == 6
    for r in runs:
        assert r["cvd"] == r["gpu"] and r["gpu"] in {"0", "1"}
        assert r["slot"] in {0, 1}
    for r in runs:  # the holders at the moment r started
        now = [q for q in runs if q["start"] <= r["start"] < q["end"]]
        assert sum(q["gpu"] == r["gpu"] for q in now) <= 2
        assert sum((q["gpu"], q["slot"]) == (r["gpu"], r["slot"]) for q in now) == 1
    assert {r["gpu"] for r in runs} == {"0", "1"}
    assert {f.name for f in locks.iterdir()} == {
        f"gpu{g}.slot{k}.lock" for g in "01" for k in (0, 1)
    }


def test_killed_holder_frees_its_slot(tmp_path):
    locks = tmp_path / "locks"
    holder = start_worker(locks, tmp_path / "a.json", 60, 1, VANISHING_GPUS="1")
    assert wait_for(tmp_path / "a.json.claimed", 10)
    waiter = start_worker(
        locks, tmp_path / "b.json", 0, 1, VANISHING_GPUS="1", VANISHING_GPU_WAIT="20"
    )
    time.sleep(1.0)
    assert waiter.poll() is None and not (tmp_path / "b.json.claimed").exists()
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=5) == -signal.SIGKILL
    _, err = waiter.communicate(timeout=10)
    assert waiter.returncode == 0, err
    b = json.loads((tmp_path / "b.json").read_text())
    assert (b["gpu"], b["slot"], b["cvd"]) == ("0", 0, "0")
    assert "waiting" in err  # it logged that it queued


def test_prefers_least_loaded_gpu(tmp_path, clean_env):
    """gpu0 holds 2 of 3 slots, gpu1 holds 1: the new job goes to gpu1 (its free slot 1)."""
    clean_env.setenv("VANISHING_GPUS", "2")
    fds = [hold(lock_path(tmp_path, g, k)) for g, k in [("0", 1), ("0", 2), ("1", 0)]]
    try:
        slot = claim_gpu(3, tmp_path)
        assert (slot.gpu, slot.slot, slot.path) == ("1", 1, tmp_path / "gpu1.slot1.lock")
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
        assert claim_gpu(3, tmp_path) is slot  # a second call keeps the same slot
        assert slot.path.read_text().split()[0] == str(os.getpid())
    finally:
        for fd in fds:
            os.close(fd)


def test_fills_slot_zero_of_every_gpu_first(tmp_path, clean_env):
    clean_env.setenv("VANISHING_GPUS", "3")
    fds = [hold(lock_path(tmp_path, "0", 0))]
    try:
        slot = claim_gpu(4, tmp_path)
        assert (slot.gpu, slot.slot) == ("1", 0)
        release_gpu()
        fds.append(hold(lock_path(tmp_path, "1", 0)))
        slot = claim_gpu(4, tmp_path)
        assert (slot.gpu, slot.slot) == ("2", 0)
    finally:
        for fd in fds:
            os.close(fd)


def test_gives_up_after_timeout_naming_the_lock_dir(tmp_path, clean_env):
    clean_env.setenv("VANISHING_GPUS", "1")
    fd = hold(lock_path(tmp_path, "0", 0))
    os.write(fd, f"{os.getpid()} here 0\n".encode())
    try:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError) as e:
            claim_gpu(1, tmp_path, timeout=1.0)
        assert 1.0 <= time.monotonic() - t0 < 3.0
        assert str(tmp_path) in str(e.value)
        assert "1 GPUs x 1 jobs per GPU" in str(e.value) and str(os.getpid()) in str(e.value)
        clean_env.setenv("VANISHING_GPU_WAIT", "0")
        with pytest.raises(RuntimeError, match="no free GPU slot"):
            claim_gpu(1, tmp_path)
    finally:
        os.close(fd)


def test_slurm_assignment_is_left_alone(tmp_path, clean_env):
    clean_env.setenv("SLURM_JOB_ID", "1")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "3")
    clean_env.setenv("VANISHING_GPUS", "2")
    assert gpu_count() == -1 and visible_gpus() is None
    assert claim_gpu(4, tmp_path / "locks") is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists()


def test_slurm_job_without_a_gpu_still_counts_local_gpus(clean_env):
    clean_env.setenv("SLURM_JOB_ID", "1")
    clean_env.setenv("VANISHING_GPUS", "2")
    assert gpu_count() == 2


def test_no_gpu_is_a_clear_error(tmp_path, clean_env):
    clean_env.setenv("VANISHING_GPUS", "0")
    with pytest.raises(RuntimeError, match=re.escape(NO_GPU)):
        claim_gpu(4, tmp_path)
    clean_env.delenv("VANISHING_GPUS")
    clean_env.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert gpu_count() == 0
    with pytest.raises(RuntimeError, match=re.escape(NO_GPU)):
        claim_gpu(4, tmp_path)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_counts_nvidia_smi_gpus_not_mig_lines(tmp_path, clean_env):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA H200 (UUID: GPU-aaaa)'\n"
        "echo '  MIG 1g.18gb     Device  0: (UUID: MIG-bbbb)'\n"
        "echo 'GPU 1: NVIDIA H200 (UUID: GPU-cccc)'\n"
    )
    smi.chmod(0o755)
    clean_env.setenv("PATH", str(tmp_path))
    assert gpu_count() == 2
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert gpu_count() == 0


def test_hand_set_cuda_visible_devices_restricts_the_choice(tmp_path, clean_env):
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    fd = hold(lock_path(tmp_path, "2", 0))
    try:
        assert visible_gpus() == ["2", "3"]
        assert claim_gpu(1, tmp_path).gpu == "3"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    finally:
        os.close(fd)
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpu_count() == 0


def test_bad_settings(clean_env):
    clean_env.setenv("VANISHING_GPUS", "two")
    with pytest.raises(ValueError, match="VANISHING_GPUS"):
        gpu_count()
    with pytest.raises(ValueError, match="jobs_per_gpu"):
        claim_gpu(0)


def test_module_imports_no_torch():
    code = "import sys, vanishing.gpu; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=worker_env()).returncode == 0
