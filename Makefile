# Two commands on a fresh machine: `make demo` and `make test`. Each creates
# .venv when missing and installs the project into it first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo demo-serve test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cleanroom demo --out demo-out
	@echo "To keep the room serving and sign in to its web UI: $(BIN)/cleanroom demo --out demo-out --serve"
	@echo "(or: make demo-serve); tokens per role are then in demo-out/tokens.txt"

demo-serve: $(STAMP)
	$(BIN)/cleanroom demo --out demo-out --serve

lint: $(STAMP)
	$(BIN)/ruff check cleanroom tests bench
	$(BIN)/ruff format --check cleanroom tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/prepare.py

clean:
	rm -rf $(VENV) demo-out bench/out .pytest_cache .hypothesis .ruff_cache .mypy_cache
