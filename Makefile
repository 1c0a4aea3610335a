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
# every other package: the versions pinned in constraints.txt (make constraints regenerates it)
CONSTRAINTS := constraints.txt
STAMP    := $(VENV)/.galton-installed
LS_STAMP := $(LS_VENV)/.installed

.PHONY: venv test lint unit bench demo clean audit constraints

venv: $(STAMP) $(LS_STAMP)

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip uv
	# torch first, with pip and pinned: uv resolving the torch extra alone would pull a CUDA build
	$(PIP) install --quiet $(TORCH)
	$(UV) pip install --quiet --python $(BIN)/python -c $(CONSTRAINTS) -e '.[dev,bench,labelstudio,backend,torch,dynamics]'
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

# known vulnerabilities in .venv (pip-audit; allow-list with reasons in .ci/audit-allow.txt).
# Needs the vulnerability service: unreachable -> a notice, not a failure
audit: venv
	$(BIN)/python .ci/audit.py

# re-pin after changing dependencies: every package of .venv but galton, local build tags dropped
constraints: venv
	( sed -n '1,3p' $(CONSTRAINTS); $(UV) pip freeze --python $(BIN)/python --exclude-editable \
	  | grep -v -i '^galton' | sed -E 's/^([A-Za-z0-9_.-]+==[^+ ]+)\+[A-Za-z0-9.]+/\1/' ) > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

demo: venv
	$(BIN)/python -m galton.backend.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache .ruff_cache .hypothesis
