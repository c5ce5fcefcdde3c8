"""Allocation traces: the .skat format, the mtrace/memray/PyTorch/KV importers, malformed input
named by line or counted with --lenient, and a real mtrace capture through the gcc-built shim."""
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from simkit.cli import main
from simkit.errors import InputError
from simkit.trace.alloc import (ALLOC_DTYPE, NONE, AllocOp, AllocTraceWriter, empty,
                                import_kv_alloc, import_mtrace, import_torch_snapshot,
                                open_alloc_trace, synthetic_alloc, write_alloc_trace)
from simkit.trace.format import Op, TraceMeta, make_records, write_trace

MTRACE = """= Start
@ ./prog:[0x401136] + 0x5555555592a0 0x20
@ ./prog:[0x40114a] + 0x5555555592d0 0x100
@ ./prog:[0x401158] < 0x5555555592a0
@ ./prog:[0x401158] > 0x5555555593e0 0x40
- 0x5555555592d0
+ 0x555555559430 0x8
@ /lib/x86_64-linux-gnu/libc.so.6:(free+0x0)[0x7ffff7e5d4b0] - 0x5555555593e0
= End
"""


def test_roundtrip_chunks_and_objects(tmp_path):
    recs = synthetic_alloc(10_000, seed=3)
    p = write_alloc_trace(tmp_path / "s.skat.xz", recs, TraceMeta(source="synthetic"))
    t = open_alloc_trace(p)
    assert len(t) == 10_000 and t.objects == 5_000
    assert t.meta.ops == {"malloc": 5000, "calloc": 0, "realloc": 0, "free": 5000, "memalign": 0}
    parts = list(t.chunks(3000))
    assert [len(c) for c in parts] == [3000, 3000, 3000, 1000]
    assert np.array_equal(np.concatenate(parts), recs)
    # every object is allocated once, then freed once, after its allocation
    first = {}
    for i, (op, oid) in enumerate(zip(recs["op"], recs["id"])):
        if op == AllocOp.MALLOC:
            first[oid] = i
        else:
            assert first[oid] < i


def test_truncated_and_foreign_files_are_named(tmp_path):
    p = write_alloc_trace(tmp_path / "s.skat", synthetic_alloc(100))
    raw = p.read_bytes()
    (tmp_path / "cut.skat").write_bytes(raw[:-40])
    with pytest.raises(InputError, match=r"cut.skat: truncated: header says 100 records, file "
                                         r"holds 99"):
        open_alloc_trace(tmp_path / "cut.skat")
    (tmp_path / "x.skat").write_bytes(b"SIMKTRC1" + raw[8:])
    with pytest.raises(InputError, match=r"x.skat: not a simkit allocation trace"):
        open_alloc_trace(tmp_path / "x.skat")
    with pytest.raises(InputError, match=r"must end in .skat"):
        AllocTraceWriter(tmp_path / "x.bin")


def test_mtrace_import_hand_checked(tmp_path):
    src = tmp_path / "m.txt"
    src.write_text(MTRACE)
    t = open_alloc_trace(import_mtrace(src, tmp_path / "m.skat"))
    r = t.read()
    assert r["op"].tolist() == [AllocOp.MALLOC, AllocOp.MALLOC, AllocOp.REALLOC, AllocOp.FREE,
                                AllocOp.MALLOC, AllocOp.FREE]
    assert r["id"].tolist() == [0, 1, 2, 1, 3, 2]
    assert r["old_id"].tolist() == [NONE, NONE, 0, NONE, NONE, NONE]
    assert r["size"].tolist() == [0x20, 0x100, 0x40, 0, 8, 0]
    assert r["addr"][2] == 0x5555555593e0
    assert r["time"].tolist() == [0, 1, 2, 3, 4, 5]
    assert t.meta.extra["live_at_end"] == 1 and t.meta.extra["skipped"] == {}


@pytest.mark.parametrize("line, lineno, message", [
    ("- 0x1234", 3, r"m.txt:3: free of 0x1234, which is not a live allocation"),
    ("+ 0x7000", 3, r"m.txt:3: truncated line: '\+' without a size"),
    ("@ x * 0x70 0x1", 3, r"m.txt:3: malformed mtrace line"),
    ("< 0x10", 3, r"m.txt:3: realloc of 0x10|truncated trace: '<' without its '>' line"),
])
def test_mtrace_errors_name_the_line_or_are_counted(tmp_path, line, lineno, message):
    src = tmp_path / "m.txt"
    src.write_text(f"= Start\n+ 0x5000 0x10\n{line}\n- 0x5000\n")
    with pytest.raises(InputError, match=message):
        import_mtrace(src, tmp_path / "m.skat")
    assert not (tmp_path / "m.skat").exists()
    t = open_alloc_trace(import_mtrace(src, tmp_path / "m.skat", lenient=True))
    assert sum(t.meta.extra["skipped"].values()) == 1
    assert t.meta.ops["malloc"] == 1 and t.meta.ops["free"] == 1


