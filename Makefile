# Two entry points (see README): `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
TORCH_PIP_ARGS ?=  # e.g. --index-url https://download.pytorch.org/whl/cpu (README, Quick start)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install demo test lint bench evidence clean

$(STAMP): pyproject.toml .ci/system_deps.sh
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and \
		"need Python >= 3.11 (zarr 3); run e.g. make PYTHON=python3.11 ...")'
	bash .ci/system_deps.sh
	$(PYTHON) -m venv $(VENV)
	# torch first and alone: on the project's machines the exact pin takes the local CPU build
	# (anything else pulls CUDA); elsewhere TORCH_PIP_ARGS picks the wheel index (README).
	$(BIN)/pip install torch==2.13.0 $(TORCH_PIP_ARGS)
	# then everything else in ONE resolver run (a second run may lift numpy past robosuite's pin).
	$(BIN)/pip install -e ".[train,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sgqn_robot.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/env_throughput.py
	$(BIN)/python bench/update_throughput.py
	$(BIN)/python bench/malloc_reuse.py
	$(BIN)/python bench/runner_latency.py

# Learning evidence (hours): resumable slices; run again to continue. EVIDENCE_MINUTES per slice.
EVIDENCE_MINUTES ?= 60
evidence: $(STAMP)
	$(BIN)/python bench/learning_evidence.py train --out runs/evidence --tasks reach,peg_in_box \
		--agents sac,svea,sgqn --seeds 1,2 --jobs 2 --minutes $(EVIDENCE_MINUTES)
	$(BIN)/python bench/learning_evidence.py evaluate --out runs/evidence --episodes 30 --jobs 2
	$(BIN)/python bench/learning_evidence.py report --out runs/evidence --images docs/images

clean:
	rm -rf $(VENV) build dist *.egg-info
