"""CPU and wall seconds of a finished study's cells, per sub-grid.

    python3 benchmarks/subgrid_cost.py STUDY_DIR

Reads each training job's plan (``results/plan/*.json``: the cells and their sub-grids) and each
cell's ``DONE.json`` (``timing.fit_cpu_seconds``: CPU seconds of ``trainer.fit``;
``timing.cell_seconds``: the cell's wall seconds with probes, MLflow and images). A cell in two
sub-grids is split evenly between them. Standard library only.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path


def main(root: Path) -> None:
    grids_of = {}
    for plan in (root / "results" / "plan").glob("*.json"):
        for cell in json.loads(plan.read_text()):
            grids_of[cell["cell"]] = cell["grids"]
    planned = collections.Counter(g for gs in grids_of.values() for g in gs)
    cpu, wall, done = collections.Counter(), collections.Counter(), collections.Counter()
    for path in (root / "results" / "runs").glob("*/DONE.json"):
        record = json.loads(path.read_text())
        timing = record.get("timing", record)
        grids = grids_of[record["spec"]["cell"]]
        for g in grids:
            cpu[g] += (timing.get("fit_cpu_seconds") or 0) / len(grids)
            wall[g] += (timing.get("cell_seconds") or 0) / len(grids)
            done[g] += 1
    for g in planned:
        print(
            f"{g:20s} done {done[g]:4d}/{planned[g]:4d}  fit CPU s {cpu[g]:8.1f}  "
            f"cell wall s {wall[g]:8.1f}"
        )
    print(f"total fit CPU s {sum(cpu.values()):.1f}, cell wall s {sum(wall.values()):.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
