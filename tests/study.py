"""The tiny study the end-to-end tests run (the real config, shrunk), and the checks they share:
local, SLURM and tracking-server runs must produce the same outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from conftest import REPO, snakemake_env

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
}
N_CELLS, N_LRS, N_SEEDS = 16, 2, 2
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
        "adam": {"activation": ["sigmoid", "tanh"], "depth": [8], **PLAIN, "optimizer": ["adam"],
                 "lr": [0.001, 0.003]},
        "deep": {"activation": ["sigmoid", "relu"], "depth": [100], "norm": ["none"],
                 "residual": [False, True], "residual_scale": ["inv_sqrt_depth"],
                 "epochs": [1], "lr": [0.1]},
        "profile": {"activation": ["sigmoid", "tanh", "relu"], "depth": [2, 4, 8, 16, 128],
                    "norm": ["none", "batch"], "residual": [False], "epochs": [0],
                    "lr": [0.1], "seeds": [0, 1, 2, 3, 4]},
    },
    "pack": ["depth", "norm", "init", "optimizer", "epochs"],
}  # fmt: skip


def write_config(workdir: Path, study: dict | None = None, **overrides) -> Path:
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump({**(study or TINY), **overrides}))
    return path


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: int = 900):
    """Run the real Snakefile in ``workdir``; returns the CompletedProcess (output captured)."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "tiny.yaml"),
        *args,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env or snakemake_env(), timeout=timeout
    )
    if out.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{out.stdout[-4000:]}\n{out.stderr[-6000:]}")
    return out


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


def check_mlflow_runs(runs: list[dict], expected: pd.DataFrame) -> None:
    """``runs`` as MLflow's REST API returns them (dicts with info/data): exactly one FINISHED
    child per (cell, lr, seed), with the settings as params and the metric names logged."""
    children = [r for r in runs if any(t["key"] == "cell" for t in r["data"].get("tags", []))]
    keys = []
    for r in children:
        tags = {t["key"]: t["value"] for t in r["data"]["tags"]}
        assert r["info"]["status"] == "FINISHED", tags["cell"]
        params = {p["key"]: p["value"] for p in r["data"]["params"]}
        assert params["activation"] == tags["activation"] and "git_commit" in params
        assert "version_torch" in params
        metrics = {m["key"] for m in r["data"]["metrics"]}
        assert {"train/loss", "val/accuracy", "test/accuracy", "grad_ratio_init"} <= metrics
        assert "grad_preact_rms/layer_01" in metrics and "saturation/layer_02" in metrics
        keys.append((tags["cell"], float(tags["lr"]), int(tags["seed"])))
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == set(zip(expected["cell"], expected["lr"], expected["seed"], strict=True))


def store_runs(workdir) -> list[dict]:
    """Every active run of the study's store, as the REST API would shape it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/results/mlflow.db")
    exp = client.get_experiment_by_name("tiny")
    out = []
    for r in client.search_runs([exp.experiment_id], max_results=5000):
        out.append(
            {
                "info": {"status": r.info.status, "run_id": r.info.run_id},
                "data": {
                    "tags": [{"key": k, "value": v} for k, v in r.data.tags.items()],
                    "params": [{"key": k, "value": v} for k, v in r.data.params.items()],
                    "metrics": [{"key": k} for k in r.data.metrics],
                },
            }
        )
    return out
