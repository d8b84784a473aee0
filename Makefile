# Two commands for a fresh clone: `make demo` and `make test`. Both are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The tests also need Azurite (npm) for the storage queue, and checkov in a venv of its
# own (its pins would downgrade packages the product uses).
AZURITE := node_modules/.installed
CHECKOV := .venv-checkov/.installed

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; run 'make PYTHON=python3 ...' with Python 3.11+"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet -e '.[dev]'
	touch $(STAMP)

$(AZURITE): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make: npm not found; install Node.js 18+ (the queue tests run the Azurite emulator)"; exit 2; }
	npm ci --no-audit --no-fund --silent
	touch $(AZURITE)

$(CHECKOV):
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --quiet checkov==3.3.30
	touch $(CHECKOV)

demo: install
	$(PY) -m triage run --incident examples/otrf-psexec/incident.json --data examples/otrf-psexec/data --format table --now 2026-12-01T00:00:00Z

test: install $(AZURITE) $(CHECKOV)
	$(VENV)/bin/ruff check --quiet triage tests benchmarks function_app.py
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .venv-checkov node_modules .pytest_cache
