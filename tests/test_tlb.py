"""simkit.tlb (radix baseline) against a hand-computed walk sequence, a plain-Python reference
MMU, and this machine's measured TLB knees (REFERENCE.md 5.4)."""
import numpy as np
import pytest

from simkit.bench.cpu.chase import chase_address_stream
from simkit.cache import CacheConfig, HierarchyConfig
from simkit.tlb import MMU, MMUConfig, TLBConfig
from simkit.trace.format import ACCESS_DTYPE, Op, make_records

from tlb_reference import RefMMU

SMALL_CACHES = HierarchyConfig(levels=(CacheConfig("L1D", "4KiB", 4, latency_cycles=5),
                                       CacheConfig("L2", "32KiB", 8, latency_cycles=15)),
                               memory_latency_cycles=100)
VICTIMA_L2 = HierarchyConfig(levels=(CacheConfig("L1D", "4KiB", 4, latency_cycles=5),
                                     CacheConfig("L2", "32KiB", 8, latency_cycles=15,
                                                 policy="srrip-victima")),
                             memory_latency_cycles=100)


def tiny(**kw):
    base = dict(l1d=TLBConfig("L1D-TLB", 4, 4, 1), l1i=TLBConfig("L1I-TLB", 4, 4, 1),
                l2=TLBConfig("L2-TLB", 8, 4, 10), pwc_entries=(4, 4, 4), pwc_ways=2,
                caches=SMALL_CACHES)
    base.update(kw)
    return MMUConfig(**base)


def test_hand_computed_walks_and_pwcs():
    va = 0x10000000
    recs = make_records([va, va, va + 0x1000, va + 0x200000], op=Op.LOAD, size=8)
    s = MMU(tiny()).run(recs)
    assert (s.l1d_hits, s.l1d_misses, s.l2_hits, s.l2_misses) == (1, 3, 0, 3)
    # cold walk: PML4, PDPT, PD, PT = 4 reads; next page: PD-PWC hit -> PT only = 1;
    # next 2 MiB region: PD-PWC miss, PDPT-PWC hit -> PD + PT = 2
    assert (s.walks, s.walk_refs) == (3, 7)
    assert s.pwc_hit_rates() == {"pml4": 0.0, "pdpt": 0.5, "pd": 1 / 3}
    df = s.to_frame()
    assert df.loc[0, "page_table_nodes"] == 4 and df.loc[0, "pages_4k"] == 3
    # the cold walk's four PTE reads all miss the caches (cycles: 4 PWC + 4 x 100 memory)
    assert s.refs_served_by()["memory"] >= 4


def test_2mib_pages_end_the_walk_at_the_pd():
    recs = make_records(np.arange(0, 64 << 20, 1 << 20, dtype=np.uint64) + 0x40000000)
    s = MMU(tiny(huge_page_fraction=1.0)).run(recs)
    assert s.walks == s.to_frame().loc[0, "walks_2m"] == 32     # one walk per 2 MiB page
    assert s.to_frame().loc[0, "pages_4k"] == 0


