"""Host presets from a machine description (simkit.calibrate.cpu): every size comes from the
description, none from a constant; expected values are read off the description by hand."""
from __future__ import annotations

import json

import pytest

from simkit.calibrate.cpu import host_cache_config, host_mmu_config, load_host
from simkit.cli import main
from simkit.errors import InputError

# A Zen 4-like description (L1 DTLB 72 entries fully associative, L2 DTLB 3072 entries 12-way,
# 1 MiB L2, 32 MiB L3): the sizes another host of this project's CI reported.
ZEN4 = {
    "caches": [
        {"level": 1, "type": "Data", "size_bytes": 32768, "ways": 8, "line_bytes": 64},
        {"level": 1, "type": "Instruction", "size_bytes": 32768, "ways": 8, "line_bytes": 64},
        {"level": 2, "type": "Unified", "size_bytes": 1 << 20, "ways": 8, "line_bytes": 64},
        {"level": 3, "type": "Unified", "size_bytes": 32 << 20, "ways": 16, "line_bytes": 64},
    ],
    "tlb": {"entries": [
        {"level": 1, "type": "data", "page": "4K", "entries": 72, "ways": "full"},
        {"level": 2, "type": "data", "page": "4K", "entries": 3072, "ways": 12},
        {"level": 2, "type": "instruction", "page": "4K", "entries": 512, "ways": 4},
    ]},
}


def test_host_mmu_takes_the_described_tlbs_and_caches():
    cfg = host_mmu_config(ZEN4)
    assert (cfg.l1d.entries, cfg.l1d.ways) == (72, 72)          # fully associative
    assert (cfg.l2.entries, cfg.l2.ways) == (3072, 12)          # 256 sets
    sizes = [(lv.name, lv.size_bytes, lv.ways) for lv in cfg.caches.levels]
    assert sizes == [("L1", 32768, 8), ("L2", 1 << 20, 8), ("L3", 32 << 20, 16)]


def test_measured_latencies_replace_the_defaults():
    cal = {"summary": {"clock_ghz": 3.0, "l1_ns": 1.0, "l2_ns": 4.0, "l3_ns": 15.0}}
    lat = [lv.latency_cycles for lv in host_cache_config(ZEN4, cal).levels]
    assert lat == [3, 12, 45]                                   # ns x GHz, rounded


def test_ways_that_give_no_power_of_two_sets_take_the_nearest_that_do():
    d = json.loads(json.dumps(ZEN4))
    d["tlb"]["entries"][1]["ways"] = 7                          # 3072 / 7 is not whole
    assert host_mmu_config(d).l2.ways in (6, 12)                # nearest giving 512 / 256 sets


def test_no_cpuid_description_is_a_clear_error():
    with pytest.raises(InputError, match="CPUID"):
        host_mmu_config({"caches": ZEN4["caches"], "tlb": {"entries": []}})


def test_preset_host_file_on_the_command_line(tmp_path, capsys):
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"machine": ZEN4, "summary": {}}))
    mmu, caches = load_host(f"host:{cal}")
    assert mmu.l2.entries == 3072 and caches.levels[1].size_bytes == 1 << 20
    assert main(["tlb", "run", "--trace", "gups", "--preset", f"host:{cal}",
                 "--max-records", "20000"]) == 0
    assert "walks" in capsys.readouterr().out
    assert main(["tlb", "run", "--trace", "gups", "--preset", f"host:{tmp_path}/none.json"]) == 2
    assert "none.json" in capsys.readouterr().err


# A Granite Rapids VM as this project's CI saw it (2026-12-07): Intel family 6 under KVM, CPUID
# leaf 0x18 zeroed (no TLB geometry), L1D 48 KiB, L2 2 MiB, an L3 of 480 MiB / 16 ways.
GNR_VM = {
    "vendor": "GenuineIntel", "cpu_family": 6, "cpu_model_number": 167, "hypervisor": True,
    "caches": [
        {"level": 1, "type": "Data", "size_bytes": 48 << 10, "ways": 12, "line_bytes": 64},
        {"level": 2, "type": "Unified", "size_bytes": 2 << 20, "ways": 16, "line_bytes": 64},
        {"level": 3, "type": "Unified", "size_bytes": 480 << 20, "ways": 16, "line_bytes": 64},
    ],
    "tlb": {"entries": []},
}


