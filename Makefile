# Every target sets the project up from nothing first (a .venv with a CPU build of torch).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test docs docs-check bench bench-scm bench-speed bench-morpho bench-effects bench-validation bench-ncm bench-debias bench-fairness bench-soundness lint clean

install: $(STAMP)

# torch is installed first, pinned, so pip never pulls a multi-GB CUDA build on a CPU machine;
# the project itself only asks for a range that this version satisfies.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/deepscm demo --out deepscm-demo

test: install
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q

# The documentation site, built offline into site/ (strict: a broken link or page fails).
docs: install
	$(BIN)/pip install -q -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Every example of the docs and the README, the slow ones included (about 20 min on 2 cores).
docs-check: install
	$(BIN)/pip install -q -e '.[docs]'
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests/test_docs.py -m "slow or not slow"

# Every benchmark (several hours on 2 cores); each part also runs on its own.
bench: bench-scm bench-speed bench-morpho bench-effects bench-validation bench-ncm bench-debias bench-fairness bench-soundness

bench-scm: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/scm_suite.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/diffusion_steps.py

# Sampling and fit speed, fit scaling to 1M rows, the 2-process data-parallel speed-up.
bench-speed: install
	$(BIN)/python benchmarks/sampling.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/fit_scaling.py --sections scaling --rows 1000,10000,100000,1000000 --epochs 2 --es-max-rows 10000 --job-timeout 1200
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bank_tanh.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bank_adam.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ddp_speedup.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ddp_speedup.py --batch-size 16384 --out benchmarks/results/ddp_speedup_batch16k.json

bench-morpho: install
	$(BIN)/python benchmarks/morpho_dscm.py
	$(BIN)/python benchmarks/morpho_diffusion.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/digit_class.py

bench-effects: install
	$(BIN)/pip install -q -e '.[bench]'
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ihdp.py --replications 100
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/nhefs.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/lalonde.py

bench-validation: install
	$(BIN)/pip install -q -e '.[bench]'
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/validation.py --cost 20 5000 20
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/validation.py --dowhy --seeds 40 --falsify-seeds 6

bench-ncm: install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ncm.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ncm_continuous.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/gan_root_collapse.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ncm_counterfactual.py

bench-debias: install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/debias.py

bench-fairness: install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/fairness.py

bench-soundness: install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/soundness.py

lint: install
	$(BIN)/pip install -q ruff
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) deepscm-demo site build dist src/*.egg-info .pytest_cache