def compare(cfg, recs):
    mmu = MMU(cfg)
    s = mmu.run(recs)
    ref = RefMMU(cfg)
    ref.run(recs)
    r = ref.c
    got = dict(l1d_hits=s.l1d_hits, l1d_misses=s.l1d_misses, l1i_hits=s.l1i_hits,
               l1i_misses=s.l1i_misses, l2_hits=s.l2_hits, l2_misses=s.l2_misses,
               walks=s.walks, walk_refs=s.walk_refs,
               translation_cycles=s.translation_cycles)
    want = {k: r[k] for k in got}
    assert got == want
    df = s.to_frame().iloc[0]
    assert (df.walks_2m, df.pages_4k, df.pages_2m, df.page_table_nodes) == \
        (r["walks_2m"], r["pages_4k"], r["pages_2m"], r["nodes"])
    assert list(s.refs_served_by().values()) == r["refs_at"]
    assert (df.pom_hits, df.pom_misses, df.pom_line_reads, df.pom_inserts) == \
        (r["pom_hits"], r["pom_misses"], r["pom_refs"], r["pom_inserts"])
    assert (df.l3_tlb_hits, df.l3_tlb_misses) == (r["l3_hits"], r["l3_misses"])
    names = [lv.name.lower() for lv in cfg.caches.levels]
    assert [df[f"victima_hits_{n}"] for n in names] == r["vic_hits"]
    assert (df.victima_misses, df.victima_alloc_on_ptw, df.victima_alloc_on_eviction) == \
        (r["vic_misses"], r["vic_alloc_ptw"], r["vic_alloc_evict"])
    assert (df.ptw_cp_costly, df.ptw_cp_cheap, df.ptw_cp_bypassed, df.victima_background_walks,
            df.pressure_epochs, df.translation_pressure_epochs) == \
        (r["ptwcp_costly"], r["ptwcp_cheap"], r["ptwcp_bypass"], r["vic_bg_walks"],
         r["epochs"], r["pressure_epochs"])
    assert (df.nested_tlb_hits, df.nested_tlb_misses, df.host_walks, df.host_walk_refs,
            df.host_walk_cycles, df.victima_nested_block_hits, df.victima_nested_block_allocs,
            df.host_pages, df.host_table_nodes) == \
        (r["ntlb_hits"], r["ntlb_misses"], r["host_walks"], r["host_refs"], r["host_cycles"],
         r["nvic_hits"], r["nvic_alloc"], r["host_pages"], r["host_nodes"])
    assert s.counters[14:17].tolist() == r["pwc_misses"]
    assert s.counters[11:14].tolist() == r["pwc_hits"]
    cs = s.cache_stats
    for i, lv in enumerate(cs.levels):
        assert tuple(lv.hits_by_op().values()) == tuple(ref.caches.levels[i].hits)
        assert tuple(lv.misses_by_op().values()) == tuple(ref.caches.levels[i].misses)


def test_pom_tlb_serves_l2_tlb_victims():
    # 16 pages cycled: more than the 8-entry L2 TLB holds, fewer than the 64-entry POM-TLB
    va = np.tile(np.arange(16, dtype=np.uint64) * np.uint64(4096), 20) + np.uint64(1 << 30)
    s = MMU(tiny(pom_entries=64, pom_ways=4)).run(make_records(va))
    df = s.to_frame().iloc[0]
    assert s.walks == 16                                # each page walked once, then from POM
    assert df.pom_hits == s.l2_misses - 16 and df.pom_hits > 0
    no_pom = MMU(tiny()).run(make_records(va))
    assert no_pom.walks == no_pom.l2_misses > 16


def test_victima_serves_translations_from_cached_tlb_blocks():
    # 64 pages cycled: 8x the 8-entry L2 TLB; their 8 TLB blocks fit easily in the caches
    # (the line within each page rotates, as in the measured chase, so data spreads over sets)
    p = np.arange(64, dtype=np.uint64)
    va = np.tile(p * np.uint64(4096) + (p * np.uint64(7) % np.uint64(64)) * np.uint64(64), 10)
    va += np.uint64(1 << 30)
    mmu = MMU(tiny(victima=True))
    s = mmu.run(make_records(va))
    df = s.to_frame().iloc[0]
    hits = df.victima_hits_l1d + df.victima_hits_l2
    assert s.walks == 8                     # one walk per block: its first page, then cached
    assert hits == s.l2_misses - 8
    assert mmu.tlb_blocks("L2") == 8        # 8 blocks x 8 PTEs cover the 64 pages
    assert mmu.reach() == (8 * 4096, 64 * 4096)          # 8 L2 TLB entries; 8 blocks x 8 pages
    assert df.mean_block_reach_bytes == 64 * 4096 and df.reach_samples == 1
    assert df.mean_l2_tlb_block_share == mmu.block_share() == 8 / 512   # 32 KiB L2: 512 lines
    radix = MMU(tiny()).run(make_records(va))
    assert radix.walks == radix.l2_misses > 500


