"""MLflow bookkeeping: the study's store and experiment, and three levels of runs: the study's
parent run, one run per cell nested under it, and one run per replica nested under its cell.

Lightning's MLFlowLogger maps one Trainer to one run; a batched cell trains many runs in one
Trainer, so runs are written with ``MlflowClient`` directly, in few large ``log_batch`` calls
(each call is a round trip that costs 10-250 ms against SQLite when jobs run side by side).

Every run carries MLflow's standard tags (user, source, git commit, description), so the UI's
Source, Version, User and Description columns fill, and the data set's splits as dataset inputs
(``log_inputs``, with MLflow's digest), so its Dataset column does. The experiment is tagged as
a model-training experiment and carries a description. What each page shows (metric keys,
images, descriptions) is ``vanishing.tracking.pages``.

A rerun of a cell first marks the runs an earlier, unfinished attempt left for it FAILED (a
killed job leaves them RUNNING) and deletes them, so every (cell, lr, seed) has exactly one
FINISHED run, every cell one cell run, and no run stays RUNNING, not even among the deleted ones.
"""

from __future__ import annotations

import functools
import json
import math
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
from mlflow.entities import (  # noqa: E402
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking.context.registry import resolve_tags  # noqa: E402
from mlflow.utils.mlflow_tags import (  # noqa: E402
    MLFLOW_DATASET_CONTEXT,
    MLFLOW_GIT_COMMIT,
    MLFLOW_GIT_DIRTY,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NOTE,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
)

from vanishing.tracking import names, pages  # noqa: E402

MAX_METRICS, MAX_PARAMS_TAGS = 1000, 100  # log_batch limits per call
STUDY_ROLE = "vanishing.role"  # study | cell | replica
STUDY_RUN = "vanishing.study_run_id"  # on cell and replica runs: the study's parent run
# The experiment's kind, as MLflow's UI reads it (its bundle, mlflow/server/js/build/static/js/
# main.*.js; MLflow 3.17 has no Python constant): "custom_model_development", shown as "Machine
# learning" in the experiment's header. The UI of 3.17 chooses the view (GenAI overview or runs)
# from its sidebar switch or the address's workflowType=machine_learning, not from this tag
# (its feature flag for that is on), so `make ui` prints an address that carries it.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


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


@functools.cache
def _context_tags() -> dict[str, str]:
    """The tags MLflow's run-context providers give a run started in this process."""
    return resolve_tags()


def standard_tags(command: str, git_commit: str, note: str) -> dict[str, str]:
    """MLflow's standard run tags, as its fluent API would set them (user, source, git branch and
    repository from MLflow's run-context providers), with the source named by the ``vanishing``
    command that made the run, the code's commit as provenance records it (``-dirty`` when the
    checkout had uncommitted changes, then also ``mlflow.source.git.dirty``) and ``note`` as the
    run's description."""
    tags = dict(_context_tags())
    tags[MLFLOW_SOURCE_NAME] = command
    tags[MLFLOW_SOURCE_TYPE] = "LOCAL"
    commit = git_commit.removesuffix("-dirty")
    if commit != "unknown":
        tags[MLFLOW_GIT_COMMIT] = commit
        tags[MLFLOW_GIT_DIRTY] = str(git_commit.endswith("-dirty")).lower()
    tags[MLFLOW_RUN_NOTE] = note
    return tags


def dataset_inputs(datasets: list[dict]) -> list[DatasetInput]:
    """MLflow dataset inputs from ``Dataset.to_dict()``-shaped dicts (name, digest, source_type,
    source, schema, profile) plus the split's ``context`` (training, validation, test)."""
    out = []
    for d in datasets:
        fields = {k: d.get(k) for k in ("name", "digest", "source_type", "source", "schema",
                                        "profile")}  # fmt: skip
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, d["context"])] if d.get("context") else []
        out.append(DatasetInput(Dataset(**fields), tags=tags))
    return out


# a unique key refused, as SQLite, PostgreSQL and MySQL say it
DUPLICATE_KEY = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")


