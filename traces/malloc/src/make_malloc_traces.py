"""Regenerate the shipped allocation traces and traces/malloc/catalog.toml.

    python traces/malloc/src/make_malloc_traces.py        (from the repository root)

- cc1: glibc mtrace (simkit trace capture-malloc) of `gcc -O2 -g -c` of the simkit malloc
  replayer's C source; the compiler proper (cc1, the process with most events) is imported.
- python-json: memray (PYTHONMALLOC=malloc) of json_workload.py.
- llm-numpy-decode: memray (PYTHONMALLOC=malloc) of numpy_decoder.py, a SmolLM2-135M-shaped
  numpy decoder (4 layers, vocab 8,192, random weights) prefilling 32 and decoding 48 tokens.
- kv-paged-smollm2: `simkit kv run` (PagedAttention, 16-token blocks of SmolLM2-135M,
  the first 400 Azure conv requests, 256 MiB of KV) exporting its KV block alloc/free
  events, imported with simkit.trace.alloc.import_kv_alloc (one 360 KiB block per event).
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "traces" / "malloc"
SRC = OUT / "src"
sys.path.insert(0, str(ROOT))

from simkit.trace.alloc import AllocOp, import_kv_alloc, open_alloc_trace  # noqa: E402
from simkit.trace.format import TraceMeta  # noqa: E402
from simkit.trace.malloc_capture import capture_malloc  # noqa: E402

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
           LC_ALL="C")


def peak_live(path) -> tuple[int, int]:
    live = peak = 0
    sizes = {}
    for c in open_alloc_trace(path).chunks():
        for op, oid, old, size in zip(c["op"].tolist(), c["id"].tolist(), c["old_id"].tolist(),
                                      c["size"].tolist()):
            if op == AllocOp.FREE:
                live -= sizes.pop(oid, 0)
                continue
            if op == AllocOp.REALLOC and old != 0xFFFFFFFF:
                live -= sizes.pop(old, 0)
            sizes[oid] = size
            live += size
            peak = max(peak, live)
    return peak, live


def tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return ""


def main():
    import memray
    entries = {}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(ROOT / "simkit/bench/malloc/csrc/malloc_replay.c", Path(tmp) / "replay.c")
        jobs = {
            "cc1": dict(cmd=["gcc", "-O2", "-g", "-c", "replay.c", "-o", "replay.o"],
                        tool="mtrace", cwd=tmp, file="cc1.skat.xz",
                        description="gcc 12 cc1 compiling simkit's malloc replayer "
                                    "(C, -O2 -g): glibc mtrace of the compiler proper",
                        source="simkit/bench/malloc/csrc/malloc_replay.c"),
            "python-json": dict(cmd=[py, str(SRC / "json_workload.py")], tool="memray",
                                cwd=tmp, file="python-json.skat.xz",
                                description="CPython 3 JSON workload: 1,500 nested records "
                                            "dumped, parsed, transformed and re-dumped twice "
                                            "(memray, PYTHONMALLOC=malloc)",
                                source="traces/malloc/src/json_workload.py"),
            "llm-numpy-decode": dict(cmd=[py, str(SRC / "numpy_decoder.py")], tool="memray",
                                     cwd=tmp, file="llm-numpy-decode.skat.xz",
                                     description="LLM inference in numpy: SmolLM2-135M-shaped "
                                                 "decoder (4 of 30 layers, vocab 8,192, random "
                                                 "weights), 32-token prefill + 48 decode steps "
                                                 "with a concatenated KV cache (memray, "
                                                 "PYTHONMALLOC=malloc)",
                                     source="traces/malloc/src/numpy_decoder.py"),
        }
        for name, j in jobs.items():
            dst = OUT / j["file"]
            meta = TraceMeta(source=j["source"])
            capture_malloc(j["cmd"], dst, tool=j["tool"], env=ENV, cwd=j["cwd"], meta=meta)
            entries[name] = dict(file=j["file"], description=j["description"], source=j["source"],
                                 tool=j["tool"],
                                 command=" ".join(Path(c).name if c == py else c
                                                  for c in j["cmd"]),
                                 capture=f"simkit.trace.malloc_capture.capture_malloc(cmd, "
                                         f"'{j['file']}', tool='{j['tool']}')")
        kv_skt = Path(tmp) / "kv.skt"
        kv_cmd = [py, "-m", "simkit", "kv", "run", "--trace", "azure-conv", "--model",
                  "SmolLM2-135M", "--gpu", "A100-80GB", "--manager", "paged-16",
                  "--max-requests", "400", "--capacity", "256MiB", "--export-alloc-trace",
                  str(kv_skt), "--no-progress"]
        subprocess.run(kv_cmd, check=True, cwd=ROOT, env=ENV, capture_output=True)
        import_kv_alloc(kv_skt, OUT / "kv-paged-smollm2.skat.xz")
        entries["kv-paged-smollm2"] = dict(
            file="kv-paged-smollm2.skat.xz",
            description="KV-cache blocks as allocations: simkit's PagedAttention engine "
                        "serving the first 400 Azure conv requests with SmolLM2-135M "
                        "(16-token blocks of 360 KiB, 256 MiB of KV), one event per block",
            source="simkit.kvpaging.export.AllocExporter", tool="simkit kv run",
            command="simkit kv run --trace azure-conv --model SmolLM2-135M --gpu A100-80GB "
                    "--manager paged-16 --max-requests 400 --capacity 256MiB "
                    "--export-alloc-trace kv.skt",
            capture="simkit.trace.alloc.import_kv_alloc('kv.skt', "
                    "'kv-paged-smollm2.skat.xz')")
    common = dict(date=datetime.date.today().isoformat(),
                  glibc=platform.libc_ver()[1], gcc=tool_version(["gcc", "--version"]),
                  python=platform.python_version(), memray=memray.__version__,
                  numpy=np.__version__,
                  licence="MIT (simkit project: our programs, our captures)")
    lines = ["# Allocation traces shipped with simkit (simkit.trace.alloc format, .skat.xz);",
             "# regenerate with: python traces/malloc/src/make_malloc_traces.py",
             "# Read with simkit.trace.alloc_catalog (list_alloc_traces, find_alloc_trace).", ""]
    for name, e in entries.items():
        t = open_alloc_trace(OUT / e["file"])
        pk, end = peak_live(OUT / e["file"])
        e.update(events=t.meta.records, objects=t.objects, peak_live_bytes=pk,
                 live_at_end_bytes=end, ops=t.meta.ops,
                 skipped=t.meta.extra.get("skipped", {}),
                 bytes=(OUT / e["file"]).stat().st_size,
                 sha256=hashlib.sha256((OUT / e["file"]).read_bytes()).hexdigest(), **common)
        lines.append(f"[{name}]")
        for k, v in e.items():
            if isinstance(v, dict):
                v = "{ " + ", ".join(f'"{a}" = {b}' for a, b in v.items()) + " }" if v else "{}"
                lines.append(f"{k} = {v}")
            elif isinstance(v, int):
                lines.append(f"{k} = {v}")
            else:
                lines.append(f"{k} = {json_str(v)}")
        lines.append("")
        print(name, e["events"], e["objects"], pk, e["bytes"])
    (OUT / "catalog.toml").write_text("\n".join(lines))


def json_str(s: str) -> str:
    import json
    return json.dumps(s)


if __name__ == "__main__":
    main()