def random_trace(n, seed, span_pages=4096, regions=6):
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 1 << 35, regions) << 21
    va = bases[rng.integers(0, regions, n)] + rng.integers(0, span_pages << 12, n)
    recs = np.zeros(n, dtype=ACCESS_DTYPE)
    recs["addr"] = va.astype(np.uint64)
    recs["op"] = rng.choice([0, 0, 0, 1, 2, 3], n)
    recs["size"] = rng.choice([1, 8, 64], n)
    recs["icount"] = 1
    return recs


@pytest.mark.parametrize("kw", [
    {},
    {"huge_page_fraction": 0.5, "placement": "random", "seed": 3},
    {"huge_page_fraction": 0.3, "placement": "random", "placement_span_bytes": 3 << 20},
    {"stlb_fill": "l1-victims", "radix_levels": 5},
    {"pwc_entries": (0, 4, 0), "data_through_caches": False},
    {"huge_page_fraction": 0.3, "caches": HierarchyConfig.preset("victima-baseline")},
    {"pom_entries": 64, "pom_ways": 4, "huge_page_fraction": 0.3},
    {"pom_entries": 32, "pom_ways": 4, "stlb_fill": "l1-victims", "placement": "random"},
    {"l3": TLBConfig("L3-TLB", 32, 4, 20), "huge_page_fraction": 0.3},
    {"l3": TLBConfig("L3-TLB", 32, 4, 20), "pom_entries": 64, "pom_ways": 4,
     "stlb_fill": "l1-victims"},
    {"victima": True, "stlb_fill": "l1-victims", "huge_page_fraction": 0.3},
    {"victima": True, "artifact_compat": True, "victimize_on_ptw": False,
     "huge_page_fraction": 0.5, "caches": HierarchyConfig.preset("victima-baseline")},
    {"victima": True, "victima_insert_on_eviction": False, "placement": "random"},
    {"victima": True, "victima_l2_only": True, "victima_ptw_cp": True, "caches": VICTIMA_L2,
     "pressure_epoch_instructions": 300, "ptw_cp_freq_range": (1, 7),
     "ptw_cp_cost_range": (1, 15), "ptw_cp_bypass_mpki": 1e9, "huge_page_fraction": 0.3},
    {"victima": True, "victima_l2_only": True, "victimize_on_ptw": False,
     "placement": "random", "caches": VICTIMA_L2},
    {"nested": True},
    {"nested": True, "huge_page_fraction": 0.3, "host_huge_page_fraction": 0.5,
     "placement": "random", "nested_tlb": TLBConfig("Nested-TLB", 8, 2, 2)},
    {"nested": True, "placement": "random", "placement_span_bytes": 4 << 20,
     "placement_run_frames": 4},
    {"nested": True, "huge_page_fraction": 0.6, "host_huge_page_fraction": 0.4,
     "nested_splinter": True, "nested_tlb": TLBConfig("Nested-TLB", 8, 2, 2)},
    {"nested": True, "victima": True, "stlb_fill": "l1-victims",
     "nested_tlb": TLBConfig("Nested-TLB", 4, 2, 1)},
    {"nested": True, "victima": True, "victima_l2_only": True, "victima_ptw_cp": True,
     "caches": VICTIMA_L2, "nested_tlb": TLBConfig("Nested-TLB", 4, 2, 1),
     "pressure_epoch_instructions": 300, "huge_page_fraction": 0.3},
    {"nested": True, "pom_entries": 64, "pom_ways": 4, "stlb_fill": "l1-victims"},
    {"victima": True, "stlb_fill": "l1-victims", "artifact_compat": True,
     "victima_probe": "parallel-stlb", "victima_block_cycles": (4, 16)},
    {"victima": True, "victima_l2_only": True, "victima_probe": "parallel-stlb",
     "victima_block_cycles": (3, 9), "caches": VICTIMA_L2, "huge_page_fraction": 0.3},
    {"nested": True, "victima": True, "victima_probe": "parallel-stlb",
     "victima_block_cycles": (4, 16), "nested_tlb": TLBConfig("Nested-TLB", 4, 2, 1)},
], ids=["default", "huge-random", "huge-random-3MiB-span", "victims-5level", "one-pwc-no-data",
        "victima-caches",
        "pom-tlb", "pom-tlb-victims", "l3-tlb", "l3-pom-victims", "victima",
        "victima-compat-evict-only", "victima-ptw-only",
        "victima-paper-artifact-comparator", "victima-paper-evict-only", "nested",
        "nested-huge-random", "nested-random-4MiB-span-runs-of-4", "nested-splinter",
        "nested-victima-artifact",
        "nested-victima-paper",
        "nested-pom-tlb", "victima-artifact-timing", "victima-paper-parallel-stlb",
        "nested-victima-artifact-timing"])
