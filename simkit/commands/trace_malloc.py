"""``simkit trace capture-malloc`` and ``simkit trace import-malloc``: allocation traces."""
from __future__ import annotations

import argparse
from pathlib import Path

from simkit.errors import InputError
from simkit.units import count_type

FORMATS = ("mtrace", "memray", "torch", "kv")


def register(tsub) -> None:
    q = tsub.add_parser("capture-malloc", help="record a program's heap allocations",
                        description="Run CMD with glibc mtrace (a shim compiled with gcc, "
                                    "preloaded after libc_malloc_debug.so.0) or memray "
                                    "(Python, PYTHONMALLOC=malloc) and write an allocation "
                                    "trace (.skat, .skat.xz, .skat.gz).")
    q.add_argument("-o", "--output", type=Path, required=True, dest="dst")
    q.add_argument("--tool", choices=("mtrace", "memray"), default="mtrace")
    q.add_argument("--process", default="largest",
                   help="mtrace: which process of the command to import: 'largest' (most "
                        "events) or a pid")
    q.add_argument("--strict", action="store_true",
                   help="a free of a block allocated before tracing began is an error (default: "
                        "counted and reported)")
    q.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    q.set_defaults(func=cmd_capture_malloc)

    q = tsub.add_parser("import-malloc", help="import an allocation log as an allocation trace",
                        description="Import glibc mtrace text, a memray capture, a PyTorch "
                                    "CUDA memory snapshot (trace entries) or a simkit kv "
                                    "alloc/free export. A malformed line is an error naming "
                                    "it; --lenient counts and reports such lines instead.")
    q.add_argument("src", type=Path)
    q.add_argument("dst", type=Path, help="output .skat/.skat.xz/.skat.gz")
    q.add_argument("--format", choices=FORMATS, help="default: from the content")
    q.add_argument("--lenient", action="store_true",
                   help="skip and count bad lines (free of an unknown block, negative size, "
                        "truncated line) instead of stopping at the first")
    q.add_argument("--device", type=count_type(0), default=0, help="torch snapshots: the device")
    q.set_defaults(func=cmd_import_malloc)


def _check_dst(dst: Path) -> None:
    from simkit.trace.alloc import SUFFIXES
    if not dst.name.lower().endswith(SUFFIXES):
        raise InputError(f"{dst}: output must end in {', '.join(SUFFIXES)}")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{dst}: directory {parent} does not exist")


def _report(dst: Path) -> None:
    from simkit.trace.alloc import open_alloc_trace

    t = open_alloc_trace(dst)
    ops = ", ".join(f"{k} {v}" for k, v in t.meta.ops.items() if v)
    print(f"wrote {dst}: {t.meta.records} events ({ops}), {t.objects} objects")
    skipped = t.meta.extra.get("skipped") or {}
    if skipped:
        print("skipped (not replayed): " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
    failed = {k: v for k, v in (t.meta.extra.get("failed") or {}).items() if v}
    if failed:
        print("failed allocations (returned NULL; not replayed): "
              + ", ".join(f"{k} {v}" for k, v in failed.items()))
    ignored = t.meta.extra.get("ignored") or {}
    if ignored:
        print("not allocations (counted only): "
              + ", ".join(f"{k} {v}" for k, v in ignored.items()))


def cmd_capture_malloc(args) -> int:
    from simkit.trace.malloc_capture import capture_malloc

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise InputError("capture-malloc: no command given "
                         "(simkit trace capture-malloc -o DST.skat.xz -- CMD ARGS)")
    _check_dst(args.dst)
    capture_malloc(cmd, args.dst, tool=args.tool, process=args.process,
                   lenient=not args.strict)
    _report(args.dst)
    return 0


def cmd_import_malloc(args) -> int:
    from simkit.trace.alloc import IMPORTERS, sniff_alloc_format

    _check_dst(args.dst)
    from simkit.atomic import check_input_kind
    check_input_kind(args.src)
    if args.src.resolve() == args.dst.resolve():
        raise InputError(f"{args.dst}: output is the input")
    fmt = args.format or sniff_alloc_format(args.src)
    kw = {"lenient": args.lenient}
    if fmt == "torch":
        kw["device"] = args.device
    IMPORTERS[fmt](args.src, args.dst, **kw)
    _report(args.dst)
    return 0


def alloc_summary(path: Path) -> dict:
    """Metadata, op counts, objects and peak live bytes of an allocation trace (streamed)."""
    import numpy as np

    from simkit.trace.alloc import NONE, AllocOp, open_alloc_trace

    t = open_alloc_trace(path)
    sizes = np.zeros(max(t.objects, 1), np.int64)
    live = peak = 0
    for c in t.chunks():
        for op, oid, old, size in zip(c["op"].tolist(), c["id"].tolist(), c["old_id"].tolist(),
                                      c["size"].tolist()):
            if op == AllocOp.FREE:
                live -= int(sizes[oid])
                sizes[oid] = 0
                continue
            if op == AllocOp.REALLOC and old != NONE:
                live -= int(sizes[old])
                sizes[old] = 0
            sizes[oid] = size
            live += size
            peak = max(peak, live)
    m = t.meta
    row = {"file": str(path), "producer": m.producer, "source": m.source, "events": m.records,
           "objects": t.objects, "peak_live_bytes": peak, "live_at_end_bytes": live}
    row.update(m.ops)
    row.update({"skipped": m.extra.get("skipped", {}), "created": m.created,
                "command": m.command})
    return row


def alloc_info(args) -> int:
    import pandas as pd

    from simkit.commands._output import print_frame, write_frame

    path = Path(args.file)
    from simkit.atomic import check_input_kind
    check_input_kind(path)
    row = alloc_summary(path)
    print_frame(pd.DataFrame({"field": list(row), "value": [str(v) for v in row.values()]}))
    if args.out is not None:
        write_frame(pd.DataFrame([{k: str(v) if isinstance(v, dict) else v
                                   for k, v in row.items()}]), args.out)
        print(f"wrote {args.out}")
    return 0
