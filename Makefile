# dspex_lab — the two quick-start commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dspex-installed
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test test-extension lint lab bench extension docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## Run the main job on the embedded LM (no API key needed).
demo: $(STAMP)
	$(VENV)/bin/dspex-lab demo

## Install and run every check: lint, unit + integration tests, notebooks (nbval), browser test.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): failing" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .

## Open JupyterLab on the tutorial notebooks.
lab: $(STAMP)
	$(VENV)/bin/dspex-lab lab

## Run every benchmark (prints ratios against baselines measured in the same run).
bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## Build the documentation site into site/ (offline; warnings are errors).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

## Rebuild the prebuilt JupyterLab extension (node + npm registry) and reinstall it.
extension: $(STAMP)
	cd extensions/dspex-lab && PATH=$(CURDIR)/$(VENV)/bin:$$PATH jlpm install && PATH=$(CURDIR)/$(VENV)/bin:$$PATH jlpm build
	$(PY) -m pip install --quiet -e . --no-deps

## The extension's own TypeScript tests (jest).
test-extension: $(STAMP)
	cd extensions/dspex-lab && PATH=$(CURDIR)/$(VENV)/bin:$$PATH jlpm install && PATH=$(CURDIR)/$(VENV)/bin:$$PATH jlpm test

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
