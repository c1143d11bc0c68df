"""Command line: one subcommand per pipeline step, each runnable without Snakemake.

    vanishing study           the whole workflow (Snakemake), continuing after a crash (make study)
    vanishing init-tracking   create the MLflow store, experiment and parent run
    vanishing train           train cells (every lr x seed of each, batched) into results/runs/
    vanishing aggregate       per-cell files -> results/tables/ (runs, layers, curves, probe inputs)
    vanishing train-jobs      benchmarks and manifests -> one row per training job (time, memory)
    vanishing stats           tables -> summary, selection, comparisons, ANOVA, theory
    vanishing figures         tables -> results/figures/*.png|pdf
    vanishing findings        tables -> results/FINDINGS.md
    vanishing publish         attach tables, figures and findings to the study's runs in MLflow
    vanishing attach-report   attach the Snakemake report (make report) to the study's parent run
    vanishing status          the study's progress, from the files on disk (also while it runs)
    vanishing mlflow-server   a tracking server with MLflow's authentication (make mlflow-server)

Setting flags of ``vanishing train`` come from the registry of settings and are named as the
config keys, with dashes (``--weight-decay``). Heavy imports (torch, Lightning, MLflow) happen
inside the subcommands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from vanishing import disk, record
from vanishing.outputs import CELL_TABLES
from vanishing.settings import SETTINGS

T_START = time.perf_counter()
log = logging.getLogger("vanishing")


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train cells, every (lr, seed) replica of each batched: a job's plan, or the "
        "product of the settings given as flags",
    )
    p.add_argument("--plan", type=Path, help="JSON list of cells (the workflow writes these)")
    g = p.add_argument_group("settings (without --plan; each takes one or more values)")
    for s in SETTINGS:
        default = list(s.default) if isinstance(s.default, tuple) else [s.default]
        g.add_argument(s.flag, type=s.parse, nargs="+", default=None if s.arch else default,
                       metavar=s.name.upper(), choices=s.choices)  # fmt: skip
    g.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--jobs-per-gpu", type=int, default=4)
    p.add_argument("--tracking", type=Path, required=True, help="tracking.json of init-tracking")
    p.add_argument("--out-root", type=Path, default=Path("results/runs"))
    p.add_argument("--manifest", type=Path, required=True, help="written when every cell is done")
    p.add_argument("--progress", type=Path, help="JSON progress file, rewritten every few seconds")


def cells_from_flags(a: argparse.Namespace):
    """The cells of the flags' product, as the workflow would expand a grid of these axes."""
    from vanishing.config import expand_cells

    missing = [s.flag for s in SETTINGS if s.arch and getattr(a, s.name) is None]
    if missing:
        raise SystemExit(f"vanishing train: without --plan, give {', '.join(missing)}")
    config = {part: {} for part in ("data", "model", "train")}
    grid = {}
    for s in SETTINGS:
        values = getattr(a, s.name)
        config[s.part][s.key] = values if s.replica else values[0]
        if s.arch or (len(values) > 1 and not s.replica):
            grid[s.name] = values
    return expand_cells({**config, "grid": grid, "seeds": a.seeds, "pack": []})


def cmd_train(a: argparse.Namespace) -> int:
    if a.accelerator == "gpu":
        from vanishing.gpu import claim_gpu

        claim_gpu(a.jobs_per_gpu)  # sets CUDA_VISIBLE_DEVICES before torch is imported
    import torch

    from vanishing.config import load_cells
    from vanishing.training.runner import run_job

    torch.set_num_threads(a.threads)
    t_imported = time.perf_counter()
    cells = load_cells(a.plan.read_text()) if a.plan else cells_from_flags(a)
    tracking = json.loads(a.tracking.read_text())
    job = a.plan.stem if a.plan else a.manifest.stem
    done, failed = run_job(cells, a.out_root, tracking, a.accelerator, job, a.progress)
    if failed:
        log.error("%d of %d cells failed: %s", len(failed), len(cells), ", ".join(failed))
        return 1
    fit = 0.0
    for name in done:
        fit += record.read(a.out_root / name)["timing"]["fit_seconds"]
    by_name = {c.name: c for c in cells}
    manifest = {
        "cells": [
            {"cell": n, "dir": str(a.out_root / n), "grids": list(by_name[n].grids)} for n in done
        ],
        "import_seconds": t_imported - T_START,
        "process_seconds": time.perf_counter() - T_START,
        "fit_seconds": fit,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
    }
    a.manifest.parent.mkdir(parents=True, exist_ok=True)
    a.manifest.write_text(json.dumps(manifest, indent=2))
    return 0


