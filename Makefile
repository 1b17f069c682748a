# Hearthside: the two Quick start commands are `make run` and `make test`.
# Both create the virtual environment (.venv) from pyproject.toml pinned by constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
DATA   ?= data
BIN     = $(VENV)/bin

.PHONY: setup run test lint pg-binaries peers bench bench-federation bench-e2ee bench-tools clean-data regen-migration

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# Initialise an instance in $(DATA) on first use (SQLite, keys, admin account whose password
# is printed once), then serve it on http://127.0.0.1:8080.
run: setup
	@test -f $(DATA)/hearthside.toml || $(BIN)/hearthside init --data-dir $(DATA)
	$(BIN)/hearthside serve --config $(DATA)/hearthside.toml

# The tests start their own PostgreSQL server; this makes sure its binaries are installed.
pg-binaries:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL server binaries (Debian package postgresql)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Live peers for the federation tests: Fedify 2.3.6 on Node 22, both from the npm registry
# (research/interop-peers.md, "Fedify"). npm ci runs when node_modules is missing or older
# than the lock file.
PEER_FEDIFY = tests/peers/fedify

peers: $(PEER_FEDIFY)/node_modules/.installed

$(PEER_FEDIFY)/node_modules/.installed: $(PEER_FEDIFY)/package-lock.json $(PEER_FEDIFY)/package.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is needed to install the Fedify test peer"; exit 1; }
	cd $(PEER_FEDIFY) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: setup pg-binaries peers lint
	$(BIN)/pytest

# wrk (Debian package) drives the timeline with little CPU; the Python generator runs too.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q wrk; }

bench: setup pg-binaries bench-tools peers
	$(BIN)/python -m bench.api_bench
	$(BIN)/python -m bench.federation_bench
	$(BIN)/python -m bench.e2ee_bench
	$(BIN)/python -m bench.moderation_bench
	$(BIN)/python -m bench.crisis_bench
	$(BIN)/python -m bench.dm_store_bench

# Federation (issue 3): inbox ingest and group fan-out, against a bare aiohttp handler and the
# Fedify peer (bench/federation_bench.py). Wrap in `flock /tmp/bench.lock` when others benchmark too.
bench-federation: setup pg-binaries bench-tools peers
	$(BIN)/python -m bench.federation_bench

# E2EE (issue 4): client encrypt+decrypt and session setups against raw vodozemac, and the
# server's send path (bench/e2ee_bench.py). Wrap in `flock /tmp/bench.lock` when others benchmark too.
bench-e2ee: setup
	$(BIN)/python -m bench.e2ee_bench

clean-data:
	rm -rf $(DATA)

# Until the first release, the schema is one migration regenerated from the models.
# One shell for the whole recipe, so the scratch database made and removed is the same file.
regen-migration: setup
	db=$$(mktemp /tmp/hearthside-regen-XXXXXX.sqlite3) && rm -f "$$db" server/migrations/versions/0001_*.py && \
	$(BIN)/python -c "import sys; from alembic import command; from server.migrate import alembic_config; \
	  command.revision(alembic_config('sqlite+aiosqlite:///' + sys.argv[1]), \
	  message='initial schema', autogenerate=True, rev_id='0001')" "$$db"; status=$$?; rm -f "$$db"; \
	test $$status = 0
	$(BIN)/ruff check -q --fix server/migrations/versions/ || true
	$(BIN)/ruff format -q server/migrations/versions/
