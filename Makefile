# `make demo` and `make test` work on a fresh machine: the virtual environment is (re)built when missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

# CPU: a few minutes with reduced sizes; on a GPU machine the full sizes. Results: checkpoints/runs/bench.json.
# Extra flags: make bench BENCH_ARGS="--only ema,step --device cuda"
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) checkpoints/runs wandb lightning_logs .pytest_cache
