"""The real Snakefile on a tiny grid, end to end: tables, statistics, figures, FINDINGS, the
MLflow store, the report, a rerun that does nothing, and a resumed study."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from study import (
    JOBS,
    N_CELLS,
    N_RUNS,
    check_mlflow_runs,
    check_tables,
    snakemake,
    status_cli,
    store_runs,
    write_config,
)

from vanishing.analysis.tables import read_tables
from vanishing.report import catalog
from vanishing.report.figures import build_figures
from vanishing.report.findings import evaluate

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def study(tiny_study):
    """As `make study` runs it: cores and the rest from profiles/default."""
    return tiny_study.workdir, tiny_study.out


def test_the_default_profile_is_loaded(study):
    _, out = study
    assert "Using workflow specific profile" in out.stdout + out.stderr


def test_a_browser_and_a_long_reader_on_its_store_slowed_nothing(tiny_study):
    """A user browsing while the study ran (`mlflow ui` open on the embedded store, searching
    its runs again and again) and a reader holding one long read transaction slowed nothing
    down enough to fail it, and nothing was lost (the store checks, below)."""
    seen = tiny_study.browsing
    assert seen["polls"] > 10 and len(seen["held"]) > 10, {k: seen[k] for k in ("polls", "took")}
    assert len(set(seen["held"])) == 1  # the reader kept its snapshot all along: it held on
    assert seen["took"] < 600
    runs = pd.read_csv(tiny_study.workdir / "results" / "tables" / "runs.csv")
    assert runs["diverged"].notna().all()


def test_tables_follow_the_contract(study):
    workdir, _ = study
    check_tables(workdir / "results")


def test_statistics_and_findings(study):
    """The statistics tables hold values computed by hand from runs.csv and layer_gradients.csv,
    and FINDINGS states the verdicts that the tables support."""
    workdir, _ = study
    tables = workdir / "results" / "tables"
    runs = pd.read_csv(tables / "runs.csv")
    selected = pd.read_csv(tables / "selected.csv")
    assert len(selected) == 16 and selected["selected_lr"].isin([0.01, 0.1]).all()
    summary = pd.read_csv(tables / "summary.csv")
    assert len(summary) == 32 and (summary["n_seeds"] == 2).all()
    # each cell's selected lr has the best mean validation accuracy (never test)
    val = runs.groupby(["cell", "lr"])["final_val_accuracy"].mean().unstack()
    for row in selected.itertuples():
        assert val.loc[row.cell, row.selected_lr] == val.loc[row.cell].max()
    # a comparison row is the difference of seed means at the selected lrs
    comp = pd.read_csv(tables / "comparisons.csv")
    row = comp[
        (comp["family"] == "residual_vs_plain") & (comp["metric"] == "final_test_accuracy")
        & (comp["activation"] == "relu") & (comp["norm"] == "batch") & (comp["depth"] == 6)
    ].squeeze()  # fmt: skip
    at = runs.merge(selected[["cell", "selected_lr"]], left_on=["cell", "lr"],
                    right_on=["cell", "selected_lr"])  # fmt: skip
    arm = at[(at["activation"] == "relu") & (at["norm"] == "batch") & (at["depth"] == 6)]
    means = arm.groupby("residual")["final_test_accuracy"].mean()
    assert row["diff"] == pytest.approx(means[True] - means[False])
    # theory: the measured slope is the mean over seeds of each run's fitted step-0 slope
    theory = pd.read_csv(tables / "theory.csv")
    layers = pd.read_csv(tables / "layer_gradients.csv")
    sigmoid6 = (layers["activation"] == "sigmoid") & (layers["depth"] == 6)
    plain = layers[sigmoid6 & (layers["step"] == 0) & (layers["norm"] == "none")
                   & ~layers["residual"]]  # fmt: skip
    slopes = plain.groupby(["seed", "lr"]).apply(
        lambda g: np.polyfit(g["layer"], np.log10(g["grad_preact_rms"]), 1)[0]
    )
    sig = theory[(theory["activation"] == "sigmoid") & (theory["norm"] == "none")
                 & ~theory["residual"] & (theory["depth"] == 6)].squeeze()  # fmt: skip
    assert sig["measured_slope"] == pytest.approx(slopes.groupby("seed").mean().mean())
    assert sig["predicted_slope"] > 0.3  # sigmoid, Xavier: about 0.6 decades per layer
    # FINDINGS: the tiny grid has two depths, too few to tell the shape of the decay, and says so
    findings = (workdir / "results" / "FINDINGS.md").read_text()
    assert "## 1. " in findings
    assert "Reason: no plain sigmoid or tanh networks at three or more depths" in findings
    claims = evaluate(tables)
    assert [c.number for c in claims] == list(range(1, len(claims) + 1))
    rows = [ln for ln in findings.splitlines() if ln.startswith("| ")]  # the summary table
    for c in claims:  # claim | theory predicts | data show | verdict | ...
        (row,) = [ln for ln in rows if ln.startswith(f"| {c.number}. {c.title} |")]
        assert row.split(" | ")[3] == c.verdict, row


def test_figures_are_drawn(study):
    """Every figure of the catalog is drawn from the tiny study's tables, but the one that
    needs deeper nets."""
    workdir, _ = study
    results = workdir / "results"
    pngs = {p.stem for p in (results / "figures").glob("*.png")}
    assert pngs == set(catalog.NAMES)
    figs = build_figures(read_tables(results / "tables", catalog.TABLES))
    # the theory scatter needs depth >= 8, deeper than this study; the criticality figures
    # their own sub-grids, which it lacks
    skipped = [n for n, f in figs.items() if f.get_label() == "placeholder"]
    # and the through-time figures recurrent nets, which it has none of
    assert set(skipped) == {"criticality_sweep", "phase_diagram", "theory_slopes",
                            "time_profiles", "time_training"}  # fmt: skip


def test_mlflow_store_has_one_finished_run_per_replica(study):
    workdir, _ = study
    runs = store_runs(workdir)
    expected = pd.read_csv(workdir / "results" / "tables" / "runs.csv")
    check_mlflow_runs(runs, expected)
    ids = set(expected["mlflow_run_id"])
    assert ids == {r["info"]["run_id"] for r in runs if r["info"]["run_id"] in ids}
    parent = [r for r in runs if {"key": "vanishing.role", "value": "study"} in r["data"]["tags"]]
    assert len(parent) == 1 and parent[0]["info"]["status"] == "FINISHED"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/results/mlflow.db")
    parent_id = parent[0]["info"]["run_id"]
    published = {a.path.split("/")[-1] for a in client.list_artifacts(parent_id, "study")}
    assert {
        "runs.csv",
        "summary.csv",
        "trainability.png",
        "FINDINGS.md",
        "config.json",
    } <= published
    assert "provenance.json" in {a.path for a in client.list_artifacts(parent_id)}
    config = json.loads((workdir / "results" / "config.json").read_text())
    assert config["grid"]["depth"] == [2, 6] and config["train"]["epochs"] == 2


def test_rerun_does_nothing(study):
    workdir, _ = study
    out = snakemake(workdir, "--cores", "2", "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_report_opens_on_the_findings_and_is_attached_to_the_study_run(study):
    """As `make study` built it (its last step, `make report`): the front page is workflow.rst
    with FINDINGS' verdict table (no docutils warnings anywhere), figures sit in their categories
    and subcategories, each training job's time and memory is a table, and the report is an
    artifact of the study run."""
    workdir, _ = study
    report = workdir / "results" / "report.html"
    html = report.read_text(errors="replace")
    assert len(html) > 100_000 and "System Message" not in html
    front = html[html.index("var workflow_desc") :][:20_000]
    assert "How to read this report" in front and "<strong>tiny</strong>" in front
    for c in evaluate(workdir / "results" / "tables"):
        assert f"{c.number}. {c.title}" in front and f"<strong>{c.verdict}</strong>" in front
    assert "align-items: flex-start" in html  # the stylesheet that starts the page at the top
    for f in catalog.FIGURES:
        assert f.category in html and f.subcategory in html and f"{f.name}.png" in html, f.name
    assert "train_jobs.csv" in html
    jobs = pd.read_csv(workdir / "results" / "tables" / "train_jobs.csv")
    assert len(jobs) == len(JOBS) and (jobs["cells"] == N_CELLS // len(JOBS)).all()
    assert (jobs["seconds"] > 0).all() and (jobs["max_rss_mb"] > 100).all()
    assert (jobs["seconds"] >= jobs["fit_seconds"]).all()
    from mlflow import MlflowClient

    tracking = json.loads((workdir / "results" / "tracking.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/results/mlflow.db")
    attached = {a.path for a in client.list_artifacts(tracking["parent_run_id"], "study")}
    assert "study/report.html" in attached


def test_status_while_the_study_ran(tiny_study):
    """`vanishing status`, read while the study trained, counted the finished cells that the
    files showed (between the DONE.json files counted just before and just after), saw jobs
    mid-cell with their step and live replicas, and estimated the time left."""
    snaps = tiny_study.snapshots
    # the plan files appear one job (8 cells) at a time before training starts
    assert {s["status"]["cells"] for s in snaps} <= {8, 16}
    assert all(s["status"]["cells"] == 16 for s in snaps if s["status"]["done"])
    for s in snaps:
        assert s["before"] <= s["status"]["done"] <= s["after"]
    assert any(0 < s["status"]["done"] < 16 for s in snaps)
    mid = [j for s in snaps for j in s["status"]["jobs"] if j["status"] == "running" and j["cell"]]
    assert mid and all(0 <= j["step"] <= j["steps"] and j["live"] + j["diverged"] == 4 for j in mid)
    assert any(s["status"]["left_seconds"] for s in snaps if s["status"]["done"] < 16)
    cli = tiny_study.cli
    assert cli is not None and 0 < cli["before"] <= cli["status"]["done"] <= cli["after"] < 16


def test_status_of_the_finished_study(study):
    workdir, _ = study
    st = status_cli(workdir)
    assert (st["cells"], st["done"], st["running"], st["left_seconds"]) == (16, 16, 0, 0.0)
    assert st["elapsed_seconds"] > 0 and {j["status"] for j in st["jobs"]} == {"done"}
    out = subprocess.run([sys.executable, "-m", "vanishing", "status"], cwd=workdir, text=True,
                         capture_output=True, check=True, timeout=120).stdout  # fmt: skip
    assert "cells: 16 of 16 done (100%)" in out and "estimated time left: 0 s" in out


def test_training_logs_show_progress_every_few_seconds_at_most(study):
    """Each job's log has progress lines (cell, step, live and diverged replicas, time so far,
    time left); within a cell they are at least 5 s apart (lines at a cell's start excepted)."""
    workdir, _ = study
    for log in (workdir / "results" / "logs" / "train").glob("*.log"):
        lines = [line for line in log.read_text().splitlines() if " progress: cell " in line]
        assert len(lines) >= 4, log.name  # at least each cell's start
        assert all("replicas live" in line and " left" in line for line in lines)
        stamps = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in lines]
        for prev, now, line in zip(stamps, stamps[1:], lines[1:], strict=False):
            if ": step 0/" not in line:
                assert (now - prev).total_seconds() >= 4.9, line


