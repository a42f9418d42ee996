# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: help run test lint lint-deploy typecheck docs settings-page pytest pytest-mongomock schemathesis test-mongo bench bench-janus format openapi clean
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 24

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "teleconsult needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(INSTALLED)  ## serve on http://127.0.0.1:3000 (SQLite, webrtc video, static identity)
	$(BIN)/teleconsult serve

test: lint typecheck lint-deploy docs schemathesis pytest-mongomock pytest  ## everything CI runs (pytest last: its summary closes the run)

lint: $(INSTALLED)  ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The deploy linters (pyproject's deploy-lint extra) live in a virtualenv of their own: checkov
# pins dozens of packages (packaging among them) that would shift under the test suite's.
LINT_VENV := $(VENV)/deploy-lint
LINT_BIN := $(LINT_VENV)/bin
LINT_INSTALLED := $(LINT_VENV)/.installed
RENDERED := build/kubernetes.yaml

$(LINT_INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_BIN)/python -m pip install --quiet --upgrade pip
	$(LINT_BIN)/python -m pip install --quiet -e '.[deploy-lint]'
	@touch $@

lint-deploy: $(INSTALLED) $(LINT_INSTALLED)  ## kubernetes-validate --strict, checkov and hadolint on deploy/
	@mkdir -p $(dir $(RENDERED))
	$(BIN)/python tests/render_kustomization.py deploy/kubernetes > $(RENDERED)
	$(LINT_BIN)/kubernetes-validate --strict --quiet $(RENDERED)
	$(LINT_BIN)/checkov --config-file deploy/checkov.yaml --file $(RENDERED) --file deploy/Dockerfile
	$(LINT_BIN)/hadolint deploy/Dockerfile

typecheck: $(INSTALLED)  ## mypy --strict
	$(BIN)/mypy

# The documentation site (mkdocs.yml): --strict, so a broken link or anchor, a missing page or
# a page left out of the nav fails the build. The settings page's table is generated from the
# declarations by `make settings-page` (tests/test_docs.py checks it is current).
docs: $(INSTALLED)  ## the documentation site, built from docs/ with mkdocs --strict into build/site
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

settings-page: $(INSTALLED)  ## write the settings' table of docs/settings.md from the declarations
	@mkdir -p build
	sed '/^<!-- settings table: begin/q' docs/settings.md > build/settings.md
	$(BIN)/teleconsult settings --markdown >> build/settings.md
	echo >> build/settings.md
	sed -n '/^<!-- settings table: end/,$$p' docs/settings.md >> build/settings.md
	mv build/settings.md docs/settings.md

# The browser tests drive Debian's chromium (never a browser downloaded by Playwright).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update && apt-get install -y chromium || \
		{ echo "the browser tests need Debian's chromium: apt-get install -y chromium, as root"; exit 1; }

# The TURN tests run Debian's coturn (tests/turn.py starts `turnserver` on loopback, and in
# network namespaces made with iproute2's `ip netns`; both as root, as CI runs).
TURNSERVER := /usr/bin/turnserver
$(TURNSERVER):
	apt-get update && apt-get install -y --no-install-recommends coturn iproute2 openssl || \
		{ echo "the TURN tests need Debian's coturn: apt-get install -y coturn, as root"; exit 1; }

# The `janus` provider's tests run a real Janus (Debian's, with janus.js from libjs-janus-gateway)
# in a network namespace they make (tests/janus_server.py): root and iproute2 are needed.
JANUS := /usr/bin/janus
JANUS_JS := /usr/share/javascript/janus-gateway/janus.js
$(JANUS) $(JANUS_JS):
	apt-get update && apt-get install -y janus libjs-janus-gateway iproute2 || \
		{ echo "the janus tests need Debian's janus and libjs-janus-gateway: apt-get install -y janus libjs-janus-gateway, as root"; exit 1; }

# The OpenAPI linter, Redocly CLI from the npm registry: the version tests/redocly pins (its
# lock file), installed by npm ci into a folder of the virtualenv, never globally.
REDOCLY_DIR := $(VENV)/redocly
REDOCLY_INSTALLED := $(REDOCLY_DIR)/.installed

# npm ci of the lock file in folder $(2) into $(3), for $(1); npm from Debian when missing.
define npm_ci
	@command -v npm >/dev/null || { apt-get update && apt-get install -y nodejs npm; } || \
		{ echo "$(1) needs Node.js 20.19+ and npm: apt-get install -y nodejs npm"; exit 1; }
	@mkdir -p $(3)
	cp $(2)/package.json $(2)/package-lock.json $(3)/
	npm ci --prefix $(3) --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@
endef

$(REDOCLY_INSTALLED): tests/redocly/package.json tests/redocly/package-lock.json
	$(call npm_ci,the OpenAPI lint,tests/redocly,$(REDOCLY_DIR))

# The accessibility checker the browser tests inject into the call page, axe-core from the npm
# registry: the version tests/axe pins (its lock file), installed by npm ci like Redocly.
AXE_DIR := $(VENV)/axe
AXE_INSTALLED := $(AXE_DIR)/.installed

$(AXE_INSTALLED): tests/axe/package.json tests/axe/package-lock.json
	$(call npm_ci,the accessibility check,tests/axe,$(AXE_DIR))

pytest: $(INSTALLED) $(CHROMIUM) $(TURNSERVER) $(JANUS) $(JANUS_JS) $(REDOCLY_INSTALLED) $(AXE_INSTALLED)  ## the whole suite on SQLite
	$(BIN)/pytest

pytest-mongomock: $(INSTALLED) $(CHROMIUM) $(TURNSERVER) $(JANUS) $(JANUS_JS) $(REDOCLY_INSTALLED) $(AXE_INSTALLED)  ## the tests that take a store, again on the MongoDB store (mongomock); the others and the browser tests run once, in `make pytest`
	TEST_STORE=mongomock $(BIN)/pytest -q -m "not browser"

schemathesis: $(INSTALLED)  ## property-based tests of the served API against its OpenAPI document
	$(BIN)/python tests/contract_check.py

bench-janus: $(INSTALLED) $(CHROMIUM) $(JANUS)  ## CPU and memory of Janus and the service for a call of 2, 4 and 8 (as root)
	$(BIN)/python bench/janus.py

bench: $(INSTALLED)  ## benchmarks: bench/results/*.json and the table in docs/performance.md
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/run.py

MONGO_URL ?= mongodb://127.0.0.1:27017
test-mongo: $(INSTALLED)  ## the store contract and the API suite on a real MongoDB (needs Docker)
	docker compose -f deploy/docker-compose.yml up -d --wait mongo
	TEST_MONGODB_URL=$(MONGO_URL) $(BIN)/pytest -q tests/store_contract
	TEST_MONGODB_URL=$(MONGO_URL) TEST_STORE=mongodb $(BIN)/pytest -q

openapi: $(INSTALLED)  ## regenerate openapi/openapi.json from the code
	$(BIN)/teleconsult openapi --output openapi/openapi.json

format: $(INSTALLED)  ## ruff format and ruff check --fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove the virtualenv, caches and the local database
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .schemathesis .hypothesis teleconsult.db*
