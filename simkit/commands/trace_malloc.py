"""``simkit trace capture-malloc`` and ``simkit trace import-malloc``: allocation traces."""
from __future__ import annotations

import argparse
from pathlib import Path

from simkit.errors import InputError

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
    q.add_argument("--device", type=int, default=0, help="torch snapshots: the device")
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
    if not args.src.is_file():
        raise InputError(f"{args.src}: no such file")
    if args.src.resolve() == args.dst.resolve():
        raise InputError(f"{args.dst}: output is the input")
    fmt = args.format or sniff_alloc_format(args.src)
    kw = {"lenient": args.lenient}
    if fmt == "torch":
        kw["device"] = args.device
    IMPORTERS[fmt](args.src, args.dst, **kw)
    _report(args.dst)
    return 0
