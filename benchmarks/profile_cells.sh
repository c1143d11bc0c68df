#!/bin/bash
# What MLflow logging costs for step-0 profile cells: one `vanishing train` process trains three
# (sigmoid, depth 32/64/128, 10 seeds, 0 epochs) into a fresh store in DIR and prints each cell's
# mlflow_seconds and image_seconds (DONE.json) and the store's runs and metric rows.
# usage: benchmarks/profile_cells.sh DIR [PYTHONPATH]  (PYTHONPATH=<old checkout>/src times old code)
set -e
d=$1; rm -rf $d; mkdir -p $d; cd $d
export PYTHONPATH=${2:-}
V=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin
$V/vanishing init-tracking --tracking-uri sqlite:///results/mlflow.db --study bench --out results/tracking.json 2>/dev/null
/usr/bin/time -f "%e s wall %U s user" $V/vanishing train --activation sigmoid --depth 32 64 128 --norm none --residual false --epochs 0 --lr 0.1 --seeds 0 1 2 3 4 5 6 7 8 9 --tracking results/tracking.json --out-root results/runs --manifest results/jobs/m.json 2>&1 | tail -1
$V/python - <<'PY'
import json, glob, sqlite3
t=[json.load(open(f))["timing"] for f in sorted(glob.glob("results/runs/*/DONE.json"))]
print("mlflow_seconds", [round(x["mlflow_seconds"],2) for x in t], "image_seconds", [round(x["image_seconds"],2) for x in t])
db=sqlite3.connect("results/mlflow.db"); print("runs", db.execute("select count(*) from runs").fetchone()[0], "metric rows", db.execute("select count(*) from metrics").fetchone()[0])
PY
