"""A shared tracking server that lets in only those who belong: the real `make mlflow-server`
(MLflow's basic-auth app) on a free loopback port, with an admin password chosen here, the tiny
study sending credentials through MLflow's standard variables, and no credential in what the
study leaves behind."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, snakemake_env
from study import TINY, check_mlflow_runs, snakemake, write_config

from vanishing.tracking.processes import free_port, stop, wait_healthy
from vanishing.tracking.store import TrackingUnavailable, check_reachable

pytestmark = pytest.mark.e2e

ADMIN = "vanishing-admin"
PASSWORD = "pw-" + secrets.token_hex(12)  # unique, so a leak anywhere is found by grep


def make_server(port: int, server_dir: Path, env: dict, log: Path) -> subprocess.Popen:
    cmd = ["make", "-C", str(REPO), "--no-print-directory", "mlflow-server", f"PORT={port}",
           f"SERVER_DIR={server_dir}", "MLFLOW_ARGS=--workers 1"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)  # fmt: skip


def server_env(**admin) -> dict:
    env = {k: v for k, v in snakemake_env().items() if not k.startswith("MLFLOW_")}
    return {**env, **admin}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth-server")
    port = free_port()
    env = server_env(MLFLOW_AUTH_ADMIN_USERNAME=ADMIN, MLFLOW_AUTH_ADMIN_PASSWORD=PASSWORD)
    proc = make_server(port, d / "store", env, d / "server.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield f"http://127.0.0.1:{port}", d
    finally:
        stop(proc)


def call(uri: str, path: str, body: dict | None = None, auth: tuple[str, str] | None = None):
    """(HTTP status, parsed JSON or text) of one REST call, with basic auth if given."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        uri + path, data=data, headers={"Content-Type": "application/json"}
    )
    if auth:
        req.add_header(
            "Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_the_server_does_not_start_without_a_chosen_admin_password(tmp_path):
    """Unset (or too short) admin credentials: `make mlflow-server` stops at once naming the
    variable, and nothing listens on the port."""
    port = free_port()
    for admin, says in [
        ({}, "set MLFLOW_AUTH_ADMIN_USERNAME and MLFLOW_AUTH_ADMIN_PASSWORD"),
        ({"MLFLOW_AUTH_ADMIN_USERNAME": ADMIN}, "set MLFLOW_AUTH_ADMIN_PASSWORD"),
        ({"MLFLOW_AUTH_ADMIN_USERNAME": ADMIN, "MLFLOW_AUTH_ADMIN_PASSWORD": "short"},
         "MLFLOW_AUTH_ADMIN_PASSWORD is 5 characters"),
    ]:  # fmt: skip
        proc = make_server(port, tmp_path / "store", server_env(**admin), tmp_path / "log")
        assert proc.wait(timeout=120) != 0
        said = (tmp_path / "log").read_text()
        assert says in said, said[-2000:]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


def test_only_the_right_credentials_may_write(server, monkeypatch):
    """runs/create without credentials, with a wrong password or with MLflow's old default
    admin/password1234 is refused with 401; the admin's own credentials pass. /health stays
    open, so check_reachable tells a refused login from an unreachable server."""
    uri, d = server
    exp = call(uri, "/api/2.0/mlflow/experiments/create", {"name": "auth-probe"}, (ADMIN, PASSWORD))
    assert exp[0] == 200, exp
    body = {"experiment_id": exp[1]["experiment_id"]}
    for auth in [None, (ADMIN, PASSWORD + "x"), ("admin", "password1234")]:
        status, said = call(uri, "/api/2.0/mlflow/runs/create", body, auth)
        assert status == 401 and "not authenticated" in said, (auth, status, said)
    assert call(uri, "/api/2.0/mlflow/runs/create", body, (ADMIN, PASSWORD))[0] == 200
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(TrackingUnavailable, match="refused authentication.*without credentials"):
        check_reachable(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    check_reachable(uri)
    ini = (d / "store" / "mlflow-auth.ini").read_text()
    assert "NO_PERMISSIONS" in ini and PASSWORD not in ini


def test_a_wrong_password_fails_the_study_at_once_naming_the_uri(server, tmp_path):
    uri, _ = server
    write_config(tmp_path)
    env = {**snakemake_env(), "MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": ADMIN,
           "MLFLOW_TRACKING_PASSWORD": "not-the-password"}  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as err:
        snakemake(tmp_path, "--cores", "2", env=env)
    assert time.monotonic() - t0 < 90
    said = str(err.value)
    assert f"MLflow tracking server {uri} refused authentication (HTTP 401)" in said, said
    assert "not-the-password" not in said
    assert not (tmp_path / "results" / "runs").exists()  # no training started


# A smaller study than the tiny one, one cell: the server checks the password's hash (scrypt)
# on every request (70 ms of CPU each here), and every replica's run costs some ten requests.
SMALL = {**TINY, "grid": {"activation": ["relu"], "depth": [2], "norm": ["none"],
                          "residual": [False]},
         "train": {**TINY["train"], "lr": [0.1]}}  # fmt: skip


def test_the_study_with_credentials_lands_and_leaks_no_password(server, tmp_path):
    """A small study, credentials in MLflow's variables only: one FINISHED run per replica on
    the server, and the password string in none of the results, the Snakemake logs, the runs'
    params and tags, the artifacts or the server's log."""
    uri, d = server
    write_config(tmp_path, SMALL)
    env = {**snakemake_env(), "MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": ADMIN,
           "MLFLOW_TRACKING_PASSWORD": PASSWORD}  # fmt: skip
    snakemake(tmp_path, "--cores", "2", env=env)
    runs = pd.read_csv(tmp_path / "results" / "tables" / "runs.csv")
    assert len(runs) == 1 * 2  # one cell, one lr, two seeds
    auth = (ADMIN, PASSWORD)
    exp = call(uri, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny", auth=auth)
    body = {"experiment_ids": [exp[1]["experiment"]["experiment_id"]], "max_results": 1000}
    status, found = call(uri, "/api/2.0/mlflow/runs/search", body, auth)
    assert status == 200
    check_mlflow_runs(found["runs"], runs)
    assert len(runs) == len(pd.unique(runs["mlflow_run_id"]))
    assert PASSWORD not in json.dumps(found)  # params, tags, run names
    files = [p for p in [*(tmp_path / "results").rglob("*"), *(tmp_path / ".snakemake").rglob("*"),
                         *(d / "store" / "mlartifacts").rglob("*"), d / "server.log"]
             if p.is_file()]  # fmt: skip
    published = {p.name for p in (d / "store" / "mlartifacts").rglob("*")}
    assert {
        "FINDINGS.md",
        "runs.csv",
        "provenance.json",
    } <= published  # the artifacts, on the server
    leaks = [str(p) for p in files if PASSWORD.encode() in p.read_bytes()]
    assert leaks == []
