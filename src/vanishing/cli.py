"""Command line: one subcommand per pipeline step, each runnable without Snakemake.

    vanishing init-tracking   create the MLflow store, experiment and parent run
    vanishing train           train cells (every lr x seed of each, batched) into results/runs/
    vanishing aggregate       per-cell files -> results/tables/ (runs, layers, curves, probe inputs)
    vanishing stats           tables -> summary, selection, comparisons, ANOVA, theory
    vanishing figures         tables -> results/figures/*.png|pdf
    vanishing findings        tables -> results/FINDINGS.md
    vanishing publish         attach tables and figures to the study's parent run

Setting flags are named as the config keys, with dashes (``--weight-decay``). Heavy imports
(torch, Lightning, MLflow) happen inside the subcommands that need them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
log = logging.getLogger("vanishing")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _residual_scale(text: str) -> float | str:
    from vanishing.config import INV_SQRT_DEPTH

    return INV_SQRT_DEPTH if text == INV_SQRT_DEPTH else float(text)


SETTING_TYPES = {
    "activation": str,
    "depth": int,
    "norm": str,
    "residual": _bool,
    "width": int,
    "init": str,
    "residual_scale": _residual_scale,
    "optimizer": str,
    "momentum": float,
    "weight_decay": float,
    "batch_size": int,
    "epochs": int,
}


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the product of the given settings, every lr x seed")
    for key, typ in SETTING_TYPES.items():
        p.add_argument("--" + key.replace("_", "-"), type=typ, nargs="+", required=True)
    p.add_argument("--probe-every", type=int, default=50)
    p.add_argument("--probe-size", type=int, default=256)
    p.add_argument("--lr", type=float, nargs="+", required=True)
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--data", default="digits")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--mnist1d-samples", type=int, default=4000)
    p.add_argument(
        "--name-axes",
        nargs="+",
        default=["activation", "depth", "norm", "residual"],
        help="settings that name a cell (the study's grid axes)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--jobs-per-gpu", type=int, default=4)
    p.add_argument("--tracking", type=Path, required=True, help="tracking.json of init-tracking")
    p.add_argument("--out-root", type=Path, default=Path("results/runs"))
    p.add_argument("--manifest", type=Path, required=True, help="written when every cell is done")


def cmd_train(a: argparse.Namespace) -> int:
    from vanishing.config import DataConfig, cell_from_settings, cell_name

    if a.accelerator == "gpu":
        from vanishing.gpu import claim_gpu

        claim_gpu(a.jobs_per_gpu)  # sets CUDA_VISIBLE_DEVICES before torch is imported
    import torch

    from vanishing.runner import run_job

    torch.set_num_threads(a.threads)
    t_imported = time.perf_counter()
    data = DataConfig(a.data, a.val_fraction, a.test_fraction, a.split_seed, a.mnist1d_samples)
    lists = {k: getattr(a, k) for k in SETTING_TYPES}
    cells = []
    for combo in itertools.product(*lists.values()):
        values = dict(zip(lists, combo, strict=True))
        values.update(probe_every=a.probe_every, probe_size=a.probe_size)
        values["cell"] = cell_name(values, tuple(a.name_axes))
        cells.append(cell_from_settings(values, data))
    tracking = json.loads(a.tracking.read_text())
    done, failed = run_job(cells, a.seeds, a.lr, a.out_root, tracking, a.accelerator)
    if failed:
        log.error("%d of %d cells failed: %s", len(failed), len(cells), ", ".join(failed))
        return 1
    fit = 0.0
    for name in done:
        fit += json.loads((a.out_root / name / "DONE.json").read_text())["timing"]["fit_seconds"]
    manifest = {
        "cells": [str(a.out_root / n) for n in done],
        "import_seconds": t_imported - T_START,
        "process_seconds": time.perf_counter() - T_START,
        "fit_seconds": fit,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
    }
    a.manifest.parent.mkdir(parents=True, exist_ok=True)
    a.manifest.write_text(json.dumps(manifest, indent=2))
    return 0


def cmd_init_tracking(a: argparse.Namespace) -> int:
    from vanishing.provenance import provenance
    from vanishing.tracking import TrackingUnavailable, init_study

    try:
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
    from vanishing.aggregate import aggregate

    aggregate(a.manifests, a.out)
    return 0


def _read_tables(tables: Path):
    import pandas as pd

    return pd.read_csv(tables / "runs.csv"), pd.read_csv(tables / "layer_gradients.csv")


def cmd_stats(a: argparse.Namespace) -> int:
    import pandas as pd

    from vanishing.tables import write_tables
    from vanishing.theory import theory_profiles, theory_table

    runs, layers = _read_tables(a.tables)
    write_tables(runs, layers, a.tables, seed=a.seed)
    probe_inputs = pd.read_csv(a.tables / "probe_inputs.csv")
    theory_table(runs, layers, probe_inputs).to_csv(a.tables / "theory.csv", index=False)
    profiles = theory_profiles(runs, layers, probe_inputs)
    profiles.to_csv(a.tables / "theory_profiles.csv", index=False)
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    from vanishing.figures import write_all

    for path in write_all(a.tables, a.out):
        log.info("wrote %s", path)
    return 0


def cmd_findings(a: argparse.Namespace) -> int:
    import pandas as pd

    from vanishing.findings import write_findings

    theory = pd.read_csv(a.tables / "theory.csv")
    for claim in write_findings(a.tables, a.out, theory):
        log.info("claim %d: %s", claim.number, claim.verdict)
    return 0


def cmd_publish(a: argparse.Namespace) -> int:
    from vanishing.tracking import publish

    files = list(a.files)
    if a.config_json:
        config = a.done.parent / "config.json"
        config.write_text(json.dumps(json.loads(a.config_json), indent=2))
        files.append(config)
    publish(json.loads(a.tracking.read_text()), files, a.artifact_dir)
    a.done.write_text("published\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vanishing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init-tracking", help="create the MLflow store, experiment, parent run")
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_init_tracking)
    add_train_parser(sub)
    sub.choices["train"].set_defaults(func=cmd_train)
    p = sub.add_parser("aggregate", help="per-cell files -> study tables")
    p.add_argument("--manifests", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True, help="tables folder")
    p.set_defaults(func=cmd_aggregate)
    p = sub.add_parser("stats", help="tables -> summary, selection, comparisons, ANOVA, theory")
    p.add_argument("--tables", type=Path, default=Path("results/tables"))
    p.add_argument("--seed", type=int, default=0, help="seeds the permutation tests' Generator")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("figures", help="tables -> figures (PNG and PDF)")
    p.add_argument("--tables", type=Path, default=Path("results/tables"))
    p.add_argument("--out", type=Path, default=Path("results/figures"))
    p.set_defaults(func=cmd_figures)
    p = sub.add_parser("findings", help="tables -> FINDINGS.md")
    p.add_argument("--tables", type=Path, default=Path("results/tables"))
    p.add_argument("--out", type=Path, default=Path("results/FINDINGS.md"))
    p.set_defaults(func=cmd_findings)
    p = sub.add_parser("publish", help="attach files to the parent run, mark it FINISHED")
    p.add_argument("--tracking", type=Path, required=True)
    p.add_argument("--files", type=Path, nargs="+", required=True)
    p.add_argument("--artifact-dir", default="study")
    p.add_argument("--config-json", help="the study's validated config, saved beside the results")
    p.add_argument("--done", type=Path, required=True)
    p.set_defaults(func=cmd_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
