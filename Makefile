# The commands README shows. `make test` is what CI (.ci/run) runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install demo lint test test-all check-timing bench bench-quick gpu-check clean-venv

install: $(VENV)/.installed

# Rebuilt when pyproject.toml changes; pyproject is the one list of dependencies.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e '.[tested-torch,dev]'
	touch $@

demo: install
	$(BIN)/digitsearch tune --space cnn
	$(BIN)/digitsearch best --retrain

# ruff (pyproject's short rule set) and the import contracts of the layers (import-linter):
# a wrong import fails the build before any test runs
lint: install
	$(BIN)/ruff check digitsearch tests cli.py
	$(BIN)/lint-imports --no-cache
	$(PY) tests/lint_suite.py

# The gating suite (docs/testing.md): the units on two workers (no Ray, no Python subprocess),
# then the e2e tier one test at a time on one local Ray; neither asserts a wall-clock figure.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) -m "not e2e and not timing"
	$(BIN)/pytest -q -n 0 -m "e2e and not extended and not timing" --durations=10

# The gating suite, then the real runs beyond its handful (resume after every kill moment, every
# family's search, Ray's start-up, ...): before a release, or after touching search/.
test-all: test
	$(BIN)/pytest -q -n 0 -m "extended and not timing" --durations=10

# Every figure that depends on the machine's speed, one test at a time, each printed against its
# band and written to results/bench/: run it on an otherwise idle machine (make test never does).
TIMING_REPORT ?= results/bench/timing-$(shell hostname)-$(shell date +%F).md
check-timing: install
	DIGITSEARCH_TIMING_REPORT=$(TIMING_REPORT) $(BIN)/pytest -q -n 0 -m timing -rA

# Trial efficiency, search overhead, scheduler value, start-up: results/bench/<host>-<date>.md
bench: install
	$(BIN)/digitsearch bench --profile

bench-quick: install
	$(BIN)/digitsearch bench --quick

# The five-minute check of the GPU path (docs/benchmark.md), on a machine with a CUDA GPU
gpu-check: install
	$(BIN)/digitsearch bench --gpu

clean-venv:
	rm -rf $(VENV)
