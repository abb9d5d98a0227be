# Two commands: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-dense test install clean

$(STAMP): requirements.txt setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade 'pip<26'
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# the paper's own affinity, the tournament over a recombination sweep, on
# converged models: about 8 minutes on 2 cores (docs/benchmarks.md)
demo: $(STAMP)
	$(BIN)/python tools/branch.py configs/multidigits/branch_multidigits_demo.py \
		--work-dir work_dirs/branch_multidigits --budget 60% --affinity tournament

# the main job on SyntheticScenes' five dense tasks, in about 12 minutes on
# 2 cores (docs/benchmarks.md)
demo-dense: $(STAMP)
	$(BIN)/python tools/branch.py configs/synthetic_scenes/branch_synthetic_scenes_cpu.py \
		--work-dir work_dirs/branch_synthetic_scenes_cpu --budget 60%

# the suite in parallel, whole files per worker (a module's fixtures, such
# as the local Slurm, start once), one thread per worker so that the
# workers do not oversubscribe the cores; TEST_WORKERS=0 runs it in one
# process
TEST_WORKERS ?= auto
test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q \
		-n $(TEST_WORKERS) --dist loadfile tests

clean:
	rm -rf $(VENV) work_dirs
