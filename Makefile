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

.PHONY: setup data train export serve retrain walkthrough bento container container-test bench fuzz test lint clean

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

# One process tree: BentoML's supervisor and its workers; each worker answers HTTP on $(PORT)
# and gRPC on $(GRPC_PORT) (shared by the workers) over its own serving core. Ctrl-C stops all.
# AB=file.toml: the A/B arms of its [ab] table (rec_models/abtest/example_ab.toml: A on version 1,
# B on the newest).
AB ?=
serve: export
	@echo "serving on http://127.0.0.1:$(PORT) (HTTP) and 127.0.0.1:$(GRPC_PORT) (gRPC)"
	ADREC_GRPC_PORT=$(GRPC_PORT) $(if $(AB),ADREC_AB_CONFIG=$(abspath $(AB)),) \
		exec $(BIN)/bentoml serve service:Recommender --host 127.0.0.1 --port $(PORT)

# Retrain from the event log (EVENTS=path; default $(ARTIFACTS)/events/events.sqlite) with the
# served model's configuration (or CONFIG), publish a new scorer version unless it is worse.
retrain: export
	$(BIN)/python -m rec_models.retrain $(CONFIG_FLAG) --artifacts $(ARTIFACTS) $(if $(EVENTS),--events $(EVENTS),)

# The README's loop end to end in a scratch store: serve with A/B arms, simulated traffic,
# retrain, hot swap under traffic, the A/B report; benchmarks/results/walkthrough.{json,md}.
walkthrough: export
	$(BIN)/python -m benchmarks.walkthrough

# Offline: uv comes from the venv (`make setup`), the requirements are not locked. A rebuild of
# the same version replaces it; a failed build leaves no staging folder behind. The Bento lists
# every adrec-scorer version of the store (bentofile.yaml's `latest`, expanded by
# rec_models.versions), so an A/B arm pinned to an older version loads in its image too.
BENTO_VERSION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
BENTOFILE := $(BENTOML_HOME)/bentofile.versions.yaml
bento: export
	@rm -rf "$(BENTOML_HOME)/tmp"
	@$(BIN)/bentoml delete -y adrec:$(BENTO_VERSION) >/dev/null 2>&1 || true
	$(BIN)/python -m rec_models.versions --bentofile bentofile.yaml $(BENTOFILE)
	$(BIN)/bentoml build -f $(BENTOFILE) --version $(BENTO_VERSION) || \
		{ rm -rf "$(BENTOML_HOME)/tmp" $(BENTOFILE); exit 1; }
	@rm -rf "$(BENTOML_HOME)/tmp" $(BENTOFILE)
	@echo "serve it: BENTOML_HOME=$(BENTOML_HOME) $(BIN)/bentoml serve adrec:$(BENTO_VERSION)"

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

# schemathesis against the service's own OpenAPI document (every route, every phase); the
# summary goes to benchmarks/results/reliability.{json,md}. EXAMPLES: cases per operation.
EXAMPLES ?= 60
fuzz: export
	$(BIN)/python -m benchmarks.fuzz --max-examples $(EXAMPLES)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: export lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf artifacts bentoml_home .cache