def test_kernel_matches_reference_mmu(kw):
    compare(tiny(**kw), random_trace(6000, seed=len(str(kw))))


def phased_trace(n, seed, phase=500):
    """Phases of few pages (TLB hits, L2 cache hits) alternating with random pages across six
    2 MiB-aligned regions, so the pressure switches and the PTW cost predictor take both states."""
    recs = random_trace(n, seed)
    rng = np.random.default_rng(seed + 1)
    for start in range(0, n, 2 * phase):
        k = min(phase, n - start)
        hot = recs["addr"][start:start + 3].copy() & ~np.uint64(0xFFF)
        recs["addr"][start:start + k] = hot[rng.integers(0, 3, k)] + \
            (rng.integers(0, 64, k) * 64).astype(np.uint64)
    return recs


PAPER = dict(victima=True, victima_l2_only=True, victima_ptw_cp=True, caches=VICTIMA_L2,
             pressure_epoch_instructions=250, pressure_mpki=300, ptw_cp_bypass_mpki=300)


@pytest.mark.parametrize("kw", [{}, {"huge_page_fraction": 0.3, "placement": "random"},
                                {"ptw_cp_freq_range": (2, 7), "ptw_cp_cost_range": (1, 2)},
                                {"ptw_cp_comparator": "artifact"}],
                         ids=["paper", "paper-huge-random", "paper-other-ranges",
                              "paper-artifact-comparator"])
def test_victima_paper_matches_reference_and_takes_both_states(kw):
    """Kernel equals the reference on a phased trace on which each switch and the predictor
    take both states (so the comparison covers every branch)."""
    cfg = tiny(**dict(PAPER, **kw))
    recs = phased_trace(8000, seed=5)
    compare(cfg, recs)
    df = MMU(cfg).run(recs).to_frame().iloc[0]
    assert 0 < df.translation_pressure_epochs < df.pressure_epochs == 8000 // 250
    assert df.ptw_cp_costly > 0 and df.ptw_cp_bypassed > 0
    assert df.ptw_cp_cheap > 0 or "ptw_cp_freq_range" not in kw   # freq 1 is cheap there
    assert df.victima_background_walks > 0 and df.victima_hits_l2 > 0


