# The two commands a new user needs: `make demo` and `make test`.
# Each creates .venv (Python 3.11 unless PYTHON says otherwise; 3.11-3.13 work) and installs what it needs.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kd_rl-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0
# Material for MkDocs prints a notice about MkDocs 2 on every build; this silences it.
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: demo test install lint format docs dist clean

# TF-Agents 0.19 (the last release) and gym 0.23 are installed with --no-deps: their metadata
# pins packages that no longer install beside TensorFlow 2.21. kd_rl[teachers] brings what
# they need at run time.
$(STAMP): requirements.txt setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11, 3.12 or 3.13, or pass PYTHON=/path/to/python3.x" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet -c requirements.txt -e ".[teachers,dev]"
	$(BIN)/python -m pip install --quiet --no-deps tf-agents==0.19.0 gym==0.23.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/kd-rl demo

test: $(STAMP)
	$(BIN)/ruff check kd_rl tests benchmarks scripts
	$(BIN)/python -m pytest -q --timeout 900
	KD_RL_FAST=1 $(BIN)/python -m pytest -q --timeout 900 --nbmake notebooks
	site="$$(mktemp -d)/site" && $(BIN)/mkdocs build --strict --quiet --site-dir "$$site" && \
		$(BIN)/python scripts/docs_browser_check.py --site-dir "$$site"

# The docs site in site/ (open it from any file server, offline), checked in headless Chromium.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet --site-dir site
	$(BIN)/python scripts/docs_browser_check.py --site-dir site

# A wheel of kd_rl, dist/kd_rl-<version>-py3-none-any.whl, for a runtime without the repository:
# upload it beside a notebook (on Colab: the Files panel) and the notebook's first cell installs it.
dist: $(STAMP)
	rm -rf dist build
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	@ls dist/*.whl

lint: $(STAMP)
	$(BIN)/ruff check kd_rl tests benchmarks scripts
	$(BIN)/ruff format --check kd_rl tests benchmarks scripts

format: $(STAMP)
	$(BIN)/ruff format kd_rl tests benchmarks scripts
	$(BIN)/ruff check --fix kd_rl tests benchmarks scripts

clean:
	rm -rf .venv .venv-* runs site build dist *.egg-info
