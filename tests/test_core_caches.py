"""`simkit cache run --core`: the cache hierarchy timed by the core model (issue 14).

The counters must be exactly the untimed hierarchy's, and the cycles what the core's rules give
by hand for streams whose serving level is known: all L1 hits, a dependent chain of memory
misses, independent misses overlapped up to the load queue."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from simkit.cache import CacheConfig, Hierarchy, HierarchyConfig
from simkit.core import CoreConfig
from simkit.core.timed_caches import TimedHierarchy
from simkit.trace.format import Op, make_records

MEM = 200
ONE_LEVEL = HierarchyConfig(levels=(CacheConfig("L1", "4KiB", 4, latency_cycles=4),),
                            memory_latency_cycles=MEM)


@pytest.mark.parametrize("preset", ["reference-3level", "zen3", "inclusive"])
def test_counters_equal_the_untimed_hierarchy(preset):
    if preset == "inclusive":           # the zen3 geometry, inclusive (back-invalidations)
        preset = dataclasses.replace(HierarchyConfig.preset("zen3"), inclusion="inclusive")
    rng = np.random.default_rng(5)
    n = 60_000
    addr = np.where(rng.random(n) < 0.5, rng.integers(0, 1 << 16, n),
                    rng.integers(0, 1 << 26, n)) * 8
    ops = rng.choice([Op.LOAD, Op.STORE, Op.MODIFY], n).astype(np.uint8)
    recs = make_records(addr, op=Op.LOAD, size=8, icount=3)
    recs["op"] = ops
    recs["size"][::97] = 200                       # some records span several lines
    plain = Hierarchy(preset).access(recs)
    timed = TimedHierarchy(preset, "zen3").access(recs)
    assert np.array_equal(plain.counters, timed.counters)
    assert timed.core.accesses == n and timed.core.instructions == 3 * n


def test_all_l1_hits_run_at_the_dispatch_width():
    n, width, lq = 40_000, 4, 72
    recs = make_records(np.zeros(n, np.uint64) + 64, op=Op.LOAD, size=8, icount=1)
    s = TimedHierarchy(ONE_LEVEL, CoreConfig("w", width=width, lq=lq)).access(recs)
    # load 0 misses to memory (done at MEM); loads 1..71 hit and dispatch at i/W, but load 72
    # waits for load 0 to retire (the LQ); from MEM on the rest dispatch at W per cycle, and the
    # last completes 4 cycles (the L1 latency) after its dispatch at MEM + (n - 1 - lq) / W
    assert s["L1"].misses == 1
    assert s.core.cycles == pytest.approx(MEM + (n - 1 - lq) / width + 4, abs=1e-6)
    assert s.core.ipc == pytest.approx(width, rel=0.02)


def test_a_dependent_chain_of_memory_misses_costs_n_times_the_memory_latency():
    n = 500
    recs = make_records(np.arange(n, dtype=np.uint64) * 4096 * 4, op=Op.LOAD, size=8, icount=1)
    s = TimedHierarchy(ONE_LEVEL, CoreConfig("c", dependence="chain")).access(recs)
    assert s["L1"].misses == n
    assert s.core.cycles == pytest.approx(n * MEM, abs=1e-6)     # done_i = i * MEM exactly
    assert s.core.ns == pytest.approx(n * MEM / 2.6)


def test_independent_misses_overlap_up_to_the_load_queue():
    n, lq = 20_000, 72
    recs = make_records(np.arange(n, dtype=np.uint64) * 64, op=Op.LOAD, size=8, icount=1)
    s = TimedHierarchy(ONE_LEVEL, CoreConfig("i", lq=lq, rob=224)).access(recs)
    assert s["L1"].misses == n
    # a load dispatches when the one lq loads earlier has retired: lq misses per MEM (+1 cycle
    # of issue spacing per group); W = 4 leaves the LQ as the bound
    assert s.core.cycles / n == pytest.approx(MEM / lq, rel=0.02)


def test_stats_subtract_and_reach_the_frame():
    recs = make_records(np.arange(5000, dtype=np.uint64) * 64, op=Op.LOAD, size=8, icount=2)
    h = TimedHierarchy(ONE_LEVEL, "zen3")
    first = h.access(recs[:2000])
    h.access(recs[2000:])
    whole = h.stats
    rest = whole - first
    assert rest.core.accesses == 3000 and rest.core.instructions == 6000
    df = whole.to_frame()
    assert {"cycles", "ipc", "ns_per_access"} <= set(df.columns)
    assert df.ipc.iloc[0] == pytest.approx(whole.core.ipc)
    assert whole.core.translation_stall_share == 0.0          # translation is free here
    with pytest.raises(ValueError, match="trans/walks"):
        h.core.run(np.ones(3), np.zeros(3), np.zeros(3), np.zeros(3))


def test_cli_prints_cycles_and_ipc_and_refuses_dependence_without_core():
    cmd = [sys.executable, "-m", "simkit", "cache", "run", "--trace", "gups", "--max-records",
           "20000", "--core", "zen3", "--dependence", "independent"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[0].split()
    assert {"cycles", "ipc", "ns_per_access"} <= set(head)
    bad = subprocess.run(cmd[:-4] + ["--dependence", "chain"], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "--dependence" in bad.stderr