def reuse_trace(n, sweep_pages=8192, hot_per_sweep=7, icount=50, seed=0):
    """Reusable data in the L2 beside a translation-heavy sweep: 7 of 8 accesses go to random
    lines of a 1 MiB hot set (it fits Victima's 2 MiB L2), 1 in 8 to the next of 8192 pages
    (32 MiB: 5x the STLB's reach), 50 instructions per access, so most epochs' L2 MPKI is
    under the bypass threshold (5) and the predictor decides."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    sweep = i % (hot_per_sweep + 1) == 0
    j = np.cumsum(sweep) - 1
    recs = np.zeros(n, dtype=ACCESS_DTYPE)
    recs["addr"] = np.where(
        sweep, (1 << 32) + (j % sweep_pages) * 4096 + (j // sweep_pages % 64) * 64,
        0x10000000 + rng.integers(0, (1 << 20) // 64, n) * 64).astype(np.uint64)
    recs["op"], recs["size"], recs["icount"] = 0, 8, icount
    return recs


@pytest.mark.parametrize("preset", ["victima-paper", "victima-paper-cp-artifact"])
def test_ptw_cost_predictor_decides_both_ways_where_the_l2_holds_reusable_data(preset):
    """Issue 13, item 2: with the paper's bypass (L2 MPKI > 5) on real-size caches the predictor
    must decide, both ways: a cold walk reads the PT line from memory (cost 1: costly, block
    placed); once data evicts the block, a neighbour page walks with its PT line still cached
    (cost 0: cheap). The counters subtract like every other (warm-up excluded)."""
    recs = reuse_trace(600_000)
    mmu = MMU(preset)
    warm = mmu.run(recs[:100_000], progress=False)
    roi = mmu.run(recs[100_000:], progress=False)
    total = mmu.stats
    df = roi.to_frame().iloc[0]
    assert roi.ptw_cp_costly > 0 and roi.ptw_cp_cheap > 0, (roi.ptw_cp_costly, roi.ptw_cp_cheap)
    assert df.ptw_cp_decided == roi.ptw_cp_decided == roi.ptw_cp_costly + roi.ptw_cp_cheap
    assert df.pressure_epochs > 0
    for k in ("ptw_cp_costly", "ptw_cp_cheap", "ptw_cp_bypassed"):
        assert getattr(total, k) == getattr(warm, k) + getattr(roi, k)
    assert df.param_ptw_cp_comparator == MMUConfig.preset(preset).ptw_cp_comparator


def test_ptw_cp_counter_ranges_are_checked():
    with pytest.raises(ValueError, match="ptw_cp_freq_range"):
        MMUConfig(ptw_cp_freq_range=(1, 12))     # a 3-bit counter stops at 7
    with pytest.raises(ValueError, match="ptw_cp_cost_range"):
        MMUConfig(ptw_cp_cost_range=(1, 16))     # a 4-bit counter stops at 15
    with pytest.raises(ValueError, match="ptw_cp_comparator"):
        MMUConfig(ptw_cp_comparator="nn-2")
    with pytest.raises(ValueError, match="victima_probe"):
        MMUConfig(victima_probe="before-l1")
    with pytest.raises(ValueError, match="victima_block_cycles"):
        MMUConfig(victima_block_cycles=(4, 16))   # three cache levels


def test_nested_walk_makes_24_references_cold():
    """A cold 2D walk with 4-level guest and host tables and empty PWCs / nested TLB reads
    (4+1)(4+1)-1 = 24 PTEs (REFERENCE.md 1.4): 4 guest PTEs, each after a 4-read host walk of
    its guest PA, and a final 4-read host walk of the data's guest PA."""
    s = MMU(tiny(nested=True, data_through_caches=False)).run(make_records([0x7F0012345000]))
    df = s.to_frame().iloc[0]
    assert (s.walks, s.walk_refs, df.host_walks, df.host_walk_refs) == (1, 24, 5, 20)
    assert df.nested_tlb_misses == 5 and df.nested_tlb_hits == 0


def test_page_table_growth_matches_reference():
    # 40,000 distinct pages (> the initial 65,536-slot table's half) force rehashing
    va = (np.arange(40_000, dtype=np.uint64) * np.uint64(4096 * 3)) + np.uint64(1 << 32)
    compare(tiny(data_through_caches=False), make_records(va))


def knee_misses(cfg, n_pages, level):
    """Steady-state miss rate of ``cfg`` on the measured TLB chase of n_pages."""
    stream = chase_address_stream("tlb", n_pages=n_pages, laps=3)
    s = MMU(cfg).run(stream, warmup_records=n_pages)
    return s.l1d_miss_rate if level == 1 else s.l2_misses / s.l1d_misses if s.l1d_misses else 0.0


