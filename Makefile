# The two commands a new user needs: `make demo` and `make test`.
# Each creates .venv with Python 3.11 (TF-Agents 0.19 supports 3.9-3.11) and installs what it needs.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kd_rl-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: demo test install lint format docs clean

$(STAMP): requirements.txt setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 (TF-Agents 0.19 does not support 3.12+)" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet -c requirements.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/kd-rl demo

test: $(STAMP)
	$(BIN)/ruff check kd_rl tests benchmarks
	$(BIN)/python -m pytest -q --timeout 900
	KD_RL_FAST=1 $(BIN)/python -m pytest -q --timeout 900 --nbmake notebooks
	$(BIN)/mkdocs build --strict --quiet --site-dir "$$(mktemp -d)/site"

lint: $(STAMP)
	$(BIN)/ruff check kd_rl tests benchmarks
	$(BIN)/ruff format --check kd_rl tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format kd_rl tests benchmarks
	$(BIN)/ruff check --fix kd_rl tests benchmarks

clean:
	rm -rf $(VENV) runs site build *.egg-info
