"""`simkit tlb run|presets`: address translation over a trace."""
from __future__ import annotations

from simkit.commands._output import add_out_argument, check_out_path, emit
from simkit.units import count_type, finite_type

SHOW = ["trace", "records", "l1d_tlb_miss_rate", "l2_tlb_miss_rate", "l2_tlb_mpki", "walks",
        "refs_per_walk", "mean_walk_cycles", "p99_walk_cycles", "translation_cycles_per_access",
        "pages_4k", "pages_2m", "mean_block_reach_bytes"]
CORE_SHOW = ["cycles", "ipc", "translation_stall_share", "ns_per_access"]


def register(sub) -> None:
    p = sub.add_parser("tlb", help="address translation (TLBs, page-walk caches, radix walks)")
    ts = p.add_subparsers(dest="cmd", metavar="CMD")
    ts.required = True
    r = ts.add_parser("run", help="translate a trace")
    r.add_argument("--trace", required=True, help="trace file (.skt[.xz|.gz]) or catalog name")
    r.add_argument("--preset", default="victima-radix",
                   help="MMU preset (see `simkit tlb presets`), or host / host:CALIBRATION.json "
                        "for this machine (CPUID TLBs, sysfs caches; simkit bench cpu)")
    r.add_argument("--core", default=None, metavar="PRESET",
                   help="also time the run with an out-of-order core model (simkit.core: "
                        "victima, victima-2walkers, zen3): cycles, IPC, translation stall share")
    r.add_argument("--dependence", choices=("independent", "chain", "flag"), default=None,
                   help="with --core: how accesses depend on earlier loads (default: the "
                        "preset's, independent)")
    r.add_argument("--huge-fraction", type=finite_type(0.0, 1.0), default=None, metavar="F",
                   help="override the fraction of 2 MiB regions mapped by 2 MiB pages")
    r.add_argument("--placement", choices=("contiguous", "random"), default=None)
    r.add_argument("--nested", action="store_true",
                   help="virtualized: 2D walks through a guest and a host page table")
    r.add_argument("--warmup", type=count_type(0), default=0, metavar="N", help="records of warm-up")
    r.add_argument("--max-records", type=count_type(0), default=None, metavar="N")
    add_out_argument(r)
    r.set_defaults(func=handle_run)
    lp = ts.add_parser("presets", help="list MMU presets")
    lp.set_defaults(func=handle_presets)


def handle_run(args) -> int:
    from simkit.tlb import MMU, MMUConfig
    from simkit.trace.catalog import find_trace
    from simkit.trace.format import Trace

    check_out_path(args.out)
    if args.preset == "host" or args.preset.startswith("host:"):
        from simkit.calibrate.cpu import load_host
        cfg = load_host(args.preset)[0]
    else:
        cfg = MMUConfig.preset(args.preset)
    changes = {}
    if args.huge_fraction is not None:
        changes["huge_page_fraction"] = args.huge_fraction
    if args.placement is not None:
        changes["placement"] = args.placement
    if args.nested:
        changes["nested"] = True
    if changes:
        cfg = cfg.replace(**changes)
    trace = Trace(find_trace(args.trace))
    core = None
    if args.core is not None:
        from simkit.core import CoreConfig
        core = CoreConfig.preset(args.core)
        if args.dependence is not None:
            core = core.replace(dependence=args.dependence)
    stats = MMU(cfg, core=core).run(trace, warmup_records=args.warmup,
                                    max_records=args.max_records)
    emit(stats.to_frame(), args, SHOW + (CORE_SHOW if core is not None else []))
    return 0


def handle_presets(args) -> int:
    from simkit.tlb import PRESETS

    for name, c in PRESETS.items():
        print(f"{name:18s} L1D {c.l1d.entries}/{c.l1d.ways}w  L2 {c.l2.entries}/{c.l2.ways}w "
              f"({c.l2.latency_cycles} c)  PWC {c.pwc_entries}  2M {c.huge_page_fraction:.0%}  "
              f"caches {'/'.join(f'{lv.name}:{lv.policy}' for lv in c.caches.levels)}"
              + ("  victima " + ("paper" if c.victima_l2_only else "artifact")
                 + (" +PTW-CP" if c.victima_ptw_cp else "") if c.victima else ""))
    return 0
