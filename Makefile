# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/steadymail: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/steadymail  ## set up and run one region on SQLite with the capture server
	$(BIN)/steadymail up

# A green `make test` means everything ran: PostgreSQL, promtool, systemd-analyze, chromium (with
# axe-core), SpamAssassin and the NAB subset are required, so a test that needs a missing one
# fails instead of skipping.
# (`pytest` run by hand skips them, and says so at the end of its report.)
test: export STEADYMAIL_REQUIRE_PG = 1
test: export STEADYMAIL_REQUIRE_PROMTOOL = 1
test: export STEADYMAIL_REQUIRE_SYSTEMD = 1
test: export STEADYMAIL_REQUIRE_NAB = 1
test: export STEADYMAIL_REQUIRE_CHROMIUM = 1
test: export STEADYMAIL_REQUIRE_SPAMASSASSIN = 1
test: export STEADYMAIL_REQUIRE_POSTFIX = 1
test: $(BIN)/steadymail  ## set up and run the whole test suite (SQLite and PostgreSQL)
	scripts/ensure-postgres
	scripts/ensure-promtool
	scripts/ensure-systemd-analyze
	scripts/ensure-chromium
	scripts/ensure-spamassassin
	scripts/ensure-postfix
	$(BIN)/pytest

lint: $(BIN)/steadymail
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(BIN)/steadymail  ## benchmarks: never part of the test suite
	scripts/ensure-postgres
	scripts/ensure-postfix
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/peers.py
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/anomaly.py
	$(BIN)/python bench/anomaly_alerts.py
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) .steadymail
