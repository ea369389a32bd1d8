# splicevi: set-up, tests, demo. `make test` is what CI runs (.ci/run).
# Installs use the exact versions of constraints.txt (pyproject.toml holds ranges).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLBACKEND ?= Agg

.PHONY: install test test-fast lint demo workflow-test bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test,workflow]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

test: lint
	mkdir -p $(NUMBA_CACHE_DIR)
	$(VENV)/bin/pytest -q

# During development: every test but those marked slow (training to convergence, workflow runs).
test-fast: install
	mkdir -p $(NUMBA_CACHE_DIR)
	$(VENV)/bin/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .cache .pytest_cache results .snakemake

# The workflow on the embedded example (resources/example, config/example.yaml), 2 cores, then the HTML report.
demo: install
	mkdir -p $(NUMBA_CACHE_DIR)
	test -d resources/example/Solo.out || { echo "resources/example is missing (see resources/example/README.md)"; exit 1; }
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/snakemake --cores 2 --configfile config/example.yaml
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/snakemake --cores 2 --configfile config/example.yaml --report results/report.html
	@echo
	@echo "Done. Report:  results/report.html   (open it in a browser)"
	@echo "Tables:        results/ds/ds_junctions.tsv, results/ds/ds_events.tsv, results/de/de_genes.tsv"
	@echo "Data + model:  results/splicevi.h5mu (latents, UMAP, clusters), results/model/"

# Only the workflow tests (lint, dry run, config errors, runs on simulated and real data).
workflow-test: install
	mkdir -p $(NUMBA_CACHE_DIR)
	$(VENV)/bin/pytest -q tests/workflow/test_workflow.py
