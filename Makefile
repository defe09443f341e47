# Every target is idempotent and does the missing steps before it.
# The README's two commands: `make serve` (the main job) and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
GRPC_PORT ?= 8001
# DATASET=obd|synthetic: a built-in click log instead of MovieLens, with its own artifacts and
# model store, so the default MovieLens path is untouched.
DATASET ?=
OTHER := $(filter-out movielens,$(DATASET))
ARTIFACTS ?= artifacts$(if $(OTHER),/$(OTHER),)
export BENTOML_HOME ?= $(CURDIR)/bentoml_home$(if $(OTHER),/$(OTHER),)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export BENTOML_DO_NOT_TRACK := True
CONFIG ?=
CONFIG_FLAG := $(if $(CONFIG),--config $(CONFIG),)
TRAIN_FLAGS := $(CONFIG_FLAG) $(if $(DATASET),--dataset $(DATASET),) --artifacts $(ARTIFACTS)
DATA_DIR := $(if $(filter obd,$(DATASET)),data/obd,$(if $(filter synthetic,$(DATASET)),data/synthetic-ads,data/ml-100k))

.PHONY: setup data train export serve retrain bento container container-test bench test lint clean

setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[serve,train,dev]"
	touch $@

data: setup $(DATA_DIR)/.complete
data/ml-100k/.complete:
	$(BIN)/python -m rec_models.data.movielens --dest data/ml-100k
	touch $@
data/obd/.complete:
	$(BIN)/python -m rec_models.data.obd --dest data/obd
	touch $@
data/synthetic-ads/.complete:
	$(BIN)/python -m rec_models.data.synthetic --dest data/synthetic-ads
	touch $@

train: data $(ARTIFACTS)/metrics.json
$(ARTIFACTS)/metrics.json:
	$(BIN)/python -m rec_models.train $(TRAIN_FLAGS)

export: train $(ARTIFACTS)/export_report.json
$(ARTIFACTS)/export_report.json:
	$(BIN)/python -m export --artifacts $(ARTIFACTS)

serve: export
	@echo "serving on http://127.0.0.1:$(PORT) (HTTP) and 127.0.0.1:$(GRPC_PORT) (gRPC)"
	$(BIN)/python -m rec_models.serving.launch --port $(PORT) --grpc-port $(GRPC_PORT)

# Retrain from the event log (EVENTS=path; default $(ARTIFACTS)/events/events.sqlite) with the
# served model's configuration (or CONFIG), publish a new scorer version unless it is worse.
retrain: export
	$(BIN)/python -m rec_models.retrain $(CONFIG_FLAG) --artifacts $(ARTIFACTS) $(if $(EVENTS),--events $(EVENTS),)

bento: export
	$(BIN)/bentoml build --version $$(git rev-parse --short HEAD 2>/dev/null || echo dev)

# The OCI image of the Bento, built offline with podman (GPU=1: onnxruntime-gpu); the Bento of
# this commit is reused when it exists and still matches the working tree.
GPU ?=
container: export
	$(BIN)/python -m rec_models.deploy build $(if $(GPU),--gpu,)

# Start the image, wait for /readyz, probe HTTP and gRPC, stop it.
container-test: container
	ADREC_CONTAINER_TEST=1 $(BIN)/python -m pytest -q -s -rxX tests/deploy/test_container.py

bench: export
	$(BIN)/python -m benchmarks $(if $(FULL),--full,)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: export lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf artifacts bentoml_home .cache
