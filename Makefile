# The commands README shows. `make test` is what CI (.ci/run) runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install demo lint test check-timing bench bench-quick clean-venv

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

# The gating suite (docs/testing.md): the units on two workers (no Ray, no subprocess), then
# the e2e tier one test at a time on one local Ray; neither asserts a wall-clock figure.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) -m "not e2e and not timing"
	$(BIN)/pytest -q -n 0 -m "e2e and not timing" --durations=10

# Every figure that depends on the machine's speed, one test at a time, each printed against its
# band: run it on an otherwise idle machine (make test never runs these).
check-timing: install
	$(BIN)/pytest -q -n 0 -m timing -s -rA

# Trial efficiency, search overhead, scheduler value, start-up: results/bench/<host>-<date>.md
bench: install
	$(BIN)/digitsearch bench --profile

bench-quick: install
	$(BIN)/digitsearch bench --quick

clean-venv:
	rm -rf $(VENV)
