"""The tiny study's MLflow store browsed in a real browser, as its users do: ``mlflow ui`` started
on a free loopback port (its process group stopped by PID), Debian's Chromium driven by
Playwright (``scripts/screenshots.py``, which ``make screenshots`` runs too). The screenshots
land in the repository's results/screenshots/ (ignored by git).

The store browsed is a copy of the tiny study's, to which ``vanishing train`` (the training
jobs' command) added one step-0 profile cell of three seeds: it must be one run, without
replica runs, holding one image and one table."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, snakemake_env
from study import N_CELLS, N_LRS, N_RUNS, N_SEEDS, alive_in_group, command_line

from vanishing.tracking.processes import free_port, start_ui, stop

pytestmark = pytest.mark.e2e

spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
screenshots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(screenshots)


PROFILE = ["--activation", "relu", "--depth", "5", "--norm", "none", "--residual", "false",
           "--epochs", "0", "--lr", "0.1", "--seeds", "0", "1", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def browsed(tiny_study, tmp_path_factory):
    """A copy of the tiny study's store and tracking file, with a profile cell trained into it."""
    workdir = tmp_path_factory.mktemp("browsed")
    (workdir / "results").mkdir()
    src = tiny_study.workdir / "results"
    shutil.copy(src / "tracking.json", workdir / "results" / "tracking.json")
    with closing(sqlite3.connect(src / "mlflow.db")) as a:
        with closing(sqlite3.connect(workdir / "results" / "mlflow.db")) as b:
            a.backup(b)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "vanishing"), "train", *PROFILE,
         "--tracking", "results/tracking.json", "--out-root", "results/runs",
         "--manifest", "results/jobs/profile.json"],
        cwd=workdir, capture_output=True, text=True, env=snakemake_env(), timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def ui(browsed):
    workdir = browsed
    uri = f"sqlite:///{workdir}/results/mlflow.db"
    port = free_port()
    proc = start_ui(uri, port, workdir / "mlflow-ui.log")
    yield f"http://127.0.0.1:{port}", uri, proc
    stop(proc)
    assert proc.poll() is not None


@pytest.fixture(scope="module")
def seen(ui, browsed):
    base, uri, _ = ui
    out = REPO / "results" / "screenshots"
    study = json.loads((browsed / "results" / "tracking.json").read_text())["study"]
    return screenshots.walk(base, uri, study, out)


def test_the_ui_starts_no_genai_job_runners(ui):
    """`mlflow ui` as this project starts it (NO_SERVER_JOBS) runs its web server and nothing
    of MLflow's GenAI job execution: no huey task consumer or job runner in its process group
    (left on, MLflow 3 starts eight such Python processes beside every server)."""
    _, _, proc = ui
    group = [command_line(pid) for pid in alive_in_group(proc.pid)]
    assert any("uvicorn" in c or "mlflow" in c for c in group), group
    assert not [c for c in group if "huey" in c or "_job_runner" in c], group


def test_the_experiment_opens_on_its_runs(seen):
    exp = seen["experiment"]
    assert exp["runs_heading"] and not exp["genai_overview"] and exp["description"]
    # study, cells, replicas, and the profile cell's one run
    assert int(exp["matching_runs"]) == 1 + N_CELLS + N_RUNS + 1


def test_the_study_run_lists_its_cells_by_short_names_and_a_cell_its_replicas(seen, tiny_study):
    assert seen["cell_rows"] == N_CELLS  # expandable; the profile cell has no replica runs
    assert seen["profile_cell_listed"]
    assert seen["cell"] == "activation~sigmoid_depth~6_norm~none_residual~false"
    assert seen["cell_run_name"] == "sigmoid · d6 · 2 ep"  # found in the table by that name
    names = seen["cell_names"]
    assert len(set(names)) == len(names) == N_CELLS + 1 and max(map(len, names)) <= 40
    assert "relu · d6 · batch · skip · 2 ep" in names
    assert len(seen["replicas_listed"]) == N_LRS * N_SEEDS
    selected = pd.read_csv(tiny_study.workdir / "results" / "tables" / "selected.csv")
    lr = selected.set_index("cell").loc[seen["cell"], "selected_lr"]
    assert seen["replica"] == f"sigmoid · d6 · 2 ep · lr {lr:g} · s0"  # at the selected lr
    assert all(seen["cell_page"].values()), seen["cell_page"]


def test_a_profile_cell_is_one_run_with_one_image_and_one_table(seen, browsed):
    prof = seen["profile_cell"]
    assert prof["name"] == "relu · d5 · 0 ep" and prof["child_runs"] == 0
    assert prof["image"] == [448, 256] and prof["table"]
    layers = pd.read_csv(next((browsed / "results" / "runs").glob("*/layer_gradients.csv")))
    assert sorted(layers["seed"].unique()) == [0, 1, 2] and set(layers["step"]) == {0}


def test_a_replica_page_shows_its_tags_profile_image_and_few_charts(seen):
    page = seen["replica_page"]
    assert all(page["tags"].values()) and page["source"] and page["commit"], page
    assert page["description"] and page["dataset"] and page["parent_is_cell"]
    assert seen["profile_image"] == [448, 256]  # the PNG the training job drew, fetched
    assert 10 <= seen["charts"] <= 25  # few charts, not one per layer
    assert "log10_grad_preact_rms" in seen["chart_sections"]
    assert not any("layer_0" in s for s in seen["chart_sections"])


def test_the_screenshots_are_saved(seen):
    paths = [REPO / "results" / "screenshots" / f"{n}.png" for n in (
        "1-experiment", "2-cells", "3-cell-replicas", "4-cell-run", "5-replica",
        "6-replica-profile", "7-replica-charts", "8-profile-cell")]  # fmt: skip
    assert [str(p) for p in paths] == seen["screenshots"]
    assert all(p.stat().st_size > 20_000 for p in paths)
