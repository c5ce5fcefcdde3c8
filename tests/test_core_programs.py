"""The paper programs' timed build (sktrace.h -DSIMKIT_TIMED) counts exactly the records the
traced build writes (hand-counted on tiny instances), times the same window, and
simkit.bench.cpu.programs / simkit.experiments.core_programs turn a measurement into predicted
points; bad input fails with one line."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from simkit.errors import InputError

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def test_gups_timed_counts_one_record_per_update_as_traced(tmp_path):
    from simkit.bench.cpu.programs import run_timed, run_traced

    t = run_timed("gups", [10, 64], pages=None)
    assert t["records"] == 64 and t["kernel_records_seen"] == 64 and t["windows"] == 1
    assert t["mapped_bytes"] == 2 << 20 and t["alloc_bytes"] == 1024 * 8
    assert t["cpu_ns"] > 0 and t["ns_per_record"] == pytest.approx(t["ns"] / 64, rel=1e-3)
    tr = run_traced("gups", [10, 64], tmp_path / "g.skt")
    assert tr.meta.records == 64
    # a window: records [5, 25) of the kernel, in both builds
    w = run_timed("gups", [10, 64], pages="4k", skip=5, window=20)
    assert (w["records"], w["kernel_records_seen"], w["pages"]) == (20, 25, "4k")
    assert run_traced("gups", [10, 64], tmp_path / "w.skt", skip=5, window=20).meta.records == 20


def test_dlrm_timed_count_by_hand_and_equal_to_traced(tmp_path):
    """2 tables x 64 rows x 32 floats, 3 bags, pooling 2: per (bag, table) 2 rows of 2 lines
    each; the index array (12 uint32 = 48 bytes, one line) is recorded once, the output
    (3 x 2 x 32 floats = 768 bytes = 12 lines, 2 per (bag, table), each vector line-aligned)
    once per line: 3 * 2 * 2 * 2 + 1 + 12 = 37 records."""
    from simkit.bench.cpu.programs import run_timed, run_traced

    args = [2, 64, 32, 3, 2]
    t = run_timed("dlrm", args, pages="4k")
    tr = run_traced("dlrm", args, tmp_path / "d.skt")
    assert t["records"] == tr.meta.records == 3 * 2 * 2 * 2 + 1 + 12
    assert t["kernel_records_seen"] == t["records"]


def test_graph_and_xsbench_timed_counts_equal_traced(tmp_path):
    from simkit.bench.cpu.programs import run_timed, run_traced

    for prog, args in (("bfs", ["bfs", 9, 4]), ("pagerank", ["pagerank", 8, 4, 2]),
                       ("xsbench", [6, 20, 50]), ("llm-decode", [1, 64, 64, 2, 32, 8])):
        t = run_timed(prog, args, pages=None)
        tr = run_traced(prog, args, tmp_path / f"{prog}.skt")
        assert t["records"] == tr.meta.records > 100, prog
        assert tr.meta.extra["kernel_records_seen"] == t["kernel_records_seen"]


def test_measure_and_predict_a_tiny_point():
    from simkit.bench.cpu.programs import COLUMNS, measure_programs
    from simkit.core import CoreConfig
    from simkit.experiments.core_programs import program_points
    from simkit.tlb import MMUConfig

    frame, traces = measure_programs(["gups"], [1 << 20], ["4k"], records=3000, warmup=2000,
                                     skip=1000, reps=1, progress=False)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 1
    r = frame.iloc[0]
    assert (r.records, r.warmup, r.skip, r.kernel_records_seen) == (3000, 2000, 3000, 6000)
    assert r.footprint_bytes == 1 << 20 and r.ns_per_record > 0
    assert r.instructions_per_record > 1 and r.ipr_source
    recs = traces[("gups", 1 << 20)]
    assert len(recs) == 5000 and not (recs["flags"] & 1).any()
    # icount spreads the calibrated instructions per record evenly (sktrace.h)
    assert int(recs["icount"].sum()) == int(5000 * round(r.instructions_per_record * 1000)
                                            // 1000)
    pts = program_points({"frame": frame, "traces": traces}, MMUConfig(),
                         CoreConfig.preset("zen3"), 2.0)
    p = pts.iloc[0]
    assert p.predicted_ns_per_record > 0 and p.measured_ns_per_record == r.ns_per_record
    assert p.error == pytest.approx(p.predicted_ns_per_record / p.measured_ns_per_record - 1)
    # no flagged records: per-record dependence and none predict the same
    assert p.predicted_independent_ns_per_record == pytest.approx(p.predicted_ns_per_record)


def test_bad_input_is_one_clear_line(tmp_path):
    from simkit.bench.cpu.programs import build, instance, measure_programs, run_timed

    for kw, word in ((dict(programs=["bfss"]), "programs"),
                     (dict(footprints=[1000]), "footprints"),
                     (dict(page_kinds=["2m"]), "page_kinds"),
                     (dict(records=0), "records"), (dict(reps=0), "reps"),
                     (dict(programs=[]), "at least one")):
        with pytest.raises(InputError, match=word) as e:
            measure_programs(**kw, progress=False)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="program"):
        instance("sort", 1 << 20)
    with pytest.raises(InputError, match="mode"):
        build("gups", "fast")
    with pytest.raises(InputError, match="argument"):
        run_timed("gups", ["ten"])
    with pytest.raises(InputError, match="SKT_PAGES"):
        run_timed("gups", [10], pages="1g")
    exe = build("gups", "timed")
    p = subprocess.run([str(exe), "10"], env={"SKT_WINDOW": "0"}, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "SKT_WINDOW" in p.stderr


def test_instances_map_about_the_footprint():
    from simkit.bench.cpu.programs import PROGRAMS, instance

    for prog in PROGRAMS:
        for target in (8 << 20, 256 << 20):
            args, est = instance(prog, target)
            assert est > 100_000 and all(a.isdigit() for a in args[1:])
    assert np.isclose(64 * 2 ** int(instance("bfs", 256 << 20)[0][1]), 256 << 20)


def test_instructions_per_record_without_valgrind_come_from_the_shipped_trace(monkeypatch):
    import shutil as sh

    from simkit.bench.cpu import programs
    from simkit.trace.format import open_trace

    real = sh.which
    monkeypatch.setattr(programs.shutil, "which",
                        lambda name: None if name == "valgrind" else real(name))
    cal = programs.instructions_per_record("bfs")
    milli = open_trace(programs.TRACES / "paper-bfs.skt.xz").meta.extra[
        "instructions_per_record_milli"]
    assert cal["ipr"] == cal["plain_ipr"] == milli / 1000 == 7.322
    assert "shipped trace header" in cal["source"]
