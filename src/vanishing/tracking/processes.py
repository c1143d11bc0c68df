"""A local MLflow process (``mlflow ui`` or ``mlflow server``) on a free loopback port: started
in its own session, waited for until its ``/health`` answers, and stopped by its process group
(it forks workers). Used by ``scripts/screenshots.py`` and the tests that start servers.
Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# MLflow's server starts a job runner and seven task consumers (GenAI jobs: trace roll-ups,
# prompt optimisation) unless told not to; a tracking store of training runs uses none of them,
# and each costs a Python start-up (some 2-3 CPU seconds). Set where this project starts one.
NO_SERVER_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(uri: str, proc: subprocess.Popen, timeout: float = 120,
                 what: str = "mlflow server", log: Path | None = None) -> None:  # fmt: skip
    """Return once ``uri``/health answers 200; raise if ``proc`` exits first or ``timeout``
    seconds pass (naming ``log``, the process's output, when given)."""
    see = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}{see}")
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{what} at {uri} not healthy after {timeout} s{see}")


def start_ui(backend_uri: str, port: int, log: Path, timeout: float = 120) -> subprocess.Popen:
    """``mlflow ui`` over ``backend_uri`` on 127.0.0.1:``port`` (as ``make ui`` runs it), its
    output in ``log``; returns once it answers (stopped again if it never does)."""
    mlflow = Path(sys.executable).parent / "mlflow"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(mlflow), "ui", "--backend-store-uri", backend_uri, "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **NO_SERVER_JOBS},
        )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout, "mlflow ui", log)
    except TimeoutError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Stop the process and the workers it forked: its process group, by the PID it was
    started with (SIGTERM, then SIGKILL after 20 s)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