def log_inputs(client: MlflowClient, run_id: str, inputs: list[DatasetInput]) -> None:
    """``client.log_inputs``, again when a concurrent job created the same data set first: the
    SQL store looks a data set up, then inserts it, so two jobs logging one new data set at once
    make one of them fail on the table's unique key; the second try finds it and links it."""
    for attempt in range(3):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as e:
            if not any(m in str(e) for m in DUPLICATE_KEY) or attempt == 2:
                raise
            time.sleep(0.1 * (attempt + 1))


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
    client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
    client.set_experiment_tag(exp_id, MLFLOW_RUN_NOTE, pages.experiment_note(study))
    parents = client.search_runs([exp_id], filter_string=f"tags.`{STUDY_ROLE}` = 'study'")
    if parents:
        parent_id = parents[0].info.run_id
    else:
        tags = standard_tags("vanishing init-tracking", provenance["git_commit"],
                             pages.study_note(study))  # fmt: skip
        tags.update({STUDY_ROLE: "study", "study": study})
        parent = client.create_run(exp_id, run_name=study, tags=tags)
        parent_id = parent.info.run_id
    client.log_text(parent_id, json.dumps(provenance, indent=2), "provenance.json")
    return {
        "tracking_uri": uri,
        "study": study,
        "experiment_id": exp_id,
        "parent_run_id": parent_id,
    }


