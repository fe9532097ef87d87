# Two commands on a fresh machine with Python 3.11 and pip:
#   make demo   set up .venv and run the whole pipeline on the embedded demo data
#   make test   set up .venv with the dev and ray extras, check the import layers (lint-imports), run the test suite
# Both install the exact versions of constraints.txt (those the test suite passed with);
#   make lock   refreshes it: the newest versions pyproject.toml allows, in a fresh venv (then run make test)
# and, for the edit loop, `make test-fast`: the tests not marked slow, stopping at the first failure.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := constraints.txt
PIP_LOCKED = $(BIN)/pip install --quiet -c $(LOCK)

.PHONY: demo test test-fast install install-dev lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	@echo "installing the locked versions of $(LOCK) ($$(grep -c '==' $(LOCK)) pins; refresh them with make lock)"
	$(PIP_LOCKED) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK) | $(BIN)/python
	@echo "installing the locked versions of $(LOCK) ($$(grep -c '==' $(LOCK)) pins; refresh them with make lock)"
	$(PIP_LOCKED) -e '.[dev,ray]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/imgclf demo

# PYTHONDONTWRITEBYTECODE emptied: the hundred Python processes a test run starts (commands, servers, Ray
# workers) then load imgclf's compiled modules instead of compiling them again, and pytest its rewritten tests.
PYTEST = PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile

test: install-dev
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check --quiet src tests benchmarks
	$(PYTEST)

test-fast: install-dev
	$(PYTEST) -m "not slow" -x

# The newest versions pyproject.toml allows, installed in a fresh venv, become the new $(LOCK);
# `make test` then installs and tests them (commit $(LOCK) when it passes).
lock:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet --upgrade pip
	$(VENV)-lock/bin/pip install --quiet -e '.[dev,ray]'
	{ echo "# Exact versions of every package the test suite passed with (pip freeze, imgclf excluded)."; \
	  echo "# make demo / make test install them (pip install -c $(LOCK)); make lock refreshes them."; \
	  $(VENV)-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip=='; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf $(VENV)-lock
	@echo "$(LOCK): $$(grep -c '==' $(LOCK)) pins; now run make test, and commit $(LOCK) when it passes"

clean:
	rm -rf $(VENV) data test-artifacts
