"""environment.yml and pyproject.toml pin the same versions; .ci/run calls the README's test
command; the files a workflow user looks for (LICENSE, config/README.md,
.snakemake-workflow-catalog.yml) say what is true."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from conftest import REPO, SCHEMA, validated

from vanishing.config import apply_design, expand_jobs


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


def test_license_is_mit_for_the_vanishing_authors():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the vanishing authors$", text, flags=re.M)
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_workflow_catalog_file_claims_only_what_the_rules_do():
    """No rule declares conda or a container, so the catalog file claims neither; the report it
    claims is built by test_e2e."""
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    deploy = usage["software-stack-deployment"]
    rules = (REPO / "Snakefile").read_text() + "".join(
        p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk")
    )
    assert deploy["conda"] is bool(re.search(r"^\s+conda:", rules, flags=re.M)) is False
    uses_container = bool(re.search(r"^\s*container:", rules, flags=re.M))
    assert deploy["apptainer"] is deploy["apptainer+conda"] is uses_container is False
    assert deploy["report"] is True and "make study" in usage["mandatory-flags"]["desc"]


def test_config_readme_names_every_key_and_its_examples_are_valid():
    """config/README.md has a row for every top-level key of the schema naming each of its
    keys, and its example configs pass the schema and expand into jobs, merged over the default
    config as the Snakefile merges them (their grid or grids replace its sub-grids)."""
    readme = (REPO / "config" / "README.md").read_text()
    rows = {m[1]: m[0] for m in re.finditer(r"^\| `(\w+)` \|.*$", readme, flags=re.M)}
    for key, spec in yaml.safe_load(SCHEMA.read_text())["properties"].items():
        assert key in rows, key
        for sub in spec.get("properties", {}):
            assert f"`{sub}`" in rows[key], (key, sub)
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)]
    assert {"grid" in b for b in blocks} == {True, False}
    for block in blocks:
        cfg = validated(apply_design({**default, **block}, block))
        assert len(expand_jobs(cfg)) >= 2


def test_a_test_file_is_one_xdist_group(request):
    """Under `make test` (pytest-xdist, --dist loadgroup) each test file is one group, so that
    its module fixtures (a study each, in the end-to-end files) are made once, on one worker: the
    node id carries the group xdist schedules by. (Marked after xdist had read the groups, the
    files were spread over both workers and each made its studies twice.)"""
    if not hasattr(request.config, "workerinput"):
        pytest.skip("not under pytest-xdist")
    assert request.node.nodeid.endswith("@test_packaging"), request.node.nodeid
