"""What produced a result: the code version (git commit) and the versions of the packages."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "vanishing",
    "torch",
    "pytorch-lightning",
    "mlflow",
    "snakemake",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "scikit-learn",
    "seaborn",
    "mnist1d",
)


def git_commit(where: Path | None = None) -> str:
    """HEAD's commit of the checkout holding this package, with '-dirty' if files differ from it;
    'unknown' outside a git checkout."""
    where = where or Path(__file__).resolve().parent
    try:

        def git(*args):
            return subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


@cache
def provenance() -> dict:
    """git commit, Python and package versions, and the machine, as a flat dict of strings."""
    out = {"git_commit": git_commit(), "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[f"version_{name.replace('-', '_')}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"version_{name.replace('-', '_')}"] = "not installed"
    out["machine"] = f"{platform.node()} {platform.machine()} {platform.system()}"
    return out