class CellRuns:
    """The runs of one cell: the cell's run, nested under the study's, and one run per replica,
    nested under the cell's. ``datasets`` (``dataset_inputs``' dicts) are logged as every run's
    inputs; ``git_commit`` is the code's commit as ``provenance`` records it."""

    def __init__(self, tracking: dict, git_commit: str = "unknown", datasets: list[dict] = ()):
        self.client = MlflowClient(tracking_uri=tracking["tracking_uri"])
        self.exp_id = tracking["experiment_id"]
        self.parent_id = tracking["parent_run_id"]
        self.study = tracking["study"]
        self.git_commit = git_commit
        self.inputs = dataset_inputs(list(datasets))
        self.pending_params: dict[str, list[Param]] = {}
        self.cell_run_id: str | None = None

    def start(self, cell: str, settings: list[dict], params: dict, per_replica: bool = True):
        """Mark FAILED and delete the runs an earlier attempt at ``cell`` left (its cell run and
        replica runs; RUNNING ones when that attempt was killed), then create the cell's run and
        (``per_replica``) one run per replica nested under it, tagged with every setting (so the
        UI can filter runs while they train), named as ``vanishing.tracking.names`` says. The
        settings, seed and ``params`` become each replica run's params in its first ``log``
        call. Returns the replica runs' ids, or [the cell run's id] without ``per_replica`` (a
        step-0 profile cell: one run holds every seed)."""
        stale = self.client.search_runs(
            [self.exp_id],
            filter_string=(f"tags.cell = '{cell}' and tags.`{STUDY_RUN}` = '{self.parent_id}'"),
            max_results=10000,
        )
        for run in stale:
            if run.info.status == RunStatus.to_string(RunStatus.RUNNING):
                self.finish(run.info.run_id, ok=False)
            self.client.delete_run(run.info.run_id)
        self.cell_run_id = self._start_cell(cell, settings, params)
        if not per_replica:
            return [self.cell_run_id]
        ids = []
        for s in settings:
            tags = {k: str(v) for k, v in s.items()}
            tags.update({"cell": cell, MLFLOW_PARENT_RUN_ID: self.cell_run_id, "study": self.study})
            tags.update(self._tags("replica", pages.replica_note(cell, s["lr"], s["seed"])))
            name = names.replica_run_name(s, s["lr"], s["seed"])
            run_id = self.client.create_run(self.exp_id, run_name=name, tags=tags).info.run_id
            self.pending_params[run_id] = [Param(k, str(v)) for k, v in {**s, **params}.items()]
            self._log_inputs(run_id)
            ids.append(run_id)
        return ids

    def _tags(self, role: str, note: str) -> dict[str, str]:
        tags = standard_tags("vanishing train", self.git_commit, note)
        tags.update({STUDY_ROLE: role, STUDY_RUN: self.parent_id})
        return tags

    def _log_inputs(self, run_id: str) -> None:
        if self.inputs:
            log_inputs(self.client, run_id, self.inputs)

    def _start_cell(self, cell: str, settings: list[dict], params: dict) -> str:
        """The cell's run: tagged and with params like its replicas, less the lr and seed (its
        lrs and seeds are params), its summary metrics to come at ``publish_cells``."""
        shared = {k: v for k, v in settings[0].items() if k not in ("lr", "seed")}
        tags = {k: str(v) for k, v in shared.items()}
        tags.update({"cell": cell, MLFLOW_PARENT_RUN_ID: self.parent_id, "study": self.study})
        profile = settings[0].get("epochs") == 0
        tags.update(self._tags("cell", pages.cell_note(cell, len(settings), profile=profile)))
        name = names.cell_run_name(shared)
        run_id = self.client.create_run(self.exp_id, run_name=name, tags=tags).info.run_id
        lrs = sorted({s["lr"] for s in settings})
        seeds = sorted({s["seed"] for s in settings})
        values = {**shared, **params, "lrs": " ".join(map(str, lrs)),
                  "seeds": " ".join(map(str, seeds)), "n_replicas": len(settings)}  # fmt: skip
        params_list = [Param(k, str(v)) for k, v in values.items()]
        for i in range(0, len(params_list), MAX_PARAMS_TAGS):
            self.client.log_batch(run_id, params=params_list[i : i + MAX_PARAMS_TAGS])
        self._log_inputs(run_id)
        return run_id

    def log(self, run_id: str, metrics: list[tuple[str, float, int]]) -> None:
        """Log (key, value, step) triples, non-finite values skipped, and the run's params, in
        calls of up to 1000 metrics and 100 params each (one call for most runs)."""
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(s)) for k, v, s in metrics if math.isfinite(v)]
        params = self.pending_params.pop(run_id, [])
        n = max(-(-len(items) // MAX_METRICS), -(-len(params) // MAX_PARAMS_TAGS), 1)
        for i in range(n):
            self.client.log_batch(
                run_id,
                metrics=items[i * MAX_METRICS : (i + 1) * MAX_METRICS],
                params=params[i * MAX_PARAMS_TAGS : (i + 1) * MAX_PARAMS_TAGS],
                synchronous=True,
            )

    def log_artifacts(self, run_id: str, folder: Path) -> None:
        """Every file in ``folder`` (a replica's image and table) as the run's artifacts."""
        self.client.log_artifacts(run_id, str(folder))

    def finish(self, run_id: str, ok: bool = True) -> None:
        status = RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED)
        self.client.set_terminated(run_id, status=status)

    def fail_all(self, run_ids: list[str]) -> None:
        """Best effort: mark runs (and the cell's run) FAILED after an error (the store may be
        what failed)."""
        for run_id in [*run_ids, self.cell_run_id]:
            if run_id is None:
                continue
            try:
                self.finish(run_id, ok=False)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass


def cell_runs(tracking: dict) -> dict[str, tuple[str, dict]]:
    """Cell name -> (run id, tags) of the study's active cell runs (one search)."""
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    found = client.search_runs(
        [tracking["experiment_id"]],
        filter_string=(
            f"tags.`{STUDY_ROLE}` = 'cell' and tags.`{STUDY_RUN}` = '{tracking['parent_run_id']}'"
        ),
        max_results=50000,
    )
    return {r.data.tags["cell"]: (r.info.run_id, r.data.tags) for r in found}


def publish_cells(tracking: dict, summaries: dict[str, dict], n_replicas: dict[str, int]) -> int:
    """Log each cell's summary (cell name -> ``pages.cell_metrics``) on its cell run, with a
    description that states it; returns how many cell runs were updated."""
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    now = int(time.time() * 1000)
    runs = cell_runs(tracking)
    for cell, summary in summaries.items():
        if cell not in runs:
            continue
        run_id, tags = runs[cell]
        profile = tags.get("epochs") == "0"
        note = pages.cell_note(cell, n_replicas.get(cell, 0), summary, profile)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in summary.items()],
            tags=[RunTag(MLFLOW_RUN_NOTE, note)],
            synchronous=True,
        )
    return sum(c in runs for c in summaries)


def publish(
    tracking: dict,
    files: list[Path],
    artifact_dir: str,
    findings: str | None = None,
    datasets: list[dict] = (),
) -> None:
    """Attach the study's tables and figures to the parent run, with the data set's splits as its
    inputs and ``findings`` (FINDINGS' verdict table) as its description, and mark it FINISHED."""
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    parent = tracking["parent_run_id"]
    for f in files:
        client.log_artifact(parent, str(f), artifact_path=artifact_dir)
    if datasets:
        log_inputs(client, parent, dataset_inputs(list(datasets)))
    if findings is not None:
        client.set_tag(parent, MLFLOW_RUN_NOTE, pages.study_note(tracking["study"], findings))
    client.set_terminated(parent, status="FINISHED")


def attach_report(tracking: dict, report: Path, artifact_dir: str = "study") -> None:
    """The Snakemake report (``make report``) as an artifact of the study's parent run."""
    client = MlflowClient(tracking_uri=tracking["tracking_uri"])
    client.log_artifact(tracking["parent_run_id"], str(report), artifact_path=artifact_dir)
