# The two commands a newcomer needs: `make demo` and `make test`.
# Each creates (or reuses) .venv, installs requirements.txt and ffmpeg when missing, then runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1
# Python writes each module's bytecode the first time any stage imports it, and every later stage reuses it. Where the
# environment turns that off (PYTHONDONTWRITEBYTECODE), every one of the demo's 40 stage processes would compile
# torch and the rest again (5 s of imports become 20 s)
unexport PYTHONDONTWRITEBYTECODE
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast deps bench clean-data sweep-priors app
SWEEP_N ?=
SWEEP_VARIANTS ?= neutral_fc gender_fc

$(VENV)/.installed: requirements.txt
	@echo "==> python environment in $(VENV)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --upgrade pip
	@# No byte-compiling at install: compiling all 2.9 GB of packages took 46 s on 2 cores (pip's own, on one core,
	@# longer), while the demo imports a small part of them, compiled once at first import (see above)
	@$(VENV)/bin/python -m pip install -q --no-compile -r requirements.txt
	@touch $@

# the S3 remote's plugin and the object store the tests run (requirements-remote.txt): for tests and teams, not demo
$(VENV)/.installed-remote: $(VENV)/.installed requirements-remote.txt
	@echo "==> S3 remote packages (requirements-remote.txt)"
	@$(VENV)/bin/python -m pip install -q -r requirements-remote.txt
	@touch $@

setup: $(VENV)/.installed
	@# Debian's ffmpeg (the imageio-ffmpeg wheel is no substitute: it ships no ffprobe)
	@bash scripts/ensure_debian.sh "ffmpeg ffprobe" "ffmpeg" "the pipeline"

demo: setup
	@echo "==> dvc repro (embedded sample; every stage is cached)"
	@dvc repro
	@# the run's metrics as a named experiment, so that `dvc exp show` has a baseline row (dvc.lock is not committed)
	@dvc exp save -q -f -n demo-baseline -I dvc.lock || echo "note: dvc exp save failed, so dvc exp show has no demo-baseline row"
	@python -m pipeline.ops.summary

# One DVC experiment per prior size (priors.convergence_n, or SWEEP_N="10 20"), then sweeps/priors/prior_sweep.md.
# Two variants by default (one per prior kind) so the demo sweep fits in minutes; SWEEP_VARIANTS="neutral ..." for more.
sweep-priors: setup
	@python -m pipeline.ops.sweep $(if $(SWEEP_N),--n $(SWEEP_N)) $(if $(SWEEP_VARIANTS),--variants $(SWEEP_VARIANTS))

test: setup $(VENV)/.installed-remote
	@# a browser that downloads itself at install time is no option offline: Debian's chromium for the app's test
	@bash scripts/ensure_debian.sh "chromium chromedriver" "chromium chromium-driver" "the app's browser test"
	@# `ip` makes the network namespaces of the two-node tests (pipeline.testing.netns)
	@bash scripts/ensure_debian.sh "ip" "iproute2" "the two-node tests"
	@# tests go to the workers in the order tests/conftest.py sorts them (the longest first), not by group size
	@python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --durations=15 $(PYTEST_ARGS) tests

# The fast lane while you edit (under 3 minutes on 2 cores): every test not marked slow: the params checks, the
# manifest, the shard contract, the model shapes and losses, the layers and the generated deps. No dvc repro of the
# DAG: make test runs it (tests/stages/test_pipeline_e2e.py).
test-fast: setup $(VENV)/.installed-remote
	@python -m pytest -q -n 2 --dist loadgroup -m "not slow" --durations=10 $(PYTEST_ARGS) tests

# dvc.yaml's code deps and the DAG drawings in README.md and docs/, regenerated from the code (the tests check both)
deps: setup
	@python -m pipeline.ops.deps --write
	@python -m pipeline.ops.dag --write
	@python -m pipeline.ops.params_check --docs docs/params.md

# The page: record or upload a voice, see the face (pipeline/serve/app.py). Needs the outputs of `make demo` (or dvc repro).
PORT ?= 7860
app: setup
	@GRADIO_ANALYTICS_ENABLED=False python -m pipeline.serve.app --port $(PORT)

bench: setup
	@for b in bench/bench_*.py; do echo "==> $$b"; python $$b || exit 1; done
