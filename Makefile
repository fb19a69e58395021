# Two commands matter: `make run` (the whole system on http://localhost:8080) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test demo lint bench soak clean

install: $(STAMP)

# Re-installs when pyproject.toml changes; a fresh machine needs only Python 3.11+.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/python -m stack

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The seed walk-through against a running system (`make run` in another terminal; BASE_URL for another one).
demo: install
	$(BIN)/python -m demo

# Benchmarks against real servers; results in bench/results/*.json (not pass/fail tests).
bench: install
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.http --scale 2
	$(BIN)/python -m bench.system
	$(BIN)/python -m bench.growth

# The whole system under random load and faults (SOAK_SECONDS, default 600; SOAK_SEED replays a run), every
# invariant checked at the end; report in bench/results/soak-report.json.
soak: install
	$(BIN)/python -m soak

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
