"""The tiny study the end-to-end tests run (the real config, shrunk), and the checks they share:
local, SLURM and tracking-server runs must produce the same outputs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from conftest import REPO, snakemake_env
from recurrent_study import RECURRENT

from vanishing.settings import COLUMNS as SETTINGS

TINY = {
    "study": "tiny",
    "grid": {
        "activation": ["sigmoid", "relu"],
        "depth": [2, 6],
        "norm": ["none", "batch"],
        "residual": [False, True],
    },
    "seeds": [0, 1],
    "train": {"lr": [0.01, 0.1], "epochs": 2, "probe_every": 10},
    # two training jobs (one per activation) of 8 cells: a job's start (imports) costs more CPU
    # than its cells' training, and two jobs keep this machine's two cores busy
    "pack": ["depth", "norm", "residual"],
}
N_CELLS, N_LRS, N_SEEDS = 16, 2, 2
JOBS = ("activation~relu", "activation~sigmoid")
N_RUNS = N_CELLS * N_LRS * N_SEEDS


PLAIN = {"norm": ["none"], "residual": [False]}
# A tiny study with every sub-grid of the default one, so that every claim can be judged.
CLAIMS = {
    "study": "tiny-claims",
    "seeds": [0, 1, 2],
    "train": {"lr": [0.03, 0.3], "epochs": 3, "probe_every": 10, "probe_size": 64},
    "grids": {
        "main": {"activation": ["sigmoid", "tanh", "relu"], "depth": [2, 8],
                 "norm": ["none", "batch"], "residual": [False, True],
                 "residual_scale": ["inv_sqrt_depth"]},
        "matched_init": {"activation": ["sigmoid", "tanh", "relu"], "depth": [8], **PLAIN,
                         "init": ["pytorch"]},
        "adam": {"activation": ["sigmoid", "tanh", "relu"], "depth": [8], **PLAIN,
                 "optimizer": ["adam"],
                 "lr": [0.001, 0.003]},
        "deep": {"activation": ["sigmoid", "relu"], "depth": [100], "norm": ["none"],
                 "residual": [False, True], "residual_scale": ["inv_sqrt_depth"],
                 "epochs": [1], "lr": [0.1]},
        "profile": {"activation": ["sigmoid", "tanh", "relu"], "depth": [2, 4, 8, 16, 128],
                    "norm": ["none", "batch"], "residual": [False], "epochs": [0],
                    "lr": [0.1], "seeds": [0, 1, 2, 3, 4]},
    },
    "pack": ["depth", "norm", "init", "optimizer", "epochs", "data", "seq_len", "arch",
             "sigma_w2"],
}  # fmt: skip
CLAIMS["grids"].update(RECURRENT["grids"])  # the recurrent nets' sub-grids (claims 12-14)


def write_config(workdir: Path, study: dict | None = None, **overrides) -> Path:
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump({**(study or TINY), **overrides}))
    return path


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: int = 900):
    """Run the real Snakefile in ``workdir``; returns the CompletedProcess (output captured)."""
    cmd = snakemake_cmd(workdir, *args)
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env or snakemake_env(), timeout=timeout
    )
    if out.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{out.stdout[-4000:]}\n{out.stderr[-6000:]}")
    return out


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(workdir / "tiny.yaml"), *args]  # fmt: skip


def done_markers(workdir: Path) -> int:
    return len(list((workdir / "results" / "runs").glob("*/DONE.json")))


def status_cli(workdir: Path) -> dict:
    """``vanishing status --json`` run in the study's working directory, as a user would."""
    out = subprocess.run([sys.executable, "-m", "vanishing", "status", "--json"], cwd=workdir,
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return json.loads(out.stdout)


def make_study(workdir: Path) -> list[str]:
    """The README's command, on the tiny config, in ``workdir``."""
    return ["make", "-C", str(REPO), "--no-print-directory", "study",
            f"CONFIG={workdir / 'tiny.yaml'}", f"DIR={workdir}"]  # fmt: skip


def start(workdir: Path) -> subprocess.Popen:
    """`make study` in its own process group (as a terminal would start it), its output to
    ``<workdir>.out`` beside the directory."""
    out = open(workdir.parent / f"{workdir.name}.out", "ab")  # noqa: SIM115 - lives with the process
    return subprocess.Popen(make_study(workdir), stdout=out, stderr=subprocess.STDOUT,
                            env=snakemake_env(), start_new_session=True)  # fmt: skip


def finish(workdir: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """`make study` in ``workdir`` to its end, output captured."""
    return subprocess.run(make_study(workdir), capture_output=True, text=True,
                          env=snakemake_env(), timeout=timeout)  # fmt: skip


@dataclass
class WatchedStudy:
    """The session's tiny study: the README's `make study`, run to its end while

    - its progress was read from the files, as ``vanishing status`` reads them: each snapshot
      is the number of DONE.json files just before, the status, and the number just after;
      ``cli`` is one reading through the command line mid-study;
    - a second `make study` was started in the same directory once training had begun
      (``second``: its output, seconds, and the PID and command line of the lock's holder);
    - a user browsed it: ``mlflow ui`` on its store, searched again and again over REST
      (``browsing["polls"]``), beside a reader holding one long read transaction
      (``browsing["held"]``: the run count it saw each time, constant if it held its snapshot).
    """

    workdir: Path
    out: subprocess.CompletedProcess
    snapshots: list[dict] = field(default_factory=list)
    cli: dict | None = None
    second: dict = field(default_factory=dict)
    browsing: dict = field(default_factory=dict)


def browse_while(db: Path, study: str, finished: threading.Event, seen: dict) -> list:
    """Start ``mlflow ui`` on ``db`` (as `make ui` does) and two threads until ``finished``: a
    user searching the runs over REST every 0.5 s, and a reader with one long read transaction
    (a snapshot of the store). Returns what to stop: the UI process and the threads."""
    from vanishing.tracking.processes import free_port, start_ui

    port = free_port()
    ui = start_ui(f"sqlite:///{db}", port, db.parent / "ui.log")
    seen.update(polls=0, held=[])

    def poll():
        uri = f"http://127.0.0.1:{port}"
        exp = rest(uri, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={study}")
        body = {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 500}
        while not finished.is_set():
            rest(uri, "/api/2.0/mlflow/runs/search", body)
            seen["polls"] += 1
            time.sleep(0.5)

    def hold():
        con = sqlite3.connect(db, timeout=60)
        con.execute("BEGIN")
        while not finished.is_set():
            seen["held"].append(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
            time.sleep(0.5)
        con.rollback()
        con.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (poll, hold)]
    for t in threads:
        t.start()
    return [ui, *threads]


def rest(uri: str, path: str, body: dict | None = None) -> dict:
    """One call of MLflow's REST API (GET, or POST with a JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        uri + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def alive_in_group(pgid: int) -> list[int]:
    """PIDs of the processes in process group ``pgid`` that are not zombies (/proc/PID/stat)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def command_line(pid: int) -> str:
    """Process ``pid``'s command line, its arguments joined by spaces ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def try_second_study(workdir: Path) -> dict:
    """A second `make study` in ``workdir`` while the first trains: what it said, how long it
    took, and who held the study's lock (PID and command line) when it was started."""
    holder = (workdir / ".snakemake" / "vanishing-study.lock").read_text().split(",")[0]
    cmdline = command_line(int(holder))
    t0 = time.monotonic()
    second = finish(workdir, timeout=120)
    return {"out": second, "seconds": time.monotonic() - t0, "holder": holder,
            "holder_cmdline": cmdline}  # fmt: skip


def run_watched(workdir: Path, timeout: float = 900, poll: float = 0.5) -> WatchedStudy:
    """Run the tiny study in ``workdir`` with the README's `make study` in the background, and
    watch, browse and try a second study beside it (``WatchedStudy``) until it ends."""
    from vanishing.progress import study_status
    from vanishing.tracking.processes import stop

    write_config(workdir)
    proc = start(workdir)
    watched = WatchedStudy(workdir, None)
    finished, browsing = threading.Event(), []
    t0, took = time.monotonic(), None
    deadline = t0 + timeout
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the tiny study took more than {timeout} s")
            # the store exists once the tracking rule wrote tracking.json (the UI must not be
            # the first to create it)
            if not browsing and (workdir / "results" / "tracking.json").exists():
                db = workdir / "results" / "mlflow.db"
                browsing = browse_while(db, TINY["study"], finished, watched.browsing)
            before = done_markers(workdir)
            st = study_status(workdir / "results").to_dict()
            after = done_markers(workdir)
            last = watched.snapshots[-1]["status"] if watched.snapshots else None
            if st["cells"] and (last is None or (st["done"], st["running"], st["jobs"])
                                != (last["done"], last["running"], last["jobs"])):  # fmt: skip
                watched.snapshots.append({"before": before, "after": after, "status": st})
            if watched.cli is None and 0 < before and after < N_CELLS:
                watched.cli = {"before": before, "status": status_cli(workdir),
                               "after": done_markers(workdir)}  # fmt: skip
            if not watched.second and list((workdir / "results" / "logs" / "train").glob("*")):
                watched.second = try_second_study(workdir)
                watched.second["first_alive"] = proc.poll() is None
            time.sleep(poll)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=60)
        finished.set()
        for b in browsing:
            if isinstance(b, subprocess.Popen):
                stop(b)
            else:
                b.join(timeout=30)
    said = (workdir.parent / f"{workdir.name}.out").read_text()
    watched.out = subprocess.CompletedProcess(proc.args, proc.returncode, said, "")
    watched.browsing["took"] = took
    if proc.returncode != 0:
        raise AssertionError(f"make study failed:\n{said[-8000:]}")
    return watched


def check_tables(results: Path) -> pd.DataFrame:
    """The contract of docs/outputs.md, with values that could be wrong."""
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert len(runs) == N_RUNS
    assert list(runs.columns[: len(SETTINGS)]) == list(SETTINGS)
    assert not runs.duplicated(["cell", "lr", "seed"]).any()
    assert set(runs["lr"]) == {0.01, 0.1} and set(runs["seed"]) == {0, 1}
    ok = runs[~runs["diverged"]]
    for col in ["final_val_accuracy", "best_val_accuracy", "final_test_accuracy"]:
        assert ok[col].between(0, 1).all(), col
    assert (ok["best_val_accuracy"] >= ok["final_val_accuracy"] - 1e-9).all()
    assert (runs["grad_ratio_init"] > 0).all() and (runs["input_dim"] == 64).all()
    # identical seeds give identical inits: grad_ratio_init does not depend on the lr
    by_lr = runs.pivot_table(index=["cell", "seed"], columns="lr", values="grad_ratio_init")
    np.testing.assert_allclose(by_lr[0.01], by_lr[0.1], rtol=1e-6)
    # plain sigmoid: depth 6 passes a smaller share of the gradient to layer 1 than depth 2
    plain = runs[(runs["norm"] == "none") & ~runs["residual"] & (runs["activation"] == "sigmoid")]
    ratio = plain.groupby("depth")["grad_ratio_init"].mean()
    assert ratio[6] < ratio[2] < 1
    layers = pd.read_csv(results / "tables" / "layer_gradients.csv")
    steps = sorted(layers["step"].unique())
    assert steps[0] == 0
    per_run = layers.groupby(["cell", "lr", "seed"]).size()
    assert len(per_run) == N_RUNS
    depth = runs.set_index(["cell", "lr", "seed"])["depth"]
    assert (per_run % depth.loc[per_run.index] == 0).all()
    assert (layers["grad_preact_rms"].dropna() > 0).all()
    assert layers["saturation"].dropna().between(0, 1).all()
    # one measure: a stuck relu unit is a dead one; a stuck sigmoid/tanh unit's pairs all saturate
    assert (layers["stuck"].isna() == layers["saturation"].isna()).all()
    both = layers.dropna(subset=["stuck", "saturation"])
    relu, squash = both["activation"] == "relu", both["activation"].isin(["sigmoid", "tanh"])
    assert (both.loc[relu, "stuck"] == both.loc[relu, "saturation"]).all()
    assert (both.loc[squash, "stuck"] <= both.loc[squash, "saturation"]).all()
    curves = pd.read_csv(results / "tables" / "curves.csv")
    assert len(curves) == N_RUNS * 2  # two epochs
    # every cell probes the same standardised examples: P rows each, identical across cells
    probe = pd.read_csv(results / "tables" / "probe_inputs.csv")
    per_cell = probe.groupby("cell")["second_moment"].apply(list)
    assert set(per_cell.index) == set(runs["cell"])
    assert all(v == per_cell.iloc[0] for v in per_cell)
    assert len(per_cell.iloc[0]) == 256  # the default train.probe_size
    assert (probe["second_moment"] >= 0).all() and probe["second_moment"].mean() > 0.2
    return runs


STANDARD_TAGS = ("mlflow.user", "mlflow.source.name", "mlflow.source.type",
                 "mlflow.source.git.commit", "mlflow.note.content")  # fmt: skip
FINITE_ONLY = {"train/loss", "val/accuracy", "test/accuracy"}  # absent when a run diverged
REPLICA_KEYS = {"train/loss", "val/accuracy", "test/accuracy", "grad_ratio_init",
                "log10_grad_ratio", "log10_grad_ratio_init", "log10_grad_preact_rms/first_layer",
                "log10_grad_preact_rms/last_layer", "saturation/mean"}  # fmt: skip
CELL_KEYS = {"selected_lr", "final_test_accuracy_mean", "log10_grad_ratio_init_mean",
             "divergence_rate", "lr_at_edge"}  # fmt: skip


def check_mlflow_runs(runs: list[dict], expected: pd.DataFrame) -> None:
    """``runs`` as MLflow's REST API returns them (dicts with info/data/inputs): one FINISHED
    study run; under it one FINISHED run per cell carrying its summary metrics; under each cell
    exactly one FINISHED replica run per (lr, seed), with the settings as params and tags and few,
    log10, metric keys; every run with MLflow's standard tags and the data set's three splits as
    dataset inputs (with digests)."""
    tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])}
            for r in runs}  # fmt: skip
    by_id = {r["info"]["run_id"]: r for r in runs}
    role = {i: t.get("vanishing.role") for i, t in tags.items()}
    (study,) = [i for i, r in role.items() if r == "study"]
    cells = {tags[i]["cell"]: i for i, r in role.items() if r == "cell"}
    assert set(cells) == set(expected["cell"])
    keys = []
    for run_id, r in by_id.items():
        t = tags[run_id]
        assert r["info"]["status"] == "FINISHED", (role[run_id], t.get("cell"))
        assert all(t.get(k) for k in STANDARD_TAGS), [k for k in STANDARD_TAGS if not t.get(k)]
        assert re.fullmatch(r"[0-9a-f]{40}", t["mlflow.source.git.commit"])
        inputs = r.get("inputs", {}).get("dataset_inputs", [])
        contexts = {tg["value"] for d in inputs for tg in d.get("tags", [])
                    if tg["key"] == "mlflow.data.context"}  # fmt: skip
        assert contexts == {"training", "validation", "test"}, (role[run_id], contexts)
        assert all(d["dataset"]["digest"] for d in inputs)
        metrics = {m["key"] for m in r["data"].get("metrics", [])}
        if role[run_id] == "cell":
            assert t["mlflow.parentRunId"] == study
            assert CELL_KEYS <= metrics, CELL_KEYS - metrics
            assert "Selected lr" in t["mlflow.note.content"]
        if role[run_id] != "replica":
            continue
        assert t["mlflow.parentRunId"] == cells[t["cell"]]
        params = {p["key"]: p["value"] for p in r["data"]["params"]}
        assert params["activation"] == t["activation"] and "git_commit" in params
        assert "version_torch" in params
        values = {m["key"]: m.get("value", 0.0) for m in r["data"].get("metrics", [])}  # 0: omitted
        # a replica that diverged (relu at lr 0.1 through pre blocks without a norm) has no
        # finite loss or accuracy to log: it says so instead
        needed = REPLICA_KEYS if not values.get("diverged") else {"diverged"}
        assert needed <= metrics, needed - metrics
        assert len(metrics) <= 25 and not any("layer_0" in k for k in metrics)
        keys.append((t["cell"], float(t["lr"]), int(t["seed"])))
    assert "| claim (the brief) | theory predicts |" in tags[study]["mlflow.note.content"]
    # short names (vanishing.tracking.names), unique within the study: `sigmoid · d6 · 2 ep`
    names = {i: r["info"]["run_name"] for i, r in by_id.items() if role[i] != "study"}
    assert len(set(names.values())) == len(names)
    assert all(len(names[i]) <= 60 for i in cells.values()), sorted(names.values())
    # depth spelt for every net but a recurrent one (one layer: its depth is time, "cmudict/T32")
    assert all(("· d" in n or "/T" in n) and "~" not in n for n in names.values())
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == set(zip(expected["cell"], expected["lr"], expected["seed"], strict=True))


def store_runs(workdir) -> list[dict]:
    """Every active run of the study's store, as the REST API would shape it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/results/mlflow.db")
    exp = client.get_experiment_by_name("tiny")
    out = []
    for r in client.search_runs([exp.experiment_id], max_results=5000):
        inputs = [
            {"dataset": {"digest": d.dataset.digest, "name": d.dataset.name},
             "tags": [{"key": t.key, "value": t.value} for t in d.tags]}
            for d in r.inputs.dataset_inputs
        ]  # fmt: skip
        out.append(
            {
                "info": {
                    "status": r.info.status,
                    "run_id": r.info.run_id,
                    "run_name": r.info.run_name,
                },
                "data": {
                    "tags": [{"key": k, "value": v} for k, v in r.data.tags.items()],
                    "params": [{"key": k, "value": v} for k, v in r.data.params.items()],
                    "metrics": [{"key": k, "value": v} for k, v in r.data.metrics.items()],
                },
                "inputs": {"dataset_inputs": inputs},
            }
        )
    return out
