"""Build, calibrate and run the paper-regime workloads (traces/src/paper/) and write sampled
windows of their line-granularity traces.

    python traces/src/make_paper_traces.py --size paper --ship      # the shipped windows
    python traces/src/make_paper_traces.py --size paper --out DIR --only paper-bfs \\
        --window 1000000 --windows 8                              # larger windows, locally
    python traces/src/make_paper_traces.py --size small --out DIR  # seconds, for a try

For each workload: (1) build the program plain and with -DSIMKIT_TRACE (gcc -O2, as the other
traces' programs); (2) measure its instructions per record: callgrind's instruction count of the
kernel function (``--toggle-collect``, inclusive) in the plain build on a small instance,
divided by the records the tracing build writes for that whole kernel on the same instance;
(3) run the tracing build at the chosen size, skipping the initialisation and the first
``skip`` kernel records, then writing ``windows`` windows of ``window`` records, one every
``period`` records (sktrace.h). ``--ship`` compresses the windows into traces/ and rewrites
their catalog.toml entries (other entries kept); otherwise the .skt files go to --out.
The runs are deterministic (fixed seeds, fixed virtual layout): a rerun writes the same bytes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import lzma
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

SRC = Path(__file__).resolve().parent
PAPER = SRC / "paper"
TRACES = SRC.parent
ROOT = TRACES.parent
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(ROOT))

from make_traces import write_catalog  # noqa: E402

CFLAGS = ["-O3", "-g0", "-fno-pie", "-no-pie"]
LICENCE = "MIT (simkit project: our programs, our traces)"

# name: program, kernel symbol, args (small, paper), calibration args, description, window plan
# at paper size (skip, period in kernel records; the shipped windows are WINDOWS x WINDOW).
WORKLOADS = {
    "paper-bfs": dict(
        prog="graph", kernel="kernel_bfs",
        small=["bfs", "18", "12"], paper=["bfs", "26", "12"], calib=["bfs", "13", "12"],
        skip=100_000_000, period=100_000_000,
        description="GraphBIG-like BFS (top-down, queue) over an RMAT graph in CSR, 2^26 "
                    "vertices, ~805M edges (4.0 GiB mapped)"),
    "paper-pagerank": dict(
        prog="graph", kernel="kernel_pagerank",
        small=["pagerank", "18", "12", "1"], paper=["pagerank", "26", "12", "1"],
        calib=["pagerank", "13", "12", "1"], skip=100_000_000, period=100_000_000,
        description="GraphBIG-like push PageRank iteration over the same RMAT graph (2^26 "
                    "vertices, ~805M edges, 4.0 GiB mapped)"),
    "paper-xsbench": dict(
        prog="xsbench", kernel="kernel",
        small=["68", "1000", "20000"], paper=["355", "8000", "1000000"],
        calib=["34", "200", "2000"], skip=10_000_000, period=10_000_000,
        description="XSBench-like cross-section lookups (unionized grid, 355 nuclides x 8000 "
                    "points, 3.95 GiB mapped)"),
    "paper-gups": dict(
        prog="gups", kernel="kernel",
        small=["24"], paper=["29"], calib=["16"], skip=50_000_000, period=50_000_000,
        description="GUPS (HPCC RandomAccess) read-modify-write updates over a 4 GiB table "
                    "(2^29 words)"),
    "paper-dlrm": dict(
        prog="dlrm", kernel="kernel",
        small=["8", "65536", "64", "4096", "32"], paper=["8", "2097152", "64", "65536", "32"],
        calib=["8", "4096", "64", "256", "32"], skip=10_000_000, period=10_000_000,
        description="DLRM-like embedding-bag gathers: 8 tables x 2M rows x 64 floats (4 GiB), "
                    "32 power-law lookups per table per sample"),
    "paper-llm-decode": dict(
        prog="llm_decode", kernel="kernel",
        small=["4", "1024", "2752", "8", "8000", "512"],
        paper=["32", "4096", "11008", "32", "32000", "2048"],
        calib=["2", "256", "704", "4", "512", "64"], skip=20_000_000, period=80_000_000,
        description="One decode step of a Llama-2-7B-shaped model (bf16 weights 12.6 GiB, KV "
                    "cache of 2048 tokens 1 GiB, f32 activations) at line granularity"),
}
WINDOW, WINDOWS = 50_000, 4        # the shipped windows: 4 x 50,000 records per workload


def build(prog: str, build_dir: Path, trace: bool) -> Path:
    exe = build_dir / (prog + ("-trace" if trace else ""))
    if not exe.exists():
        cmd = ["gcc", *CFLAGS, *(["-DSIMKIT_TRACE"] if trace else []), "-o", str(exe),
               str(PAPER / f"{prog}.c"), "-lm"]
        subprocess.run(cmd, check=True)
    return exe


def run_trace(exe: Path, args: list[str], out: Path, *, skip=0, window=None, period=None,
              windows=1, ipr_milli=1000, name="") -> tuple[str, float, float]:
    """Run the tracing build; (stdout, wall seconds, CPU seconds of the child)."""
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "SKT_OUT": str(out), "SKT_SKIP": str(skip),
           "SKT_WINDOWS": str(windows), "SKT_IPR_MILLI": str(ipr_milli), "SKT_NAME": name}
    if window is not None:
        env["SKT_WINDOW"] = str(window)
        env["SKT_PERIOD"] = str(period or window)
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # run as ./NAME from the build directory: argv[0] goes into the trace's header, so a
    # rerun from another temporary directory writes the same bytes
    p = subprocess.run([f"./{exe.name}", *args], env=env, capture_output=True, text=True,
                       cwd=exe.parent)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode != 0:
        raise SystemExit(f"{exe.name} {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p.stdout.strip(), time.perf_counter() - t0, cpu


def calibrate(w: dict, build_dir: Path, work: Path) -> dict:
    """Instructions per record: callgrind's kernel instructions (plain build) / records the
    tracing build writes for the whole kernel, both on the calibration instance."""
    from simkit.trace.format import open_trace

    plain = build(w["prog"], build_dir, False)
    cg = work / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", f"--toggle-collect={w['kernel']}",
           f"--callgrind-out-file={cg}", str(plain), *w["calib"]]
    p = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                  "LC_ALL": "C"})
    if p.returncode != 0:
        raise SystemExit(f"callgrind failed: {p.stderr[-500:]}")
    m = re.search(r"^(?:summary|totals):\s*(\d+)", cg.read_text(), re.M)
    if not m:
        raise SystemExit(f"{cg}: no instruction total")
    ir = int(m.group(1))
    full = work / "calib.skt"
    run_trace(build(w["prog"], build_dir, True), w["calib"], full)
    records = open_trace(full).meta.records
    version = subprocess.run(["valgrind", "--version"], capture_output=True,
                             text=True).stdout.strip()
    return {"output": p.stdout.strip(), "kernel_instructions": ir, "kernel_records": records,
            "ipr_milli": round(1000 * ir / records), "valgrind": version,
            "command": " ".join(["valgrind", "--tool=callgrind",
                                 f"--toggle-collect={w['kernel']}", f"./{w['prog']}",
                                 *w["calib"]])}


def make(name: str, size: str, out_dir: Path, build_dir: Path, work: Path, *, window: int,
         windows: int, ship: bool) -> dict:
    from simkit.trace.format import open_trace

    w = WORKLOADS[name]
    cal = calibrate(w, build_dir, work)
    args = w[size]
    raw = (work if ship else out_dir) / f"{name}.skt"
    skip, period = (w["skip"], w["period"]) if size == "paper" else (w["skip"] // 100,
                                                                     w["period"] // 100)
    exe = build(w["prog"], build_dir, True)
    stdout, secs, cpu = run_trace(exe, args, raw, skip=skip, window=window,
                             period=max(period, window), windows=windows,
                             ipr_milli=cal["ipr_milli"], name=name)
    dst = raw
    if ship:
        from simkit.atomic import write_via

        dst = out_dir / f"{name}.skt.xz"
        data = raw.read_bytes()
        write_via(dst, lambda tmp: Path(tmp).write_bytes(lzma.compress(data, preset=9)))
    meta = open_trace(dst).meta
    fp = int(meta.extra["mapped_bytes"])
    print(f"{name}: {meta.records} records, {fp / 2**30:.2f} GiB footprint, traced run "
          f"{secs:.1f} s wall, {cpu:.1f} s CPU (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    return {
        "file": dst.name,
        "description": w["description"] if size == "paper" else f"{w['description']} "
                                                                  f"(small instance)",
        "source": f"traces/src/paper/{w['prog']}.c, traces/src/paper/sktrace.h",
        "build": " ".join(["gcc", *CFLAGS, "-DSIMKIT_TRACE", "-o", w["prog"] + "-trace",
                           f"{w['prog']}.c", "-lm"]),
        "gcc": gcc.splitlines()[0],
        "command": f"./{w['prog']}-trace {' '.join(args)}",
        "env": f"SKT_SKIP={skip} SKT_WINDOW={window} SKT_PERIOD={max(period, window)} "
               f"SKT_WINDOWS={windows} SKT_IPR_MILLI={cal['ipr_milli']}",
        "generator": "python traces/src/make_paper_traces.py --size " + size
                     + (" --ship" if ship else ""),
        "date": dt.date.today().isoformat(),
        "footprint_bytes": fp,          # bytes the program maps (sktrace.h layout)
        "granularity": "64-byte lines (addr aligned, size 64)",
        "windows": int(meta.extra.get("windows_written", 0)),
        "window_records": window,
        "skipped_kernel_records": skip,
        "window_period_records": max(period, window),
        "instructions_per_record": cal["ipr_milli"] / 1000,
        "instructions_calibration": f"{cal['command']}: {cal['kernel_instructions']} "
                                    f"instructions in the kernel / {cal['kernel_records']} "
                                    f"records of the tracing build ({cal['valgrind']})",
        "dependent_records": int(meta.extra.get("dependent_records", 0)),
        "traced_run_seconds": round(secs, 1),
        "traced_run_cpu_seconds": round(cpu, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "records": meta.records,
        "instructions": meta.instructions,
        "ops": meta.ops,
        "bytes": dst.stat().st_size,
        "sha256": hashlib.sha256(dst.read_bytes()).hexdigest(),
        "output": stdout or "(none: the tracing build exits after its last window)",
        "calibration_output": cal["output"],
        "licence": LICENCE,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "paper"), default="small",
                        help="instance size: small (seconds) or paper (4-14 GiB footprints)")
    parser.add_argument("--only", action="append", choices=list(WORKLOADS),
                        help="one workload (repeatable); default all")
    parser.add_argument("--window", type=int, default=WINDOW, help="records per window")
    parser.add_argument("--windows", type=int, default=WINDOWS, help="windows")
    parser.add_argument("--ship", action="store_true",
                        help="write .skt.xz into traces/ and update traces/catalog.toml")
    parser.add_argument("--out", type=Path, help="output directory for .skt files")
    args = parser.parse_args(argv)
    if args.window < 1 or args.windows < 1:
        parser.error("--window and --windows must be >= 1")
    if not args.ship and args.out is None:
        parser.error("give --out DIR (or --ship)")
    for tool in ("gcc", "valgrind"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed and not installed")
    if not args.ship:
        from simkit.atomic import check_output_dir
        from simkit.errors import InputError

        try:
            check_output_dir(args.out, "--out")
        except InputError as exc:
            parser.error(str(exc))
    out = TRACES if args.ship else args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    entries = {}
    with tempfile.TemporaryDirectory(prefix="simkit-paper-") as tmp:
        tmp = Path(tmp)
        (tmp / "build").mkdir()
        for name in args.only or WORKLOADS:
            entries[name] = make(name, args.size, out, tmp / "build", tmp, window=args.window,
                                 windows=args.windows, ship=args.ship)
    if args.ship:
        path = TRACES / "catalog.toml"
        catalog = tomllib.loads(path.read_text())
        catalog.update(entries)
        write_catalog(catalog, path)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
