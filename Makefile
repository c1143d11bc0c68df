# One-command set-up: `make study` runs the default study, `make test` the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := --disable-pip-version-check --no-input -q

.PHONY: study test test-fast lint report ui screenshots docs-figures status mlflow-server dry-run clean-results

# Debian's Chromium, which the browser test and `make screenshots` drive through Playwright's Python
# package (pinned in the test extra). Never `playwright install`: it downloads a browser build.
CHROMIUM := /usr/bin/chromium

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip==26.3

# The environment, with the test, SLURM and tracking-server extras; rebuilt when the pins change.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/activate
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements.lock torch==2.13.0
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements.lock -e '.[test,slurm,server]'
	touch $@

$(CHROMIUM):
	apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

# make study CONFIG=my.yaml DIR=studies/my: another config, in its own working directory. After a
# crash (kill -9, power loss) the same command continues; a second one in the same DIR refuses.
# RETRAIN=<cell>[,<cell>...] (folder names in results/runs/, or `stale`) trains those cells again
# and rebuilds what depends on them. Then the report (attached to the study's MLflow run).
CONFIG ?=
DIR ?= .
RETRAIN ?=
SNAKE_ARGS = -d $(DIR) $(if $(CONFIG),--configfile $(CONFIG))
study: $(VENV)/.installed
	$(BIN)/vanishing study --directory $(DIR) $(if $(CONFIG),--configfile $(CONFIG)) \
	  $(if $(RETRAIN),--retrain $(RETRAIN))
	$(MAKE) --no-print-directory report

dry-run: $(VENV)/.installed
	$(BIN)/snakemake -n

test: $(VENV)/.installed $(CHROMIUM)
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadgroup

# Unit tests only (no Snakefile runs, no SLURM, no servers): about 330 CPU-s, one process.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -ra -m "not e2e and not slurm"

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/python -m pytest -q tests/test_lint.py -k snakemake_lint  # one lint accepted: see there

# results/report.html, opening on the findings, also attached to the study's parent run in MLflow.
report: $(VENV)/.installed
	$(BIN)/snakemake $(SNAKE_ARGS) --report $(abspath $(DIR))/results/report.html \
	  --report-stylesheet $(CURDIR)/workflow/report/report.css
	cd $(DIR) && $(abspath $(BIN))/vanishing attach-report --tracking results/tracking.json \
	  --report results/report.html  # the store's path in tracking.json is the study directory's

# The MLflow UI over the study's embedded store, on http://127.0.0.1:5000. MLflow 3.17 opens an
# experiment on its GenAI overview unless the sidebar's switch says "Model training" or the address
# carries workflowType=machine_learning: the address printed here opens the study on its runs.
ui: $(VENV)/.installed
	@$(BIN)/python -c "import json; t = json.load(open('results/tracking.json')); print( \
	  f'Open http://127.0.0.1:5000/#/experiments/{t[\"experiment_id\"]}?workflowType=machine_learning')" \
	  2>/dev/null || echo "Open http://127.0.0.1:5000 (no results/tracking.json yet)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
	  $(BIN)/mlflow ui --backend-store-uri sqlite:///results/mlflow.db --host 127.0.0.1 --port 5000

# Screenshots of the study's MLflow UI, as a user browses it, into docs/screenshots/ (docs/browsing.md,
# "Browsing results"): starts its own `mlflow ui` on a free port and drives Chromium.
screenshots: $(VENV)/.installed $(CHROMIUM)
	$(BIN)/python scripts/screenshots.py --workdir $(DIR) --out docs/screenshots

# The key figures of a finished study, for the README, into docs/figures/.
KEY_FIGURES ?= decay_shapes update_ledger activations_matched bn_flow residual_deep
docs-figures:
	mkdir -p docs/figures
	for f in $(KEY_FIGURES); do cp $(DIR)/results/figures/$$f.png docs/figures/ || exit 1; done

# The study's progress from the files on disk, every 10 s until it is done (also on SLURM).
status: $(VENV)/.installed
	$(BIN)/vanishing status --watch 10 --directory $(DIR)

# A tracking server for several jobs or nodes (see docs/clusters.md) with MLflow's authentication: set
# MLFLOW_AUTH_ADMIN_USERNAME and MLFLOW_AUTH_ADMIN_PASSWORD first (there is no default password).
# SQLite on local disk in SERVER_DIR (with the users database), artifacts in SERVER_DIR/mlartifacts.
# HOST=0.0.0.0 ALLOWED_HOSTS=node1,node2 to serve a cluster; MLFLOW_ARGS="--workers 1" and the
# like go to `mlflow server`.
HOST ?= 127.0.0.1
PORT ?= 5000
ALLOWED_HOSTS ?= localhost,127.0.0.1
SERVER_DIR ?= results
MLFLOW_ARGS ?=
mlflow-server: $(VENV)/.installed
	$(BIN)/vanishing mlflow-server --store $(SERVER_DIR) --host $(HOST) --port $(PORT) \
	  --allowed-hosts $(ALLOWED_HOSTS) $(if $(MLFLOW_ARGS),-- $(MLFLOW_ARGS))

clean-results:
	rm -rf results/* .snakemake
	touch results/.gitkeep