def passed_on(args: list[str]) -> list[str]:
    """The arguments after ``--``, for the program a subcommand runs."""
    return args[1:] if args[:1] == ["--"] else args


def cmd_study(a: argparse.Namespace) -> int:
    from vanishing.record import CodeChanged
    from vanishing.study import StudyRunning, study

    retrain = [c for c in (a.retrain or "").split(",") if c]
    try:
        return study(a.directory, a.configfile, passed_on(a.snakemake_args), retrain)
    except (StudyRunning, FileNotFoundError, CodeChanged, ValueError) as e:
        log.error("vanishing study: %s", e)
        return 1


def cmd_init_tracking(a: argparse.Namespace) -> int:
    from vanishing.tracking.provenance import provenance
    from vanishing.tracking.store import TrackingUnavailable, init_study, sqlite_path

    try:
        with disk.writing(sqlite_path(a.tracking_uri)):
            info = init_study(a.tracking_uri, a.study, provenance())
    except TrackingUnavailable as e:
        log.error("%s", e)
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(info, indent=2))
    log.info(
        "MLflow experiment %s, parent run %s at %s",
        info["experiment_id"],
        info["parent_run_id"],
        a.tracking_uri,
    )
    return 0


def cmd_aggregate(a: argparse.Namespace) -> int:
    from vanishing.analysis.aggregate import aggregate

    aggregate(a.manifests, a.out)
    return 0


def cmd_train_jobs(a: argparse.Namespace) -> int:
    from vanishing.analysis.aggregate import train_jobs

    a.out.parent.mkdir(parents=True, exist_ok=True)
    train_jobs(a.benchmarks, a.manifests).to_csv(a.out, index=False)
    return 0


def cmd_stats(a: argparse.Namespace) -> int:
    from vanishing.analysis.tables import read_tables, write_tables

    t = read_tables(a.tables, CELL_TABLES)
    write_tables(
        t["runs"], t["layer_gradients"], a.tables, t["probe_inputs"], t["curves"],
        seed=a.seed, target=a.target_accuracy,
    )  # fmt: skip
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    from vanishing.report.figures import write_all

    for path in write_all(a.tables, a.out):
        log.info("wrote %s", path)
    return 0


def cmd_findings(a: argparse.Namespace) -> int:
    import pandas as pd

    from vanishing.report.findings import write_findings

    for claim in write_findings(a.tables, a.out, a.rst):
        log.info("claim %d: %s", claim.number, claim.verdict)
    commits = pd.read_csv(a.tables / "runs.csv", usecols=["git_commit"], dtype=str)["git_commit"]
    lines = a.out.read_text().split("\n")
    lines.insert(1, f"\n{record.code_line(sorted(set(commits)))}")
    a.out.write_text("\n".join(lines))
    return 0


def cmd_publish(a: argparse.Namespace) -> int:
    import pandas as pd

    from vanishing.tracking import pages, store

    files = list(a.files)
    if a.config_json:
        config = a.done.parent / "config.json"
        config.write_text(json.dumps(json.loads(a.config_json), indent=2))
        files.append(config)
    tracking = json.loads(a.tracking.read_text())
    findings = pages.verdict_table(a.findings.read_text()) if a.findings else None
    datasets = {}
    if a.runs:
        runs = pd.read_csv(a.runs)
        for cell in runs["cell"].unique():
            done = record.read(a.runs_root / cell) or {}
            datasets.update({(d["name"], d["digest"]): d for d in done.get("datasets", [])})
    if a.selected:
        selected = pd.read_csv(a.selected)
        n = runs.groupby("cell").size().to_dict() if a.runs else {}
        summaries = {row["cell"]: pages.cell_metrics(row) for _, row in selected.iterrows()}
        with disk.writing(store.sqlite_path(tracking["tracking_uri"])):
            updated = store.publish_cells(tracking, summaries, n)
        log.info("cell summaries logged on %d of %d cell runs", updated, len(summaries))
    with disk.writing(store.sqlite_path(tracking["tracking_uri"])):
        store.publish(tracking, files, a.artifact_dir, findings, list(datasets.values()))
    a.done.write_text("published\n")
    return 0


def cmd_mlflow_server(a: argparse.Namespace) -> int:
    from vanishing.tracking.server import ServerConfigError, serve

    try:
        serve(a.store, a.host, a.port, a.allowed_hosts, passed_on(a.mlflow_args))  # on error
    except ServerConfigError as e:
        log.error("vanishing mlflow-server: %s", e)
    return 2