def test_torch_snapshot_entries(tmp_path):
    snap = {"segments": [], "device_traces": [[
        {"action": "segment_alloc", "addr": 0x7f00, "size": 2 << 20, "time_us": 1},
        {"action": "alloc", "addr": 0x7f00, "size": 512, "stream": 0, "time_us": 2},
        {"action": "alloc", "addr": 0x8100, "size": 1024, "stream": 0, "time_us": 3},
        {"action": "free_requested", "addr": 0x7f00, "size": 512, "time_us": 4},
        {"action": "free_completed", "addr": 0x7f00, "size": 512, "time_us": 5},
    ]]}
    (tmp_path / "s.pickle").write_bytes(pickle.dumps(snap))
    t = open_alloc_trace(import_torch_snapshot(tmp_path / "s.pickle", tmp_path / "s.skat"))
    r = t.read()
    assert r["op"].tolist() == [AllocOp.MALLOC, AllocOp.MALLOC, AllocOp.FREE]
    assert r["size"].tolist() == [512, 1024, 0] and r["time"].tolist() == [2000, 3000, 5000]
    assert t.meta.extra["ignored"] == {"segment_alloc": 1, "free_requested": 1}
    snap["device_traces"][0][2]["size"] = -4
    (tmp_path / "bad.json").write_text(json.dumps(snap))
    with pytest.raises(InputError, match=r"bad.json:3: negative size -4"):
        import_torch_snapshot(tmp_path / "bad.json", tmp_path / "b.skat")
    assert main(["trace", "import-malloc", str(tmp_path / "bad.json"), str(tmp_path / "b.skat"),
                 "--lenient"]) == 0


def test_kv_alloc_export_import(tmp_path):
    base = 0x7000_0000_0000
    recs = make_records([base, base + 100, base, base + 100], op=[Op.STORE, Op.STORE, Op.LOAD,
                                                                 Op.LOAD], size=[1, 3, 1, 3],
                        icount=[0, 2, 5, 1])
    meta = TraceMeta(extra={"encoding": "kv-alloc-v1", "unit": "block", "unit_bytes": 100})
    write_trace(tmp_path / "kv.skt", recs, meta)
    r = open_alloc_trace(import_kv_alloc(tmp_path / "kv.skt", tmp_path / "kv.skat")).read()
    assert r["op"].tolist() == [AllocOp.MALLOC, AllocOp.MALLOC, AllocOp.FREE, AllocOp.FREE]
    assert r["size"].tolist() == [100, 300, 0, 0] and r["id"].tolist() == [0, 1, 0, 1]
    assert r["time"].tolist() == [0, 2, 7, 8]
    write_trace(tmp_path / "plain.skt", recs, TraceMeta())
    with pytest.raises(InputError, match=r"not a KV alloc/free trace"):
        import_kv_alloc(tmp_path / "plain.skt", tmp_path / "x.skat")


def test_cli_import_error_is_one_line(tmp_path, capsys):
    (tmp_path / "m.txt").write_text("+ 0x10 0x8\n- 0x20\n")
    assert main(["trace", "import-malloc", str(tmp_path / "m.txt"),
                 str(tmp_path / "m.skat")]) == 2
    err = capsys.readouterr().err
    assert err == f"simkit: error: {tmp_path / 'm.txt'}:2: free of 0x20, which is not a live " \
                  f"allocation (a block allocated before tracing began? --lenient skips and " \
                  f"counts such lines)\n"
    assert not (tmp_path / "m.skat").exists()
    assert main(["trace", "import-malloc", str(tmp_path / "m.txt"), str(tmp_path / "m.skat"),
                 "--lenient"]) == 0
    assert "skipped (not replayed): free of unknown address 1" in capsys.readouterr().out


