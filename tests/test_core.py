"""The core timing model against values computed by hand from the model's rules (issue 14):
all hits run at the dispatch width; a dependent chain costs the sum of its latencies;
independent misses overlap up to min(ROB/k, LQ) accesses; walkers bound walk throughput."""
from __future__ import annotations

import numpy as np
import pytest

from simkit.core import CoreConfig, CoreModel, CoreStats


def run(cfg, n, k=1, trans=1, walk=0, lat=4, **kw):
    return CoreModel(cfg).run(np.full(n, k), np.full(n, trans), np.full(n, walk),
                              np.full(n, lat), **kw)


def test_all_l1_hits_give_ipc_equal_to_the_width():
    for width in (2, 4, 6):
        s = run(CoreConfig("w", width=width), 200_000)
        # n/W cycles of dispatch plus one access's latency (5 cycles) at the end
        assert s.cycles == pytest.approx(200_000 / width + 5, abs=1)
        assert s.ipc == pytest.approx(width, rel=1e-3)


def test_a_dependent_chain_costs_the_sum_of_its_latencies():
    s = run(CoreConfig("c", dependence="chain", walkers=4), 1000, trans=31, walk=30, lat=200)
    assert s.cycles == pytest.approx(1000 * (31 + 200), abs=1)
    ideal = 1000 * 200                                   # the same chain with free translation
    assert s.translation_stall_share == pytest.approx(1 - ideal / (1000 * 231), abs=1e-3)


def test_flagged_records_depend_the_others_do_not():
    cfg = CoreConfig("f", dependence="flag")
    n = 2000
    chained = run(cfg, n, lat=100, flags=np.ones(n, np.uint8))
    assert chained.cycles == pytest.approx(n * (1 + 100), abs=1)       # as dependence="chain"
    free = run(cfg, n, lat=100, flags=np.zeros(n, np.uint8))
    assert free.cycles / n == pytest.approx(101 / 72, rel=0.02)         # load-queue bound
    flags = np.zeros(n, np.uint8)
    flags[::2] = 1                   # chains of two: a flagged load waits for one independent
    half = run(cfg, n, lat=100, flags=flags)
    assert free.cycles < half.cycles <= 2 * free.cycles + 101      # at most twice the residency


def test_independent_misses_overlap_up_to_the_load_queue():
    s = run(CoreConfig("lq", lq=72, rob=224), 100_000, lat=200)
    assert s.cycles / 100_000 == pytest.approx(200 / 72, rel=0.01)


def test_independent_misses_overlap_up_to_rob_over_k():
    k = 10                                                # 224 / 10 = 22.4 accesses in flight
    s = run(CoreConfig("rob", lq=72, rob=224), 100_000, k=k, lat=200)
    per = s.cycles / 100_000
    assert 200 / (224 / k + 1) <= per <= 200 / (224 / k - 1)


def test_one_walker_bounds_cycles_from_below():
    n = 20_000
    for walkers in (1, 2, 4):
        s = run(CoreConfig("w", walkers=walkers), n, trans=31, walk=30)
        assert s.cycles >= n * 30 / walkers
        assert s.cycles == pytest.approx(n * 30 / walkers, rel=0.01)


def test_stores_do_not_block_and_chunks_equal_one_run():
    n = 50_000
    ops = np.ones(n, np.uint8)                           # all stores: the LQ never fills
    s = run(CoreConfig("s", lq=4), n, lat=200, ops=ops)
    assert s.cycles / n < 200 / 4 / 5
    one = run(CoreConfig("c"), n, lat=120)
    m = CoreModel(CoreConfig("c"))
    for a in range(0, n, 7_777):
        b = min(n, a + 7_777)
        m.run(np.ones(b - a), np.ones(b - a), np.zeros(b - a), np.full(b - a, 120))
    assert m.stats.cycles == one.cycles


def test_stats_subtract_and_tabulate():
    a = CoreStats("c", 100, 10, 400.0, 300.0)
    b = CoreStats("c", 40, 4, 100.0, 90.0)
    d = a - b
    assert (d.instructions, d.accesses, d.cycles, d.ideal_cycles) == (60, 6, 300.0, 210.0)
    assert d.ipc == pytest.approx(0.2)
    assert list(d.to_frame().columns)[:3] == ["core", "core_instructions", "core_accesses"]


