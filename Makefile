# cannabis_market — every set-up step lives here so a fresh clone needs only Python 3.11-3.13 and pip.
SHELL := /bin/bash
# The interpreter: PYTHON if given, else the first of python3.13, python3.12, python3.11, python3 that runs
# and is a supported version (3.11.5 to 3.13, as requires-python in pyproject.toml). A command that exists
# but does not run (e.g. a pyenv shim for a version that is not active) is passed over.
PY_OK := import sys; sys.exit(not (3, 11, 5) <= sys.version_info[:3] < (3, 14))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3.13 python3.12 python3.11 python3; do \
  $$p -c '$(PY_OK)' >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
KERNEL := cannabis-market
DATASET := data/sample
STAMP := $(VENV)/.installed

.PHONY: help venv kernel data real-data report test lint format lab bench bench-env browser clean

help:  ## list targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python 3.11, 3.12 or 3.13 found (tried python3.13, python3.12, python3.11, python3); install one or run make PYTHON=/path/to/python3.x" >&2; exit 2; fi
	@$(PYTHON) -c '$(PY_OK)' 2>/dev/null || { echo "error: PYTHON=$(PYTHON) does not run or is not Python 3.11.5-3.13 ($$($(PYTHON) --version 2>&1 | head -1)); run make PYTHON=/path/to/python3.x" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (cannabis-market)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv, install pinned packages, register the Jupyter kernel

kernel: $(STAMP)  ## (re)register the cannabis-market Jupyter kernel
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (cannabis-market)"

$(DATASET)/manifest.yml: | $(STAMP)
	$(BIN)/cannabis-market data generate --out $(DATASET)

data: $(DATASET)/manifest.yml  ## generate the default synthetic dataset into data/sample (if missing)

# The public files shipped in data/public (see data/public/PROVENANCE.md); REAL=DIR imports another copy.
REAL ?= data/public
REAL_OUT ?= data/real

$(REAL_OUT)/statcan/manifest.yml: | $(STAMP)
	$(BIN)/cannabis-market data import-statcan $(REAL)/statcan_20100056_cannabis_retailers_monthly_by_province.csv --out $(REAL_OUT)/statcan
$(REAL_OUT)/washington/manifest.yml: | $(STAMP)
	$(BIN)/cannabis-market data import-washington $(REAL)/washington_lcb_retail_sales_by_license_monthly_2017-2021.xlsx --out $(REAL_OUT)/washington
$(REAL_OUT)/oregon/manifest.yml: | $(STAMP)
	$(BIN)/cannabis-market data import-oregon $(REAL)/oregon_olcc_monthly_sales_prices_2016-2021.xlsx --out $(REAL_OUT)/oregon

real-data: $(REAL_OUT)/statcan/manifest.yml $(REAL_OUT)/washington/manifest.yml $(REAL_OUT)/oregon/manifest.yml  ## import the public files in data/public into data/real (offline)

report: $(STAMP) data real-data  ## build every report into reports/ (index: reports/index.html)
	$(BIN)/cannabis-market report --jobs 2

browser:  ## install headless chromium for the browser test (Debian; skipped with a message elsewhere)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium not installed (needs root + apt-get); the browser test will be skipped"; fi; }

test: $(STAMP) browser  ## run the whole test suite
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)  ## apply ruff formatting
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

lab: $(STAMP) data  ## open JupyterLab on the cannabis-market kernel
	$(BIN)/jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Benchmark-only peers, never runtime dependencies: bsts-causalimpact (the `bench` extra) in .venv, and
# statsforecast in its own .venv-bench (it needs pandas < 3; pins in benchmarks/requirements-statsforecast.txt).
BENCH_VENV := .venv-bench
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[bench]'
	@touch $(BENCH_STAMP)

$(BENCH_VENV)/.installed: benchmarks/requirements-statsforecast.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r benchmarks/requirements-statsforecast.txt
	@touch $(BENCH_VENV)/.installed

bench-env: $(BENCH_STAMP) $(BENCH_VENV)/.installed  ## install the benchmark-only peers (bsts-causalimpact, statsforecast)

bench: bench-env data real-data  ## run benchmarks; results go to benchmarks/RESULTS.md
	$(PY) benchmarks/run.py

clean:  ## remove the venv, generated data and built reports
	rm -rf $(VENV) $(BENCH_VENV) $(DATASET) $(REAL_OUT) reports/*/ reports/index.html
