"""simkit.bench.cpu: the pointer-chase microbenchmark, its address stream, knees and outputs.

Measurements assert positions and ratios, not absolute times (REFERENCE.md 5.4: "Assert knees
and ratios, not absolute latencies"). The knee test re-measures up to three times on a noisy VM.
"""
from __future__ import annotations

import argparse
import json
import os
from itertools import permutations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simkit.bench.cpu import _kernels as _chase
from simkit.bench.cpu import chase as cpu
from simkit.bench.cpu import machine

SYS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")


# ----------------------------------------------------------------------------------------------
# The chain

@pytest.mark.parametrize("n", [1, 2, 3, 10, 4097])
@pytest.mark.parametrize("seed", [0, 7])
def test_sattolo_is_a_single_cycle_over_every_slot(n, seed):
    succ = cpu.sattolo_cycle(n, seed)
    assert succ.dtype == np.uint64 and len(succ) == n
    assert sorted(succ.tolist()) == list(range(n))            # a permutation
    seen, v = [], 0
    for _ in range(n):
        seen.append(v)
        v = int(succ[v])
    assert v == 0 and sorted(seen) == list(range(n))          # one cycle through all n
    if n > 1:
        assert all(int(succ[i]) != i for i in range(n))       # no fixed points
    np.testing.assert_array_equal(succ, cpu.sattolo_cycle(n, seed))   # deterministic


def test_sattolo_reaches_every_cycle_and_nothing_else():
    """n = 4 has (4-1)! = 6 single cycles; Sattolo draws each, and no other permutation."""
    seen = {tuple(cpu.sattolo_cycle(4, s).tolist()) for s in range(300)}
    cycles = set()
    for p in permutations(range(4)):
        v, k = p[0], 1
        while v != 0:
            v, k = p[v], k + 1
        if k == 4:
            cycles.add(p)
    assert len(cycles) == 6
    assert seen == cycles


# ----------------------------------------------------------------------------------------------
# The address stream is what the kernel loads

def _kernel_order(kind, n, seed, page_kind="4k"):
    """Word indices in the order the jitted chase kernel visits them, on a real buffer."""
    nbytes = n * (cpu.PAGE_BYTES if kind == "tlb" else cpu.LINE_BYTES)
    with cpu.ChaseBuffer(nbytes, page_kind) as buf:
        assert buf.addr % cpu.HUGE_BYTES == 0
        start = buf.link(cpu.chase_words(kind, n, seed))
        order = [int(start)]
        for k in range(1, n + 1):    # the kernel's own result after k loads
            order.append(int(_chase.chase(buf.mem, start, k)))
    assert order[n] == order[0]       # back at the start after one lap
    return np.array(order[:n], dtype=np.uint64)


