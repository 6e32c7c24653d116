# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration bench soak clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kpi dev

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy schemas processors projections streams tests
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/integration tests/devtools

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy schemas processors projections streams tests

bench: $(STAMP)
	$(BIN)/kpi bench

soak: $(STAMP)
	$(BIN)/kpi soak --minutes 30 --rate 200 --employees 2000 --csv soak.csv --json soak.json

clean:
	rm -rf $(VENV) .kpi .mypy_cache .ruff_cache .pytest_cache .hypothesis
