#!/usr/bin/env bash
# One command for the whole GPU measurement of issue 7 (simkit bench gpu), on a machine with an
# NVIDIA GPU: a few minutes on an H100/H200.
#
#     bash benchmarks/gpu_check.sh [DIR]        # DIR defaults to $OUT, else ./gpu-results
#
# 1. Installs what is missing, pinned: torch==2.13.0 (never unpinned), nvidia-ml-py, and
#    simkit's own dependencies (simpy is the one the CUDA images lack). Wheels in ./.whl (or
#    $SIMKIT_WHEELS) are used first, then the package index. A torch that is already there is
#    used as it is (its version is logged).
# 2. Logs the device as found (nvidia-smi, read-only: clocks, MIG and power are never changed).
# 3. Runs every microbenchmark with quick settings (simkit bench gpu --quick --require-gpu),
#    which writes the tables, plots, JSON files, the measured KV calibration
#    (kv-calibration-measured.json), the GPU TLB preset and the validation plots.
# 4. Runs the GPU-marked tests (pytest -m gpu).
# 5. DIR gets gpu-results.tar.gz (everything), kv-calibration-measured.json,
#    gpu-tlb-preset.json and gpu-check.log; with DIR other than $OUT, also the folder DIR/gpu.
#    (The device tool brings back at most 8 files from $OUT, hence the tarball.)
#
# In this workplace (the device tool; nothing can be downloaded on the GPU machine), once, on
# the development machine, in the repository root:
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux2014_x86_64 -d .whl simpy==4.1.1
# then run:  bash benchmarks/gpu_check.sh   with carry [".whl"] and timeout_s 540.
# Afterwards: commit kv-calibration-measured.json as
# simkit/kvpaging/calibration/measured-<gpu>.json (with device, driver, date inside) and quote
# the numbers in the issue.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
DIR=${1:-${OUT:-gpu-results}}
mkdir -p "$DIR"
LOG="$DIR/gpu-check.log"
WHEELS=${SIMKIT_WHEELS:-.whl}
export PYTHONUNBUFFERED=1
exec > >(tee "$LOG") 2>&1

have() { "$PY" -c "import $1" >/dev/null 2>&1; }
install() {   # install SPEC... : local wheels first, then the index
    if [ -d "$WHEELS" ] && "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$@"; then
        return 0
    fi
    "$PY" -m pip install -q --retries 1 --timeout 15 "$@"
}

echo "== simkit gpu check: $(date -u +%FT%TZ) on $(hostname)"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L; then
    echo "simkit: gpu check: skipped: no NVIDIA GPU (nvidia-smi missing or failing)"
    exit 3
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,mig.mode.current,power.limit,temperature.gpu,clocks_event_reasons.active --format=csv || true

have torch || install "torch==2.13.0" || { echo "simkit: gpu check: torch==2.13.0 could not be installed"; exit 4; }
have pynvml || install "nvidia-ml-py>=12" || echo "simkit: gpu check: nvidia-ml-py missing: NVML fields will be empty"
for dep in "numpy>=1.26" "numba>=0.60" "pandas>=2.1" "simpy>=4.1" "matplotlib>=3.8" "tqdm>=4.66"; do
    mod=${dep%%[>=<]*}
    have "$mod" || install "$dep" || { echo "simkit: gpu check: $dep could not be installed (put its wheel in $WHEELS)"; exit 4; }
done
"$PY" - <<'EOF'
import torch, importlib
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for m in ("pynvml", "triton", "numpy", "numba", "pandas", "simpy"):
    try:
        print(m, getattr(importlib.import_module(m), "__version__", "?"))
    except Exception as exc:
        print(m, "missing:", exc)
EOF

WORK=$(mktemp -d)/gpu
mkdir -p "$WORK"
start=$(date +%s)
"$PY" -m simkit bench gpu --quick --require-gpu --outdir "$WORK"
rc=$?
echo "== simkit bench gpu: exit $rc after $(( $(date +%s) - start )) s"
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_bench_gpu.py
trc=$?
echo "== pytest -m gpu: exit $trc"

cp "$LOG" "$WORK/" 2>/dev/null || true
tar czf "$DIR/gpu-results.tar.gz" -C "$(dirname "$WORK")" gpu
for f in kv-calibration-measured.json gpu-tlb-preset.json; do
    [ -f "$WORK/$f" ] && cp "$WORK/$f" "$DIR/"
done
if [ "${OUT:-}" != "$DIR" ]; then
    rm -rf "$DIR/gpu" && cp -r "$WORK" "$DIR/gpu"
fi
echo "== results in $DIR: $(ls "$DIR" | tr '\n' ' ')"
[ $rc -eq 0 ] && [ $trc -eq 0 ]
