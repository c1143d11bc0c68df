"""Browse a study's MLflow store as its users do, in a real browser, and save screenshots.

    make screenshots                                   # the study in results/ -> docs/screenshots/
    .venv/bin/python scripts/screenshots.py --workdir DIR --out OUT [--cell CELL]

Starts ``mlflow ui`` over the study's store on a free loopback port (in its own process group,
stopped by its PID), drives Debian's Chromium (``/usr/bin/chromium``, apt) with Playwright's
Python package, headless and with a fresh profile, and walks what a user would: the experiment
(on its runs, not MLflow's GenAI overview), the study run expanded into its cell runs, one cell
expanded into its replicas, the cell run's page, a replica run's page (tags, datasets), its
gradient-profile image and its metric charts. Each step asserts what it expects to see and
saves ``<out>/<step>.png``; ``walk`` returns what it saw (tests/test_browse.py checks it).

Chromium gets the flags that keep it off the network (this machine refuses connections other
than loopback): no background networking, component updates, sync or QUIC. Never run
``playwright install``: the browser is the distribution's.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from vanishing.tracking.processes import free_port, start_ui, stop

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# MLflow 3.17's UI picks its view from the sidebar's GenAI / Model training switch (remembered in
# the browser) or this URL parameter; the experiment's mlflow.experimentKind tag is shown in its
# header but does not choose the view.
VIEW = "workflowType=machine_learning"
EXPANDER = 'button[data-component-id$="runnamecellrenderer.tsx_46"]'  # a run row's nest toggle
TIMEOUT_MS = 60_000


def pick_runs(tracking_uri: str, study: str, cell: str | None = None) -> dict:
    """The experiment, its study run, one cell run (``cell``, else the deepest trained plain
    sigmoid cell, else the first) and that cell's replica runs, from the store."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(study)
    if exp is None:
        raise SystemExit(f"no experiment {study!r} in {tracking_uri}")
    runs = client.search_runs([exp.experiment_id], max_results=50000)
    role = {r.info.run_id: r.data.tags.get("vanishing.role") for r in runs}
    (study_run,) = [r for r in runs if role[r.info.run_id] == "study"]
    cells = [r for r in runs if role[r.info.run_id] == "cell"]
    if cell is None:
        want = {"activation": "sigmoid", "norm": "none", "residual": "False"}
        plain = [c for c in cells if all(c.data.tags.get(k) == v for k, v in want.items())]
        trained = [c for c in plain if c.data.tags.get("epochs") != "0"]  # not a profile
        plain = trained or plain
        pool = plain or cells
        chosen = max(pool, key=lambda c: int(c.data.tags.get("depth", 0)))
    else:
        (chosen,) = [c for c in cells if c.data.tags["cell"] == cell]
    replicas = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == chosen.info.run_id]
    replicas.sort(key=lambda r: (float(r.data.tags["lr"]), int(r.data.tags["seed"])))
    # the replica to open: the first seed at the cell's selected lr (published), else the first
    lr = chosen.data.metrics.get("selected_lr")
    at_lr = [r for r in replicas if lr is not None and float(r.data.tags["lr"]) == lr]
    profiles = [c for c in cells if c.data.tags.get("epochs") == "0"]
    return {
        "experiment_id": exp.experiment_id,
        "study_run": study_run,
        "cell_run": chosen,
        "replicas": replicas,
        "replica": (at_lr or replicas)[0],
        "n_cells": len(cells),
        "cell_names": sorted(c.info.run_name for c in cells),
        # a step-0 profile cell (the deepest), one run for all its seeds, if the study has one
        "profile_cell": max(profiles, key=lambda c: int(c.data.tags["depth"]), default=None),
        "children": {
            c.info.run_id: sum(r.data.tags.get("mlflow.parentRunId") == c.info.run_id for r in runs)
            for c in profiles
        },  # fmt: skip
    }


MORE_PAGES = 60  # "Load more" clicks at most, to reach the chosen cell's row


