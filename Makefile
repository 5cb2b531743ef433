# The two commands a user needs: `make up` (or `make demo` without internet) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up demo down status test lint bench soak clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,local]"
	touch $(STAMP)

install: $(STAMP)

## Kafka, Postgres and the four services, streaming from the real Binance.
up: install
	$(BIN)/candlecast up $(if $(BROKERS),--brokers $(BROKERS),)

## The same, fed by the local Binance stand-in (DATA=dir of archive CSVs; default ../shared/data, else generated).
demo: install
	$(BIN)/candlecast up --demo $(if $(DATA),--data $(DATA),) $(if $(BROKERS),--brokers $(BROKERS),)

down:
	@test -x $(BIN)/candlecast && $(BIN)/candlecast down || echo "nothing installed"

status: install
	$(BIN)/candlecast status

## Two workers: the tests mostly wait on Kafka, Postgres and service processes (README, Development).
PYTEST_WORKERS ?= 2

## Installs what the tests need (Kafka jars, Postgres, Prometheus, Chromium) and runs them.
test: install
	bash scripts/test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy shared services testkit
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=20

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy shared services testkit

bench: install
	bash scripts/bench-deps.sh
	$(BIN)/python -m bench

## Random faults for MINUTES (default 10) on the local stack with three Kafka nodes; leaves it running.
MINUTES ?= 10
soak: install
	$(BIN)/python -m bench.soak --minutes $(MINUTES) $(if $(SEED),--seed $(SEED),)

clean: down
	rm -rf .data
