"""The tiny study's MLflow store browsed in a real browser, as its users do: ``mlflow ui`` started
on a free loopback port (its process group stopped by PID), Debian's Chromium driven by
Playwright (``scripts/screenshots.py``, which ``make screenshots`` runs too). The screenshots
land in the repository's results/screenshots/ (ignored by git)."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
from conftest import REPO
from study import N_CELLS, N_LRS, N_RUNS, N_SEEDS

from vanishing.tracking.processes import free_port, start_ui, stop

pytestmark = pytest.mark.e2e

spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
screenshots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(screenshots)


@pytest.fixture(scope="module")
def ui(tiny_study):
    workdir = tiny_study.workdir
    uri = f"sqlite:///{workdir}/results/mlflow.db"
    port = free_port()
    proc = start_ui(uri, port, workdir / "mlflow-ui.log")
    yield f"http://127.0.0.1:{port}", uri, proc
    stop(proc)
    assert proc.poll() is not None


@pytest.fixture(scope="module")
def seen(ui, tiny_study):
    base, uri, _ = ui
    out = REPO / "results" / "screenshots"
    study = json.loads((tiny_study.workdir / "results" / "tracking.json").read_text())["study"]
    return screenshots.walk(base, uri, study, out)


def test_the_experiment_opens_on_its_runs(seen):
    exp = seen["experiment"]
    assert exp["runs_heading"] and not exp["genai_overview"] and exp["description"]
    assert int(exp["matching_runs"]) == 1 + N_CELLS + N_RUNS  # study, cells, replicas


def test_the_study_run_lists_its_cells_and_a_cell_its_replicas(seen, tiny_study):
    assert seen["cell_rows"] == N_CELLS
    assert seen["cell"] == "activation~sigmoid_depth~6_norm~none_residual~false"
    assert len(seen["replicas_listed"]) == N_LRS * N_SEEDS
    selected = pd.read_csv(tiny_study.workdir / "results" / "tables" / "selected.csv")
    lr = selected.set_index("cell").loc[seen["cell"], "selected_lr"]
    assert seen["replica"] == f"{seen['cell']}/lr~{lr}/seed~0"  # opened at the selected lr
    assert all(seen["cell_page"].values()), seen["cell_page"]


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
        "6-replica-profile", "7-replica-charts")]  # fmt: skip
    assert [str(p) for p in paths] == seen["screenshots"]
    assert all(p.stat().st_size > 20_000 for p in paths)
