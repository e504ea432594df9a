# The two commands: `make sim` (the main job) and `make test` (the test suite). Each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?= -n 2
SIM_ARGS ?=
TRAIN_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all sim test train tools venv clean help

help:
	@echo "make sim    - the main job: golden model over the FSDD test split (RTL joins in issue #4)"
	@echo "make test   - the test suite (what CI runs)"
	@echo "make train  - retrain the shipped models from scratch (seeded; writes models/ and build/report/train.json)"
	@echo "make venv   - only create .venv and install the project"
	@echo "make clean  - remove build/ and .venv/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

tools:
	@scripts/ensure_tools.sh iverilog

sim: $(STAMP) tools
	$(BIN)/rsnn sim $(SIM_ARGS)

test: $(STAMP) tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

train: $(STAMP)
	$(BIN)/rsnn train $(TRAIN_ARGS)

clean:
	rm -rf build $(VENV)
