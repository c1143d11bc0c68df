"""Shared fixtures: the repository's paths and the validated default config."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers (reference.py)

# One local SLURM cluster for the whole session, shared by every test that asks for it.
from test_slurm_cluster import slurm_cluster  # noqa: E402,F401


def validated(config: dict) -> dict:
    """``config`` checked against the schema with defaults filled, as the Snakefile does."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


@pytest.fixture
def default_config() -> dict:
    return validated(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """The tiny study, run once for the session with the README's `make study` (test_browse,
    test_e2e, test_failures' reference) while its progress was polled, a user browsed it and a
    second study was tried beside it (``study.WatchedStudy``)."""
    from study import run_watched

    return run_watched(tmp_path_factory.mktemp("study"))


# `make test` runs on two pytest-xdist workers (--dist loadgroup), a test file at a time (its
# module fixtures are made once); the files that use the session's one SLURM cluster share a
# worker, and so do the three that use the session's tiny study (made once per worker that asks
# for it).
SAME_WORKER = {"test_clusters": "slurm", "test_slurm_cluster": "slurm", "test_browse": "tiny",
               "test_e2e": "tiny", "test_failures": "tiny"}  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into node ids
def pytest_collection_modifyitems(items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        item.add_marker(pytest.mark.xdist_group(SAME_WORKER.get(module, module)))


def snakemake_env() -> dict:
    """The environment for a Snakemake subprocess: no inherited MLflow URI."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env
