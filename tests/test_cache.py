"""simkit.cache against hand-computed cases, a plain-Python reference model, and pycachesim."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simkit.cache import Cache, CacheConfig, Hierarchy, HierarchyConfig, POLICY_IDS, single
from simkit.cache import _kernels as K
from simkit.trace import synth
from simkit.trace.format import ACCESS_DTYPE, Op, make_records

from cache_reference import RefHierarchy

LINE = 64


def lines(*ls, op=Op.LOAD):
    return make_records(np.array(ls, dtype=np.uint64) * LINE, op=op, size=8)


def tiny(policy, ways=2, sets=4, **kw):
    return Cache(CacheConfig("L1", sets * ways * LINE, ways, LINE, policy, **kw))


# ---------------------------------------------------------------- hand-computed cases
# A 4-set, 2-way cache; lines 0, 4, 8 map to set 0.

def test_lru_hand_case():
    c = tiny("lru")
    s = c.access(lines(0, 4, 0, 8, 4, 0))
    # 0 miss, 4 miss, 0 hit (4 is LRU), 8 miss evicts 4, 4 miss evicts 0, 0 miss evicts 8
    assert (s[0].hits, s[0].misses, s[0].evictions) == (1, 5, 3)
    assert list(c.state.resident_lines(0)) == [0, 4]


def test_fifo_hand_case():
    c = tiny("fifo")
    s = c.access(lines(0, 4, 0, 8, 0))
    # 0 m, 4 m, 0 h (no reorder), 8 m evicts 0 (first in), 0 m evicts 4
    assert (s[0].hits, s[0].misses, s[0].evictions) == (1, 4, 2)
    assert list(c.state.resident_lines(0)) == [0, 8]


def test_plru_hand_case():
    c = tiny("plru", ways=4, sets=1)
    # fill 0..3 (ways 0..3); touch 0; victim follows bits away from the recent touches
    s = c.access(lines(0, 1, 2, 3, 0, 4))
    # after touching 0 the tree points right (ways 2/3), and away from 3 -> way 2 (line 2)
    assert list(c.state.resident_lines(0)) == [0, 1, 3, 4]
    assert (s[0].hits, s[0].misses) == (1, 5)


def test_srrip_hand_case():
    c = tiny("srrip", ways=2, sets=1)
    # inserts at RRPV 2; hit -> 0. Access 0,1 (both 2), 0 hit (0 ->0), 2: no way at 3, age +1:
    # way(1) at 3 -> evict 1. Then 1: ages, evicts 2 (RRPV 3 after ageing) not 0.
    s = c.access(lines(0, 1, 0, 2, 1))
    assert list(c.state.resident_lines(0)) == [0, 1]
    assert (s[0].hits, s[0].misses, s[0].evictions) == (1, 4, 2)


def test_write_back_dirty_eviction_goes_to_next_level_and_memory():
    cfg = HierarchyConfig(levels=(CacheConfig("L1", 2 * LINE, 2, LINE),
                                  CacheConfig("L2", 4 * LINE, 4, LINE)))
    h = Hierarchy(cfg)
    recs = np.concatenate([lines(0, op=Op.STORE), lines(1, 2)])   # one set in each level
    s = h.access(recs)
    # L1: store 0 miss (allocate, dirty), 1 miss, 2 miss evicts 0 (dirty) -> write-back into L2
    assert s["L1"].misses_by_op()["store"] == 1
    assert (s["L1"].evictions, s["L1"].writebacks) == (1, 1)
    assert s["L2"].hits_by_op()["writeback"] == 1          # line 0 is in L2 (non-inclusive fill)
    assert s.memory_reads == 3 and s.memory_writes == 0


def test_write_through_no_allocate_store_goes_to_memory():
    c = Cache(CacheConfig("L1", 4 * LINE, 2, LINE, write_back=False, write_allocate=False))
    s = c.access(np.concatenate([lines(0, op=Op.STORE), lines(0), lines(0, op=Op.STORE)]))
    # store miss: no fill, write to memory; load miss fills; store hit writes through
    assert s[0].misses_by_op()["store"] == 1 and s[0].hits_by_op()["store"] == 1
    assert (s.memory_reads, s.memory_writes) == (1, 2)


def test_access_spanning_two_lines_counts_two():
    c = tiny("lru")
    s = c.access(make_records([LINE - 4], size=8))
    assert s[0].accesses == 2


def test_inclusive_back_invalidates_upper_level():
    cfg = HierarchyConfig(levels=(CacheConfig("L1", 4 * LINE, 4, LINE),
                                  CacheConfig("L2", 2 * LINE, 2, LINE)), inclusion="inclusive")
    h = Hierarchy(cfg)
    s = h.access(lines(0, 1, 2))        # L2 holds 2 lines: filling 2 evicts 0 from L2 and L1
    assert s["L1"].back_invalidations == 1
    assert 0 not in h.state.resident_lines(0)


def test_exclusive_moves_lines_between_levels():
    cfg = HierarchyConfig(levels=(CacheConfig("L1", 1 * LINE, 1, LINE),
                                  CacheConfig("L2", 2 * LINE, 2, LINE)), inclusion="exclusive")
    h = Hierarchy(cfg)
    s = h.access(lines(0, 1, 0))
    # 0 -> L1; 1 -> L1, 0 moves to L2; 0 hits L2 and moves up, 1 moves down
    assert s["L2"].hits == 1
    assert list(h.state.resident_lines(0)) == [0] and list(h.state.resident_lines(1)) == [1]


def test_warmup_is_subtracted():
    r = synth.uniform(50_000, 1 << 20, seed=3)
    full = Hierarchy("reference-3level").run(r)
    h = Hierarchy("reference-3level")
    roi = h.run(r, warmup_records=20_000, chunk_records=7_000)
    warm = Hierarchy("reference-3level").run(r[:20_000])
    assert roi.records == 30_000
    assert np.array_equal(roi.counters + warm.counters, full.counters)


# ---------------------------------------------------------------- reference model
def compare_with_reference(config, recs, pressure=True):
    h = Hierarchy(config)
    ref = RefHierarchy(config)
    if not pressure:                   # srrip-victima's translation-pressure switch off
        h.state.geom[:, K.G_PRESSURE] = 0
        for lv in ref.levels:
            lv.pressure = False
    stats = h.access(recs)
    ref.run(recs)
    rows, (mr, mw) = ref.counters()
    for i, lv in enumerate(stats.levels):
        hits, misses, ev, wb, bi = rows[i]
        got = (tuple(lv.hits_by_op().values()), tuple(lv.misses_by_op().values()),
               lv.evictions, lv.writebacks, lv.back_invalidations)
        assert got == (hits, misses, ev, wb, bi), f"level {lv.name}"
        assert list(h.state.resident_lines(i)) == ref.levels[i].contents(), f"{lv.name} contents"
    assert (stats.memory_reads, stats.memory_writes) == (mr, mw)


records_strategy = st.lists(
    st.tuples(st.integers(0, 63), st.sampled_from([0, 1, 2, 3]), st.sampled_from([1, 8, 100])),
    min_size=1, max_size=300)


def to_records(items):
    r = np.zeros(len(items), dtype=ACCESS_DTYPE)
    for i, (slot, op, size) in enumerate(items):
        r[i] = (slot * 40, 1, size, op, 0)
    return r


@pytest.mark.parametrize("policy", sorted(POLICY_IDS))
@settings(max_examples=40, deadline=None)
@given(items=records_strategy)
def test_single_level_matches_reference(policy, items):
    compare_with_reference(single(8 * LINE, 4, LINE, policy), to_records(items))


@pytest.mark.parametrize("policy,pressure", [("srrip-fp", True), ("srrip-victima", True),
                                             ("srrip-victima", False),
                                             ("srrip-victima-artifact", True)])
@settings(max_examples=40, deadline=None)
@given(items=st.lists(st.tuples(st.integers(0, 63), st.booleans(), st.sampled_from([0, 1])),
                      min_size=1, max_size=300))
def test_tlb_aware_rrip_matches_reference(policy, pressure, items):
    """Victima's TLB-aware SRRIP variants on a mix of data lines and TLB-block lines (line
    number bit 56, i.e. address bit 62), with the pressure switch on and off."""
    recs = to_records([(slot, op, 1) for slot, _, op in items])
    tlb = np.array([t for _, t, _ in items])
    recs["addr"][tlb] |= np.uint64(1 << 62)
    cfg = HierarchyConfig(levels=(CacheConfig("L1", 4 * LINE, 2, LINE, "lru"),
                                  CacheConfig("L2", 16 * LINE, 4, LINE, policy, rrpv_bits=3)))
    compare_with_reference(cfg, recs, pressure)


def test_victima_rrip_keeps_tlb_blocks_under_pressure():
    """Hand case, one 4-way set, 2-bit RRPV: a TLB block inserted at 0 outlives four streams
    of data lines with the switch on; with it off (plain srrip-fp) it is evicted."""
    tlb_line = (1 << 56) | 4                    # set 0 of a 1-set cache
    def run(pressure):
        h = Hierarchy(HierarchyConfig(levels=(CacheConfig("L2", 4 * LINE, 4, LINE,
                                                          "srrip-victima"),)))
        h.state.geom[0, K.G_PRESSURE] = int(pressure)
        lines = [tlb_line] + list(range(100, 112))
        recs = np.zeros(len(lines), dtype=ACCESS_DTYPE)
        recs["addr"] = np.array(lines, dtype=np.uint64) << np.uint64(6)
        recs["size"] = 1
        h.access(recs)
        return tlb_line in set(int(x) for x in h.state.resident_lines(0))
    assert run(True) and not run(False)


@pytest.mark.parametrize("inclusion", ["non-inclusive", "inclusive", "exclusive"])
@pytest.mark.parametrize("policies", [("lru", "lru", "lru"), ("fifo", "srrip", "drrip"),
                                      ("plru", "random", "brrip")])
# (a random search here found the inclusive hole bug of test_inclusive_hit_past_a_back_
# invalidated_way on 2026-12-07: keep it random)
@settings(max_examples=30, deadline=None)
@given(items=records_strategy)
def test_hierarchy_matches_reference(inclusion, policies, items):
    cfg = HierarchyConfig(levels=(
        CacheConfig("L1", 4 * LINE, 2, LINE, policies[0]),
        CacheConfig("L2", 8 * LINE, 4, LINE, policies[1]),
        CacheConfig("L3", 16 * LINE, 4, LINE, policies[2], seed=7)), inclusion=inclusion)
    compare_with_reference(cfg, to_records(items))


@pytest.mark.parametrize("wb,wa", [(True, False), (False, True), (False, False)])
@settings(max_examples=30, deadline=None)
@given(items=records_strategy)
def test_write_policies_match_reference(wb, wa, items):
    cfg = HierarchyConfig(levels=(
        CacheConfig("L1", 4 * LINE, 2, LINE, write_back=wb, write_allocate=wa),
        CacheConfig("L2", 16 * LINE, 4, LINE, "srrip")))
    compare_with_reference(cfg, to_records(items))


def test_larger_random_trace_matches_reference_for_every_policy():
    r = synth.uniform(20_000, 64 * 1024, seed=11, store_fraction=0.3)
    for pol in sorted(POLICY_IDS):
        cfg = HierarchyConfig(levels=(CacheConfig("L1", "4KiB", 4, policy=pol),
                                      CacheConfig("L2", "16KiB", 8, policy=pol)),
                              inclusion="inclusive")
        compare_with_reference(cfg, r)


def test_inclusion_invariant_holds():
    cfg = HierarchyConfig(levels=(CacheConfig("L1", "2KiB", 4), CacheConfig("L2", "8KiB", 4,
                                  policy="srrip")), inclusion="inclusive")
    h = Hierarchy(cfg)
    h.access(synth.uniform(30_000, 64 * 1024, seed=5, store_fraction=0.5))
    assert set(h.state.resident_lines(0)) <= set(h.state.resident_lines(1))


def test_exclusive_levels_are_disjoint():
    cfg = HierarchyConfig(levels=(CacheConfig("L1", "2KiB", 4), CacheConfig("L2", "8KiB", 4)),
                          inclusion="exclusive")
    h = Hierarchy(cfg)
    h.access(synth.uniform(30_000, 64 * 1024, seed=5, store_fraction=0.5))
    assert not set(h.state.resident_lines(0)) & set(h.state.resident_lines(1))


# ---------------------------------------------------------------- configuration
@pytest.mark.parametrize("kw,msg", [
    ({"size_bytes": 3000}, "size_bytes"),
    ({"ways": 0}, "ways"),
    ({"policy": "lfu"}, "policy"),
    ({"line_bytes": 48}, "line_bytes"),
    ({"size_bytes": 3 * 8 * 64}, "power of two"),
    ({"policy": "plru", "ways": 6, "size_bytes": 6 * 64 * 4}, "plru"),
])
def test_config_errors_name_the_field(kw, msg):
    with pytest.raises(ValueError, match=msg):
        CacheConfig(**kw)


def test_config_units_and_toml(tmp_path):
    p = tmp_path / "h.toml"
    p.write_text('inclusion = "inclusive"\n[[levels]]\nname="L1"\nsize_bytes="32KiB"\nways=8\n'
                 '[[levels]]\nsize_bytes="1MiB"\nways=16\npolicy="drrip"\n')
    cfg = HierarchyConfig.from_toml(p)
    assert cfg.levels[0].size_bytes == 32768 and cfg.levels[1].name == "L2"
    assert cfg.levels[1].sets == 1024 and cfg.inclusion == "inclusive"
    assert HierarchyConfig.from_dict(cfg.to_dict()) == cfg


def test_stats_frame_is_tidy():
    h = Hierarchy("reference-3level")
    df = h.run(synth.zipf(10_000, 1 << 20, seed=1)).to_frame()
    assert list(df["level"]) == ["L1", "L2", "L3"]
    assert {"hits", "misses", "mpki", "param_size_bytes", "param_policy"} <= set(df.columns)
    assert (df["hits"] + df["misses"] == df["accesses"]).all()
    assert df.loc[0, "accesses"] == 10_000


def test_inclusive_hit_past_a_back_invalidated_way():
    """Found by hypothesis on 2026-12-07: in an inclusive hierarchy a back-invalidation can
    leave a hole above a line in its LRU order, and the kernel's carry shift stopped at the
    hole, missed the line and filled it a second time. Lines 24, 8, 20, 4, 24, 0, 4, one set
    everywhere (L1 2 ways, L2 4, L3 4, LRU), by hand:
      24, 8, 20, 4 miss everywhere (L1 ends {4, 20}; L2 and L3 {4, 20, 8, 24});
      24: L1 miss (evicts 20), L2 hit -- L3 not touched, so 24 stays LRU there;
      0: misses; L1 evicts 4, L2 evicts 8, L3 evicts 24, whose back-invalidation empties
         24's ways in L1 and L2 (L2 order now 0, hole, 4, 20);
      4: L1 miss, L2 hit past the hole.
    So L1 0 hits, L2 2 hits (and no line twice), L3 0 hits of 5 accesses."""
    items = [(39, 0, 1), (13, 0, 1), (32, 0, 1), (7, 0, 1), (39, 0, 1), (0, 0, 1), (7, 0, 1)]
    cfg = HierarchyConfig(levels=(
        CacheConfig("L1", 4 * LINE, 2, LINE, "lru"),
        CacheConfig("L2", 8 * LINE, 4, LINE, "lru"),
        CacheConfig("L3", 16 * LINE, 4, LINE, "lru", seed=7)), inclusion="inclusive")
    h = Hierarchy(cfg)
    s = h.access(to_records(items))
    assert [(lv.hits, lv.accesses) for lv in s.levels] == [(0, 7), (2, 7), (0, 5)]
    assert list(h.state.resident_lines(1)) == [0, 4, 20]
    assert s["L3"].back_invalidations == 0 and s["L1"].back_invalidations == 1
    assert s["L2"].back_invalidations == 1
    compare_with_reference(cfg, to_records(items))
