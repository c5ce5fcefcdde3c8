"""`simkit trace`: list, inspect, convert, generate and capture traces.

    simkit trace list [--out FILE]
    simkit trace info FILE|NAME [--out FILE]
    simkit trace convert SRC DST [--format lackey|din|champsim|skt] [--no-ifetch] [--skip N]
                                 [--max-records N]
    simkit trace gen KIND DST --n N --footprint SIZE [--seed S] [--stride B] [--alpha A] ...
    simkit trace capture [--skip N] [--max-records N] [--no-ifetch] [--start-at ADDR|FUNC]
                         -o DST -- CMD ARGS...
    simkit trace capture-malloc [--tool mtrace|memray] [--process largest|PID] [--strict]
                                -o DST.skat[.xz] -- CMD ARGS...
    simkit trace import-malloc SRC DST.skat[.xz] [--format mtrace|memray|torch|kv] [--lenient]
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import shlex
import tempfile
from pathlib import Path

import numpy as np

from simkit.commands._output import add_out_argument, check_out_path, emit, print_frame, write_frame
from simkit.errors import InputError
from simkit.resources import check_fits
from simkit.units import format_bytes, parse_size

FORMATS = ("lackey", "din", "champsim", "skt")
TRACE_SUFFIXES = (".skt", ".skt.xz", ".skt.gz")
DIN_SUFFIXES = (".din", ".din.gz", ".din.xz", ".din.bz2")
GEN_OPTIONS = {"seed": int, "stride": "size", "alpha": float, "align": "size",
               "store_fraction": float, "base": "addr"}


def register(sub) -> None:
    p = sub.add_parser("trace", help="list, inspect, convert, generate and capture traces",
                       description="Access traces: the shipped catalog, file information, "
                                   "format conversion, synthetic generation, valgrind capture.")
    tsub = p.add_subparsers(dest="trace_command", metavar="COMMAND")
    tsub.required = True

    q = tsub.add_parser("list", help="the traces shipped in traces/ (the catalog)")
    add_out_argument(q)
    q.set_defaults(func=cmd_list)

    q = tsub.add_parser("info", help="metadata, op counts, address range and footprint")
    q.add_argument("file", help="a trace file (.skt, .skt.xz, .skt.gz) or a catalog name")
    add_out_argument(q)
    q.set_defaults(func=cmd_info)

    q = tsub.add_parser("convert", help="import lackey/din/ChampSim traces, export din")
    q.add_argument("src", type=Path, help="input trace")
    q.add_argument("dst", type=Path, help="output: .skt/.skt.xz/.skt.gz, or .din[.gz|.xz|.bz2]")
    q.add_argument("--format", choices=FORMATS,
                   help="input format (default: from the name, else from the content)")
    _add_import_options(q)
    q.set_defaults(func=cmd_convert)

    from simkit.trace.synth import GENERATORS
    q = tsub.add_parser("gen", help="write a synthetic trace (simkit.trace.synth)")
    q.add_argument("kind", choices=GENERATORS)
    q.add_argument("dst", type=Path, help="output .skt/.skt.xz/.skt.gz")
    q.add_argument("--n", required=True, help="number of records (1M = 1048576)")
    q.add_argument("--footprint", required=True, help="bytes covered, e.g. 64MiB")
    q.add_argument("--seed", help="random seed (uniform, zipf, chase)")
    q.add_argument("--stride", help="bytes between accesses (sequential, strided)")
    q.add_argument("--alpha", help="Zipf exponent (zipf)")
    q.add_argument("--align", help="access alignment in bytes (uniform, zipf, chase)")
    q.add_argument("--store-fraction", help="share of stores, 0..1 (uniform)")
    q.add_argument("--base", help="first address, hex or decimal")
    q.set_defaults(func=cmd_gen)

    q = tsub.add_parser("capture", help="run a program under valgrind lackey and import it",
                        description="Run CMD under valgrind --tool=lackey --trace-mem=yes and "
                                    "write its accesses as a simkit trace.")
    q.add_argument("-o", "--output", type=Path, required=True, dest="dst",
                   help="output .skt/.skt.xz/.skt.gz")
    _add_import_options(q)
    q.add_argument("--start-at", metavar="ADDR|FUNC",
                   help="start at the first execution of this instruction address (0x...) or "
                        "function (non-PIE executables)")
    q.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    q.set_defaults(func=cmd_capture)

    from simkit.commands import trace_malloc
    trace_malloc.register(tsub)


def _add_import_options(q) -> None:
    q.add_argument("--no-ifetch", action="store_true",
                   help="no IFETCH records (instructions still counted in icount)")
    q.add_argument("--skip", default="0", metavar="N", help="drop the first N instructions")
    q.add_argument("--max-records", metavar="N", help="stop after N records")


def _count(value, flag: str) -> int | None:
    return None if value is None else parse_size(value, flag)


def _has_suffix(path: Path, suffixes) -> bool:
    return path.name.lower().endswith(suffixes)


def _check_dst(path: Path, suffixes=TRACE_SUFFIXES) -> None:
    if not _has_suffix(path, suffixes):
        raise InputError(f"{path}: output must end in {', '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: directory {parent} does not exist")


# ---- list / info -------------------------------------------------------------------------

def cmd_list(args) -> int:
    from simkit.trace.catalog import list_traces

    check_out_path(args.out)
    emit(list_traces(), args)
    return 0


def trace_summary(path: Path) -> dict:
    """Metadata, op counts, address range and footprint of a trace, streamed in chunks."""
    from simkit.trace.format import OP_NAMES, open_trace

    t = open_trace(path)
    ops = np.zeros(len(OP_NAMES), dtype=np.int64)
    lo, hi = None, None
    pages = np.empty(0, np.uint64)
    lines = np.empty(0, np.uint64)
    instructions = 0
    for chunk in t.chunks():
        if not len(chunk):
            continue
        addr = chunk["addr"]
        last = addr + np.maximum(chunk["size"], 1).astype(np.uint64) - np.uint64(1)
        ops += np.bincount(chunk["op"], minlength=len(OP_NAMES))[: len(OP_NAMES)]
        instructions += int(chunk["icount"].sum(dtype=np.uint64))
        lo = min(lo, int(addr.min())) if lo is not None else int(addr.min())
        hi = max(hi, int(last.max())) if hi is not None else int(last.max())
        ends = np.concatenate([addr, last])
        pages = np.union1d(pages, ends >> np.uint64(12))
        lines = np.union1d(lines, ends >> np.uint64(6))
    m = t.meta
    row = {"file": str(path), "producer": m.producer, "source": m.source,
           "records": m.records, "instructions": m.instructions,
           "record_instructions": instructions}
    row.update({name: int(ops[i]) for i, name in enumerate(OP_NAMES)})
    row.update({"addr_min": f"{lo:#x}" if lo is not None else "",
                "addr_max": f"{hi:#x}" if hi is not None else "",
                "pages_4k": len(pages), "lines_64b": len(lines),
                "footprint_4k_bytes": len(pages) * 4096, "footprint_64b_bytes": len(lines) * 64,
                "created": m.created, "command": m.command, "notes": m.notes})
    return row


def cmd_info(args) -> int:
    import pandas as pd

    from simkit.trace.catalog import find_trace

    check_out_path(args.out)
    if str(args.file).lower().endswith((".skat", ".skat.xz", ".skat.gz")):
        from simkit.commands.trace_malloc import alloc_info
        return alloc_info(args)
    row = trace_summary(find_trace(args.file))
    shown = dict(row)
    for key in ("footprint_4k_bytes", "footprint_64b_bytes"):
        shown[key] = f"{row[key]} ({format_bytes(row[key])})"
    print_frame(pd.DataFrame({"field": list(shown), "value": [str(v) for v in shown.values()]}))
    if args.out is not None:
        write_frame(pd.DataFrame([row]), args.out)
        print(f"wrote {args.out}")
    return 0


# ---- convert -----------------------------------------------------------------------------

_LACKEY_LINE = re.compile(rb"^(I  |\s[LSM]\s)[0-9a-fA-F]+,\d+|^(==|--|\*\*)\d+(==|--|\*\*)")
_DIN_LINE = re.compile(rb"^\s*[0-9a-fA-F]+\s+(0[xX])?[0-9a-fA-F]+(\s|$)")


def sniff_format(path: Path) -> str:
    """The input format of ``path``: from its name, else from its first bytes."""
    from simkit.trace._sources import open_input
    from simkit.trace.format import MAGIC

    name = path.name.lower()
    if name.endswith(TRACE_SUFFIXES):
        return "skt"
    if name.endswith(DIN_SUFFIXES):
        return "din"
    if "champsim" in name:
        return "champsim"
    if ".lackey" in name:
        return "lackey"
    with open_input(path) as reader:
        head = reader.read(4096)
    if head.startswith(MAGIC):
        return "skt"
    text = head.replace(b"\t", b" ").replace(b"\r", b"").replace(b"\n", b" ")
    if head and all(32 <= c < 127 for c in text):
        first = next((ln for ln in head.splitlines() if ln.strip()), b"")
        if _LACKEY_LINE.match(first):
            return "lackey"
        if _DIN_LINE.match(first):
            return "din"
        raise InputError(f"{path}: text, but neither lackey nor din; give --format")
    return "champsim"


def _import(fmt: str, src: Path, dst: Path, args, meta) -> Path:
    from simkit.trace.champsim import import_champsim
    from simkit.trace.din import import_din
    from simkit.trace.format import TraceWriter, open_trace
    from simkit.trace.lackey import import_lackey

    skip = _count(args.skip, "--skip")
    max_records = _count(args.max_records, "--max-records")
    include_ifetch = not args.no_ifetch
    if fmt == "lackey":
        return import_lackey(src, dst, include_ifetch=include_ifetch, skip_instructions=skip,
                             max_records=max_records, meta=meta)
    if fmt == "champsim":
        return import_champsim(src, dst, include_ifetch=include_ifetch, skip_instructions=skip,
                               max_records=max_records, meta=meta)
    if skip or args.no_ifetch:
        raise InputError(f"--skip and --no-ifetch apply to lackey and ChampSim input, not {fmt}")
    if fmt == "din":
        return import_din(src, dst, max_records=max_records, meta=meta)
    t = open_trace(src)              # skt -> skt: recompress, optionally cut
    with TraceWriter(dst, t.meta) as w:
        left = max_records
        for chunk in t.chunks():
            if left is not None:
                chunk = chunk[:left]
                left -= len(chunk)
            w.write(chunk)
            if left == 0:
                break
    return dst


def cmd_convert(args) -> int:
    from simkit.trace._sources import check_input_file
    from simkit.trace.din import export_din
    from simkit.trace.format import TraceMeta, open_trace

    src, dst = args.src, args.dst
    check_input_file(src)
    to_din = _has_suffix(dst, DIN_SUFFIXES)
    _check_dst(dst, DIN_SUFFIXES if to_din else TRACE_SUFFIXES + DIN_SUFFIXES)
    if src.resolve() == dst.resolve():
        raise InputError(f"{dst}: output is the input")
    fmt = args.format or sniff_format(src)
    meta = TraceMeta(source=str(src), command="simkit trace convert " + shlex.join(
        [str(src), str(dst)] + (["--format", fmt] if args.format else [])))
    if not to_din:
        _import(fmt, src, dst, args, meta)
        m = open_trace(dst).meta
        print(f"wrote {dst}: {m.records} records, {m.instructions} instructions")
        return 0
    if fmt == "skt" and args.max_records is None and not args.skip and not args.no_ifetch:
        export_din(src, dst)
    else:
        fd, tmp = tempfile.mkstemp(suffix=".skt", prefix=".convert-", dir=dst.parent)
        os.close(fd)
        try:
            export_din(_import(fmt, src, Path(tmp), args, meta), dst)
        finally:
            Path(tmp).unlink(missing_ok=True)
    print(f"wrote {dst}")
    return 0


# ---- gen ---------------------------------------------------------------------------------

def _gen_value(kind, text: str, flag: str):
    try:
        if kind == "size":
            return parse_size(text, flag)
        if kind == "addr":
            return int(text, 0)
        return kind(text)
    except ValueError:
        raise InputError(f"{flag}: bad value {text!r}") from None


def cmd_gen(args) -> int:
    from simkit.trace import synth
    from simkit.trace.format import TraceMeta, write_trace

    _check_dst(args.dst)
    fn = getattr(synth, args.kind)
    accepted = inspect.signature(fn).parameters
    kwargs = {}
    for opt, kind in GEN_OPTIONS.items():
        text = getattr(args, opt)
        if text is None:
            continue
        flag = "--" + opt.replace("_", "-")
        if opt not in accepted:
            takes = [f"--{o.replace('_', '-')}" for o in GEN_OPTIONS if o in accepted]
            raise InputError(f"{flag} does not apply to {args.kind} "
                             f"(it takes {', '.join(takes) or 'no options'})")
        kwargs[opt] = _gen_value(kind, text, flag)
    n = parse_size(args.n, "--n")
    footprint = parse_size(args.footprint, "--footprint")
    # the records are built in memory (with temporaries: about 3x), then written
    check_fits("--n", need_memory=3 * n * 16, need_disk=n * 16 + 4096, disk_at=args.dst)
    records = fn(n, footprint, **kwargs)
    params = {"n": n, "footprint_bytes": footprint, **kwargs}
    meta = TraceMeta(source=f"synth.{args.kind}", producer=f"synth.{args.kind}",
                     command="simkit trace gen " + shlex.join(
                         [args.kind, str(args.dst), "--n", args.n, "--footprint", args.footprint]
                         + [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in kwargs]),
                     extra={"params": params})
    write_trace(args.dst, records, meta)
    print(f"wrote {args.dst}: {len(records)} records")
    return 0


# ---- capture -----------------------------------------------------------------------------

def cmd_capture(args) -> int:
    from simkit.trace.capture import capture
    from simkit.trace.format import open_trace

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise InputError("capture: no command given (simkit trace capture -o DST -- CMD ARGS)")
    _check_dst(args.dst)
    capture(cmd, args.dst, skip_instructions=_count(args.skip, "--skip"),
            max_records=_count(args.max_records, "--max-records"),
            include_ifetch=not args.no_ifetch, start_at=args.start_at)
    m = open_trace(args.dst).meta
    print(f"wrote {args.dst}: {m.records} records, {m.instructions} instructions")
    return 0
