"""``simkit alloc``: allocator models on allocation traces.

    simkit alloc run TRACE [--allocator NAME ...] [--config FILE.toml] [--max-events N]
                           [--out FILE] [--timeline FILE.csv] [--plot FILE.png]
    simkit alloc security [--no-real] [--out FILE]
    simkit alloc presets
    simkit alloc traces [--out FILE]
"""
from __future__ import annotations

from pathlib import Path

from simkit.commands._output import add_out_argument, check_out_path, emit, write_frame
from simkit.errors import InputError
from simkit.units import count_type
from simkit.atomic import write_via

TABLE = ("allocator", "trace", "events", "peak_footprint_bytes", "peak_live_bytes",
         "fragmentation", "metadata_bytes", "cost_ns_per_op", "page_faults", "events_per_s")


def register(sub) -> None:
    p = sub.add_parser("alloc", help="heap allocator models on allocation traces",
                       description="Allocator models (ptmalloc, sjmalloc, hardened, "
                                   "hardened-light, mimalloc) replaying allocation traces.")
    a = p.add_subparsers(dest="alloc_command", metavar="COMMAND")
    a.required = True
    q = a.add_parser("run", help="replay a trace through allocator models")
    q.add_argument("trace", help="allocation trace: catalog name (simkit alloc traces) or "
                                 ".skat file")
    q.add_argument("--allocator", action="append", metavar="NAME",
                   help="model preset, repeatable (default: all)")
    q.add_argument("--config", type=Path, action="append", metavar="FILE.toml",
                   help="a model config from TOML (base = PRESET, fields to override)")
    q.add_argument("--max-events", type=count_type(0), metavar="N")
    q.add_argument("--cost", type=Path, metavar="FILE.json",
                   help="per-operation costs measured by simkit bench malloc --calibration")
    add_out_argument(q)
    q.add_argument("--timeline", type=Path, metavar="FILE.csv",
                   help="footprint and live bytes over the trace, every model")
    q.add_argument("--plot", type=Path, metavar="FILE.png", help="footprint over time")
    q.set_defaults(func=cmd_run)
    q = a.add_parser("security", help="the probe suite on every model and real allocator")
    q.add_argument("--no-real", action="store_true", help="models only")
    add_out_argument(q)
    q.set_defaults(func=cmd_security)
    q = a.add_parser("presets", help="model presets and their fields")
    q.set_defaults(func=cmd_presets)
    q = a.add_parser("traces", help="the shipped allocation traces (traces/malloc)")
    add_out_argument(q)
    q.set_defaults(func=cmd_traces)


def cmd_run(args) -> int:
    import time

    import pandas as pd

    from simkit.allocators import PRESETS, AllocatorModel, load_config
    from simkit.trace.alloc_catalog import find_alloc_trace

    check_out_path(args.out)
    check_out_path(args.timeline, "--timeline", (".csv",))
    check_out_path(args.plot, "--plot", (".png", ".svg", ".pdf"))
    if args.max_events is not None and args.max_events < 1:
        raise InputError(f"--max-events: must be >= 1, got {args.max_events}")
    configs = [load_config(c) for c in args.config or ()]
    for name in args.allocator or ([] if configs else list(PRESETS)):
        if name not in PRESETS:
            raise InputError(f"--allocator: unknown {name!r}; choose from {', '.join(PRESETS)}")
        configs.append(PRESETS[name])
    path = find_alloc_trace(args.trace)
    rows, tls = [], []
    for cfg in configs:
        t = time.perf_counter()
        s = AllocatorModel(cfg, cost=args.cost).run(path, max_events=args.max_events)
        dt = time.perf_counter() - t
        r = s.row()
        r["events_per_s"] = s.events / dt if dt > 0 else float("nan")
        rows.append(r)
        tls.append(s.timeline.assign(allocator=s.allocator))
    df = pd.DataFrame(rows)
    emit(df, args, columns=TABLE)
    if any(c.name == "sjmalloc" for c in configs):
        print("note: sjmalloc = the abstract's out-of-band metadata (no in-band headers); its "
              "size classes, slabs, bitmap and slot policy are our assumptions "
              "(`simkit alloc presets` lists which is which); cost_ns_per_op is operation "
              "counts x measured costs, checked out of sample by "
              "python -m simkit.calibrate.malloc_cost")
    tl = pd.concat(tls, ignore_index=True)
    if args.timeline is not None:
        write_frame(tl, args.timeline)
        print(f"wrote {args.timeline}")
    if args.plot is not None:
        from matplotlib.figure import Figure
        fig = Figure(figsize=(8, 4))
        ax = fig.subplots()
        for name, d in tl.groupby("allocator", sort=False):
            ax.plot(d.event, d.rss_bytes / 2**20, lw=1, label=f"{name} footprint")
        first = tl[tl.allocator == tl.allocator.iloc[0]]
        ax.plot(first.event, first.live_bytes / 2**20, "k:", lw=1, label="live bytes")
        ax.set_xlabel("event")
        ax.set_ylabel("MiB")
        ax.set_title(f"{path.name}: modelled footprint (RSS) over the trace")
        ax.legend(fontsize=8)
        write_via(args.plot, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"),
                  ".partial" + args.plot.suffix)
        print(f"wrote {args.plot}")
    return 0


def cmd_security(args) -> int:
    from simkit.experiments.allocators import security_table

    check_out_path(args.out)
    emit(security_table(real=not args.no_real), args)
    return 0


def cmd_presets(args) -> int:
    import dataclasses

    from simkit.allocators import PRESETS
    from simkit.allocators.config import PROVENANCE

    for name, cfg in PRESETS.items():
        fields = ", ".join(f"{f.name}={getattr(cfg, f.name)!r}" for f in dataclasses.fields(cfg)
                           if f.name not in ("name", "size_classes"))
        print(f"{name}: {fields}")
        for prop, src in PROVENANCE.get(name, {}).items():
            print(f"  [{src}] {prop}")
    return 0


def cmd_traces(args) -> int:
    from simkit.trace.alloc_catalog import list_alloc_traces

    check_out_path(args.out)
    emit(list_alloc_traces(), args)
    return 0
