# dotlib: two commands do everything on a fresh clone — `make reproduce` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dotlib-setup
STUDY ?= embedded
PYTEST_ARGS ?=
PY_VERSION ?= 3.12

.PHONY: setup test test-all reproduce verify toy train-embedded bench bench-eval paper-dryrun lab wheelhouse gpu-rehearsal

setup: $(STAMP)  ## create .venv with the pinned packages and its Jupyter kernel (idempotent)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dotlib)"
	-git config filter.nbstrip.clean "$(abspath $(PY)) $(CURDIR)/tools/nbstrip.py"  # notebooks/ stay clean in git
	touch $@

test: $(STAMP)  ## the test suite (slow studies run in their small versions)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)  ## every test, the slow full-size studies included
	$(PY) -m pytest -q $(PYTEST_ARGS)

reproduce: $(STAMP)  ## run the study in studies/$(STUDY).yaml and write results/ (JOBS=N: steps at once; FORCE=1: re-run unchanged steps; NPROC=N: processes per task step)
	$(PY) -m dotlib.reproduce studies/$(STUDY).yaml $(if $(JOBS),--jobs $(JOBS)) $(if $(FORCE),--force) $(if $(NPROC),--nproc $(NPROC))

verify: $(STAMP)  ## re-run the study in a temporary copy and compare every CSV and table with results/ (6 significant digits)
	$(PY) -m dotlib.verify studies/$(STUDY).yaml

toy: $(STAMP)  ## only the toy Gaussian study
	$(PY) -m dotlib.reproduce studies/$(STUDY).yaml --only 'toy*'

train-embedded: $(STAMP)  ## retrain the committed embedded VAE and restorers: studies/train.yaml (CPU, about an hour on 2 cores)
	$(PY) -m dotlib.reproduce studies/train.yaml --force

bench: $(STAMP)  ## speed benchmarks (print ratios measured in one run)
	$(PY) benchmarks/bench_gaussian.py
	$(PY) benchmarks/bench_latent_ot.py

paper-dryrun: $(STAMP)  ## studies/paper.yaml on stand-in assets (random weights), CPU, tiny sizes -> runs/paper_dryrun/ (NPROC=N: processes per task)
	$(PY) -m dotlib.dryrun $(if $(NPROC),--nproc $(NPROC))

wheelhouse: $(STAMP)  ## .whl/: the wheels a bare GPU machine lacks, for Python $(PY_VERSION) (<= 60 MiB; PY_VERSION=3.11 for a rehearsal here)
	$(PY) tools/wheelhouse.py --python-version $(PY_VERSION)

gpu-rehearsal: $(STAMP)  ## tools/gpu_check.sh --rehearse from a bare venv (.bare/) plus the wheelhouse, on CPU -> runs/gpu_rehearsal/
	$(PY) tools/wheelhouse.py --python-version $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	$(PY) tools/bare_venv.py .bare
	PYTHON=.bare/bin/python OUT=runs/gpu_rehearsal tools/gpu_check.sh --rehearse

bench-eval: $(STAMP)  ## host-memory slope of the streamed evaluation over 64, 256, 512 images, and its time per image per signal against the authors' loop (long)
	$(PY) benchmarks/bench_eval_memory.py

lab: $(STAMP)  ## open JupyterLab at the repository root (notebooks/, results/, runs/); notebooks/ are saved without outputs
	PYTHONPATH=$(CURDIR)/tools $(VENV)/bin/jupyter lab --notebook-dir=. --FileContentsManager.pre_save_hook=nbstrip.pre_save_hook $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)
