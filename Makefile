# One-command set-up: `make study` runs the default study, `make test` the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := --disable-pip-version-check --no-input -q

.PHONY: study test test-fast lint report ui mlflow-server dry-run clean-results

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip==26.3

# The environment, with the test, SLURM and tracking-server extras; rebuilt when the pins change.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/activate
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements.lock torch==2.13.0
	$(BIN)/python -m pip install $(PIP_FLAGS) -c requirements.lock -e '.[test,slurm,server]'
	touch $@

# make study CONFIG=my.yaml DIR=studies/my: another config, in its own working directory. After a
# crash (kill -9, power loss) the same command continues; a second one in the same DIR refuses.
CONFIG ?=
DIR ?= .
study: $(VENV)/.installed
	$(BIN)/vanishing study --directory $(DIR) $(if $(CONFIG),--configfile $(CONFIG))

dry-run: $(VENV)/.installed
	$(BIN)/snakemake -n

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -ra

# Unit tests only (no Snakefile runs, no SLURM, no servers): under a minute.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -ra -m "not e2e and not slurm"

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/python -m pytest -q tests/test_lint.py -k snakemake_lint  # one lint accepted: see there

report: $(VENV)/.installed
	$(BIN)/snakemake --report results/report.html

# The MLflow UI over the study's embedded store, on http://127.0.0.1:5000
ui: $(VENV)/.installed
	$(BIN)/mlflow ui --backend-store-uri sqlite:///results/mlflow.db --host 127.0.0.1 --port 5000

# A tracking server for several jobs or nodes (see README) with MLflow's authentication: set
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