def test_resume_retrains_only_what_is_missing(study):
    """The state a study is in when a training job was killed inside its next-to-last cell: the
    job wrote no manifest, that cell no DONE.json, and nothing downstream ran. The rerun trains
    the cut-off cell and the one after it, skips the others, and the store still has exactly
    one FINISHED run per (cell, lr, seed)."""
    workdir, _ = study
    results = workdir / "results"
    job = results / "jobs" / f"{JOBS[0]}.json"
    cells = [c["dir"] for c in json.loads(job.read_text())["cells"]]
    job.unlink()
    for later in cells[-2:]:
        (workdir / later / "DONE.json").unlink()
    for table in (results / "tables").glob("*"):
        table.unlink()
    cut = workdir / cells[-2]
    before = pd.read_csv(cut / "runs.csv")
    snakemake(workdir, "--cores", "2")
    log = (results / "logs" / "train" / f"{JOBS[0]}.log").read_text()
    assert log.count("already done, skipped") == len(cells) - 2
    assert f"{cut.name}: training" in log
    after = pd.read_csv(cut / "runs.csv")
    pd.testing.assert_series_equal(before["final_test_accuracy"], after["final_test_accuracy"])
    runs = store_runs(workdir)
    check_mlflow_runs(runs, pd.read_csv(results / "tables" / "runs.csv"))
    assert len(pd.read_csv(results / "tables" / "runs.csv")) == N_RUNS


