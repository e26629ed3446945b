# One task runner: `make demo`, `make test`, `make check`, `make fmt`.
# Each target creates .venv and installs the package with its dev extras first
# (again whenever pyproject.toml changes), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.custsync-installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test check fmt bench
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/custsync demo

# Lint and types, fast tests in two processes, then the ones that start real Celery/engine processes.
test: $(STAMP)
	$(VENV)/bin/ruff check worker connectors state sandbox
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not slow" -n 2 -q
	$(PY) -m pytest -m slow -q

check: $(STAMP)
	$(VENV)/bin/ruff check worker connectors state sandbox
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format worker connectors state sandbox tests bench

bench: $(STAMP)
	$(PY) -m bench.run
