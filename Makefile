# simkit: `make demo` (set up + quick reproduction with plots), `make readme` (the README's tables
# from that run) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup setup-test tools demo gallery readme test bench clean

# `setup` installs what the simulators and `make demo` need (numpy, numba, pandas, simpy,
# matplotlib) and compiles the kernels; `setup-test` adds the test and sweep extras (pytest,
# hypothesis, pycachesim, the notebook runner, dask, pyarrow), which a demo does not use.
setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e .
	$(PY) -m simkit.warmup      # compile the kernels into numba's on-disk cache, one process per CPU
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test,parquet,dist]'
	@# memray for Python allocation capture (best effort: its test skips without it)
	@$(VENV)/bin/pip install -q memray >/dev/null 2>&1 || echo "note: memray not installable"
	touch $@

# System tools for trace capture (valgrind) and the shipped C programs (gcc). Best effort: the
# tests that need valgrind skip with a one-line reason where it cannot be installed.
tools:
	@command -v valgrind >/dev/null && command -v gcc >/dev/null || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get update -qq && apt-get install -y -qq valgrind gcc >/dev/null; \
	    else echo "note: valgrind/gcc missing and not installable here (trace capture tests will skip)"; fi; }
	@# the real allocators for `simkit bench malloc` (Debian 12 packages; Scudo from clang-rt)
	@ls /usr/lib/*/libjemalloc.so.2 /usr/lib/*/libmimalloc.so.2 /usr/lib/*/libtcmalloc_minimal.so.4 \
	    /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-*.so \
	    /usr/lib/libefence.so.0 >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get update -qq && apt-get install -y -qq libjemalloc2 libmimalloc2.0 \
	        libtcmalloc-minimal4 libclang-rt-14-dev electric-fence >/dev/null || \
	        echo "note: allocator packages not installable here (their tests will skip)"; \
	    else echo "note: jemalloc/mimalloc/tcmalloc/scudo/efence missing (their tests will skip)"; fi; }
	@# GrapheneOS hardened_malloc (not packaged): built from source at a pinned commit, from a
	@# clone or $$SIMKIT_HARDENED_MALLOC_SRC; one line and on when neither is reachable
	@PYTHONPATH=$(CURDIR) $$( [ -x $(PY) ] && echo $(PY) || echo $(PYTHON) ) \
	  -m simkit.bench.malloc.hardened || echo "note: hardened_malloc not built"

demo: setup tools
	$(PY) -m simkit reproduce all --quick --outdir results

gallery: setup tools
	$(PY) -m simkit reproduce all --quick --outdir results --gallery docs/gallery

# the README's generated tables from the last run's results/summary.csv (after make demo)
readme: setup
	$(PY) -m simkit.experiments.readme --results results --readme README.md

test: setup-test tools
	$(PY) -m pytest -q

bench: setup-test
	$(PY) benchmarks/bench_cache_speed.py

clean:
	rm -rf results .pytest_cache build *.egg-info
