"""MLflow bookkeeping: the study's store, experiment and parent run, and one child run per replica.

Lightning's MLFlowLogger maps one Trainer to one run; a batched cell trains many runs in one
Trainer, so runs are written with ``MlflowClient`` directly, in few large ``log_batch`` calls
(each call is a round trip that costs 10-250 ms against SQLite when jobs run side by side).

A rerun of a cell first marks the runs an earlier, unfinished attempt left for it FAILED (a
killed job leaves them RUNNING) and deletes them, so every (cell, lr, seed) has exactly one
FINISHED run and no run stays RUNNING, not even among the deleted ones.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

# MLflow's HTTP client retries failed requests with exponential backoff; these bound it so a
# job whose server went away fails within about a minute, and Snakemake can rerun it.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus  # noqa: E402

MAX_METRICS, MAX_PARAMS_TAGS = 1000, 100  # log_batch limits per call
STUDY_ROLE = "vanishing.role"


class TrackingUnavailable(RuntimeError):
    """The tracking store named by a URI cannot be reached."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of an embedded ``sqlite:///`` store; None for a tracking server."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, if a tracking server does not answer ``GET /health`` (which
    needs no credentials) or refuses this process's credentials (``check_credentials``)."""
    if db := sqlite_path(uri):
        db.parent.mkdir(parents=True, exist_ok=True)
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            if r.status != 200:
                raise TrackingUnavailable(f"MLflow server {uri} answered /health with {r.status}")
    except urllib.error.HTTPError as e:
        hint = " (is the name used here for it in its --allowed-hosts?)" if e.code == 403 else ""
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} answered /health with HTTP {e.code}{hint}"
        ) from e
    except (urllib.error.URLError, OSError) as e:
        raise TrackingUnavailable(f"MLflow tracking server {uri} is unreachable: {e}") from e
    check_credentials(uri, timeout)


def check_credentials(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, if the server refuses the credentials MLflow's client sends
    (``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``, as every job will): one
    authenticated read, through MLflow's own HTTP client, without retries."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri)
    r = http_request(creds, "/api/2.0/mlflow/experiments/search", "GET", max_retries=0,
                     timeout=timeout, raise_on_status=False, params={"max_results": 1})  # fmt: skip
    if r.status_code == 200:
        return
    who = (
        f"user {creds.username!r}"
        if creds.username
        else "a client without credentials (MLFLOW_TRACKING_USERNAME is unset)"
    )
    if r.status_code == 401:
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} refused authentication (HTTP 401) for {who}: set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account on that server"
        )
    raise TrackingUnavailable(
        f"MLflow tracking server {uri} refused {who} (HTTP {r.status_code}): {r.text[:300]}"
    )


def init_study(uri: str, study: str, provenance: dict) -> dict:
    """Create (or find) the store, the experiment and the study's parent run, once, before the
    fan-out: concurrent first-time initialisation of one SQLite store crashes."""
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    path = sqlite_path(uri)
    if path:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")  # persists in the file; readers stop blocking
    exp = client.get_experiment_by_name(study)
    if exp:
        exp_id = exp.experiment_id
    elif path:  # artifacts beside the database, not in ./mlruns
        where = path.resolve().parent / "mlartifacts"
        exp_id = client.create_experiment(study, artifact_location=where.as_uri())
    else:  # a tracking server decides where artifacts go
        exp_id = client.create_experiment(study)
    parents = client.search_runs([exp_id], filter_string=f"tags.`{STUDY_ROLE}` = 'study'")
    if parents:
        parent_id = parents[0].info.run_id
    else:
        parent = client.create_run(exp_id, run_name=study, tags={STUDY_ROLE: "study"})
        parent_id = parent.info.run_id
    client.log_text(parent_id, json.dumps(provenance, indent=2), "provenance.json")
    return {
        "tracking_uri": uri,
        "study": study,
        "experiment_id": exp_id,
        "parent_run_id": parent_id,
    }


class CellRuns:
    """The child runs of one cell's replicas."""

    def __init__(self, tracking: dict):
        self.client = MlflowClient(tracking_uri=tracking["tracking_uri"])
        self.exp_id = tracking["experiment_id"]
        self.parent_id = tracking["parent_run_id"]
        self.study = tracking["study"]
        self.pending_params: dict[str, list[Param]] = {}

    def start(self, cell: str, settings: list[dict], params: dict) -> list[str]:
        """Mark FAILED and delete the runs an earlier attempt at ``cell`` left (RUNNING ones,
        when that attempt was killed), then create one run per replica,
        tagged with every setting (so the UI can filter runs while they train). The settings,
        seed and ``params`` become the run's params in its first ``log`` call."""
        stale = self.client.search_runs(
            [self.exp_id],
            filter_string=(
                f"tags.cell = '{cell}' and tags.`mlflow.parentRunId` = '{self.parent_id}'"
            ),
            max_results=10000,
        )
        for run in stale:
            if run.info.status == RunStatus.to_string(RunStatus.RUNNING):
                self.finish(run.info.run_id, ok=False)
            self.client.delete_run(run.info.run_id)
        ids = []
        for s in settings:
            tags = {k: str(v) for k, v in s.items()}
            tags.update({"cell": cell, "mlflow.parentRunId": self.parent_id, "study": self.study})
            name = f"{cell}/lr~{s['lr']}/seed~{s['seed']}"
            run_id = self.client.create_run(self.exp_id, run_name=name, tags=tags).info.run_id
            self.pending_params[run_id] = [Param(k, str(v)) for k, v in {**s, **params}.items()]
            ids.append(run_id)
        return ids

    def log(self, run_id: str, metrics: list[tuple[str, float, int]]) -> None:
        """Log (key, value, step) triples, NaN values skipped, and the run's params, in calls of
        up to 1000 metrics and 100 params each (one or two calls for a run)."""
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(s)) for k, v, s in metrics if v == v]
        params = self.pending_params.pop(run_id, [])
        n = max(-(-len(items) // MAX_METRICS), -(-len(params) // MAX_PARAMS_TAGS), 1)
        for i in range(n):
            self.client.log_batch(
                run_id,
                metrics=items[i * MAX_METRICS : (i + 1) * MAX_METRICS],
                params=params[i * MAX_PARAMS_TAGS : (i + 1) * MAX_PARAMS_TAGS],
                synchronous=True,
            )

    def finish(self, run_id: str, ok: bool = True) -> None:
        status = RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED)
        self.client.set_terminated(run_id, status=status)

    def fail_all(self, run_ids: list[str]) -> None:
        """Best effort: mark runs FAILED after an error (the store may be what failed)."""
        for run_id in run_ids:
            try:
                self.finish(run_id, ok=False)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass


def publish(tracking: dict, files: list[Path], artifact_dir: str) -> None:
    """Attach the study's tables and figures to the parent run and mark it FINISHED."""
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    for f in files:
        client.log_artifact(tracking["parent_run_id"], str(f), artifact_path=artifact_dir)
    client.set_terminated(tracking["parent_run_id"], status="FINISHED")