def test_documented_tlbs_and_core_where_cpuid_hides_them():
    from simkit.calibrate.cpu import host_core_config, tlb_source
    from simkit.calibrate.uarch import identify

    assert identify(GNR_VM).name == "intel-golden-cove-class"
    assert identify({**ZEN4, "vendor": "AuthenticAMD", "cpu_family": 0x19}).mshrs == 24
    assert identify({**GNR_VM, "caches": ZEN4["caches"]}) is None      # 32 KiB L1D: not it
    cfg = host_mmu_config(GNR_VM)
    assert (cfg.l1d.entries, cfg.l1d.ways, cfg.l2.entries, cfg.l2.ways) == (96, 6, 2048, 16)
    assert "documented, not measured" in tlb_source(GNR_VM)
    assert tlb_source({**ZEN4}) == "cpuid"
    core = host_core_config(GNR_VM, dependence="chain")
    assert (core.rob, core.lq, core.walkers, core.mshrs, core.dependence) == \
        (512, 192, 4, 16, "chain")
    assert host_core_config(ZEN4).mshrs == 0                   # undocumented: no limit


def test_sets_round_down_to_a_power_of_two_and_memory_bounds_every_level():
    sizes = [lv.size_bytes for lv in host_cache_config(GNR_VM).levels]
    # 480 MiB / 16 ways / 64 B = 491,520 sets -> 262,144 sets = 256 MiB
    assert sizes == [48 << 10, 2 << 20, 256 << 20]
    # a ladder whose last knee settles (at memory latency) at 32 MiB: no level holds 32 MiB,
    # so the L3 keeps the largest power-of-two sets below it, 16 MiB (16,384 sets x 16 x 64)
    knees = [{"sweep": "cache", "page_kind": "4k", "after": 64 << 10, "settled": 64 << 10},
             {"sweep": "cache", "page_kind": "4k", "after": 1 << 20, "settled": 32 << 20}]
    sizes = [lv.size_bytes for lv in host_cache_config(GNR_VM, {"knees": knees}).levels]
    assert sizes == [48 << 10, 1 << 20, 16 << 20]
    # a cache sysfs lists as private (one CPU sharing it) keeps its size whatever its knee:
    # a VM is never given part of it; the shared L3 ("0-1") is still cut
    private = {**GNR_VM, "caches": [{**c, "shared_cpu_list": "0" if c["level"] < 3 else "0-1"}
                                    for c in GNR_VM["caches"]]}
    sizes = [lv.size_bytes for lv in host_cache_config(private, {"knees": knees}).levels]
    assert sizes == [48 << 10, 2 << 20, 16 << 20]


def test_nested_walks_only_under_a_hypervisor():
    cfg = host_mmu_config(GNR_VM, nested=True, nested_tlb_entries=256)
    assert cfg.nested and cfg.host_huge_page_fraction == 1.0
    assert (cfg.nested_tlb.entries, cfg.nested_tlb.ways) == (256, 4)
    assert not host_mmu_config(GNR_VM).nested
    with pytest.raises(InputError, match="hypervisor"):
        host_mmu_config({**GNR_VM, "hypervisor": False}, nested=True)


def _tlb_ladder(thp_step: float):
    """A 4 KiB-piece TLB ladder: 4 KiB pages step from 1.3 to 3.2 ns past 96 pieces; the huge
    page ladder by ``thp_step`` of that step, backed by huge pages."""
    import pandas as pd

    rows = []
    for pages in (64, 96, 128, 256):
        k4 = 1.3 if pages <= 96 else 3.2
        rows.append({"page_kind": "4k", "pages": pages, "ns_per_load_min": k4,
                     "thp_backed_bytes": 0})
        rows.append({"page_kind": "thp", "pages": pages,
                     "ns_per_load_min": 1.3 + (k4 - 1.3) * thp_step,
                     "thp_backed_bytes": 2 << 20})
    return pd.DataFrame(rows)


def test_splintering_is_read_off_the_huge_page_tlb_ladder():
    """The 4 KiB ladder steps 146% between 96 and 192+ pieces (here 256); a huge-page ladder
    that steps as much (or over half as much) is splintered, one that stays flat is not; without
    huge pages nothing can be said."""
    from simkit.calibrate.cpu import splintered

    assert splintered(_tlb_ladder(1.0), 96) is True
    assert splintered(_tlb_ladder(0.6), 96) is True
    assert splintered(_tlb_ladder(0.1), 96) is False
    no_thp = _tlb_ladder(1.0)
    assert splintered(no_thp[no_thp.page_kind == "4k"], 96) is None
    unbacked = _tlb_ladder(1.0).assign(thp_backed_bytes=0)
    assert splintered(unbacked, 96) is None