@pytest.mark.slow
def test_simulated_tlb_steps_sit_on_this_machines_measured_knees():
    """Measures this machine, builds its preset, simulates, compares (no constant of any host):
    the pointer-chase TLB sweep's latency knees are found (up to 3 quick sweeps on a noisy
    VM); the L1 DTLB and L2 TLB sizes are read from CPUID into ``simkit.calibrate.cpu``'s host
    preset; the simulated miss rate of the same chase stream must step between the two ladder
    points of the measured knee nearest each size (no misses before, mostly misses after)."""
    from simkit.bench.cpu import chase as cpu
    from simkit.bench.cpu.machine import describe_machine
    from simkit.calibrate.cpu import host_mmu_config
    from simkit.errors import InputError

    mach = describe_machine()
    try:
        cfg = host_mmu_config(mach)
    except InputError as exc:
        pytest.skip(str(exc))
    sizes = {1: cfg.l1d.entries, 2: cfg.l2.entries}
    ladder = sorted(set(cpu.TLB_PAGES_QUICK))
    sim = {}
    for level, n in sizes.items():
        # the simulated step: the first ladder point the host preset mostly misses at (after a
        # point with no misses), searched around the CPUID size
        m = min(range(len(ladder)), key=lambda i: abs(ladder[i] - n))
        window = ladder[max(m - 3, 0):m + 4]
        rates = [knee_misses(cfg, p, level) for p in window]
        steps = [window[i] for i in range(1, len(window)) if rates[i] > 0.5 and rates[i - 1] < 0.05]
        assert steps, (level, n, window, rates)
        sim[level] = steps[0]
    # Real TLBs do not replace LRU (a cyclic chase just past capacity still hits in part) and
    # also hold the chase's code, stack and page-table pages (seen here: the L1 DTLB step at
    # 56 pages of a 64-entry TLB): the measured step (the first slow ladder point) must lie
    # within 25% of the simulated one. A loaded VM adds noise: up to 3 sweeps.
    tries = []
    for _ in range(3):
        df = cpu.measure_cpu(quick=True, sweeps=("tlb",), page_kinds=("4k",), progress=False)
        after = [int(k.after) for _, k in cpu.knees(df).iterrows()]
        tries.append(after)
        if all(any(abs(a - sim[lv]) <= 0.25 * sim[lv] for a in after) for lv in sizes):
            return
    pytest.fail(f"CPUID: L1 DTLB {sizes[1]}, L2 TLB {sizes[2]} entries; simulated steps at "
                f"{sim[1]} and {sim[2]} pages; measured knees (after-points) in 3 sweeps: "
                f"{tries}")


@pytest.mark.parametrize("kw,msg", [
    ({"radix_levels": 3}, "radix_levels"),
    ({"huge_page_fraction": 1.5}, "huge_page_fraction"),
    ({"placement": "scattered"}, "placement"),
    ({"placement": "random", "placement_span_bytes": 1 << 20}, "placement_span_bytes"),
    ({"placement_span_bytes": True}, "placement_span_bytes"),
    ({"nested_splinter": 1}, "nested_splinter"),
    ({"placement_run_frames": 3}, "placement_run_frames"),
    ({"stlb_fill": "always"}, "stlb_fill"),
    ({"pwc_entries": (16, 16)}, "pwc_entries"),
])
def test_config_errors_name_the_field(kw, msg):
    with pytest.raises(ValueError, match=msg):
        MMUConfig(**kw)


def test_tlb_config_errors():
    with pytest.raises(ValueError, match="entries"):
        TLBConfig("X", 48, 8)          # 6 sets


