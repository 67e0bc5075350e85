# Two commands matter: `make run` (the whole stack + a demo contest, then the desk) and `make test`.
# Each creates the venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint up clean chaos cluster-test test-partitions ops-check bench loadtest soak fuzz browser-test \
	restore-drill

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The demo contest end to end, then the stack stays up with its last week left for you to close at the desk
# (its address, name and token printed); Ctrl-C stops it.
run: $(STAMP)
	$(BIN)/cchc demo --keep

up: $(STAMP)
	$(BIN)/cchc up

PACKAGES := contest runtime eventstore ingest scorer projections admin results ops loadtests bench

test: lint
	$(BIN)/pytest -q

# ruff, mypy, and the floors of the house (.importlinter: no package imports a floor above its own).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .cchc

# Prometheus and promtool from Debian's package, unpacked here (no service is installed or started).
PROM := .tools/prom/usr/bin
$(PROM)/prometheus:
	mkdir -p .tools
	cd .tools && (apt-get download prometheus 2>/dev/null || (apt-get update -qq && apt-get download prometheus))
	dpkg-deb -x .tools/prometheus_*.deb .tools/prom

# Validate the Prometheus config and rules, then watch the lag alert fire and resolve for real.
ops-check: $(STAMP) $(PROM)/prometheus
	$(PROM)/promtool check config --syntax-only ops/prometheus.yml ops/prometheus.compose.yml
	$(PROM)/promtool check rules ops/alerts.yml
	$(PROM)/promtool test rules ops/alerts.test.yml
	$(BIN)/python -m ops.opscheck --prometheus $(PROM)/prometheus

# Benchmarks next to their same-run baselines (BENCHMARKS.md); wrk from Debian's packages.
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk))
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.ingest --processes 2 --runs 1
	$(BIN)/python -m bench.scorer
	$(BIN)/python -m bench.freshness
	$(BIN)/python -m bench.scale

# The design peak from DESIGN §1 (open model, distributed locust), SLO gates (exit code), headroom steps.
loadtest: $(STAMP)
	$(BIN)/pip install -q -e '.[load]'
	$(BIN)/python -m loadtests.run

# The results page and the quiz page in headless Chromium (Debian's package, driven by Playwright for Python)
# against live stacks, phone- and desktop-sized; screenshots of every view in test-output/browser/. axe-core
# (npm) audits the quiz page: the test serves it to the page, the app never does.
CHROMIUM := /usr/bin/chromium
AXE := .tools/axe/node_modules/axe-core/axe.min.js
$(CHROMIUM):
	apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)

$(AXE):
	command -v npm >/dev/null || (apt-get install -y -qq npm || (apt-get update -qq && apt-get install -y -qq npm))
	mkdir -p .tools/axe && npm install --silent --no-audit --no-fund --prefix .tools/axe axe-core@4

browser-test: $(STAMP) $(CHROMIUM) $(AXE)
	$(BIN)/pip install -q -e '.[browser]'
	CCHC_CHROMIUM=$(CHROMIUM) CCHC_AXE=$(AXE) $(BIN)/pytest -q -m browser tests/browser

# Steady load at half the capacity for 20 minutes (SOAK_MINUTES=…), a close in the middle, memory sampled.
SOAK_MINUTES ?= 20
soak: $(STAMP)
	$(BIN)/pip install -q -e '.[load]'
	$(BIN)/python -m loadtests.soak --minutes $(SOAK_MINUTES)

# Kill -9 scorers, Valkey, PostgreSQL and an ingest process under load; reconcile every ack.
PARTITIONS ?= 1
chaos: $(STAMP)
	$(BIN)/python -m loadtests.chaos --partitions $(PARTITIONS)

# Guarantee 10 rehearsed (DESIGN §10): under load PostgreSQL's data directory is destroyed (kill -9, rm -rf), the
# documented restore runs, every ack is reconciled and every digest is the same; then a restore to a time before a
# recompute shows the older revision. About 3 minutes.
restore-drill: $(STAMP)
	$(BIN)/python -m loadtests.restore_drill

# A 3-master, 3-replica Valkey Cluster under load, kill -9 of a master, every ack reconciled and the rankings
# compared with a single-node run of the same entries (DESIGN §5.6); then the demo contest on `cchc up --cluster 3
# --partitions 6`, its last week open half a minute (not the ten a person gets to take the quiz). Under 10 minutes.
cluster-test: $(STAMP)
	$(BIN)/python -m loadtests.cluster
	d=$$(mktemp -d) && trap 'rm -rf '$$d EXIT && $(BIN)/cchc demo --cluster 3 --partitions 6 --data-dir $$d \
		--ingest-port 18080 --results-port 18081 --participants 100 --open-minutes 0.5

# The whole suite again on a stream in 4 partitions (make test runs it on one).
test-partitions: $(STAMP)
	CCHC_TEST_PARTITIONS=4 $(BIN)/pytest -q

# schemathesis (every phase, stateful included) against both apps of a live stack, hypothesis on the
# decoders and the token parser at length, then the data directory searched for plain personal data.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q tests/unit/test_fuzz_decoders.py
	$(BIN)/python -m loadtests.fuzz