def close_assistant(page) -> None:
    """The MLflow Assistant side panel opens in a fresh profile; close it to see the page."""
    button = page.locator('[aria-label="Close"]')
    if button.count():
        button.first.click()


def widen_run_names(page, by: int = 360) -> None:
    """Drag the runs table's Run Name column wider, as a user would to read the names."""
    handle = page.locator(".ag-header-cell", has_text="Run Name").locator(".ag-header-cell-resize")
    handle.hover()  # the grid starts a resize only from a hovered handle
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.down()
    for dx in range(0, by + 1, 20):
        page.mouse.move(x + dx, y)
        time.sleep(0.02)
    page.mouse.up()


def shot(page, out: Path, name: str, seen: dict) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path))
    seen.setdefault("screenshots", []).append(str(path))


def run_page(page, base: str, exp: str, run_id: str, tab: str = "") -> None:
    suffix = f"/{tab}" if tab else ""
    page.goto(f"{base}/#/experiments/{exp}/runs/{run_id}{suffix}?{VIEW}", wait_until="load")


def walk(base: str, tracking_uri: str, study: str, out: Path, cell: str | None = None) -> dict:
    """Browse the study at ``base`` (a running ``mlflow ui``) and screenshot each step into
    ``out``; returns what each page showed."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    picked = pick_runs(tracking_uri, study, cell)
    exp = picked["experiment_id"]
    cell_run, replicas = picked["cell_run"], picked["replicas"]
    cell_name = cell_run.data.tags["cell"]
    seen: dict = {
        "cell": cell_name,
        "n_cells": picked["n_cells"],
        "cell_run_name": cell_run.info.run_name,
        "cell_names": picked["cell_names"],
    }
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        # 1. the experiment, as `make ui` prints its address: on its runs table
        page.goto(f"{base}/#/experiments/{exp}?{VIEW}", wait_until="load")
        study_row = page.locator(".ag-row", has_text=study).first
        study_row.wait_for()
        page.get_by_text(re.compile(r"[1-9]\d* matching runs")).wait_for()
        close_assistant(page)
        widen_run_names(page)
        body = page.inner_text("body")
        seen["experiment"] = {
            "runs_heading": page.get_by_role("heading", name="Runs").count() > 0,
            "genai_overview": "Tool calls" in body or "Token Usage" in body,
            "description": f"{study}: a study of vanishing gradients" in body,
            "matching_runs": re.search(r"(\d+)\s+matching runs", body).group(1),
        }
        shot(page, out, "1-experiment", seen)

        # 2. the study run expanded: one row per cell
        study_row.locator(EXPANDER).click()
        page.locator(".ag-row", has_text=" · d").first.wait_for()
        seen["cell_rows"] = page.locator(EXPANDER).count() - 1  # the study's own toggle
        if picked["profile_cell"] is not None:  # a profile cell has no replicas, so no toggle
            listed = page.get_by_text(picked["profile_cell"].info.run_name, exact=True)
            seen["profile_cell_listed"] = listed.count() > 0
        shot(page, out, "2-cells", seen)

        # 3. one cell expanded: its replicas listed under it
        name = page.get_by_text(cell_run.info.run_name, exact=True)
        row = page.locator(".ag-row").filter(has=name).first
        for _ in range(MORE_PAGES):  # the table loads 100 runs at a time, newest first
            if row.count():
                break
            page.get_by_role("button", name="Load more").first.click()
            page.wait_for_timeout(1500)
        row.scroll_into_view_if_needed()
        row.locator(EXPANDER).click()
        page.locator(f'a[href*="{replicas[0].info.run_id}"]').first.wait_for()
        listed = [r.info.run_id for r in replicas
                  if page.locator(f'a[href*="runs/{r.info.run_id}"]').count()]  # fmt: skip
        seen["replicas_listed"] = listed
        shot(page, out, "3-cell-replicas", seen)

        # 4. the cell run: its summary at the selected lr
        run_page(page, base, exp, cell_run.info.run_id)
        page.get_by_text("Selected lr").first.wait_for()
        close_assistant(page)
        body = page.inner_text("body")
        seen["cell_page"] = {
            "selected_lr_metric": "selected_lr" in body,
            "test_accuracy_metric": "final_test_accuracy_mean" in body,
            "parent_is_study": study in body,
        }
        shot(page, out, "4-cell-run", seen)

        # 5. a replica (at the cell's selected lr): description, tags, source, version, datasets
        replica = picked["replica"]
        seen["replica"] = replica.info.run_name
        run_page(page, base, exp, replica.info.run_id)
        page.get_by_text("About this run").wait_for()
        page.get_by_text("vanishing.role").first.wait_for()
        close_assistant(page)
        body = page.inner_text("body")
        commit = replica.data.tags.get("mlflow.source.git.commit", "")
        seen["replica_page"] = {
            "description": "gradient_profile.png" in body,
            "tags": {k: k in body for k in ("vanishing.role", "activation", "cell", "seed")},
            "source": "vanishing train" in body,
            "commit": bool(commit) and commit[:7] in body,
            "dataset": "digits_train" in body or "mnist1d_train" in body,
            "parent_is_cell": cell_run.info.run_name in body,
        }
        shot(page, out, "5-replica", seen)

        # 6. its gradient profile, log10 across the layers, as the artifact viewer shows it
        run_page(page, base, exp, replica.info.run_id, "artifacts")
        page.get_by_text("gradient_profile.png").first.click()
        page.get_by_text("Path:").first.wait_for()  # the preview pane of the selected file
        img = page.locator('img[src^="blob:"]').first  # the viewer shows the fetched file
        img.wait_for()
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
        close_assistant(page)
        seen["profile_image"] = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        shot(page, out, "6-replica-profile", seen)

        # 7. its metric charts: few sections, log10 where values span decades
        run_page(page, base, exp, replica.info.run_id, "model-metrics")
        page.get_by_text("log10_grad_preact_rms").first.wait_for()
        close_assistant(page)
        body = page.inner_text("body")
        seen["charts"] = sum(int(n) for n in re.findall(r"\n\((\d+)\)\nAdd chart", body))
        seen["chart_sections"] = re.findall(r"\n([\w/]+)\n\(\d+\)\nAdd chart", body)
        shot(page, out, "7-replica-charts", seen)

        # 8. a step-0 profile cell: one run, its seeds' profiles in one image and one table
        if (prof := picked["profile_cell"]) is not None:
            run_page(page, base, exp, prof.info.run_id, "artifacts")
            page.get_by_text("layer_gradients.csv").first.wait_for()
            page.get_by_text("gradient_profile.png").first.click()
            img = page.locator('img[src^="blob:"]').first
            img.wait_for()
            page.wait_for_function("i => i.complete && i.naturalWidth > 0",
                                   arg=img.element_handle())  # fmt: skip
            close_assistant(page)
            seen["profile_cell"] = {
                "name": prof.info.run_name,
                "child_runs": picked["children"][prof.info.run_id],
                "image": img.evaluate("i => [i.naturalWidth, i.naturalHeight]"),
                "table": "layer_gradients.csv" in page.inner_text("body"),
            }
            shot(page, out, "8-profile-cell", seen)
        browser.close()
    return seen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("."), help="the study's working directory")
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    p.add_argument("--cell", help="the cell to open (default: the deepest plain sigmoid cell)")
    a = p.parse_args()
    results = a.workdir / "results"
    tracking = json.loads((results / "tracking.json").read_text())
    uri = tracking["tracking_uri"]
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_absolute():
        uri = f"sqlite:///{(a.workdir / uri.removeprefix('sqlite:///')).resolve()}"
    if uri.startswith("http"):  # a tracking server serves its own UI
        seen = walk(uri.rstrip("/"), uri, tracking["study"], a.out, a.cell)
    else:
        port = free_port()
        proc = start_ui(uri, port, results / "mlflow-ui-screenshots.log")
        try:
            seen = walk(f"http://127.0.0.1:{port}", uri, tracking["study"], a.out, a.cell)
        finally:
            stop(proc)
    print(json.dumps(seen, indent=1))


if __name__ == "__main__":
    main()
