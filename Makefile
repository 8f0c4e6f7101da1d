# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv and install requirements.txt first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

DATA := runs/data

run: install
	$(PY) -m trials.data synthesize --layout market1501 --out $(DATA) --ids 40 --seed 0 --domain A
	$(PY) -m trials.data summary --dataset market1501 --data-dir $(DATA)
	$(PY) -m trials.evaluate --dataset market1501 --data-dir $(DATA) --height 64
	$(PY) -m trials.retrain --scale smoke --dataset market1501 --data-dir $(DATA)

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
