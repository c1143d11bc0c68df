"""Where a command's CPU goes, Python process by Python process: runs the command with a
``sitecustomize`` on PYTHONPATH that appends each Python process's own CPU time (user + system)
and its command line to a log when it exits, then prints the CPU per program (a `vanishing`
subcommand, Snakemake, MLflow, pytest's workers), beside the command's whole CPU time.

    python3 benchmarks/process_cpu.py -- make test
    python3 benchmarks/process_cpu.py -- make study CONFIG=tiny.yaml DIR=/tmp/tiny

Not counted: processes ended by a signal (no exit handler runs: MLflow servers and UIs the tests
stop, a study killed on purpose), processes that are not Python, and SLURM's jobs (started by
slurmd, outside the command's tree, but they inherit the environment and are logged if they
end normally; the command's own total leaves them out).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HOOK = """\
import atexit, os, resource, sys

def _log_cpu():
    if "VANISHING_CPU_LOG" not in os.environ:  # a process started with an environment of its own
        return
    r = resource.getrusage(resource.RUSAGE_SELF)
    argv = " ".join(sys.argv).replace("\\n", " ")
    with open(os.environ["VANISHING_CPU_LOG"], "a") as f:
        f.write(f"{r.ru_utime + r.ru_stime:.3f}\\t{argv}\\n")

atexit.register(_log_cpu)
"""

SUBCOMMAND = {"vanishing", "mlflow"}


def program(argv: str) -> str:
    """A process's program, from its command line: `vanishing train`, `snakemake`, ..."""
    words = argv.split()
    name = Path(words[0]).name if words else ""
    if name == "__main__.py":
        name = Path(words[0]).parent.name  # python -m snakemake / vanishing
    if name in ("-c", ""):
        return "python -c (pytest-xdist workers, helpers)"
    if name in SUBCOMMAND and len(words) > 1:
        return f"{name} {words[1]}"
    if name == "snakemake":
        spawned = "--target-jobs" in words
        return "snakemake (a spawned or SLURM job)" if spawned else "snakemake"
    return re.sub(r"\.py$", "", name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run after --")
    with tempfile.TemporaryDirectory() as hook_dir:
        Path(hook_dir, "sitecustomize.py").write_text(HOOK)
        log = Path(hook_dir) / "cpu.tsv"
        log.touch()
        path = os.pathsep.join(filter(None, [hook_dir, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "VANISHING_CPU_LOG": str(log), "PYTHONPATH": path}
        t0 = time.monotonic()
        rc = subprocess.run(command, env=env).returncode
        wall = time.monotonic() - t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = children.ru_utime + children.ru_stime
        rows = [line.split("\t", 1) for line in log.read_text().splitlines() if "\t" in line]
    cpu, count = defaultdict(float), defaultdict(int)
    for seconds, argv in rows:
        name = program(argv)
        cpu[name] += float(seconds)
        count[name] += 1
    logged = sum(cpu.values())
    print(f"\n{' '.join(command)}: exit {rc}, {wall:.0f} s wall, {total:.0f} CPU-s in all "
          f"({total / wall:.2f} cores); {logged:.0f} CPU-s in {len(rows)} Python processes "
          "that exited normally:")  # fmt: skip
    print(f"{'CPU-s':>8} {'share':>6} {'procs':>5}  program")
    for name in sorted(cpu, key=cpu.get, reverse=True):
        print(f"{cpu[name]:8.1f} {cpu[name] / total:6.1%} {count[name]:5d}  {name}")
    sys.exit(rc)


if __name__ == "__main__":
    main()
