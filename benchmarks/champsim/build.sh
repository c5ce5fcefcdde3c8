#!/bin/sh
# Build ChampSim (https://github.com/ChampSim/ChampSim) as an external oracle for simkit's cache
# hierarchy and core model (tests/test_champsim_oracle.py; it skips when this was not run).
#   sh benchmarks/champsim/build.sh            # clones the pinned commit (needs github.com)
#   CHAMPSIM_SRC=/path/to/ChampSim sh benchmarks/champsim/build.sh   # or a local checkout
# The binary is ~/.cache/simkit/champsim/bin/champsim_simkit (or $SIMKIT_CHAMPSIM_DIR/bin/...).
# It is built from ChampSim's own default configuration (champsim_config.json of the checkout)
# with the geometry of tests/test_champsim_oracle.py: no prefetchers, LRU everywhere, L1D
# 32 KiB/8 (5 c), L2 512 KiB/8 (13 c), LLC 2 MiB/16 (53 c), a 4-wide core with ROB 224, LQ 72,
# SQ 56, a 4-level page table. Nothing of ChampSim is copied into
# simkit. Dependencies (Debian): g++ libfmt-dev libcli11-dev nlohmann-json3-dev libbz2-dev
# liblzma-dev zlib1g-dev, installed with apt-get when run as root.
set -eu
PIN=2ff2501158579a5df662cdf30bc3b34296233c63
DIR=${SIMKIT_CHAMPSIM_DIR:-$HOME/.cache/simkit/champsim}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq g++ libfmt-dev libcli11-dev nlohmann-json3-dev libbz2-dev \
        liblzma-dev zlib1g-dev >/dev/null
fi
mkdir -p "$DIR"
if [ ! -d "$DIR/src/.git" ]; then
    rm -rf "$DIR/src"
    if [ -n "${CHAMPSIM_SRC:-}" ]; then
        git clone -q "$CHAMPSIM_SRC" "$DIR/src"
    else
        git clone -q https://github.com/ChampSim/ChampSim "$DIR/src" || {
            echo "champsim: cannot clone github.com/ChampSim/ChampSim (offline?); set CHAMPSIM_SRC" >&2
            exit 1; }
    fi
fi
cd "$DIR/src"
git checkout -q "$PIN" 2>/dev/null || echo "champsim: pinned commit $PIN not in this checkout; using $(git rev-parse --short HEAD)" >&2
python3 - <<'PY'
import json
c = json.load(open("champsim_config.json"))
c["executable_name"] = "champsim_simkit"
for cache in ("L1I", "L1D", "L2C", "LLC"):
    c[cache].update(prefetcher="no", replacement="lru")
c["L1D"].update(sets=64, ways=8, latency=5)
c["L2C"].update(sets=1024, ways=8, latency=13)
c["LLC"].update(sets=2048, ways=16, latency=53)
# the core of simkit's "victima" preset (the artifact's): 4 wide, ROB 224, LQ 72, SQ 56
c["ooo_cpu"][0].update(fetch_width=4, decode_width=4, dispatch_width=4, execute_width=4,
                       retire_width=4, rob_size=224, lq_size=72, sq_size=56)
c["virtual_memory"]["num_levels"] = 4          # x86-64 4-level radix, as simkit's walks
json.dump(c, open("simkit_config.json", "w"), indent=1)
PY
# Debian's CLI11 is header-only where ChampSim's vcpkg build links a library, and the unit
# tests' catch.hpp is only needed to generate their make dependencies: stand-ins for both.
T=vcpkg_installed/x64-linux
mkdir -p "$T/include" "$T/lib"
[ -f "$T/lib/libCLI11.a" ] || ar rc "$T/lib/libCLI11.a"
[ -f "$T/include/catch.hpp" ] || : > "$T/include/catch.hpp"
rm -f absolute.options
./config.sh simkit_config.json >/dev/null
make -j"$(nproc)" bin/champsim_simkit >/dev/null
mkdir -p "$DIR/bin"
cp bin/champsim_simkit "$DIR/bin/champsim_simkit"
echo "champsim: built $DIR/bin/champsim_simkit ($(git rev-parse --short HEAD))"
