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

The model needs the instructions between two records: ``instructions_per_record`` takes
``make_paper_traces.calibrate``'s (callgrind's count of the kernel in the plain build over the
traced build's records, on the calibration instance; cached by source hash) when valgrind is
on PATH, otherwise the ``instructions_per_record_milli`` of the shipped trace of the same
workload (``traces/paper-*.skt.xz``), and says which in ``ipr_source``.
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
           "ipr_source", "dependent_share")
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
    from simkit.bench.malloc.build import _private, cache_dir

    gcc = shutil.which("gcc")
    if gcc is None:
        raise InputError("gcc is not on PATH; install it with `apt-get install -y gcc`")
    if mode not in ("timed", "trace", "plain"):
        raise InputError(f"mode: timed, trace or plain, got {mode!r}")
    src = PAPER / f"{program}.c"
    if not src.is_file():
        raise InputError(f"{src}: not found (the paper programs live in traces/src/paper)")
    flags = [*CFLAGS, *({"timed": ["-DSIMKIT_TIMED"], "trace": ["-DSIMKIT_TRACE"]}
                        .get(mode, []))]
    h = hashlib.sha256(src.read_bytes() + (PAPER / "sktrace.h").read_bytes()
                       + " ".join(flags).encode())
    exe = cache_dir() / f"paper-{program}-{mode}-{h.hexdigest()[:12]}"
    if not _private(exe, want_dir=False):
        tmp = exe.with_name(exe.name + f".{os.getpid()}.tmp")
        r = subprocess.run([gcc, *flags, "-o", str(tmp), str(src), "-lm"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise InputError(f"compiling {src.name} failed: {r.stderr.strip()[-300:]}")
        os.chmod(tmp, 0o700)
        os.replace(tmp, exe)
    return exe


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


def instructions_per_record(program: str) -> tuple[float, str]:
    """(instructions per record, source): callgrind's calibration (make_paper_traces.calibrate,
    cached by source hash) when valgrind is on PATH, else the shipped trace's header."""
    from simkit.bench.malloc.build import cache_dir

    name = f"paper-{program}"
    src = PAPER / f"{SOURCE[program]}.c"
    if shutil.which("valgrind") is not None and shutil.which("gcc") is not None:
        h = hashlib.sha256(src.read_bytes() + (PAPER / "sktrace.h").read_bytes()
                           + name.encode()).hexdigest()[:12]
        cached = cache_dir() / f"{name}-ipr-{h}.json"
        if cached.is_file():
            cal = json.loads(cached.read_text())
        else:
            mpt = _make_paper_traces()
            with tempfile.TemporaryDirectory(prefix="simkit-ipr-") as tmp:
                tmp = Path(tmp)
                (tmp / "build").mkdir()
                cal = mpt.calibrate(mpt.WORKLOADS[name], tmp / "build", tmp)
            cal = {k: cal[k] for k in ("ipr_milli", "kernel_instructions", "kernel_records",
                                       "valgrind")}
            tmpf = cached.with_name(cached.name + f".{os.getpid()}.tmp")
            tmpf.write_text(json.dumps(cal))
            os.replace(tmpf, cached)
        return cal["ipr_milli"] / 1000, (f"callgrind ({cal['kernel_instructions']} "
                                         f"instructions / {cal['kernel_records']} records)")
    from simkit.trace.format import open_trace

    shipped = TRACES / f"{name}.skt.xz"
    if not shipped.is_file():
        raise InputError(f"no valgrind on PATH and no shipped trace {shipped.name}: "
                         "instructions per record unknown")
    milli = int(open_trace(shipped).meta.extra["instructions_per_record_milli"])
    return milli / 1000, f"shipped trace header ({shipped.name})"


def measure_programs(programs=("bfs", "dlrm", "xsbench"), footprints=(8 << 20, 256 << 20),
                     page_kinds=("4k",), *, records: int = 200_000, warmup: int = 400_000,
                     skip: int = 100_000, reps: int = 3, trace_dir: Path | None = None,
                     progress: bool | None = None):
    """(frame, traces): each program at each footprint (bytes) and page kind timed natively
    (``COLUMNS``: the best of ``reps`` runs' CPU ns per record over ``records`` kernel records
    after ``skip + warmup``) and, once per instance, traced over ``[skip, skip + warmup +
    records)``; ``traces`` maps (program, footprint) to the trace's records (numpy, ``warmup``
    of them first). A short kernel shrinks the skip and warm-up (to its estimated records)."""
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
                ipr, ipr_src = instructions_per_record(prog)
                for target in footprints:
                    args, est = instance(prog, target)
                    sk, wu = skip, warmup
                    if sk + wu + records > est:            # a short kernel: less skip and warm
                        sk = min(sk, max(0, (est - records) // 4))
                        wu = min(wu, max(0, est - records - sk))
                    tr = run_traced(prog, args, out_dir / f"{prog}-{target}.skt", skip=sk,
                                    window=wu + records, ipr_milli=round(ipr * 1000))
                    recs = tr.read()
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
                            "instructions_per_record": ipr, "ipr_source": ipr_src,
                            "dependent_share": dep})
                    bar.update(1)
    finally:
        tmpdir.cleanup()
    return pd.DataFrame(rows, columns=list(COLUMNS)), traces
