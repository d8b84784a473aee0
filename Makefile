# Two commands for a fresh clone: `make demo` and `make test`. Both are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt package.json package-lock.json
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; run 'make PYTHON=python3 ...' with Python 3.11+"; exit 2; }
	@command -v npm >/dev/null 2>&1 || { echo "make: npm not found; install Node.js 18+ (the queue tests run the Azurite emulator)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --silent
	touch $(STAMP)

demo: install
	$(PY) -m triage run --incident examples/otrf-psexec/incident.json --data examples/otrf-psexec/data --format table --now 2026-12-01T00:00:00Z

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
