# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv and install requirements.txt first when needed; `make test` adds requirements-test.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install run test test-fast lint

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# Test-only packages (requirements-test.txt) on top: what the tests start, never what the platform needs.
$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

run: install
	$(PY) platform/launch.py --study smoke

# The whole suite, what CI runs, on two pytest-xdist workers (tests/scheduling.py says which tests share one);
# pytest ends with the 25 slowest tests and the total time.
test: install $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --durations=25

# The inner loop for day-to-day work: the tests not marked slow (CI runs them all, with `make test`).
test-fast: install $(TEST_STAMP)
	$(PY) -m pytest -n 2 -m "not slow" --durations=10

lint: install
	$(PY) -m ruff check .
