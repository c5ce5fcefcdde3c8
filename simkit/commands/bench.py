"""``simkit bench cpu``: pointer-chase load latency of this machine's caches and TLBs.

    simkit bench cpu [--quick] [--sweep cache|tlb|all] [--pages 4k|thp|both]
                     [--runs N] [--run-ms MS] [--seed N] [--cpu N]
                     [--out FILE] [--calibration FILE.json] [--plot FILE.png]

``simkit bench gpu``: GPU microbenchmarks (``simkit.commands.bench_gpu``).
``simkit bench storage``: random-read throughput (``simkit.commands.bench_storage``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from simkit.commands._output import add_out_argument, check_out_path, emit, print_frame
from simkit.errors import InputError
from simkit.units import count_type, finite_type

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
TABLE = ("sweep", "page_kind", "working_set", "pages", "ns_per_load_min", "ns_per_load_median",
         "cycles_per_load", "thp_backed")
KNEE_TABLE = ("sweep", "page_kind", "position", "ns_before", "ns_after", "step_ns",
              "step_cycles", "near_cache_level")


def register(sub) -> None:
    bench = sub.add_parser("bench", help="microbenchmarks on this machine",
                           description="Microbenchmarks on the real machine.")
    what = bench.add_subparsers(dest="bench", metavar="BENCH")
    what.required = True
    p = what.add_parser(
        "cpu", help="cache and TLB load latency by pointer chase",
        description="Load latency vs working set (cache ladder) and vs pages touched (TLB "
                    "reach), by a random pointer chase over a single Sattolo cycle, with 4 KiB "
                    "pages and with transparent huge pages. Prints a table, the knees and a "
                    "summary; --calibration writes the calibration JSON, --plot a figure.")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds: 7 runs of ~3 ms, coarse ladder up to 64 MiB")
    p.add_argument("--sweep", choices=("cache", "tlb", "all"), default="all",
                   help="which sweep to run (default: all)")
    p.add_argument("--pages", choices=("4k", "thp", "both"), default="both",
                   help="buffer page kind: 4k (MADV_NOHUGEPAGE), thp (MADV_HUGEPAGE), or both")
    p.add_argument("--runs", type=count_type(1), help="timed runs per point (default 21; quick 7)")
    p.add_argument("--run-ms", type=finite_type(0.001, 60000), help="length of one run in ms (default 30; quick 3)")
    p.add_argument("--seed", type=count_type(0), default=0, help="seed of the Sattolo cycles (default 0)")
    p.add_argument("--cpu", type=count_type(0), help="CPU to pin to (default: the highest allowed)")
    add_out_argument(p)
    p.add_argument("--calibration", metavar="FILE.json", type=Path,
                   help="write the calibration (machine, method, ladder, knees) as JSON")
    p.add_argument("--plot", metavar="FILE.png", type=Path,
                   help="save a figure of the latency curves with the knees marked "
                        "(.png, .svg or .pdf)")
    p.set_defaults(func=run_cpu, _outputs=("calibration",))
    from simkit.commands import bench_gpu
    bench_gpu.register(what)
    from simkit.commands import bench_malloc
    bench_malloc.register(what)
    from simkit.commands import bench_storage
    bench_storage.register(what)


def run_cpu(args: argparse.Namespace) -> int:
    check_out_path(args.out)
    check_out_path(args.calibration, "--calibration", (".json",))
    check_out_path(args.plot, "--plot", PLOT_SUFFIXES)
    if args.runs is not None and args.runs < 1:
        raise InputError(f"--runs: must be >= 1, got {args.runs}")
    if args.run_ms is not None and args.run_ms <= 0:
        raise InputError(f"--run-ms: must be > 0, got {args.run_ms}")

    from simkit.bench import cpu
    from simkit.units import format_bytes

    sweeps = cpu.SWEEPS if args.sweep == "all" else (args.sweep,)
    kinds = cpu.PAGE_KINDS if args.pages == "both" else (args.pages,)
    df = cpu.measure_cpu(args.quick, sweeps=sweeps, page_kinds=kinds, runs=args.runs,
                         run_ms=args.run_ms, seed=args.seed, cpu=args.cpu)
    shown = df.assign(working_set=df.working_set_bytes.map(format_bytes),
                      thp_backed=df.thp_backed_bytes.map(format_bytes))
    emit(shown, args, columns=TABLE)

    kn = cpu.knees(df)
    print()
    if len(kn):
        def position(k):
            if k.unit == "pages":
                return f"{int(k.before)} -> {int(k.after)} pages"
            return f"{format_bytes(k.before)} -> {format_bytes(k.after)}"
        print("knees (latency steps up between these points):")
        print_frame(kn.assign(position=kn.apply(position, axis=1)), KNEE_TABLE)
    else:
        print("knees: none found")

    s = cpu.summarize(df, kn)
    print()
    print(f"clock ≈ {s['clock_ghz']:.3f} GHz (dependent imul+xor chain, 4 cycles per step)")
    for level in (1, 2, 3):
        if s.get(f"l{level}_ns") is not None:
            lo, hi = s[f"l{level}_range_bytes"]
            print(f"L{level}: {s[f'l{level}_ns']:.2f} ns "
                  f"(median over {format_bytes(lo)}..{format_bytes(hi)}, 4 KiB pages)")
    for pk in kinds:
        if f"dram_ns_{pk}" in s:
            print(f"DRAM ({pk}): {s[f'dram_ns_{pk}']:.1f} ns at "
                  f"{format_bytes(s[f'dram_working_set_bytes_{pk}'])}")
    for pk in kinds:
        for level in (1, 2):
            if f"l{level}_dtlb_knee_pages_{pk}" in s:
                b, a = s[f"l{level}_dtlb_knee_pages_{pk}"]
                print(f"L{level} DTLB ({pk}): knee {b} -> {a} pages, "
                      f"+{s[f'l{level}_dtlb_step_ns_{pk}']:.2f} ns "
                      f"(CPUID says {s[f'l{level}_dtlb_cpuid_entries']} entries)")

    if args.calibration is not None:
        cpu.write_calibration(df, args.calibration)
        print(f"wrote {args.calibration}")
    if args.plot is not None:
        cpu.plot_cpu(df, args.plot, knees_df=kn)
        print(f"wrote {args.plot}")
    return 0
