"""The paper-regime programs (``traces/src/paper/``: BFS and PageRank over an RMAT graph,
XSBench, DLRM gathers, a Llama-shaped decode step, GUPS) timed natively on this machine and
traced on the same instance, for the core model's validation (``core-validation``).

Each program is built twice from its source (gcc as ``traces/src/make_paper_traces.py`` builds
them, cached by source hash in the private cache of ``simkit.bench.malloc.build``):

- ``-DSIMKIT_TIMED`` (``sktrace.h``): the macros only count the records the traced build would
  write and time a window of them; one JSON line out (ns, records, huge-page backing);
- ``-DSIMKIT_TRACE``: the same window of records written as a ``.skt`` trace.

At each requested footprint the instance's size arguments are chosen (``instance``) so that
the program maps about that many bytes; the timed build runs pinned to one CPU with every
``skt_alloc`` mapping advised and touched first (``SKT_PAGES=4k`` or ``thp``), ``reps`` times,
and the best run's CPU ns per record is the measurement (thread CPU time, as ``gups_timed``:
a run the scheduler interrupts is not charged for others' time). The trace covers the
``warmup`` records before the timed window too, so the model warms on the program's own
accesses: records ``[skip, skip + warmup)`` are the warm-up, ``[skip + warmup, skip + warmup +
records)`` the timed ones, the same records in both builds (the tests check the counts).

The model needs the instructions between two records. The counting is not free: a few
instructions per record (a countdown, a stream's line test, and the register pressure they
add), which take reorder-buffer slots and so cut the overlap of misses (whole kernels, best
of 5, with the counting macros emptied vs counted: BFS 2^21 0.188 vs 0.257 s, GUPS 2^24 0.817
vs 0.838 s, DLRM 8 x 64Ki rows 0.329 vs 0.352 s; callgrind: BFS 7.3 plain vs 20.6 timed
instructions per record). The model is therefore given the instructions of the program that
was timed:
``instructions_per_record`` is callgrind's count of the kernel in the timed build over its
records on the calibration instance (``make_paper_traces.WORKLOADS``' ``calib``), beside the
plain build's (``make_paper_traces.calibrate``, what the shipped traces carry) as
``plain_instructions_per_record``; cached by source hash. Without valgrind both are the
shipped trace header's ``instructions_per_record_milli`` (the plain build's), and
``ipr_source`` says so.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from simkit.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
PAPER = ROOT / "traces" / "src" / "paper"
TRACES = ROOT / "traces"
CFLAGS = ("-O3", "-g0", "-fno-pie", "-no-pie")     # make_paper_traces.CFLAGS
PROGRAMS = ("bfs", "pagerank", "xsbench", "dlrm", "llm-decode", "gups")
SOURCE = {"bfs": "graph", "pagerank": "graph", "xsbench": "xsbench", "dlrm": "dlrm",
          "llm-decode": "llm_decode", "gups": "gups"}
PAGE_KINDS = ("4k", "thp")
COLUMNS = ("program", "args", "target_bytes", "footprint_bytes", "mapped_bytes", "page_kind",
           "ns_per_record", "wall_ns_per_record", "records", "skip", "warmup",
           "kernel_records_seen", "thp_backed_bytes", "reps", "instructions_per_record",
           "plain_instructions_per_record", "ipr_source", "dependent_share")
MIN_BYTES = 1 << 20


def _check(programs, footprints, page_kinds, records, warmup, skip, reps):
    programs, footprints, page_kinds = list(programs), list(footprints), list(page_kinds)
    for p in programs:
        if p not in PROGRAMS:
            raise InputError(f"programs: one of {', '.join(PROGRAMS)}, got {p!r}")
    for b in footprints:
        if isinstance(b, bool) or not isinstance(b, int) or not MIN_BYTES <= b <= 1 << 36:
            raise InputError(f"footprints: bytes from 1 MiB to 64 GiB, got {b!r}")
    for k in page_kinds:
        if k not in PAGE_KINDS:
            raise InputError(f"page_kinds: '4k' or 'thp', got {k!r}")
    for name, v, lo in (("records", records, 1), ("warmup", warmup, 0), ("skip", skip, 0),
                        ("reps", reps, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{name}: an integer >= {lo}, got {v!r}")
    if not programs or not footprints or not page_kinds:
        raise InputError("programs, footprints and page_kinds: give at least one each")
    return programs, footprints, page_kinds


def instance(program: str, footprint_bytes: int) -> tuple[list[str], int]:
    """(arguments, estimated kernel records) of ``program`` mapping about ``footprint_bytes``
    (the layout of each program's header comment; the real mapped bytes come back from the
    run). BFS / PageRank: RMAT graphs of degree 12 (64 bytes per vertex); XSBench: 68 nuclides
    (XSBench "small"), the grid points sized to the footprint; DLRM: 8 tables of 64 floats per
    row, pooling 32; the decode step: 2 layers of width D (FFN 2.6875 D, heads of 64, a
    vocabulary of 4 D, 512 tokens of context); GUPS: 2^k words, 4 updates per word."""
    if program not in PROGRAMS:
        raise InputError(f"program: one of {', '.join(PROGRAMS)}, got {program!r}")
    b = int(footprint_bytes)
    if program in ("bfs", "pagerank"):
        scale = max(8, min(31, round(math.log2(b / 64))))
        v = 1 << scale
        return ([program, str(scale), "12"] + (["1"] if program == "pagerank" else []),
                int(13 * v))
    if program == "xsbench":
        gp = max(4, b // (68 * (48 + 8 + 4 * 68)))
        lookups = 200_000 if b < 64 << 20 else 100_000
        return ["68", str(gp), str(lookups)], lookups * 80
    if program == "dlrm":
        bags = 800                              # ~860k records; 3 KiB of indices and output each
        rows = max(64, (b - bags * 3072) // (8 * 256))
        return ["8", str(rows), "64", str(bags), "32"], bags * 1072
    if program == "llm-decode":
        d = max(128, int(round(math.sqrt(b / 64) / 64)) * 64)
        ffn = int(round(2.6875 * d / 32)) * 32
        return ["2", str(d), str(ffn), str(d // 64), str(4 * d), "512"], int(64 * d * d * 3 / 64)
    log2 = max(3, min(34, round(math.log2(b / 8))))
    return [str(log2)], 4 << log2


def build(program: str, mode: str) -> Path:
    """The compiled ``program`` (a ``SOURCE`` name: graph, xsbench, ...) in ``mode`` "timed"
    (-DSIMKIT_TIMED), "trace" (-DSIMKIT_TRACE) or "plain"; cached by the hash of the source,
    sktrace.h, the flags and the mode."""
    from simkit.bench.malloc.build import build as build_c

    if mode not in ("timed", "trace", "plain"):
        raise InputError(f"mode: timed, trace or plain, got {mode!r}")
    flags = [*CFLAGS, *({"timed": ["-DSIMKIT_TIMED"], "trace": ["-DSIMKIT_TRACE"]}
                        .get(mode, []))]
    return build_c(program, PAPER, flags=flags, tag=f"paper-{program}-{mode}")


def _env(**kw) -> dict:
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", **{k: str(v) for k, v in kw.items()}}


def run_timed(program: str, args, *, pages: str | None = "4k", skip: int = 0,
              window: int | None = None, timeout: float = 3600) -> dict:
    """One run of the timed build (``program``: a ``PROGRAMS`` name); the JSON line it prints,
    as a dict (ns, cpu_ns, records, ns_per_record, cpu_ns_per_record, windows,
    kernel_records_seen, mapped_bytes, thp_backed_bytes, pages)."""
    exe = build(SOURCE[program], "timed")
    env = _env(SKT_SKIP=skip, **({"SKT_PAGES": pages} if pages else {}),
               **({"SKT_WINDOW": window} if window else {}))
    r = subprocess.run([str(exe), *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise InputError(f"{program} {' '.join(map(str, args))}: {r.stderr.strip()[-200:]}")
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise InputError(f"{program}: no timing line in its output: {r.stdout[-200:]!r}")


def run_traced(program: str, args, out: Path, *, skip: int = 0, window: int | None = None,
               ipr_milli: int = 1000, timeout: float = 3600):
    """The traced build on the same instance: records ``[skip, skip + window)`` of the kernel
    (all of it without ``window``) written to ``out``; returns ``simkit.trace``'s Trace."""
    from simkit.trace.format import open_trace

    exe = build(SOURCE[program], "trace")
    env = _env(SKT_OUT=out, SKT_SKIP=skip, SKT_IPR_MILLI=ipr_milli, SKT_NAME=f"paper-{program}",
               **({"SKT_WINDOW": window} if window else {}))
    r = subprocess.run([str(exe), *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise InputError(f"{program} (traced): {r.stderr.strip()[-200:]}")
    return open_trace(out)


def _make_paper_traces():
    """traces/src/make_paper_traces.py as a module (its sys.path additions undone)."""
    path = ROOT / "traces" / "src" / "make_paper_traces.py"
    if not path.is_file():
        raise InputError(f"{path}: not found")
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("_simkit_make_paper_traces", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    return mod


def _callgrind_timed(w: dict, work: Path) -> dict:
    """Callgrind's instruction count of the kernel function in the *timed* build on the
    calibration instance, and the records that build counted for the whole kernel."""
    import re

    exe = build(w["prog"], "timed")
    cg = work / "callgrind.timed.out"
    p = subprocess.run(["valgrind", "--tool=callgrind", f"--toggle-collect={w['kernel']}",
                        f"--callgrind-out-file={cg}", str(exe), *w["calib"]],
                       capture_output=True, text=True, env=_env())
    m = re.search(r"^(?:summary|totals):\s*(\d+)", cg.read_text(), re.M) if cg.exists() else None
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("{")), None)
    if p.returncode != 0 or m is None or line is None:
        raise InputError(f"callgrind of the timed {w['prog']} failed: {p.stderr[-300:]}")
    return {"kernel_instructions": int(m.group(1)), "kernel_records": json.loads(line)["records"]}


def instructions_per_record(program: str) -> dict:
    """The instructions per record of ``program``'s kernel: ``ipr``, that of the timed build
    (what the native run executes: the plain program plus the counting, a few instructions
    per record), ``plain_ipr``, that of the plain build (``make_paper_traces.calibrate``,
    what the shipped traces carry), and ``source``. Both by callgrind on the calibration
    instance (cached by source hash) when valgrind is on PATH; otherwise both the shipped
    trace header's (the plain build's: the counting's instructions left out, and said so)."""
    from simkit.bench.malloc.build import cache_dir

    name = f"paper-{program}"
    src = PAPER / f"{SOURCE[program]}.c"
    if shutil.which("valgrind") is not None and shutil.which("gcc") is not None:
        h = hashlib.sha256(src.read_bytes() + (PAPER / "sktrace.h").read_bytes()
                           + name.encode() + " ".join(CFLAGS).encode()).hexdigest()[:12]
        cached = cache_dir() / f"{name}-ipr-{h}.json"
        if cached.is_file():
            cal = json.loads(cached.read_text())
        else:
            mpt = _make_paper_traces()
            w = mpt.WORKLOADS[name]
            with tempfile.TemporaryDirectory(prefix="simkit-ipr-") as tmp:
                tmp = Path(tmp)
                (tmp / "build").mkdir()
                plain = mpt.calibrate(w, tmp / "build", tmp)
                timed = _callgrind_timed(w, tmp)
            if timed["kernel_records"] != plain["kernel_records"]:
                raise InputError(f"{name}: the timed build counted {timed['kernel_records']} "
                                 f"records, the traced build wrote {plain['kernel_records']}")
            cal = {"plain_instructions": plain["kernel_instructions"],
                   "timed_instructions": timed["kernel_instructions"],
                   "records": plain["kernel_records"], "valgrind": plain["valgrind"],
                   "calib": " ".join(w["calib"])}
            tmpf = cached.with_name(cached.name + f".{os.getpid()}.tmp")
            tmpf.write_text(json.dumps(cal))
            os.replace(tmpf, cached)
        return {"ipr": cal["timed_instructions"] / cal["records"],
                "plain_ipr": cal["plain_instructions"] / cal["records"],
                "source": f"callgrind of the timed build ({cal['timed_instructions']} kernel "
                          f"instructions / {cal['records']} records, {cal['calib']}; plain "
                          f"build {cal['plain_instructions']})"}
    from simkit.trace.format import open_trace

    shipped = TRACES / f"{name}.skt.xz"
    if not shipped.is_file():
        raise InputError(f"no valgrind on PATH and no shipped trace {shipped.name}: "
                         "instructions per record unknown")
    milli = int(open_trace(shipped).meta.extra["instructions_per_record_milli"])
    return {"ipr": milli / 1000, "plain_ipr": milli / 1000,
            "source": f"shipped trace header ({shipped.name}: the plain build's, without the "
                      "timed build's counting)"}


def measure_programs(programs=("bfs", "dlrm", "xsbench"), footprints=(8 << 20, 256 << 20),
                     page_kinds=("4k",), *, records: int = 200_000, warmup: int = 400_000,
                     skip: int = 100_000, reps: int = 3, trace_dir: Path | None = None,
                     progress: bool | None = None):
    """(frame, traces): each program at each footprint (bytes) and page kind timed natively
    (``COLUMNS``: the best of ``reps`` runs' CPU ns per record over ``records`` kernel records
    after ``skip + warmup``) and, once per instance, traced over ``[skip, skip + warmup +
    records)``; ``traces`` maps (program, footprint) to the trace's records (numpy, ``warmup``
    of them first; the .skt files are kept in ``trace_dir`` when given). A short kernel
    shrinks the skip and warm-up (to its estimated records)."""
    import pandas as pd

    from simkit.bench.cpu.chase import _progress, pinned

    programs, footprints, page_kinds = _check(programs, footprints, page_kinds, records,
                                              warmup, skip, reps)
    rows, traces = [], {}
    tmpdir = tempfile.TemporaryDirectory(prefix="simkit-programs-")
    out_dir = Path(trace_dir) if trace_dir is not None else Path(tmpdir.name)
    try:
        with _progress(len(programs) * len(footprints), progress) as bar:
            for prog in programs:
                cal = instructions_per_record(prog)
                ipr, ipr_src = cal["ipr"], cal["source"]
                for target in footprints:
                    args, est = instance(prog, target)
                    sk, wu = skip, warmup
                    if sk + wu + records > est:            # a short kernel: less skip and warm
                        sk = min(sk, max(0, (est - records) // 4))
                        wu = min(wu, max(0, est - records - sk))
                    path = out_dir / f"{prog}-{target}.skt"
                    tr = run_traced(prog, args, path, skip=sk, window=wu + records,
                                    ipr_milli=round(ipr * 1000))
                    recs = tr.read().copy()               # in memory: the file may go
                    if trace_dir is None:
                        path.unlink()
                    if len(recs) < 2:
                        raise InputError(f"{prog} {' '.join(args)}: the kernel wrote "
                                         f"{len(recs)} records after skipping {sk}")
                    wu = min(wu, len(recs) // 2)          # the kernel ended early: warm less
                    traces[(prog, target)] = recs
                    dep = float((recs["flags"][wu:] & 1).mean()) if len(recs) > wu else 0.0
                    for kind in page_kinds:
                        best = None
                        for _ in range(reps):
                            with pinned():
                                t = run_timed(prog, args, pages=kind, skip=sk + wu,
                                              window=len(recs) - wu)
                            if best is None or t["cpu_ns_per_record"] < best["cpu_ns_per_record"]:
                                best = t
                        if best["records"] != len(recs) - wu:
                            raise InputError(f"{prog} {' '.join(args)}: timed {best['records']} "
                                             f"records, traced {len(recs) - wu}")
                        rows.append({
                            "program": prog, "args": " ".join(args), "target_bytes": target,
                            "footprint_bytes": int(best["alloc_bytes"]),
                            "mapped_bytes": int(best["mapped_bytes"]), "page_kind": kind,
                            "ns_per_record": float(best["cpu_ns_per_record"]),
                            "wall_ns_per_record": float(best["ns_per_record"]),
                            "records": int(best["records"]), "skip": sk + wu, "warmup": wu,
                            "kernel_records_seen": int(best["kernel_records_seen"]),
                            "thp_backed_bytes": int(best["thp_backed_bytes"]), "reps": reps,
                            "instructions_per_record": ipr,
                            "plain_instructions_per_record": cal["plain_ipr"],
                            "ipr_source": ipr_src,
                            "dependent_share": dep})
                    bar.update(1)
    finally:
        tmpdir.cleanup()
    return pd.DataFrame(rows, columns=list(COLUMNS)), traces
