# The commands README shows. `make test` is what CI (.ci/run) runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install demo lint test bench bench-quick clean-venv

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

# Two workers, one test file each at a time (a file's module fixtures, e.g. its Ray cluster,
# are made once): searches spend much of their time waiting on Ray, so two overlap well.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# Trial efficiency, search overhead, scheduler value, start-up: results/bench/<host>-<date>.md
bench: install
	$(BIN)/digitsearch bench --profile

bench-quick: install
	$(BIN)/digitsearch bench --quick

clean-venv:
	rm -rf $(VENV)
