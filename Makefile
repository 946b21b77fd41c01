# Portal — `make run` serves the demo, `make test` runs the whole suite. Both install everything first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Debian packages the tests and the demo use: PostgreSQL (throwaway test clusters), Chromium (browser tests),
# poppler (PDF checks), xmlsec1 (SAML signatures), wrk (benchmarks).
APT_PACKAGES := postgresql chromium poppler-utils xmlsec1 wrk fonts-dejavu-core redis-server caddy dnsmasq
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-sqlite test-postgres install system-deps lint bench messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

run: install
	@mkdir -p var
	$(BIN)/portal migrate
	$(BIN)/portal tenants apply tenants/ --seed-demo
	@echo
	@echo "  Portal is starting on port $(PORT). Two demo portals, two brands:"
	@echo "    Acme Cloud     http://acme.localhost:$(PORT)/      (or: curl -H 'Host: portal.acme.test' http://127.0.0.1:$(PORT)/login)"
	@echo "    Globex Portal  http://globex.localhost:$(PORT)/    (or: curl -H 'Host: portal.globex.test' http://127.0.0.1:$(PORT)/login)"
	@echo "  Sign in as owner@acme.example or owner@globex.example, password: portal-demo"
	@echo "  (also admin@, billing@, member@, viewer@ of each). Mail the portal sends: /_dev/mail on each host."
	@echo
	PORTAL_PUBLIC_PORT=$(PORT) PORT=$(PORT) $(BIN)/portal serve --port $(PORT)

# One rerun absorbs the rare timing flake of a browser or server test; reruns show up in the summary ("N rerun").
RERUN := --reruns 1 --reruns-delay 1

test: install system-deps
	$(BIN)/ruff check core plugins tests bench
	$(BIN)/pytest --portal-db=sqlite $(RERUN)
	$(BIN)/pytest --portal-db=postgres $(RERUN)

test-sqlite: install
	$(BIN)/pytest --portal-db=sqlite

test-postgres: install system-deps
	$(BIN)/pytest --portal-db=postgres

lint: install
	$(BIN)/ruff check core plugins tests bench

bench: install system-deps
	$(BIN)/python bench/run.py

messages: install
	$(BIN)/pybabel extract -F babel.cfg -o core/locale/messages.pot .

clean:
	rm -rf $(VENV) var/portal.db* test-artifacts
