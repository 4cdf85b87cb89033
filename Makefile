# Vigil: `make demo` and `make test` are all a newcomer needs. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.vigil-setup-stamp
DURATION ?=

.PHONY: setup system-deps demo test test-unit test-integration lint typecheck clean models eval mutation

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

$(STAMP): pyproject.toml requirements.lock scripts/install-python-deps.sh
	@bash scripts/install-python-deps.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/vigil demo $(if $(DURATION),--duration $(DURATION),)

# The demo model pack (models/demo), regenerated from scratch and written over the shipped one
# (PACK, with --overwrite-pack; `vigil train` alone writes to .vigil/models/): labelled synthetic videos -> YOLO
# detector (three fine-tuning stages; ~7 min on one GPU, ~3 h on 2 CPU cores), scene ViT (~5 min
# on CPU), crop ViT (~6 min), CLIP image tower against the locked MiniLM text tower (~9 min on one
# CPU core), LSTM and transformer clip heads (~12 min on CPU for 120 videos, half
# of it feature extraction, done the way configs/demo.yaml runs the detector: imgsz 384, confidence 0.25),
# and a transformer head trained into the sentence encoder's space on the first 30 (prompts label its windows).
DATA ?= .vigil/data
PACK ?= models/demo
models: setup
	$(VENV)/bin/vigil synth --out $(DATA)/train --videos 24 --seed 1
	$(VENV)/bin/vigil synth --out $(DATA)/temporal --videos 30 --seed 2
	$(VENV)/bin/vigil synth --out $(DATA)/temporal2 --videos 30 --seed 3
	$(VENV)/bin/vigil synth --out $(DATA)/temporal3 --videos 30 --seed 4
	$(VENV)/bin/vigil synth --out $(DATA)/temporal4 --videos 30 --seed 5
	$(VENV)/bin/vigil train detector --data $(DATA)/train --out $(PACK)/detector.pt --overwrite-pack --epochs 25 --every 16 --seed 0
	$(VENV)/bin/vigil train detector --data $(DATA)/train --model $(PACK)/detector.pt --out $(PACK)/detector.pt --overwrite-pack --epochs 40 --every 24 --batch 32
	$(VENV)/bin/vigil train detector --data $(DATA)/train --model $(PACK)/detector.pt --out $(PACK)/detector.pt --overwrite-pack --epochs 70 --every 12 --batch 32
	$(VENV)/bin/vigil train classifier --data $(DATA)/train --out $(PACK)/classifier.pt --overwrite-pack --seed 0
	$(VENV)/bin/vigil train crops --data $(DATA)/train --out $(PACK)/crops.pt --overwrite-pack --examples 10000 --epochs 10 --seed 0
	$(VENV)/bin/vigil train clip --data $(DATA)/train --out $(PACK)/clip.pt --overwrite-pack --seed 0
	$(VENV)/bin/vigil train temporal --kind transformer --data $(DATA)/temporal --data $(DATA)/temporal2 --data $(DATA)/temporal3 --data $(DATA)/temporal4 --embedding-features 0 --detector $(PACK)/detector.pt --classifier $(PACK)/classifier.pt --out $(PACK)/temporal-transformer.pt --overwrite-pack --seed 0
	$(VENV)/bin/vigil train temporal --kind lstm --data $(DATA)/temporal --data $(DATA)/temporal2 --data $(DATA)/temporal3 --data $(DATA)/temporal4 --embedding-features 0 --detector $(PACK)/detector.pt --classifier $(PACK)/classifier.pt --out $(PACK)/temporal-lstm.pt --overwrite-pack --seed 0
	$(VENV)/bin/vigil train temporal --kind transformer --text-space --data $(DATA)/temporal --embedding-features 0 --detector $(PACK)/detector.pt --classifier $(PACK)/classifier.pt --out $(PACK)/temporal-text.pt --overwrite-pack --seed 0

# Score the pack with the full pipeline on videos it never saw: 9-video sets vary a lot (event F1
# 0.92 on seed 1000, 0.83 on seed 2000), so two sets by default; `make eval EVAL_SEEDS="1000 2000 3000"`.
EVAL_SEEDS ?= 1000 2000
eval: setup
	@for seed in $(EVAL_SEEDS); do \
		dir=$(DATA)/eval$$( [ $$seed = 1000 ] || echo "-$$seed" ); \
		$(VENV)/bin/vigil synth --out $$dir --videos 9 --seed $$seed && \
		$(VENV)/bin/vigil eval --data $$dir --json $$dir.json || exit 1; \
	done

test: setup
	$(VENV)/bin/python -m pytest -q -rfEs --durations=30 tests
	$(VENV)/bin/ruff check pipeline workers tests benchmarks scripts
	$(VENV)/bin/ruff format --check pipeline workers tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-unit: setup
	$(VENV)/bin/python -m pytest -q tests/unit

test-integration: setup
	$(VENV)/bin/python -m pytest -q -rfEs tests/integration

lint: setup
	$(VENV)/bin/ruff check pipeline workers tests benchmarks scripts
	$(VENV)/bin/ruff format --check pipeline workers tests benchmarks scripts
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy

# Break the code behind each documented guarantee on purpose (scripts/mutants.py) and check that its
# tests turn red; not part of `make test` (~30 min on 2 cores). `make mutation ONLY=name` runs one.
ONLY ?=
mutation: setup
	$(VENV)/bin/python scripts/mutation.py $(foreach m,$(ONLY),--only $(m)) --json .vigil/mutation.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
