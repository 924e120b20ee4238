# The two commands of the README: `make reproduce` and `make test`.
# Both create the virtual environment first if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= diffworld
# Profile overrides for reproduce, e.g. make reproduce PROFILE=smoke SET="finetune.steps=50 pretrain.steps=20"
SET ?=
ONLY ?=
# Pretrain seeds of the base-model study (make base-study): the pipeline again on each of these base models
BASE_SEEDS ?= 1,2
# Levers and finetune seeds of the lever study (make levers): empty LEVERS runs every lever of pcclip.levers,
# empty SEEDS every finetune seed
LEVERS ?=
SEEDS ?=
STAMP := $(VENV)/.pcclip-installed

.PHONY: setup reproduce check-reproduce base-study levers test test-fast benchmarks refresh-references clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(PY) -m pcclip.pipeline --profile $(PROFILE) $(foreach o,$(SET),--set $(o)) $(if $(ONLY),--only $(ONLY))
	if [ "$(PROFILE)" = diffworld ] && [ -z "$(SET)$(ONLY)" ]; then $(PY) -m pcclip.report diffworld; fi

# Your `make reproduce` against the intervals of the run committed at AGAINST (it wrote over results/$(PROFILE))
AGAINST ?= HEAD
check-reproduce: $(STAMP)
	$(PY) -m pcclip.report $(PROFILE) --rerun results/$(PROFILE) --against $(AGAINST)

base-study: $(STAMP)
	$(PY) -m pcclip.pipeline --profile $(PROFILE) --base-study $(BASE_SEEDS) $(foreach o,$(SET),--set $(o))

levers: $(STAMP)
	$(PY) -m pcclip.pipeline --profile $(PROFILE) --levers $(LEVERS) $(if $(SEEDS),--seeds $(SEEDS)) $(foreach o,$(SET),--set $(o))

test: $(STAMP)
	$(PY) -m pytest tests --nbval-lax --nbval-current-env notebooks -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider

benchmarks: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

refresh-references: $(STAMP)
	$(PY) -m pcclip.pipeline --refresh-references
