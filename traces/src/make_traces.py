"""Regenerate the shipped traces and traces/catalog.toml from scratch.

    python traces/src/make_traces.py [--only gups,bfs] [--max-records 3000000] [--out DIR]

For each program: compile it with gcc (flags below; the Makefile has the same), run it natively
once to record its checksum line, then capture it with simkit.trace.capture under valgrind lackey,
starting at the first execution of the function ``kernel`` (a sentinel: lackey has no start
switch, and the set-up before ``kernel`` is not part of the pattern) and stopping after
``--max-records`` records.

Stack addresses under valgrind depend on the environment and on the length of the executable's
path, so the environment is fixed (PATH, LC_ALL) and each program is built in and run from a
fresh directory /tmp/simkit-traces-XXXXXXXX (always the same length) as ``./name``: a rerun
reproduces the records exactly (the file differs only in its header's creation time).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from simkit.trace.capture import capture, symbol_address, valgrind_version
from simkit.trace.format import open_trace

SRC = Path(__file__).resolve().parent
TRACES = SRC.parent
CFLAGS = ["-O2", "-g0", "-fno-pie", "-no-pie"]
LDLIBS = ["-lm"]
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
BUILD_PREFIX = "simkit-traces-"     # build in /tmp/simkit-traces-XXXXXXXX: a fixed path length
MAX_RECORDS = 3_000_000
START = "kernel"
LICENCE = "MIT (simkit project: our programs, our captures)"

PROGRAMS = {
    "gups": "GUPS (HPCC RandomAccess): xor read-modify-write updates at LFSR-random indices of "
            "an 8 MiB table of 64-bit words",
    "bfs": "Breadth-first search over a seeded random directed graph in CSR form "
           "(2^17 vertices, out-degree 1..15, about 1M edges)",
    "matmul": "Blocked dense matrix multiply C += A*B, 256x256 doubles, 32x32 tiles "
              "(ii-kk-jj-i-k-j)",
    "embedding": "Embedding-table gather: bags of 32 Zipf-popular row lookups (256 floats per "
                 "row) from a 16 MiB table, summed per bag (recsys / LLM embedding pattern)",
}


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v))        # a JSON string is a valid TOML basic string


def write_catalog(entries: dict[str, dict], path: Path) -> None:
    lines = ["# Real traces shipped with simkit; regenerate with: python traces/src/make_traces.py",
             "# (the lackey captures), python traces/src/make_llm_traces.py (the LLM decode traces)",
             "# and python traces/src/make_paper_traces.py --size paper --ship (the paper-* windows).",
             "# Read with simkit.trace.catalog (list_traces, find_trace) or `simkit trace list`.",
             ""]
    for name, entry in entries.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


def build(name: str, build_dir: Path) -> tuple[Path, str]:
    exe = build_dir / name
    cmd = ["gcc", *CFLAGS, "-o", str(exe), str(SRC / f"{name}.c"), *LDLIBS]
    subprocess.run(cmd, check=True)
    shown = shlex.join(["gcc", *CFLAGS, "-o", name, f"{name}.c", *LDLIBS])
    return exe, shown


def make_trace(name: str, build_dir: Path, out_dir: Path, max_records: int) -> dict:
    exe, build_cmd = build(name, build_dir)
    native = subprocess.run([f"./{name}"], cwd=build_dir, env=ENV, capture_output=True,
                            text=True, check=True).stdout.strip()
    dst = out_dir / f"{name}.skt.xz"
    start = symbol_address(exe, START)
    capture([f"./{name}"], dst, start_at=start, max_records=max_records, env=ENV,
            cwd=build_dir)
    meta = open_trace(dst).meta
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    return {
        "file": dst.name,
        "description": PROGRAMS[name],
        "source": f"traces/src/{name}.c",
        "build": build_cmd,
        "gcc": gcc.splitlines()[0],
        "command": meta.command,
        "capture": f"simkit.trace.capture(['./{name}'], '{dst.name}', start_at='{START}', "
                   f"max_records={max_records}, include_ifetch=True, env=ENV, "
                   f"cwd='/tmp/{BUILD_PREFIX}XXXXXXXX')",
        "env": " ".join(f"{k}={v}" for k, v in ENV.items()),
        "valgrind": valgrind_version(),
        "date": dt.date.today().isoformat(),
        "start_address": f"{start:#x}",
        "skipped_instructions": int(meta.extra["skipped_instructions"]),
        "records": meta.records,
        "instructions": meta.instructions,
        "ops": meta.ops,
        "bytes": dst.stat().st_size,
        "sha256": hashlib.sha256(dst.read_bytes()).hexdigest(),
        "native_output": native,
        "licence": LICENCE,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated subset of " + ", ".join(PROGRAMS))
    parser.add_argument("--max-records", type=int, default=MAX_RECORDS)
    parser.add_argument("--out", type=Path, default=TRACES, help="output directory")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(PROGRAMS)
    unknown = [n for n in names if n not in PROGRAMS]
    if unknown:
        parser.error(f"unknown program(s): {', '.join(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    catalog_path = args.out / "catalog.toml"
    entries = {}
    if catalog_path.is_file():      # keep the entries not regenerated this time
        import tomllib
        entries = tomllib.loads(catalog_path.read_text())
    with tempfile.TemporaryDirectory(prefix=BUILD_PREFIX, dir="/tmp") as tmp:
        for name in names:
            print(f"{name}: capturing ...", file=sys.stderr, flush=True)
            entries[name] = make_trace(name, Path(tmp), args.out, args.max_records)
            e = entries[name]
            print(f"{name}: {e['records']} records, {e['instructions']} instructions, "
                  f"{e['bytes']} bytes", file=sys.stderr)
    entries = {**{n: entries[n] for n in PROGRAMS if n in entries},     # others (the LLM
               **{n: e for n, e in entries.items() if n not in PROGRAMS}}  # traces) kept after
    write_catalog(entries, catalog_path)
    print(f"wrote {catalog_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
