# eocompress: two set-up commands, `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Real data lives beside the project on development machines; users point $EOCOMPRESS_DATA elsewhere.
EOCOMPRESS_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export EOCOMPRESS_DATA
# mkdocs-material prints a banner about its successor on every build; keep the build log to the build.
export NO_MKDOCS_2_WARNING := 1
PIP_INSTALL := $(BIN)/python -m pip install -q -c constraints.txt

.PHONY: demo test lint docs docs-strict docs-serve venv clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(PIP_INSTALL) -e '.[train]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# --overwrite: a second `make demo` replaces the demo's own outputs under outputs/demo (nothing else).
demo: $(VENV)/.installed
	$(BIN)/eocompress demo --overwrite

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks docs/gen_cli.py

# mypy checks the public API listed in pyproject.toml's [tool.mypy] (~20 s of CPU cold, ~2 s from its cache).
test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks docs/gen_cli.py
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	$(BIN)/mkdocs build --strict --quiet

# The docs site (mkdocs + Material; API reference from docstrings, CLI reference from the typer app).
docs: $(VENV)/.installed-dev
	$(BIN)/mkdocs build

docs-strict: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.installed-dev
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) outputs site .pytest_cache
