"""Retraining one cell, and one code version per study, through the real Snakefile and the
README's command (``vanishing study``, which ``make study`` runs) on a four-cell study in two
training jobs.

- ``--retrain CELL`` (``make study RETRAIN=CELL``): that cell is trained again (new MLflow runs,
  the same numbers), its job's other cell is kept, the other job does not run, and the tables,
  FINDINGS and MLflow are rebuilt from it;
- with other code (``$VANISHING_CODE_VERSION``, which the provenance code honours for tests)
  the same command stops before any work, naming the cells, their commit and the command that
  retrains them; ``--retrain stale`` then retrains every cell, and FINDINGS names the new commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import snakemake_env

pytestmark = pytest.mark.e2e

OLD, NEW = "1a" * 20, "2b" * 20  # two commits (hex, as git spells them)
STUDY = {
    "study": "rerun",
    "grid": {"activation": ["sigmoid"], "depth": [2, 4], "norm": ["none"],
             "residual": [False, True]},
    "seeds": [0, 1],
    "train": {"lr": [0.1], "epochs": 1, "probe_every": 10},
}  # fmt: skip
NUMBERS = ["final_test_accuracy", "final_val_accuracy", "grad_ratio_init"]


def study(workdir: Path, *args: str, version: str) -> subprocess.CompletedProcess:
    env = {**snakemake_env(), "VANISHING_CODE_VERSION": version}
    cmd = [str(Path(sys.executable).parent / "vanishing"), "study", "--directory", str(workdir),
           "--configfile", str(workdir / "rerun.yaml"), *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def state(workdir: Path) -> dict:
    """What a rerun may change: run ids per cell, the jobs' manifests' and FINDINGS' mtimes."""
    runs = pd.read_csv(workdir / "results" / "tables" / "runs.csv")
    jobs = workdir / "results" / "jobs"
    return {
        "ids": runs.groupby("cell")["mlflow_run_id"].apply(sorted).to_dict(),
        "jobs": {p.stem: p.stat().st_mtime_ns for p in jobs.glob("*.json")},
        "findings": (workdir / "results" / "FINDINGS.md").stat().st_mtime_ns,
        "runs": runs.sort_values(["cell", "seed"]).reset_index(drop=True),
        "commits": set(runs["git_commit"]),
    }


def active_cell_runs(workdir: Path) -> dict[str, list[str]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/results/mlflow.db")
    exp = client.get_experiment_by_name("rerun")
    out: dict[str, list[str]] = {}
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        if r.data.tags.get("vanishing.role") == "replica":
            out.setdefault(r.data.tags["cell"], []).append(r.info.run_id)
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rerun")
    (workdir / "rerun.yaml").write_text(yaml.safe_dump(STUDY))
    out = study(workdir, version=OLD)
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    return workdir, state(workdir)


def test_retraining_one_cell_reruns_it_and_what_depends_on_it_only(first):
    workdir, before = first
    plans = {p.stem: [c["cell"] for c in json.loads(p.read_text())]
             for p in (workdir / "results" / "plan").glob("*.json")}  # fmt: skip
    assert sorted(len(c) for c in plans.values()) == [2, 2]
    job, (cell, kept) = next(iter(plans.items()))
    (other_job,) = set(plans) - {job}

    out = study(workdir, "--retrain", cell, version=OLD)
    said = out.stdout + out.stderr
    assert out.returncode == 0, said[-6000:]
    after = state(workdir)
    assert after["ids"][cell] != before["ids"][cell]  # trained again: new runs
    assert active_cell_runs(workdir)[cell] == after["ids"][cell]  # the old ones deleted
    assert after["ids"][kept] == before["ids"][kept]  # its job's other cell was kept
    for c in plans[other_job]:
        assert after["ids"][c] == before["ids"][c]
    assert after["jobs"][other_job] == before["jobs"][other_job]  # that job did not run
    assert after["jobs"][job] > before["jobs"][job]
    assert after["findings"] > before["findings"]  # rebuilt from the retrained cell
    pd.testing.assert_frame_equal(after["runs"][NUMBERS], before["runs"][NUMBERS])  # same seeds


def test_an_unknown_cell_is_refused_before_any_work(first):
    workdir, _ = first
    out = study(workdir, "--retrain", "activation~nonesuch", version=OLD)
    assert out.returncode == 1
    assert "no cell 'activation~nonesuch' in the study" in out.stderr
    assert "Building DAG" not in out.stdout + out.stderr


def test_other_code_stops_the_study_before_any_work_and_retrain_stale_reruns_it(first):
    workdir, _ = first
    before = state(workdir)
    assert before["commits"] == {OLD}
    assert f"from the code at commit `{OLD}`" in (workdir / "results" / "FINDINGS.md").read_text()

    out = study(workdir, version=NEW)
    said = out.stdout + out.stderr
    assert out.returncode == 1
    assert f"4 finished cell(s) were made by other code than the running one ({NEW})" in said
    assert f"made by {OLD}: " in said and "--retrain stale" in said and "RETRAIN=stale" in said
    assert "Building DAG" not in said  # stopped before Snakemake started
    assert state(workdir)["jobs"] == before["jobs"]

    out = study(workdir, "--retrain", "stale", version=NEW)
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    after = state(workdir)
    assert after["commits"] == {NEW}
    assert all(after["ids"][c] != before["ids"][c] for c in before["ids"])
    records = [
        json.loads(p.read_text()) for p in (workdir / "results" / "runs").glob("*/DONE.json")
    ]
    assert [r["code"] for r in records] == [{"git_commit": NEW, "dirty": False}] * 4
    assert f"from the code at commit `{NEW}`" in (workdir / "results" / "FINDINGS.md").read_text()
    pd.testing.assert_frame_equal(after["runs"][NUMBERS], before["runs"][NUMBERS])
