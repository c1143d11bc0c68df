#!/usr/bin/env bash
# A small study on the local GPU(s) through the real Snakefile: 16 MLP cells and 4 conv cells
# (cnn, depth 20 and 56, plain and post-residual, batch norm, width 16) x 2 lr x 3 seeds (120
# runs) of 5 epochs, compute.accelerator gpu, 4 jobs per GPU. Prints runs per minute (rows of
# runs.csv over the whole pipeline's wall time) and peak GPU memory used; then the conv step
# benchmark on the GPU (benchmarks/conv_step.py --device cuda, 28x28 MNIST, depth 56, R=15).
#
#     benchmarks/gpu_check.sh          # on a machine with an NVIDIA GPU; under 5 minutes on one
#     benchmarks/gpu_check.sh -n       # dry run: builds the DAG only, needs no GPU
#
# Run by hand, not by the test suite. Everything it writes (the study, MLflow store, GPU slot
# locks, caches) lies in one temporary folder, deleted on success (KEEP=1 keeps it) and kept
# on failure. PYTHON picks the interpreter (default: the repository's .venv).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
DRY=""
if [[ "${1:-}" == "-n" ]]; then
    DRY="-n"
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [-n]" >&2
    exit 2
fi
if [[ -z "$DRY" ]] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: nvidia-smi not found: this check needs an NVIDIA GPU and its driver" >&2
    exit 1
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vanishing-gpu-check.XXXXXX")"
POLLER=""
finish() {
    local rc=$?
    if [[ -n "$POLLER" ]]; then
        kill "$POLLER" 2>/dev/null || true
        wait "$POLLER" 2>/dev/null || true
    fi
    if [[ $rc -eq 0 && -z "${KEEP:-}" ]]; then
        rm -rf "$TMP"
    else
        echo "gpu_check: files kept in $TMP" >&2
    fi
}
trap finish EXIT

# Nothing outside $TMP: slot locks, MLflow store (relative to -d), caches.
export VANISHING_GPU_LOCK_DIR="$TMP/gpu-locks"
export MPLCONFIGDIR="$TMP/cache/matplotlib"
export XDG_CACHE_HOME="$TMP/cache"
export CUDA_CACHE_PATH="$TMP/cache/nv"
unset MLFLOW_TRACKING_URI
if [[ -n "$DRY" ]]; then
    export VANISHING_GPUS="${VANISHING_GPUS:-1}"
fi

# pack: [depth] gives 8 training jobs for --cores 8: with 4 slots per GPU some must queue.
cat >"$TMP/config.yaml" <<'EOF'
study: gpu-check
grids:
  main:
    activation: [sigmoid, relu]
    depth: [4, 16]
    norm: [none, batch]
    residual: [false, true]
  conv:
    arch: [cnn]
    activation: [relu]
    depth: [20, 56]
    norm: [batch]
    residual: [false, true]
    block: [post]
    width: [16]
seeds: [0, 1, 2]
train:
  lr: [0.01, 0.1]
  epochs: 5
pack: [depth]
compute:
  accelerator: gpu
  jobs_per_gpu: 4
EOF

if [[ -z "$DRY" ]]; then
    nvidia-smi -L
    BASE_MB="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | sort -n | tail -1)"
    (
        while true; do
            nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >>"$TMP/gpu_mem.txt" || true
            sleep 1
        done
    ) 2>/dev/null &
    POLLER=$!
fi

T0="$(date +%s.%N)"
if ! "$PY" -m snakemake -s "$REPO/Snakefile" -d "$TMP/work" --configfile "$TMP/config.yaml" \
    --cores 8 --workflow-profile none $DRY >"$TMP/snakemake.log" 2>&1; then
    tail -n 40 "$TMP/snakemake.log" >&2
    echo "gpu_check: snakemake failed; full log in $TMP/snakemake.log" >&2
    exit 1
fi
T1="$(date +%s.%N)"

if [[ -n "$DRY" ]]; then
    awk '/^Job stats/ { on = 1 } on { print } on && /^total/ { exit }' "$TMP/snakemake.log"
    echo "gpu_check: dry run ok (DAG builds, config validates)"
    exit 0
fi

kill "$POLLER" 2>/dev/null || true
wait "$POLLER" 2>/dev/null || true
POLLER=""

RUNS="$("$PY" -c 'import csv, sys; print(sum(1 for _ in csv.DictReader(open(sys.argv[1]))))' \
    "$TMP/work/results/tables/runs.csv")"
PEAK_MB="$(sort -n "$TMP/gpu_mem.txt" | tail -1)"
LOGS=("$TMP"/work/results/logs/train/*.log)
QUEUED="$({ grep -l 'waiting' "${LOGS[@]}" || true; } | wc -l)"
awk -v runs="$RUNS" -v t0="$T0" -v t1="$T1" -v peak="${PEAK_MB:-0}" -v base="$BASE_MB" \
    -v jobs="${#LOGS[@]}" -v queued="$QUEUED" 'BEGIN {
    wall = t1 - t0
    printf "runs:               %d in %.1f s\n", runs, wall
    printf "runs per minute:    %.1f\n", runs / (wall / 60)
    printf "peak GPU memory:    %d MiB (busiest GPU; %d MiB before the start)\n", peak, base
    printf "training jobs:      %d, of which %d queued for a GPU slot\n", jobs, queued
}'
{ grep -ho 'GPU [^ ]* slot [0-9]* of [0-9]*' "${LOGS[@]}" || true; } | sort | uniq -c

# The conv step on the GPU: batched vs vmap vs a loop vs the convolutions alone.
"$PY" "$REPO/benchmarks/conv_step.py" --device cuda --data mnist --depth 56 --width 16 \
    --replicas 15 --steps 20 --repeats 3