def test_the_stlb_size_is_read_off_the_first_tlb_knee_past_the_l1():
    """Knees (pages): the L1 DTLB's (96 -> 128), the L1D cache's (768 -> 1024, named), then
    1536 -> 1792: the STLB holds 1536 where 2048 are documented; none below it: None."""
    from simkit.calibrate.cpu import stlb_from_knees

    knees = [{"sweep": "tlb", "page_kind": "4k", "before": 96, "after": 128,
              "near_cache_level": ""},
             {"sweep": "tlb", "page_kind": "4k", "before": 768, "after": 1024,
              "near_cache_level": "L1d"},
             {"sweep": "tlb", "page_kind": "4k", "before": 1536, "after": 1792,
              "near_cache_level": ""}]
    assert stlb_from_knees(knees, 96, 2048) == 1536
    assert stlb_from_knees(knees, 96, 1024) is None
    assert stlb_from_knees(knees[:2], 96, 2048) is None


def test_a_host_file_of_a_machine_hiding_its_tlbs_takes_the_measured_stlb(tmp_path):
    """CPUID hides the TLBs (GNR_VM): documented 2048 L2 TLB entries, unless the calibration's
    4 KiB TLB ladder steps first at 1536 pages; a machine with CPUID TLBs keeps them."""
    knees = [{"sweep": "tlb", "page_kind": "4k", "before": 96, "after": 128,
              "near_cache_level": ""},
             {"sweep": "tlb", "page_kind": "4k", "before": 1536, "after": 1792,
              "near_cache_level": ""}]
    for machine, knees_, entries in ((GNR_VM, [], 2048), (GNR_VM, knees, 1536),
                                     (ZEN4, knees, 3072)):
        cal = tmp_path / "cal.json"
        cal.write_text(json.dumps({"machine": machine, "summary": {}, "knees": knees_}))
        assert load_host(f"host:{cal}")[0].l2.entries == entries


def test_a_huge_page_change_is_judged_only_where_every_round_gives_it():
    """core-validation times GUPS with 4 KiB pages and THP in rounds: the change of a size is
    the rounds' median, and it counts as given by the host only where every round changed by
    more than 5% the same way (hand-made rounds; the best round's ns is the point's)."""
    import pandas as pd

    from simkit.experiments.core_validation import best_of_rounds, huge_page_effect

    ns = {(8, "4k"): (2.0, 2.2, 2.1), (8, "thp"): (1.8, 2.0, 1.8),       # -10%, -9%, -14%
          (64, "4k"): (8.0, 7.0, 7.5), (64, "thp"): (7.0, 8.0, 7.0)}     # -12.5%, +14%, -7%
    meas = pd.DataFrame([{"table_bytes": mib << 20, "page_kind": k, "ns_per_update": v,
                          "thp_backed_bytes": (mib << 20) if k == "thp" else 0, "round": r}
                         for (mib, k), vals in ns.items() for r, v in enumerate(vals)])
    best = best_of_rounds(meas)
    assert "round" not in best and len(best) == 4
    assert best.set_index(["table_bytes", "page_kind"]).ns_per_update.to_dict() == {
        (8 << 20, "4k"): 2.0, (8 << 20, "thp"): 1.8, (64 << 20, "4k"): 7.0,
        (64 << 20, "thp"): 7.0}
    g = best.rename(columns={"ns_per_update": "measured_ns"}).assign(
        predicted_ns=[2.0, 1.9, 7.0, 6.0])
    hp = huge_page_effect(g, meas).set_index("table_bytes")
    assert hp.loc[8 << 20, "consistent"] and not hp.loc[64 << 20, "consistent"]
    assert abs(hp.loc[8 << 20, "measured_change"] - (1.8 / 2.0 - 1)) < 1e-12     # median -10%
    assert abs(hp.loc[64 << 20, "rounds_high"] - (8.0 / 7.0 - 1)) < 1e-12
    assert abs(hp.loc[64 << 20, "measured_change"] - (7.0 / 7.5 - 1)) < 1e-12
    assert abs(hp.loc[8 << 20, "predicted_change"] - (1.9 / 2.0 - 1)) < 1e-12
    # one round (an old measurement): its one change, consistent where it exceeds 5%
    one = huge_page_effect(g).set_index("table_bytes")
    assert (one.rounds == 1).all() and one.loc[8 << 20, "consistent"] \
        and not one.loc[64 << 20, "consistent"]