@pytest.mark.parametrize("kw,field", [({"rob": 0}, "rob"), ({"dependence": "sometimes"},
                                                            "dependence"),
                                      ({"walkers": 1.5}, "walkers")])
def test_config_errors_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        CoreConfig(**kw)


def test_the_mmu_feeds_the_core_its_per_access_latencies():
    """With dependent accesses and no data caches, the core's cycles are the sum of the MMU's
    translation cycles (plus one dispatch slot per access); free translation leaves the
    dispatch alone, so the stall share is 1 - dispatch / cycles."""
    from simkit.bench.cpu.chase import chase_address_stream
    from simkit.tlb import MMU, MMUConfig

    stream = chase_address_stream("tlb", n_pages=4096, laps=2)
    cfg = MMUConfig.preset("victima-radix").replace(data_through_caches=False)
    s = MMU(cfg, core=CoreConfig("c", dependence="chain", width=4)).run(stream)
    n = s.records
    total = s.translation_cycles_per_access * n
    assert s.core.accesses == n and s.core.instructions == s.instructions
    assert s.core.cycles == pytest.approx(total, rel=0.01, abs=n / 4 + 1)
    frame = s.to_frame()
    assert {"cycles", "ipc", "translation_stall_share"} <= set(frame.columns)
    warm = MMU(cfg, core=CoreConfig("c", dependence="chain")).run(stream, warmup_records=n // 2)
    assert warm.core.accesses == n - n // 2


@pytest.fixture(scope="module")
def gups_head():
    from simkit.trace.catalog import find_trace
    from simkit.trace.stream import open_source
    return np.concatenate(list(open_source(find_trace("gups"), 1 << 20, 400_000)[2]))


def test_the_core_inside_the_mmu_does_not_depend_on_how_the_trace_is_cut(gups_head):
    """run_mmu advances the core over a buffer of records: chunk ends, buffer ends, page-table
    growth and split runs must not change a cycle (exact float equality)."""
    from simkit.tlb import MMU

    core = CoreConfig("f", dependence="flag", walkers=2)
    flags = gups_head.copy()
    flags["flags"] = np.arange(len(flags)) % 3 == 0          # some dependent loads
    one = MMU("victima-paper", core=core).run(flags).core
    cut = MMU("victima-paper", core=core)
    cut.run(flags[:123_457], chunk_records=777)
    cut.run(flags[123_457:], chunk_records=5_003)
    assert (cut.core.stats.cycles, cut.core.stats.ideal_cycles) == (one.cycles, one.ideal_cycles)
    assert one.cycles > one.ideal_cycles > 0


def test_the_core_costs_the_mmu_little(gups_head):
    """A generous floor (issue 13): the full model runs at >= 0.5x the translation-only model's
    accesses per CPU second (0.81-0.83x measured on 2026-12-07; 0.54-0.58x when the core ran as a
    second pass over per-record arrays). Issue 18 made the translation-only model ~2.3x faster
    and left the core's own cost (~15 ns a record) as it was, so the ratio fell to 0.60-0.66
    (full model 14.8 -> 27.0 M/s on gups, translation only 19.3 -> 45.2 M/s, same run).
    benchmarks/test_speed_tlb.py records the absolute rate."""
    import time

    from simkit.tlb import MMU

    best = {None: float("inf"), "victima": float("inf")}
    for core in best:
        MMU("victima-radix", core=core).run(gups_head[:1000])
    for _ in range(3):
        for core in best:
            t = time.thread_time()
            MMU("victima-radix", core=core).run(gups_head)
            best[core] = min(best[core], time.thread_time() - t)
    assert best[None] / best["victima"] >= 0.5


def test_mshrs_bound_independent_misses_to_ceil_n_over_m_latencies():
    """n independent L1D misses of L cycles with M MSHRs: miss j starts when miss j - M's data
    returns, so the last ends at ceil(n / M) * L plus its dispatch offset ((n-1) mod M)/W."""
    n, lat, width = 1000, 200, 4
    for m in (1, 4, 10, 16):
        cfg = CoreConfig("m", width=width, rob=224, lq=72, mshrs=m)
        s = CoreModel(cfg, l1_cycles=4).run(np.ones(n), np.zeros(n), np.zeros(n),
                                            np.full(n, lat))
        expected = -(-n // m) * lat + ((n - 1) % m) / width
        assert s.cycles == pytest.approx(expected, abs=1e-9)
    # L1 hits (latency <= l1_cycles) take no MSHR: the width bounds them, as with no limit
    hits = CoreModel(CoreConfig("m", mshrs=1), l1_cycles=4).run(
        np.ones(n), np.zeros(n), np.zeros(n), np.full(n, 4))
    assert hits.cycles == run(CoreConfig("m"), n, trans=0).cycles
    # a dependent chain has one miss in flight: one MSHR costs nothing
    chain = CoreModel(CoreConfig("c", dependence="chain", mshrs=1), l1_cycles=4).run(
        np.ones(n), np.zeros(n), np.zeros(n), np.full(n, lat))
    assert chain.cycles == pytest.approx(n * lat, abs=1e-9)
    # stores take none (they drain from the store queue)
    st = CoreModel(CoreConfig("s", mshrs=1), l1_cycles=4).run(
        np.ones(n), np.zeros(n), np.zeros(n), np.full(n, lat), ops=np.ones(n, np.uint8))
    assert st.cycles < n * lat / 10


def test_zero_mshrs_is_no_limit():
    n = 20_000
    a = run(CoreConfig("u", mshrs=0), n, lat=300)
    b = run(CoreConfig("u", mshrs=1024), n, lat=300)
    assert a.cycles == b.cycles                  # 1024 MSHRs never bind under LQ 72
    with pytest.raises(ValueError, match="mshrs"):
        CoreConfig("bad", mshrs=-1)


def test_dram_line_interval_bounds_independent_memory_fills():
    """n independent fills from memory (latency L >= mem_cycles), one DRAM slot per X cycles
    and no MSHR limit: fill j's slot is j*X (dispatch, at j/W, is earlier), so the last ends at
    (n-1)*X + L; with M MSHRs and L/M > X, fill j's slot is (j // M)*L + (j % M)*X."""
    n, lat, x = 1000, 300, 10.0
    ones, zeros, lats = np.ones(n), np.zeros(n), np.full(n, lat)
    cfg = CoreConfig("d", width=4, rob=224, lq=72, dram_line_cycles=x)
    s = CoreModel(cfg, l1_cycles=4, mem_cycles=lat).run(ones, zeros, zeros, lats)
    assert s.cycles == pytest.approx((n - 1) * x + lat, abs=1e-9)
    m = 4
    s = CoreModel(cfg.replace(mshrs=m), l1_cycles=4, mem_cycles=lat).run(ones, zeros, zeros,
                                                                         lats)
    assert s.cycles == pytest.approx((n - 1) // m * lat + (n - 1) % m * x + lat, abs=1e-9)
    # latencies below mem_cycles (cache hits) take no slot: as with no limit
    l2 = CoreModel(cfg, l1_cycles=4, mem_cycles=lat).run(ones, zeros, zeros, np.full(n, 40))
    assert l2.cycles == CoreModel(cfg.replace(dram_line_cycles=0.0), l1_cycles=4).run(
        ones, zeros, zeros, np.full(n, 40)).cycles
    # 0: no limit, exactly as before
    free = CoreModel(cfg.replace(dram_line_cycles=0.0), l1_cycles=4, mem_cycles=lat).run(
        ones, zeros, zeros, lats)
    assert free.cycles == CoreModel(CoreConfig("d", width=4, rob=224, lq=72)).run(
        ones, zeros, zeros, lats).cycles
    with pytest.raises(ValueError, match="dram_line_cycles"):
        CoreConfig("bad", dram_line_cycles=-1.0)
    with pytest.raises(ValueError, match="mem_cycles"):
        CoreModel(cfg)                                   # a limit needs the memory latency


def test_a_walk_that_read_memory_takes_a_dram_slot():
    """Record 0 walks (50 cycles, from t = 0) and its walk read memory: it pushes the DRAM
    server to X = 100 without waiting. Record 1, a fill from memory (L = 300) dispatched at
    t = 1/W, then gets the slot at 100 and ends at 400; without the walk's slot it ends at
    0.25 + 300."""
    from numba import njit

    from simkit.core import _kernels as CK

    @njit
    def two(params, ring, lqr, walk, mshr, wdram):
        s = (0.0, 0.0, 0.0, 0.0, 0.0, np.int64(0), np.int64(0), np.int64(0))
        s = CK.step(s, 1.0, True, False, 50.0, 50.0, 0.0, wdram, 4.0, params, 0.25, ring, lqr,
                    walk, mshr)
        s = CK.step(s, 1.0, True, False, 0.0, 0.0, 0.0, False, 300.0, params, 0.25, ring,
                    lqr, walk, mshr)
        return s[4]

    cfg = CoreConfig("w", width=4, walkers=4, dram_line_cycles=100.0)
    for wdram, expected in ((True, 400.0), (False, 0.25 + 300.0)):
        ring = np.zeros((2, CK.ring_size(cfg.rob)))
        done = two(cfg.params(4, 300), ring, np.zeros(cfg.lq), np.zeros(cfg.walkers),
                   np.zeros(2), wdram)
        assert done == pytest.approx(expected, abs=1e-9)


def test_a_walk_that_missed_the_l1d_holds_an_mshr_with_walk_mshrs():
    """One MSHR. Record 0 walks for 50 cycles from t = 0, 30 of them PTE reads beyond the L1D:
    with ``walk_mshrs`` it holds the MSHR over [0, 30]. Record 1, an L1D miss of 300 cycles
    dispatched at t = 1/W = 0.25, waits for it: 30 + 300 = 330. Without ``walk_mshrs``, or when
    the walk's reads all hit the L1D (0 cycles beyond it), it starts at once: 300.25."""
    from numba import njit

    from simkit.core import _kernels as CK

    @njit
    def two(params, ring, lqr, walk, mshr, wm):
        s = (0.0, 0.0, 0.0, 0.0, 0.0, np.int64(0), np.int64(0), np.int64(0))
        s = CK.step(s, 1.0, True, False, 50.0, 50.0, wm, False, 4.0, params, 0.25, ring, lqr,
                    walk, mshr)
        s = CK.step(s, 1.0, True, False, 0.0, 0.0, 0.0, False, 300.0, params, 0.25, ring,
                    lqr, walk, mshr)
        return s[4]

    for walk_mshrs, wm, expected in ((True, 30.0, 330.0), (False, 30.0, 300.25),
                                     (True, 0.0, 300.25)):
        cfg = CoreConfig("w", width=4, walkers=4, mshrs=1, walk_mshrs=walk_mshrs)
        ring = np.zeros((2, CK.ring_size(cfg.rob)))
        done = two(cfg.params(4), ring, np.zeros(cfg.lq), np.zeros(cfg.walkers), np.zeros(2),
                   wm)
        assert done == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="walk_mshrs"):
        CoreConfig("bad", walk_mshrs=1)


def test_walk_mshrs_in_the_mmu_sums_the_walks_reads_beyond_the_l1d(gups_head):
    """Through ``run_mmu``: off, results are the model's without it (bit for bit); on, with one
    MSHR, every walk that read beyond the L1D delays the misses behind it, so cycles grow; the
    translation counters never change."""
    from simkit.tlb import MMU

    stream = gups_head[:50_000]
    base = CoreConfig.preset("victima").replace(mshrs=1)
    off = MMU("victima-radix", core=base).run(stream)
    same = MMU("victima-radix", core=base.replace(walk_mshrs=False)).run(stream)
    on = MMU("victima-radix", core=base.replace(walk_mshrs=True)).run(stream)
    assert off.core.cycles == same.core.cycles
    assert off.walks > 1000 and (off.counters == on.counters).all()
    assert on.core.cycles > off.core.cycles