def test_tlb_run_command_native_and_nested(tmp_path, capsys):
    from simkit.cli import main
    import pandas as pd

    out = tmp_path / "t.csv"
    assert main(["tlb", "run", "--trace", "gups", "--preset", "victima-paper", "--nested",
                 "--max-records", "20000", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert bool(df.param_nested[0]) and df.host_walks[0] > 0 and df.nested_tlb_misses[0] > 0
    assert main(["tlb", "run", "--trace", "gups", "--preset", "victima-paper",
                 "--max-records", "20000"]) == 0
    assert "translation_cycles_per_access" in capsys.readouterr().out
    assert main(["tlb", "run", "--trace", "gups", "--preset", "nope"]) == 2
    assert "preset: unknown 'nope'" in capsys.readouterr().err


def test_reach_is_sampled_every_period_of_instructions():
    """Reach and block share are time averages: one sample each time ``sample_instructions``
    instructions have run (the artifact samples every 1M), and one at the end of a run shorter
    than a period; a region (warm-up subtracted) keeps only its own samples."""
    recs = make_records(np.arange(10, dtype=np.uint64) * np.uint64(4096) + np.uint64(1 << 30),
                        icount=250)
    mmu = MMU("victima-artifact", sample_instructions=1000)
    roi = mmu.run(recs, warmup_records=3)
    assert [s[0] for s in mmu.reach_samples] == [4, 8]            # after 1000 and 2000 instr.
    assert [s[0] for s in roi.reach_samples] == [4, 8]
    assert roi.mean_tlb_reach_bytes == np.mean([s[1] for s in mmu.reach_samples])
    short = MMU("victima-radix", sample_instructions=1000)
    short.run(recs[:2])
    assert [s[0] for s in short.reach_samples] == [2]             # shorter than a period
    with pytest.raises(ValueError, match="sample_instructions"):
        MMU("victima-radix", sample_instructions=0)


def test_random_placement_over_a_span_keeps_frames_inside_it_then_goes_on_in_order():
    """``placement_span_bytes`` 4 MiB is 1,024 frames (mask 1023). Frames are numbered from
    0x100 (the first 1 MiB unused), so 1,000 pages take frame numbers 256..1255 in first-touch
    order: the 768 numbered <= 1023 land, scattered, on distinct frames below 1,024, the other
    232 on 1024..1255 in order. Unlimited (0), the same pages scatter over 2^28 frames."""
    from simkit.tlb import MMU
    from simkit.tlb import _kernels as K
    from simkit.trace.format import make_records

    va = np.uint64(0x7F0000000000) + np.arange(1000, dtype=np.uint64) * np.uint64(4096)

    def frames(**kw):
        m = MMU(MMUConfig(placement="random", **kw))
        m.run(make_records(va, icount=1))
        keys, vals = m.pt_keys, m.pt_vals
        pages = (keys >> K.KIND_SHIFT) == np.uint64(K.K_PAGE)
        pages &= keys != K.EMPTY
        order = np.argsort(keys[pages])                 # by page number: first-touch order
        return vals[pages][order].astype(np.int64)

    f = frames(placement_span_bytes=4 << 20)
    assert len(f) == 1000 and len(set(f.tolist())) == 1000
    assert (f[:768] < 1024).all() and not (f[:768] == np.arange(256, 1024)).all()
    assert (f[768:] == np.arange(1024, 1256)).all()
    wide = frames()
    assert len(set(wide.tolist())) == 1000 and wide.max() >= 1 << 20
    # in runs of 8 frames: numbers 256..1023 are 96 runs (32..127 of 128 over the span), each
    # 8 consecutive frames starting at a multiple of 8 below 1,024; then in order again
    runs = frames(placement_span_bytes=4 << 20, placement_run_frames=8)
    assert len(set(runs.tolist())) == 1000 and (runs[:768] < 1024).all()
    head = runs[:768].reshape(96, 8)
    assert (head % 8 == np.arange(8)).all() and (np.diff(head, axis=1) == 1).all()
    assert not (head[:, 0] == np.arange(256, 1024, 8)).all()
    assert (runs[768:] == np.arange(1024, 1256)).all()


def test_a_guest_huge_page_over_host_4k_pages_is_cached_as_4k_with_splintering():
    """Nested, every guest region a 2 MiB page, every host page 4 KiB. 8 records in 8
    different 4 KiB pieces of one guest 2 MiB page: without splintering the first walks and
    caches the 2 MiB translation, the other 7 hit the L1 DTLB (1 walk); with it each piece is
    its own 4 KiB translation (8 walks, 8 L1 DTLB misses)."""
    from simkit.tlb import MMU
    from simkit.tlb import _kernels as K
    from simkit.trace.format import make_records

    va = np.uint64(0x7F0000000000) + np.arange(8, dtype=np.uint64) * np.uint64(4096)
    recs = make_records(va, icount=1)
    for splinter, walks in ((False, 1), (True, 8)):
        s = MMU(MMUConfig(nested=True, huge_page_fraction=1.0, host_huge_page_fraction=0.0,
                          nested_splinter=splinter)).run(recs)
        assert s.walks == walks and s.l1d_misses == walks
        assert s.counters[K.C_WALKS_2M] == walks        # each a guest 2 MiB walk (to the PD)