def cmd_attach_report(a: argparse.Namespace) -> int:
    from vanishing.tracking.store import attach_report

    attach_report(json.loads(a.tracking.read_text()), a.report)
    log.info("attached %s to the study's parent run", a.report)
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    from vanishing.progress import format_status, study_status

    while True:
        st = study_status(a.directory / "results")
        print(json.dumps(st.to_dict(), indent=1) if a.json else format_status(st), flush=True)
        if not a.watch or (st.cells and st.done == st.cells):
            return 0
        time.sleep(a.watch)


def _command(sub, name: str, func, help: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``name``, which ``func`` runs."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(func=func)
    return p


def _tables_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tables", type=Path, default=Path("results/tables"))


def _directory_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--directory", "-d", type=Path, default=Path("."), help="working directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vanishing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = _command(
        sub,
        "study",
        cmd_study,
        "run the workflow in a working directory; after a crash the same command continues",
    )
    p.add_argument(
        "--configfile", type=Path, help="the study's config (default: config/config.yaml)"
    )
    _directory_option(p)
    p.add_argument(
        "--retrain", metavar="CELL[,CELL...]",
        help="train these cells (folder names in results/runs/, or `stale`: those made by other "
        "code) again, and rebuild what depends on them",
    )  # fmt: skip
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="-- ARGS for snakemake")
    p = _command(
        sub, "init-tracking", cmd_init_tracking, "create the MLflow store, experiment, parent run"
    )
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--out", type=Path, required=True)
    add_train_parser(sub)
    sub.choices["train"].set_defaults(func=cmd_train)
    p = _command(sub, "aggregate", cmd_aggregate, "per-cell files -> study tables")
    p.add_argument("--manifests", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True, help="tables folder")
    p = _command(
        sub, "train-jobs", cmd_train_jobs, "benchmarks + manifests -> one row per training job"
    )
    p.add_argument("--benchmarks", type=Path, nargs="+", required=True)
    p.add_argument("--manifests", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p = _command(
        sub, "stats", cmd_stats, "tables -> summary, selection, comparisons, ANOVA, theory"
    )
    _tables_option(p)
    p.add_argument("--seed", type=int, default=0, help="seeds the permutation tests' Generator")
    p.add_argument(
        "--target-accuracy", type=float, default=0.9,
        help="validation accuracy whose first crossing is a run's steps_to_target",
    )  # fmt: skip
    p = _command(sub, "figures", cmd_figures, "tables -> figures (PNG and PDF)")
    _tables_option(p)
    p.add_argument("--out", type=Path, default=Path("results/figures"))
    p = _command(sub, "findings", cmd_findings, "tables -> FINDINGS.md")
    _tables_option(p)
    p.add_argument("--out", type=Path, default=Path("results/FINDINGS.md"))
    p.add_argument("--rst", type=Path, help="also the verdict table as reStructuredText")
    p = _command(sub, "publish", cmd_publish, "attach files to the parent run, mark it FINISHED")
    p.add_argument("--tracking", type=Path, required=True)
    p.add_argument("--files", type=Path, nargs="+", required=True)
    p.add_argument("--artifact-dir", default="study")
    p.add_argument("--config-json", help="the study's validated config, saved beside the results")
    p.add_argument("--findings", type=Path, help="FINDINGS.md: its verdict table describes the run")
    p.add_argument("--selected", type=Path, help="selected.csv: each cell run's summary metrics")
    p.add_argument("--runs", type=Path, help="runs.csv: the cells whose data sets are logged")
    p.add_argument("--runs-root", type=Path, default=Path("results/runs"))
    p.add_argument("--done", type=Path, required=True)
    p = _command(
        sub, "mlflow-server", cmd_mlflow_server, "a tracking server that asks for credentials"
    )
    p.add_argument("--store", type=Path, default=Path("results"), help="its databases, artifacts")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve a cluster")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--allowed-hosts", default="localhost,127.0.0.1", help="Host headers served")
    p.add_argument("mlflow_args", nargs=argparse.REMAINDER, help="-- ARGS for mlflow server")
    p = _command(
        sub, "attach-report", cmd_attach_report, "attach the Snakemake report to the parent run"
    )
    p.add_argument("--tracking", type=Path, default=Path("results/tracking.json"))
    p.add_argument("--report", type=Path, default=Path("results/report.html"))
    p = _command(sub, "status", cmd_status, "the study's progress, from the files on disk")
    _directory_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="repeat until every cell is done")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:
        if not disk.is_disk_full(e, sqlite=False):  # sqlite: see disk.writing
            raise
        # said once, plainly, instead of a traceback that ends in "[Errno 28]"
        if isinstance(e, disk.DiskFull):
            said = str(e)
        else:
            said = disk.message(getattr(e, "filename", None) or Path.cwd())
        log.error("vanishing %s: %s", args.command, said)
        return 1


if __name__ == "__main__":
    sys.exit(main())
