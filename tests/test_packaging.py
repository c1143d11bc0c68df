"""environment.yml and pyproject.toml pin the same versions; .ci/run calls the README's test
command."""

from __future__ import annotations

import re
import tomllib

import yaml
from conftest import REPO


def pyproject_pins() -> dict[str, str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + [
        r for extra in meta["optional-dependencies"].values() for r in extra
    ]
    return dict(r.split("==") for r in reqs)


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(r.split("==") for r in pip if "==" in r)
    assert conda_pins == pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_lock_agrees_with_direct_pins():
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[re.sub(r"[-_.]+", "-", name.lower())] = version
    for name, version in pyproject_pins().items():
        assert lock[re.sub(r"[-_.]+", "-", name.lower())] == version, name


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
