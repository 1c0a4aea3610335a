# galton: two commands on a fresh machine:  make demo  and  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# torch: exactly this CPU build (it lies on this machine's disk; an unpinned torch pulls a GPU build)
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.galton-installed

.PHONY: venv test lint unit bench demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev,bench]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check quality connectors backend tests benchmarks
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -q -n 2 -m "not slow"

test: lint
	$(BIN)/pytest -q -n 2

bench: venv
	$(BIN)/python benchmarks/aggregation.py

demo: venv
	$(BIN)/python -m galton.backend.demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