def test_failed_malloc_and_failed_realloc_are_handled_alike(tmp_path, capsys):
    """glibc's mtrace writes "+ (nil) size" for a failed malloc and "! old size" for a failed
    realloc: both legal, both skipped and counted, neither an error (strict import)."""
    (tmp_path / "m.txt").write_text("+ 0x5000 0x10\n+ (nil) 0xffffffffffff\n"
                                    "! 0x5000 0xffffffffffff\n- 0x5000\n- (nil)\n")
    t = open_alloc_trace(import_mtrace(tmp_path / "m.txt", tmp_path / "m.skat"))
    assert t.read()["op"].tolist() == [AllocOp.MALLOC, AllocOp.FREE]
    assert t.meta.extra["failed"] == {"malloc": 1, "realloc": 1}
    assert t.meta.extra["skipped"] == {} and t.meta.extra["free_null"] == 1
    assert main(["trace", "import-malloc", str(tmp_path / "m.txt"), str(tmp_path / "n.skat")]) == 0
    assert "failed allocations (returned NULL; not replayed): malloc 1, realloc 1" \
        in capsys.readouterr().out


def test_mtrace_import_speed(tmp_path):
    """1.3M events in under 10 s (the issue's bound for a real CPython mtrace): here 200k
    events within the same rate (1.54 s CPU; measured 1.3M in 6.3 s CPU at load 10)."""
    import time
    n = 66_667
    lines = []
    for i in range(n):
        a, b = 0x555555560000 + 64 * i, 0x7f0000000000 + 64 * i
        lines += [f"@ ./prog:[0x401136] + {a:#x} 0x20", f"+ {b:#x} 0x30", f"- {a:#x}"]
    (tmp_path / "m.txt").write_text("\n".join(lines) + "\n")
    dt = float("inf")
    for k in range(3):                        # best of 3: CPU time still feels a busy machine
        t0 = time.process_time()
        t = open_alloc_trace(import_mtrace(tmp_path / "m.txt", tmp_path / f"m{k}.skat"))
        dt = min(dt, time.process_time() - t0)
    assert t.meta.records == 3 * n
    assert dt < 10 * 3 * n / 1.3e6, f"{3 * n} events in {dt:.1f} s CPU"


PROGRAM = r"""
#include <stdlib.h>
int main(void) {
    char *p = malloc(100), *q = calloc(3, 40);
    p = realloc(p, 5000);
    free(q);
    free(p);
    return 0;
}
"""
needs_mtrace = pytest.mark.skipif(
    shutil.which("gcc") is None or not any(os.path.exists(f"{d}/libc_malloc_debug.so.0") for d in
                                           ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                            "/lib64", "/usr/lib64")),
    reason="needs gcc and glibc's libc_malloc_debug.so.0 (glibc >= 2.34)")


@needs_mtrace
def test_capture_malloc_real_program(tmp_path, capsys):
    (tmp_path / "p.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O0", "-fno-builtin", "-o", str(tmp_path / "p"),
                    str(tmp_path / "p.c")], check=True)
    dst = tmp_path / "p.skat.xz"
    assert main(["trace", "capture-malloc", "-o", str(dst), "--", str(tmp_path / "p")]) == 0
    r = open_alloc_trace(dst).read()
    ours = [(int(o), int(s)) for o, s in zip(r["op"], r["size"])][-5:]
    # calloc and malloc both log '+' in mtrace; realloc is '<' '>'
    assert ours == [(AllocOp.MALLOC, 100), (AllocOp.MALLOC, 120), (AllocOp.REALLOC, 5000),
                    (AllocOp.FREE, 0), (AllocOp.FREE, 0)]
    assert "wrote" in capsys.readouterr().out


def test_memray_capture_of_python(tmp_path):
    pytest.importorskip("memray", reason="memray not installed (pip install memray)")
    from simkit.trace.malloc_capture import capture_malloc
    script = tmp_path / "s.py"
    script.write_text("x = [bytearray(300000) for _ in range(3)]\ndel x\n")
    t = open_alloc_trace(capture_malloc([sys.executable, str(script)], tmp_path / "s.skat",
                                        tool="memray"))
    r = t.read()
    big = r[(r["op"] != AllocOp.FREE) & (r["size"] >= 300000)]
    assert len(big) == 3
    freed = set(r["id"][r["op"] == AllocOp.FREE].tolist())
    assert set(big["id"].tolist()) <= freed


def test_trace_info_of_an_allocation_trace(tmp_path, capsys):
    src = tmp_path / "m.txt"
    src.write_text(MTRACE)
    import_mtrace(src, tmp_path / "m.skat")
    out = tmp_path / "info.csv"
    assert main(["trace", "info", str(tmp_path / "m.skat"), "--out", str(out)]) == 0
    import pandas as pd
    row = pd.read_csv(out).iloc[0]
    # live: 0x20 -> 0x20+0x100 -> realloc to 0x40 (0x140) -> free 0x100 -> +8 -> free 0x40
    assert row.events == 6 and row.objects == 4 and row.peak_live_bytes == 0x140
    assert row.live_at_end_bytes == 8
