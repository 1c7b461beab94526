# The two commands first: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt

.PHONY: run test lint services services-stop install install-dev clean

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[dev]"
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Start the whole product on the embedded default (worker + web) on $$PORT (8000).
run: $(VENV)/.installed
	@bin/run-local

## Lint and run every test; uses the services from `make services` when they are running.
test: $(VENV)/.installed-dev
	@bin/run-tests

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## Install (from packages) and start PostgreSQL, an S3-compatible server and Druid on loopback.
services: $(VENV)/.installed-dev
	@bin/services start

services-stop:
	@bin/services stop

clean:
	rm -rf $(VENV) var/staticfiles var/cache