def test_residual_scale_axis_end_to_end(tmp_path):
    """residual_scale promoted to an axis: both values reach the training jobs, the tables and
    the theory; at depth 8 the 1/sqrt(depth) branch grows the gradient toward the input less."""
    write_config(
        tmp_path,
        grid={
            "activation": ["relu"],
            "depth": [8],
            "norm": ["none"],
            "residual": [True],
            "residual_scale": [1.0, "inv_sqrt_depth"],
        },
        seeds=[0, 1],
        train={"lr": [0.01], "epochs": 1, "probe_every": 10},
        pack=["residual_scale"],  # one training job
    )
    snakemake(tmp_path)
    tables = tmp_path / "results" / "tables"
    runs = pd.read_csv(tables / "runs.csv")
    ratio = runs.groupby(runs["residual_scale"].astype(str))["grad_ratio_init"].mean()
    assert set(ratio.index) == {"1.0", "inv_sqrt_depth"}
    assert 1 < ratio["inv_sqrt_depth"] < ratio["1.0"] / 2
    theory = pd.read_csv(tables / "theory.csv")
    slope = theory.set_index(theory["residual_scale"].astype(str))["predicted_slope"]
    assert slope["1.0"] < slope["inv_sqrt_depth"] < 0  # growth toward the input, less of it
    assert (tmp_path / "results" / "FINDINGS.md").exists()
