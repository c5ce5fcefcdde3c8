# simkit: `make demo` (set up + quick reproduction with plots) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup tools demo gallery test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,parquet,dist]'
	$(PY) -m simkit.warmup      # compile the kernels into numba's on-disk cache once
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
	    /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-*.so >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get update -qq && apt-get install -y -qq libjemalloc2 libmimalloc2.0 \
	        libtcmalloc-minimal4 libclang-rt-14-dev >/dev/null || \
	        echo "note: allocator packages not installable here (their tests will skip)"; \
	    else echo "note: jemalloc/mimalloc/tcmalloc/scudo missing (their tests will skip)"; fi; }
	@# memray for Python allocation capture (best effort: its test skips without it)
	@[ ! -x $(VENV)/bin/pip ] || $(VENV)/bin/python -c "import memray" 2>/dev/null || \
	  $(VENV)/bin/pip install -q memray >/dev/null 2>&1 || echo "note: memray not installable"

demo: setup tools
	$(PY) -m simkit reproduce all --quick --outdir results

gallery: setup tools
	$(PY) -m simkit reproduce all --quick --outdir results --gallery docs/gallery

test: setup tools
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_cache_speed.py

clean:
	rm -rf results .pytest_cache build *.egg-info
