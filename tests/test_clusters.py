"""Beyond one process: the tiny study on a real single-node SLURM cluster, and against a real
`mlflow server` on the loopback interface (reachable, unreachable, and dropping mid-study)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, snakemake_env
from study import (
    JOBS,
    check_mlflow_runs,
    check_tables,
    rest,
    snakemake,
    store_runs,
    write_config,
)

from vanishing.tracking.processes import NO_SERVER_JOBS, free_port, stop, wait_healthy

pytestmark = pytest.mark.e2e


@pytest.mark.slurm
def test_tiny_study_on_slurm(slurm_cluster, tmp_path):
    """Training jobs go through sbatch (the plugin), the rest runs on the submit host; the
    outputs and the MLflow store are the same as in a local run."""
    write_config(tmp_path)
    env = {**slurm_cluster.env, "VANISHING_SLURM_PARTITION": "cpu"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = snakemake(
        tmp_path,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--workflow-profile",
        "none",
        env=env,
    )
    said = out.stdout + out.stderr
    assert said.count("Job ") >= len(JOBS) and "SLURM" in said
    runs = check_tables(tmp_path / "results")
    check_mlflow_runs(store_runs(tmp_path), runs)
    # every training job ran inside a SLURM allocation (its manifest records the job id)
    jobs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "jobs").glob("*.json")]
    assert len(jobs) == len(JOBS) and all(j["slurm_job_id"] for j in jobs)


def start_server(workdir: Path, port: int) -> subprocess.Popen:
    log = open(workdir / f"mlflow-server-{port}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir}/server.db",
            "--artifacts-destination",
            str(workdir / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **NO_SERVER_JOBS},
    )
    wait_healthy(f"http://127.0.0.1:{port}", proc)
    return proc


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = start_server(tmp_path, port)
    yield f"http://127.0.0.1:{port}", proc, port
    stop(proc)


def search_runs(uri: str, study: str) -> list[dict]:
    exp = rest(uri, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={study}")
    body = {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 1000}
    return rest(uri, "/api/2.0/mlflow/runs/search", body).get("runs", [])


def test_unreachable_server_fails_at_once_naming_the_uri(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    write_config(tmp_path)
    env = {**snakemake_env(), "MLFLOW_TRACKING_URI": uri}
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as err:
        snakemake(tmp_path, "--cores", "2", env=env)
    assert time.monotonic() - t0 < 90
    assert uri in str(err.value) and "unreachable" in str(err.value)
    assert not (tmp_path / "results" / "runs").exists()  # no training started


def test_tiny_study_through_a_server_that_drops_mid_study(server, tmp_path):
    """The tiny study against a real `mlflow server`, which goes away after the study started:
    training fails clearly after bounded retries; when the server is back (same store, same
    port) the same command finishes, and the outputs and the store are those of a local run:
    the tables' contract, one FINISHED run per replica on the server and nothing in the default
    store, a replica's metric histories in order, its profile image through the server's
    artifact proxy."""
    uri, proc, port = server
    write_config(tmp_path)
    env = {
        **snakemake_env(),
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    snakemake(tmp_path, "--cores", "1", "--until", "tracking", env=env)
    stop(proc)
    job = JOBS[0]  # one training job is enough to see it fail
    with pytest.raises(AssertionError):
        snakemake(tmp_path, "--cores", "1", f"results/jobs/{job}.json", env=env, timeout=300)
    log = (tmp_path / "results" / "logs" / "train" / f"{job}.log").read_text()
    assert "failed" in log and ("Max retries exceeded" in log or "Connection refused" in log)
    restarted = start_server(tmp_path, port)  # same store, same port
    try:
        snakemake(tmp_path, "--cores", "2", env=env)
        check_server_study(uri, tmp_path)
    finally:
        stop(restarted)


def check_server_study(uri: str, workdir: Path) -> None:
    """What a study through the tracking server at ``uri`` must leave (see the test above)."""
    runs = check_tables(workdir / "results")
    check_mlflow_runs(search_runs(uri, "tiny"), runs)
    assert not (workdir / "results" / "mlflow.db").exists()  # nothing went to the default store
    one = runs.iloc[0]
    hist = rest(
        uri,
        f"/api/2.0/mlflow/metrics/get-history?run_id={one['mlflow_run_id']}&metric_key=train/loss",
    )["metrics"]
    assert [m["step"] for m in hist] == sorted(m["step"] for m in hist) and len(hist) == 2
    layer = rest(
        uri,
        f"/api/2.0/mlflow/metrics/get-history?run_id={one['mlflow_run_id']}"
        "&metric_key=log10_grad_preact_rms/first_layer",
    )["metrics"]
    layers = pd.read_csv(workdir / "results" / "tables" / "layer_gradients.csv")
    mine = layers[
        (layers["cell"] == one["cell"])
        & (layers["lr"] == one["lr"])
        & (layers["seed"] == one["seed"])
        & (layers["layer"] == 1)
    ]
    assert sorted(m["step"] for m in layer) == sorted(mine["step"])
    expected = np.log10(mine.sort_values("step")["grad_preact_rms"])
    assert [m["value"] for m in sorted(layer, key=lambda m: m["step"])] == pytest.approx(
        list(expected)
    )
    # the replica's profile image went through the server's artifact proxy
    arts = rest(uri, f"/api/2.0/mlflow/artifacts/list?run_id={one['mlflow_run_id']}")
    assert {"gradient_profile.png", "layer_gradients.csv"} <= {f["path"] for f in arts["files"]}
