"""`simkit cache run|sweep`: simulate a cache hierarchy over a trace."""
from __future__ import annotations

from simkit.commands._output import add_out_argument, check_out_path, emit
from simkit.errors import InputError
from simkit.units import count_type

SHOW = ["trace", "level", "accesses", "hits", "misses", "miss_rate", "mpki", "evictions",
        "writebacks", "param_size_bytes", "param_ways", "param_policy"]
CORE_SHOW = ["cycles", "ipc", "ns_per_access"]


def _config(args):
    from simkit.cache import CacheConfig, HierarchyConfig
    from simkit.units import parse_size

    if args.config:
        return HierarchyConfig.from_toml(args.config)
    if args.size:
        return HierarchyConfig(levels=(CacheConfig("L1", parse_size(args.size, "--size"),
                                                   args.ways, args.line, args.policy),))
    if args.preset == "host" or args.preset.startswith("host:"):
        from simkit.calibrate.cpu import load_host
        return load_host(args.preset)[1]
    return HierarchyConfig.preset(args.preset)


def register(sub) -> None:
    p = sub.add_parser("cache", help="cache hierarchy simulation")
    cs = p.add_subparsers(dest="cmd", metavar="CMD")
    cs.required = True

    r = cs.add_parser("run", help="simulate a hierarchy over a trace")
    _trace_args(r)
    g = r.add_mutually_exclusive_group()
    g.add_argument("--preset", default="reference-3level",
                   help="named hierarchy (default reference-3level; list: simkit cache presets), "
                        "or host / host:CALIBRATION.json for this machine (simkit bench cpu)")
    g.add_argument("--config", metavar="TOML", help="hierarchy from a TOML file")
    g.add_argument("--size", help="a single level of this size (e.g. 32KiB)")
    r.add_argument("--ways", type=count_type(1), default=8)
    r.add_argument("--line", type=count_type(1), default=64)
    r.add_argument("--policy", default="lru")
    r.add_argument("--core", default=None, metavar="PRESET",
                   help="also time the run with an out-of-order core model (simkit.core: "
                        "victima, victima-2walkers, zen3): cycles, IPC, ns per access, with "
                        "each level's latency_cycles (translation free; for its cost use "
                        "simkit tlb run --core)")
    r.add_argument("--dependence", choices=("independent", "chain", "flag"), default=None,
                   help="with --core: how accesses depend on earlier loads (default: the "
                        "preset's, independent)")
    add_out_argument(r)
    r.set_defaults(func=handle_run)

    s = cs.add_parser("sweep", help="miss rate of one level vs size and policy")
    _trace_args(s)
    s.add_argument("--sizes", default="4KiB,8KiB,16KiB,32KiB,64KiB,128KiB,256KiB,512KiB,1MiB")
    s.add_argument("--policies", default="lru,srrip")
    s.add_argument("--ways", type=count_type(1), default=8)
    add_out_argument(s)
    s.set_defaults(func=handle_sweep)

    lp = cs.add_parser("presets", help="list named hierarchies")
    lp.set_defaults(func=handle_presets)


def _trace_args(p) -> None:
    p.add_argument("--trace", required=True, help="trace file (.skt[.xz|.gz]) or catalog name")
    p.add_argument("--warmup", type=count_type(0), default=0, metavar="N", help="records of warm-up")
    p.add_argument("--max-records", type=count_type(0), default=None, metavar="N")


def _open(args):
    from simkit.trace.catalog import find_trace
    from simkit.trace.format import Trace

    return Trace(find_trace(args.trace))


def handle_run(args) -> int:
    from simkit.cache import Hierarchy

    check_out_path(args.out)
    cfg = _config(args)
    if args.dependence is not None and args.core is None:
        raise InputError("--dependence: needs --core PRESET (it sets how the core overlaps loads)")
    trace = _open(args)
    if args.core is not None:
        from simkit.core import CoreConfig
        from simkit.core.timed_caches import TimedHierarchy

        core = CoreConfig.preset(args.core)
        if args.dependence is not None:
            core = core.replace(dependence=args.dependence)
        sim = TimedHierarchy(cfg, core)
    else:
        sim = Hierarchy(cfg)
    stats = sim.run(trace, warmup_records=args.warmup, max_records=args.max_records)
    emit(stats.to_frame(), args, SHOW + (CORE_SHOW if args.core is not None else []))
    return 0


def handle_sweep(args) -> int:
    import pandas as pd

    from simkit.cache import Hierarchy, single
    from simkit.units import parse_size

    check_out_path(args.out)
    sizes = [parse_size(s.strip(), "--sizes") for s in args.sizes.split(",") if s.strip()]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not sizes:
        raise InputError(f"--sizes: no size in {args.sizes!r} (e.g. 32KiB,64KiB)")
    if not policies:
        raise InputError(f"--policies: no policy in {args.policies!r} (e.g. lru,srrip)")
    configs = [single(size, args.ways, policy=pol) for size in sizes for pol in policies]
    trace = _open(args)
    frames = [Hierarchy(c).run(trace, warmup_records=args.warmup,
                               max_records=args.max_records).to_frame() for c in configs]
    emit(pd.concat(frames, ignore_index=True), args, SHOW)
    return 0


def handle_presets(args) -> int:
    from simkit.cache import PRESETS

    for name, cfg in PRESETS.items():
        levels = ", ".join(f"{lv.name} {lv.size_bytes // 1024}KiB/{lv.ways}w/{lv.policy}"
                           for lv in cfg.levels)
        print(f"{name:18s} {cfg.inclusion:14s} {levels}")
    return 0