def test_tlb_stream_one_rotated_line_per_page_in_kernel_order():
    n, laps, seed, base = 300, 3, 5, cpu.STREAM_BASE
    s = cpu.chase_address_stream("tlb", n_pages=n, laps=laps, seed=seed)
    assert s.dtype == np.uint64 and len(s) == n * laps
    assert base % (2 << 20) == 0
    off = s - np.uint64(base)
    page = off // np.uint64(4096)
    line = (off % np.uint64(4096)) // np.uint64(64)
    assert np.all(off % np.uint64(64) == 0)                          # one 8 B slot at a line start
    np.testing.assert_array_equal(line, (page * np.uint64(7)) % np.uint64(64))   # the rotation
    laps_pages = page.reshape(laps, n)
    for lap in laps_pages:
        assert sorted(lap.tolist()) == list(range(n))                # each page once per lap
    assert np.all(laps_pages == laps_pages[0])                       # same order every lap
    np.testing.assert_array_equal(off[:n] // np.uint64(8), _kernel_order("tlb", n, seed))


def test_cache_stream_every_line_once_per_lap_in_kernel_order():
    w, seed = 64 << 10, 3
    s = cpu.chase_address_stream("cache", working_set_bytes=w, laps=2, seed=seed, base=0x10000000)
    off = s - np.uint64(0x10000000)
    n = w // 64
    assert len(s) == 2 * n and np.all(off % np.uint64(64) == 0)
    assert sorted((off[:n] // np.uint64(64)).tolist()) == list(range(n))
    np.testing.assert_array_equal(off[:n], off[n:])
    np.testing.assert_array_equal(off[:n] // np.uint64(8), _kernel_order("cache", n, seed))


@pytest.mark.parametrize("kwargs", [
    {"kind": "tlb"},
    {"kind": "tlb", "n_pages": 0},
    {"kind": "cache", "working_set_bytes": 100},
    {"kind": "cache"},
    {"kind": "l2", "n_pages": 8},
    {"kind": "tlb", "n_pages": 8, "laps": 0},
    {"kind": "tlb", "n_pages": 8, "base": 123},
])
def test_stream_rejects_bad_arguments(kwargs):
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError):
        cpu.chase_address_stream(kind, **kwargs)


def test_kernel_keeps_uint64_indices():
    """REFERENCE 5.1: int64 indices cost +35%; every compiled chase must take a uint64 start."""
    with cpu.ChaseBuffer(4096, "4k") as buf:
        start = buf.link(cpu.chase_words("cache", 64, 0))
        cpu.time_chase(buf.mem, start, 64, runs=2, run_ms=0.2)
    for sig in _chase.chase.signatures:
        assert str(sig[0].dtype) == "uint64" and str(sig[1]) == "uint64"


# ----------------------------------------------------------------------------------------------
# Buffers and huge pages

def test_buffers_are_aligned_and_report_thp_backing():
    with cpu.ChaseBuffer(4 << 20, "4k") as small:
        assert small.addr % (2 << 20) == 0 and small.nbytes == 4 << 20
        assert small.thp_backed_bytes() == 0                        # MADV_NOHUGEPAGE
    with cpu.ChaseBuffer(4 << 20, "thp") as huge:
        backed = huge.thp_backed_bytes()
        assert 0 <= backed <= huge.nbytes and backed % (2 << 20) == 0
        if machine.describe_machine()["thp_enabled"] in ("always", "madvise"):
            assert backed > 0                                       # MADV_HUGEPAGE honoured


def test_smaps_parser_counts_only_overlapping_mappings():
    text = ("7f0000000000-7f0000400000 rw-p 00000000 00:00 0\n"
            "Size:               4096 kB\nAnonHugePages:      2048 kB\n"
            "7f0000400000-7f0000600000 rw-p 00000000 00:00 0\n"
            "Size:               2048 kB\nAnonHugePages:      2048 kB\n")
    assert cpu._smaps_anon_huge(0x7F0000000000, 0x7F0000400000, text) == 2 << 20
    assert cpu._smaps_anon_huge(0x7F0000000000, 0x7F0000600000, text) == 4 << 20
    assert cpu._smaps_anon_huge(0x7F0000600000, 0x7F0000800000, text) == 0


# ----------------------------------------------------------------------------------------------
# Knee detection on made-up curves

def test_find_knees_steps_ramps_and_spikes():
    x = np.array([8, 16, 32, 48, 56, 64, 72, 80, 96, 128, 256, 512, 1024, 2048, 2304, 2560, 3072])
    y = np.array([1.7, 1.7, 1.7, 1.7, 1.7, 1.7, 4.1, 4.1, 4.1, 4.1, 9.0, 4.1, 4.1, 4.2, 12.0,
                  18.0, 18.5])   # a lone spike at 256, a two-point ramp from 2048
    k = cpu.find_knees(x, y)
    assert [(d["before"], d["after"], d["settled"]) for d in k] == [(64, 72, 72),
                                                                     (2048, 2304, 2560)]
    assert k[0]["step_ns"] == pytest.approx(2.4)
    assert k[1]["ns_before"] == pytest.approx(4.1)
    assert cpu.find_knees(x, np.full(len(x), 3.0)) == []


def test_knees_frame_labels_cache_capacity_knees():
    pages = [64, 128, 256, 384, 512, 640, 768, 1024]
    df = pd.DataFrame({"sweep": "tlb", "page_kind": "4k", "pages": pages,
                       "working_set_bytes": [p * 64 for p in pages],
                       "ns_per_load_min": [4, 4, 4, 4, 4, 7, 7, 7.0],
                       "cycles_per_load": [12, 12, 12, 12, 12, 21, 21, 21.0]})
    df.attrs["machine"] = {"caches": [{"level": 1, "type": "Data", "size_bytes": 32768}]}
    kn = cpu.knees(df)
    assert kn[["before", "after"]].values.tolist() == [[512, 640]]
    assert kn.near_cache_level.tolist() == ["L1d"]                  # 512 lines = 32 KiB
    assert kn.step_cycles.iloc[0] == pytest.approx(9.0)             # clock from cycles / ns


# ----------------------------------------------------------------------------------------------
# Measurements on this machine

def _near(knee_positions, target, tol=0.25):
    return any(abs(b - target) <= tol * target for b in knee_positions)


# The TLB knees are measured, compared with CPUID and simulated with the host preset in one
# test: tests/test_tlb.py::test_simulated_tlb_steps_sit_on_this_machines_measured_knees.


@pytest.mark.slow
def test_l1_working_set_is_at_least_3x_faster_than_64_mib():
    for _ in range(3):
        df = cpu.measure_cpu(quick=True, sweeps=("cache",), page_kinds=("4k",),
                             cache_sizes_bytes=[16 << 10, 64 << 20], progress=False)
        small, big = df.sort_values("working_set_bytes").ns_per_load_min.tolist()
        if big >= 3 * small:
            break
    assert big >= 3 * small, (small, big)
    assert df.runs.eq(7).all() and (df.cycles_per_load > 0).all()
    assert 1.0 < df.attrs["clock_ghz"] < 6.0


# ----------------------------------------------------------------------------------------------
# Machine description

@pytest.mark.skipif(not SYS_CACHE.is_dir(), reason="no sysfs cache description here")
def test_machine_description_has_the_sysfs_cache_sizes():
    d = machine.describe_machine()
    json.dumps(d)                                                   # JSON-ready
    for key in ("cpu_model", "logical_cpus", "caches", "tlb", "page_size_bytes", "thp_enabled",
                "kernel", "hypervisor", "date"):
        assert key in d
    for idx in SYS_CACHE.glob("index*"):
        size = cpu_size = (idx / "size").read_text().strip()
        assert cpu_size.endswith("K")
        want = int(size[:-1]) * 1024
        level = int((idx / "level").read_text())
        ctype = (idx / "type").read_text().strip()
        assert any(c["level"] == level and c["type"] == ctype and c["size_bytes"] == want
                   for c in d["caches"])
    l1d = [c for c in d["caches"] if c["level"] == 1 and c["type"] == "Data"]
    if d["cpu_family"] == 25 and d["cpu_model_number"] == 1:        # the reference VM (5.4)
        assert l1d[0]["size_bytes"] == 32 << 10 and l1d[0]["sets"] == 64
        assert l1d[0]["ways"] == 8 and l1d[0]["line_bytes"] == 64


def test_tlb_geometry_falls_back_and_never_invents(monkeypatch):
    monkeypatch.setattr(machine, "_cpuid", lambda leaf, cpu=0: None)
    amd = {"vendor_id": "AuthenticAMD", "TLB size": "2560 4K pages"}
    t = machine.tlb_geometry(amd)
    assert t["l2_dtlb_plus_itlb_4k_entries"] == 2560
    assert t["l1_dtlb_4k_entries"] is None and t["l2_dtlb_4k_entries"] is None
    t = machine.tlb_geometry({"vendor_id": "GenuineIntel"})
    assert t["source"] == "unknown" and t["entries"] == [] and t["l1_dtlb_4k_entries"] is None


def test_tlb_geometry_decodes_amd_cpuid_leaves(monkeypatch):
    """Raw leaves of the reference VM (Zen 3 KVM guest, read from /dev/cpu/0/cpuid)."""
    leaves = {0x80000000: (0x80000022, 0, 0, 0),
              0x80000005: (0xFF40FF40, 0xFF40FF40, 0x20080140, 0x20080140),
              0x80000006: (0x48002200, 0x68004200, 0x02006140, 0x08009140),
              0x80000019: (0xF040F040, 0xF0400000, 0, 0)}
    monkeypatch.setattr(machine, "_cpuid", lambda leaf, cpu=0: leaves.get(leaf))
    t = machine.tlb_geometry({"vendor_id": "AuthenticAMD"})
    assert t["l1_dtlb_4k_entries"] == 64 and t["l2_dtlb_4k_entries"] == 2048
    by = {(e["level"], e["type"], e["page"]): e for e in t["entries"]}
    assert by[(1, "data", "4K")]["ways"] == "full"
    assert by[(2, "data", "4K")]["ways"] == 8 and by[(2, "instruction", "4K")]["entries"] == 512
    assert by[(1, "data", "1G")]["ways"] == "full"


# ----------------------------------------------------------------------------------------------
# Outputs: calibration JSON, plot, command line

@pytest.fixture(scope="module")
def tiny_df():
    return cpu.measure_cpu(quick=True, page_kinds=("4k",), cache_sizes_bytes=[4 << 10, 1 << 20],
                           tlb_pages=[8, 64, 128], runs=3, run_ms=0.5, progress=False)


def test_frame_is_tidy(tiny_df):
    assert list(tiny_df.columns) == list(cpu.COLUMNS)
    assert tiny_df.sweep.tolist() == ["cache", "cache", "tlb", "tlb", "tlb"]
    assert tiny_df.pages.tolist() == [1, 256, 8, 64, 128]
    assert tiny_df.working_set_bytes.tolist() == [4096, 1 << 20, 512, 4096, 8192]
    assert (tiny_df.ns_per_load_median >= tiny_df.ns_per_load_min).all()
    np.testing.assert_allclose(tiny_df.cycles_per_load,
                               tiny_df.ns_per_load_min * tiny_df.attrs["clock_ghz"])


def test_write_calibration_is_atomic_and_complete(tiny_df, tmp_path):
    path = cpu.write_calibration(tiny_df, tmp_path / "cpu.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.json"]      # no .partial left
    doc = json.loads(path.read_text())
    assert doc["format"] == "simkit.bench.cpu" and doc["label"] == "measured"
    assert {"machine", "method", "summary", "ladder", "knees", "clock_ghz"} <= set(doc)
    assert len(doc["ladder"]) == len(tiny_df)
    assert doc["machine"]["caches"] and doc["method"]["runs"] == 3


def test_plot_writes_a_png(tiny_df, tmp_path):
    fig = cpu.plot_cpu(tiny_df, tmp_path / "cpu.png")
    assert len(fig.axes) >= 2
    assert (tmp_path / "cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "cpu.png.partial").exists()


def _cli(argv):
    from simkit.commands import bench

    parser = argparse.ArgumentParser(prog="simkit")
    bench.register(parser.add_subparsers(dest="area"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_cli_bench_cpu_writes_what_it_is_asked(tmp_path, capsys):
    out, cal, png = tmp_path / "cpu.csv", tmp_path / "cpu.json", tmp_path / "cpu.png"
    rc = _cli(["bench", "cpu", "--quick", "--sweep", "tlb", "--pages", "4k", "--runs", "3",
               "--run-ms", "1", "--out", str(out), "--calibration", str(cal),
               "--plot", str(png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ns_per_load_min" in text and "knees" in text and "clock" in text
    df = pd.read_csv(out)
    assert len(df) == len(cpu.TLB_PAGES_QUICK) and set(df.sweep) == {"tlb"}
    assert json.loads(cal.read_text())["ladder"]
    assert png.stat().st_size > 0


def test_cli_rejects_bad_output_paths_before_measuring(tmp_path):
    from simkit.errors import InputError

    with pytest.raises(InputError, match="--calibration"):
        _cli(["bench", "cpu", "--quick", "--calibration", str(tmp_path / "x.txt")])
    with pytest.raises(InputError, match="--plot"):
        _cli(["bench", "cpu", "--quick", "--plot", str(tmp_path / "nodir" / "x.png")])
    with pytest.raises(InputError, match="--out"):
        _cli(["bench", "cpu", "--quick", "--out", str(tmp_path / "x.xlsx")])
    assert os.listdir(tmp_path) == []
