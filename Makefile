# eocompress: two set-up commands, `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Real data lives beside the project on development machines; users point $EOCOMPRESS_DATA elsewhere.
EOCOMPRESS_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export EOCOMPRESS_DATA
PIP_INSTALL := $(BIN)/python -m pip install -q -c constraints.txt

.PHONY: demo test lint venv clean benchmarks

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/eocompress demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs .pytest_cache
