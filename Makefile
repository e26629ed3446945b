# One task runner: `make demo`, `make test`, `make check`, `make fmt`.
# Each target creates .venv and installs the package with its dev and sandbox extras first
# (again whenever pyproject.toml changes), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.custsync-installed
# Everything that is linted, formatted and type-checked (mypy's list is `files` in pyproject.toml).
CODE := worker connectors state sandbox tests bench scripts
# Modules held to 100 % line coverage by the fast suite (a pattern that matches no file yet is skipped).
FULL_COVERAGE := worker/diff.py,worker/engine/plan.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sandbox]'
	touch $(STAMP)

.PHONY: install demo test check lint fast slow coverage fmt bench
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/custsync demo

# Lint, format, types and layering; then the fast tests in two processes under coverage (90 % overall,
# 100 % on FULL_COVERAGE), while the slow ones (real Celery, kill and CLI processes: mostly waiting
# on them) run in two processes beside them.
# Each suite's output is printed whole when it ends (--output-sync), so the two never interleave.
test: $(STAMP) lint
	$(MAKE) --no-print-directory --output-sync=target -j 2 fast slow

check: $(STAMP) lint

lint: $(STAMP)
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 -q --durations=10 --cov --cov-report= --cov-fail-under=90
	$(VENV)/bin/coverage report --include='$(FULL_COVERAGE)' --show-missing --fail-under=100

slow: $(STAMP)
	$(PY) -m pytest -m slow -n 2 -q --durations=10 -p no:cacheprovider

coverage: $(STAMP)
	$(VENV)/bin/coverage report --include='$(FULL_COVERAGE)' --show-missing --fail-under=100

fmt: $(STAMP)
	$(VENV)/bin/ruff format $(CODE)

bench: $(STAMP)
	$(PY) -m bench.run
