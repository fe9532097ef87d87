# Two commands on a fresh machine with Python 3.11 and pip:
#   make demo   set up .venv and run the whole pipeline on the embedded demo data
#   make test   set up .venv with the dev extras, check the import layers (lint-imports), run the test suite
# and, for the edit loop, `make test-fast`: the tests not marked slow, stopping at the first failure.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/imgclf demo

test: install-dev
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check --quiet src tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install-dev
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" -x

clean:
	rm -rf $(VENV) data test-artifacts
