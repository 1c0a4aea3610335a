# galton: two commands on a fresh machine:  make demo  and  make test
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
PIP      := $(BIN)/python -m pip
UV       := $(BIN)/uv
# Label Studio runs from its own environment: its pinned dependencies never mix with galton's
LS_VENV  := .venv-ls
LS_PIN   := label-studio==1.23.2
# torch: exactly this CPU build (it lies on this machine's disk; an unpinned torch pulls a GPU build)
TORCH    := torch==2.13.0
STAMP    := $(VENV)/.galton-installed
LS_STAMP := $(LS_VENV)/.installed

.PHONY: venv test lint unit bench demo clean

venv: $(STAMP) $(LS_STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip uv
	# torch first, with pip and pinned: uv resolving the torch extra alone would pull a CUDA build
	$(PIP) install --quiet $(TORCH)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev,bench,labelstudio,backend,torch,dynamics]'
	touch $(STAMP)

$(LS_STAMP): Makefile $(STAMP)
	test -x $(LS_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(LS_VENV)
	$(UV) pip install --quiet --python $(LS_VENV)/bin/python --compile-bytecode $(LS_PIN)
	touch $(LS_STAMP)

lint: venv
	$(BIN)/ruff check quality connectors backend tests benchmarks
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -q -n 2 --dist loadgroup -m "not slow"

test: lint
	$(BIN)/pytest -q -n 2 --dist loadgroup

bench: venv
	$(BIN)/python benchmarks/aggregation.py

demo: venv
	$(BIN)/python -m galton.backend.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache .ruff_cache .hypothesis
