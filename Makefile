# Every target sets itself up: a virtualenv in .venv with requirements-dev.txt installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov pins its own boto3 (and more), which clash with requirements-dev.txt: it gets a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
PORT ?= 3000
# pytest-xdist workers; --dist loadscope keeps a module (and its one local stack) on one worker.
WORKERS ?= auto
PYTEST := $(PY) -m pytest -n $(WORKERS) --dist loadscope
PROVIDER ?=
export PYTHONPATH := layers/shared:local

.PHONY: setup test coverage browser lint unit integration dev demo bench samples clean

# The requirements, then this project itself, editable and without deps, for .venv/bin/motionrelay.
$(STAMP): requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

# checkov offline: no platform API key, no downloads, no update check; any failed check fails
# the lint (a deliberate exception is a `Metadata: checkov: skip:` entry, with its reason, on
# the resource in template.yaml).
lint: $(STAMP) $(CHECKOV_STAMP)
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	env -u BC_API_KEY -u PRISMA_API_URL CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
		$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation \
		--skip-download --quiet --compact

# The console's browser test drives Debian's Chromium (never a browser Playwright downloads):
# installed here when missing and this is a Debian machine we may install on (CI runs as root).
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "no $(CHROMIUM) and no root apt-get to install it: the browser test will skip"; fi

test: lint browser
	$(PYTEST)

coverage: $(STAMP)
	$(PYTEST) --cov=motionrelay --cov=motionrelay_local --cov=motionrelay_cli --cov-report=term:skip-covered tests/unit tests/contract

unit: $(STAMP)
	$(PYTEST) tests/unit tests/contract

integration: $(STAMP)
	$(PYTEST) tests/integration

dev: $(STAMP)
	$(PY) -m motionrelay_local dev --port $(PORT)

demo: $(STAMP)
	$(PY) -m motionrelay_local demo $(if $(PROVIDER),--provider $(PROVIDER))

# One benchmark after the other (never alongside tests: they compare ratios measured in one
# run on a shared machine); everything is also kept in out/bench.log.
BENCHES := cold_start poller transfer latency requests_per_job
bench: SHELL := /bin/bash
bench: .SHELLFLAGS := -o pipefail -c
bench: $(STAMP)
	mkdir -p out
	{ for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done; } 2>&1 | tee out/bench.log

samples: $(STAMP)
	$(PY) samples/make_samples.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) out .pytest_cache .ruff_cache .aws-sam *.egg-info
