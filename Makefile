# `make demo` and `make test` work on a fresh machine: the virtual environment is (re)built from the lock
# file when missing or when the lock or pyproject.toml changed. `make lock` refreshes the lock on purpose.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: demo test bench lock clean

# Every package pinned with hashes from the lock; then the project itself, without resolving anything.
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

# CPU: a few minutes with reduced sizes; on a GPU machine the full sizes. Results: checkpoints/runs/bench.json.
# Extra flags: make bench BENCH_ARGS="--only ema,step --device cuda"
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

# Resolve pyproject.toml (with the dev extra and the build backend) for CPython 3.11 on Linux x86-64.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	printf 'setuptools>=69\nwheel\n' | $(BIN)/uv pip compile pyproject.toml - --extra dev --extra bench \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--custom-compile-command "make lock" --quiet -o $(LOCK)

clean:
	rm -rf $(VENV) checkpoints/runs wandb lightning_logs .pytest_cache
