# cfexp: `make sweep` runs the default study, `make test` runs the tests. Every target installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXP    ?= experiments/variants.toml
# With no NVIDIA GPU we install PyTorch's CPU build (about 200 MB) instead of the multi-GB CUDA one from PyPI.
TORCH_VERSION   ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install test test-fast test-lowest lint format bench benchmark bench-chaos bench-floors bench-samplers bench-scale bench-gpu sweep evaluate report train data ui dashboard serve clean services services-stop

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: torch comes from PyPI with CUDA"; \
	else \
		echo "No NVIDIA GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(BIN)/pip install -q "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
		|| $(BIN)/pip install -q "torch==$(TORCH_VERSION)+cpu" --extra-index-url $(TORCH_CPU_INDEX); \
	fi
	$(BIN)/pip install -q -e ".[dev,services]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

# The tests that need no real sweep, server or store (under 90 s); `make test` runs these and the e2e ones.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

# Every test at the lowest version of each requirement pyproject.toml allows, in a venv of its own (not part of
# CI: torch 2.4 comes from PyPI with its CUDA libraries, several GB). ARGS='-m "not e2e"' runs the fast ones.
LOWEST := .venv-lowest
test-lowest:
	$(PYTHON) -m venv $(LOWEST)
	$(PYTHON) .ci/lowest.py > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/pip install -q -c $(LOWEST)/constraints.txt -e ".[dev,services]"
	$(LOWEST)/bin/pip check
	$(LOWEST)/bin/pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Surprise (the peer in (b)) comes from the `bench` extra; `make bench ARGS=--skip-sweep` leaves out (c).
bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m cfexp.bench $(ARGS)
	$(BIN)/python -m cfexp.bench --suite protocol
	$(BIN)/python -m cfexp.bench --suite floors
	$(BIN)/python -m cfexp.bench --suite samplers
	$(BIN)/python -m cfexp.bench --suite chaos

# SIGKILL between the two stores (about 20 minutes): at least 100 kills of small sweeps at every instant of a trial's
# life, each round checked through Optuna's and MLflow's APIs, and the default sweep killed three times.
bench-chaos: $(STAMP)
	$(BIN)/python -m cfexp.bench --suite chaos

# The floors alone (a few minutes): ials beside implicit's ALS, ease beside numpy's, bsvdpp beside bpmf.
bench-floors: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m cfexp.bench --suite floors

# The default experiment across random, temporal and user-last splits in this project's stores (about 5 minutes
# here): the cross-setting report (reports/variants-across/), its MLflow run, and its part of BENCHMARKS.md. Run
# again, it resumes.
benchmark: $(STAMP)
	$(BIN)/python -m cfexp.bench --suite across

# The sampler comparison alone (about 30 minutes here): which sampler the default sweep uses, and why.
bench-samplers: $(STAMP)
	$(BIN)/python -m cfexp.bench --suite samplers

# 25M ratings (a synthetic ml-25m-shaped file written once to reports/scale/), beside LensKit, Surprise and implicit,
# then the 25M sweep (experiments/ml-25m.toml, two workers, fresh stores): about 80 minutes here.
bench-scale: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m cfexp.bench --suite scale $(ARGS)

# The scale suite's epochs, ranking and 25M sweep with --device cuda (BENCHMARKS.md's GPU part). Without a CUDA GPU
# it says so in one line and exits 0.
bench-gpu: $(STAMP)
	$(BIN)/python -m cfexp.bench --suite gpu $(ARGS)

# `make sweep EXP=experiments/other.toml ARGS="--trials 20"` runs another experiment; WORKERS=N runs N processes
# (two by default: on two cores they finish the default sweep about 1.3× as fast as one, BENCHMARKS.md).
WORKERS ?= 2
sweep: $(STAMP)
	$(BIN)/cfexp sweep $(EXP) --workers $(WORKERS) $(ARGS)

# Each study's best configuration of $(EXP), retrained on 5 seeded folds: intervals and paired tests (after a sweep).
evaluate: $(STAMP)
	$(BIN)/cfexp evaluate $(EXP) $(ARGS)

# A PostgreSQL cluster and an `mlflow server` on it, kept in $(SERVICES_DIR), on loopback or on HOST=ADDRESS for other
# machines (AUTH=1: the tracking server asks for a login); docs/scaling.md. PostgreSQL: apt-get install postgresql.
SERVICES_DIR ?= .services
services: $(STAMP)
	$(BIN)/python -m cfexp.services start --dir $(SERVICES_DIR) $(if $(PG_PORT),--pg-port $(PG_PORT)) \
		$(if $(MLFLOW_PORT),--mlflow-port $(MLFLOW_PORT)) $(if $(HOST),--host $(HOST)) $(if $(AUTH),--auth)

services-stop: $(STAMP)
	$(BIN)/python -m cfexp.services stop --dir $(SERVICES_DIR)

# The research report of the last sweep of $(EXP): reports/<experiment>/index.html and report.md.
report: $(STAMP)
	$(BIN)/cfexp report $(EXP)

# The MLflow UI for this project's store on http://127.0.0.1:$(PORT); prints the link to $(EXP)'s runs table.
PORT ?= 5000
ui: $(STAMP)
	$(BIN)/cfexp ui $(EXP) --port $(PORT)

# The variants experiment's champion (or MODEL=models:/...) served by MLflow on 127.0.0.1:$(SERVE_PORT).
SERVE_PORT ?= 5002
serve: $(STAMP)
	$(BIN)/cfexp serve $(if $(MODEL),--model $(MODEL)) --port $(SERVE_PORT)

# optuna-dashboard on the sweep's studies (histories, importances, parameter relations): CFEXP_STORAGE when set
# (a shared PostgreSQL, say), else the local journal.
DASHBOARD_PORT ?= 8080
dashboard: $(STAMP)
	$(BIN)/optuna-dashboard --host 127.0.0.1 --port $(DASHBOARD_PORT) $(or $(CFEXP_STORAGE),mlruns/optuna-journal.log)

train: $(STAMP)
	$(BIN)/cfexp train $(or $(EXP_TRAIN),experiments/seed_reproduction.toml)

data: $(STAMP)
	$(BIN)/cfexp data

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
