"""A hierarchy split over threads by the top set bits of its smallest level: the counters must
not depend on the thread count.

Checked against the one-thread run (the level-at-a-time kernel) and, for a load stream,
against pycachesim (an independent C implementation) on the same hierarchy."""
import numpy as np
import pytest

from simkit.cache import CacheConfig, Hierarchy, HierarchyConfig
from simkit.trace import synth
from simkit.trace.format import Op, make_records


HIERARCHIES = {
    # LRU 8 and 12 ways, write-through no-allocate SRRIP, FIFO, tree-PLRU
    "non-inclusive": HierarchyConfig(levels=(
        CacheConfig("L1", "4KiB", 8),
        CacheConfig("L2", "48KiB", 12),
        CacheConfig("L3", "128KiB", 16, policy="srrip", write_back=False, write_allocate=False),
        CacheConfig("L4", "256KiB", 8, policy="fifo"),
        CacheConfig("L5", "1MiB", 16, policy="plru"),
    )),
    "inclusive": HierarchyConfig(levels=(
        CacheConfig("L1", "4KiB", 8), CacheConfig("L2", "32KiB", 8),
        CacheConfig("L3", "256KiB", 16, policy="srrip")), inclusion="inclusive"),
    "exclusive": HierarchyConfig(levels=(
        CacheConfig("L1", "4KiB", 4), CacheConfig("L2", "64KiB", 8, policy="plru")),
        inclusion="exclusive"),
    # BRRIP draws from one generator per level in trace order: kept on one thread
    "brrip": HierarchyConfig(levels=(
        CacheConfig("L1", "4KiB", 8), CacheConfig("L2", "256KiB", 8, policy="brrip"))),
}


def run(cfg, recs, threads, chunk=1 << 16):
    h = Hierarchy(cfg, threads=threads)
    h.run(recs, chunk_records=chunk)
    return h, h.state.counters.copy(), [h.state.resident_lines(i) for i in range(len(cfg.levels))]


ICOUNT = 3


@pytest.mark.parametrize("name", sorted(HIERARCHIES))
def test_thread_counts_give_identical_counters_and_contents(name):
    rng = np.random.default_rng(7)
    n = 200_000
    a = synth.uniform(n, 2 << 20, seed=3, store_fraction=0.3)
    # a quarter of the accesses are modifies and fetches, some spanning two lines
    ops = rng.choice(np.array([Op.LOAD, Op.STORE, Op.MODIFY, Op.IFETCH], dtype=np.uint8),
                     size=n, p=[0.5, 0.25, 0.15, 0.1])
    sizes = np.where(rng.random(n) < 0.05, 16, 8).astype(np.uint16)
    addrs = a["addr"] + np.where(sizes == 16, np.uint64(56), np.uint64(0))
    recs = make_records(addrs, op=ops, size=sizes, icount=ICOUNT)
    cfg = HIERARCHIES[name]
    h1, base_cnt, base_lines = run(cfg, recs, 1)
    assert h1.stats.instructions == ICOUNT * n              # a spanning record counts once
    assert base_cnt[:, :10].sum(axis=1).min() > 0          # every level saw hits or misses
    assert base_cnt[len(cfg.levels), 1] > 0                 # dirty lines reached memory
    for threads in (2, 4):
        h, cnt, lines = run(cfg, recs, threads)
        assert h.threads == (1 if name == "brrip" else threads)
        assert h.stats.instructions == ICOUNT * n
        np.testing.assert_array_equal(cnt, base_cnt)
        for ours, theirs in zip(lines, base_lines):
            np.testing.assert_array_equal(ours, theirs)


def test_threads_match_pycachesim_on_loads():
    cachesim = pytest.importorskip("cachesim", reason="pycachesim not installed")
    geometry = [("L1", 32768, 8), ("L2", 262144, 16), ("L3", 2 << 20, 16)]
    addrs = synth.uniform(200_000, 8 << 20, seed=5)["addr"] & np.uint64(0xFFFFFFFF)
    mem = cachesim.MainMemory()
    below, caches = None, []
    for name, size, ways in reversed(geometry):
        kw = {} if below is None else {"store_to": below, "load_from": below}
        c = cachesim.Cache(name, size // (ways * 64), ways, 64, "LRU", **kw)
        if below is None:
            mem.load_to(c)
            mem.store_from(c)
        caches.insert(0, c)
        below = c
    cachesim.CacheSimulator(caches[0], mem).load([int(x) for x in addrs], length=1)
    theirs = [(c.HIT_count, c.MISS_count) for c in caches]
    cfg = HierarchyConfig(levels=tuple(CacheConfig(n, s, w) for n, s, w in geometry))
    for threads in (1, 2, 4):
        s = Hierarchy(cfg, threads=threads).run(make_records(addrs, op=Op.LOAD, size=1))
        assert [(lv.hits, lv.misses) for lv in s.levels] == theirs


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 3, 128])
def test_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="threads"):
        Hierarchy("reference-3level", threads=bad)


def test_slices_full_of_spanning_records_keep_trace_order():
    """Records of 2-4 KiB (32-64 lines each) fill a thread's bucket of one slice long before
    the slice ends, so the partition stops early and the slices after it are partitioned
    again in the next round: the counters still equal one thread's."""
    from simkit.cache import _kernels as K

    rng = np.random.default_rng(3)
    n = K.PART_RECORDS + 5000                   # more than one part, slices cut short
    a = synth.uniform(n, 1 << 22, seed=4)
    big = rng.random(n) < 0.3
    sizes = np.where(big, rng.choice([2048, 4096], n), 8).astype(np.uint16)
    ops = rng.choice([Op.LOAD, Op.STORE, Op.MODIFY], size=n, p=[0.6, 0.3, 0.1])
    recs = make_records(a["addr"], op=ops, size=sizes, icount=ICOUNT)
    cfg = HierarchyConfig(levels=(CacheConfig("L1", "4KiB", 8), CacheConfig("L2", "64KiB", 16)))
    _, c1, r1 = run(cfg, recs, 1, chunk=n)
    for threads in (2, 4):
        h, ct, rt = run(cfg, recs, threads, chunk=n)
        assert (ct == c1).all(), threads
        assert all(np.array_equal(x, y) for x, y in zip(r1, rt))
        assert h.stats.instructions == ICOUNT * n
