# Every target sets itself up: a virtualenv in .venv with requirements-dev.txt installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 3000
PROVIDER ?=
export PYTHONPATH := layers/shared:local

.PHONY: setup test lint unit integration dev demo bench samples clean

# The requirements, then this project itself, editable and without deps, for .venv/bin/motionrelay.
$(STAMP): requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration

dev: $(STAMP)
	$(PY) -m motionrelay_local dev --port $(PORT)

demo: $(STAMP)
	$(PY) -m motionrelay_local demo $(if $(PROVIDER),--provider $(PROVIDER))

bench: $(STAMP)
	$(PY) bench/cold_start.py
	$(PY) bench/poller.py
	$(PY) bench/requests_per_job.py

samples: $(STAMP)
	$(PY) samples/make_samples.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .aws-sam *.egg-info
