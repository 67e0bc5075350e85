# Two commands matter: `make run` (the whole stack + a demo contest) and `make test`.
# Each creates the venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint up clean chaos

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cchc demo

up: $(STAMP)
	$(BIN)/cchc up

PACKAGES := contest eventstore ingest scorer projections ops loadtests

test: lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES)

clean:
	rm -rf $(VENV) .cchc

# Kill -9 scorers, Valkey, PostgreSQL and an ingest process under load; reconcile every ack.
chaos: $(STAMP)
	$(BIN)/python -m loadtests.chaos
