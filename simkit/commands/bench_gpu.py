"""``simkit bench gpu``: GPU microbenchmarks, calibration files and validation plots.

    simkit bench gpu [--quick] [--only BENCH,...] [--outdir DIR] [--device N] [--model NAME]
                     [--seed N] [--require-gpu]
    simkit bench gpu --from-rows DIR [--only BENCH,...] [--outdir DIR] [--model NAME]

Without a CUDA device it prints ``simkit: bench gpu: skipped: <reason>`` and exits 0 (3 with
``--require-gpu``). Exit 1 when some benchmark failed (the others' results are still written),
2 on bad arguments. ``--from-rows DIR`` rebuilds the JSON files, plots, KV calibration, TLB
preset and validation plots from recorded ``gpu-<bench>.csv`` tables, on any machine.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from simkit.errors import InputError
from simkit.units import count_type

EXIT_NO_GPU = 3
EXIT_SOME_FAILED = 1


def register(what) -> None:
    from simkit.bench.gpu.rows import BENCHES

    p = what.add_parser(
        "gpu", help="GPU microbenchmarks (NVML, latency, TLB reach, bandwidth, attention, VMM)",
        description="GPU microbenchmarks: NVML description, pointer-chase latency ladder, "
                    "2 MiB-stride TLB reach, copy bandwidth, the model's GEMMs, contiguous vs "
                    "paged attention, CUDA VMM call latency, host<->device copies. Each gives a "
                    "table, a plot and a JSON document; --outdir also writes a measured KV "
                    "calibration (for simkit kv run --calibration), a GPU TLB preset and "
                    "validation plots. Skipped with one line where there is no CUDA device.")
    p.add_argument("--quick", action="store_true",
                   help="a few minutes on an H100: coarse sweeps, 20 repetitions")
    p.add_argument("--only", metavar="BENCH,...",
                   help=f"comma-separated subset of: {', '.join(BENCHES)} (default: all)")
    p.add_argument("--outdir", metavar="DIR", type=Path,
                   help="write tables, plots, JSON, the KV calibration and validation plots here")
    p.add_argument("--device", type=count_type(0), default=0, help="CUDA device index (default 0)")
    p.add_argument("--model", default="Llama-2-7B",
                   help="model shape for the GEMM and attention benchmarks (default Llama-2-7B)")
    p.add_argument("--seed", type=count_type(0), default=0, help="seed of the chase cycles and data")
    p.add_argument("--from-rows", metavar="DIR", type=Path,
                   help="no measuring: rebuild everything from recorded gpu-<bench>.csv tables")
    p.add_argument("--require-gpu", action="store_true",
                   help=f"exit {EXIT_NO_GPU} instead of 0 when there is no CUDA device")
    p.set_defaults(func=run_gpu)


def _benches(only: str | None) -> tuple[str, ...]:
    from simkit.bench.gpu.rows import BENCHES

    if not only:
        return BENCHES
    names = tuple(dict.fromkeys(s.strip() for s in only.split(",") if s.strip()))
    bad = [n for n in names if n not in BENCHES]
    if bad or not names:
        raise InputError(f"--only: unknown benchmark {', '.join(bad) or repr(only)}; choose "
                         f"from {', '.join(BENCHES)}")
    return names


def run_gpu(args: argparse.Namespace) -> int:
    from simkit.kvpaging.models import get_model

    benches = _benches(args.only)
    get_model(args.model)                                   # ValueError naming the model
    if args.device < 0:
        raise InputError(f"--device: must be >= 0, got {args.device}")
    if args.outdir is not None:
        parent = args.outdir.parent if str(args.outdir.parent) else Path(".")
        if not parent.is_dir():
            raise InputError(f"--outdir {args.outdir}: directory {parent} does not exist")
        if args.outdir.exists() and not args.outdir.is_dir():
            raise InputError(f"--outdir {args.outdir}: not a directory")

    from simkit.bench.gpu import measure as gpu

    failures: dict = {}
    if args.from_rows is not None:
        desc, tables = gpu.read_results(args.from_rows)
        tables = {b: t for b, t in tables.items() if b in benches}
        outdir = args.outdir or args.from_rows
    else:
        reason = gpu.probe(args.device)
        if reason:
            print(f"simkit: bench gpu: skipped: {reason}")
            return EXIT_NO_GPU if args.require_gpu else 0
        desc, tables, failures = gpu.run(benches, quick=args.quick, device=args.device,
                                         model=args.model, seed=args.seed,
                                         progress=lambda line: print(line, flush=True))
        outdir = args.outdir
    _report(desc, tables, failures)
    if outdir is not None:
        _write(desc, tables, outdir, args.model)
    return EXIT_SOME_FAILED if failures else 0


def _report(desc: dict, tables: dict, failures: dict) -> None:
    from simkit.bench.gpu import rows as gpu_fit
    from simkit.commands._output import print_frame

    nv = (desc or {}).get("nvml") or {}
    if desc:
        print(f"device: {gpu_fit.device_name(desc)}, driver {gpu_fit.driver_version(desc)}, "
              f"SM clock {nv.get('sm_clock_mhz')}/{nv.get('sm_max_clock_mhz')} MHz, "
              f"MIG {nv.get('mig_mode_current')}, clock events "
              f"{nv.get('clock_event_reasons')}" + (f" ({desc['nvml_missing']})"
                                                    if desc.get("nvml_missing") else ""))
    for b, df in tables.items():
        print(f"\n{b}:")
        print_frame(df)
        s = gpu_fit.summarize(b, df)
        if b == "tlb":
            for lv in s["levels"]:
                print(f"{lv['level']} TLB: reach {gpu_fit._fmt_bytes(lv['reach_bytes'])} "
                      f"(~{lv['entries_at_2MiB']} entries of 2 MiB), then "
                      f"+{lv['step_cycles']:.0f} cycles")
            if not s["levels"]:
                print(f"no TLB step up to {gpu_fit._fmt_bytes(s['max_span_bytes'])}")
        elif b == "attention" and s.get("paged_decode_slowdown"):
            print(f"paged decode slowdown: {s['paged_decode_slowdown']['value']:.3f} "
                  f"({s['paged_decode_slowdown']['how']})")
    for b, line in failures.items():
        print(f"simkit: bench gpu {b}: {line}")


def _write(desc: dict, tables: dict, outdir: Path, model: str) -> None:
    from simkit.calibrate import gpu
    from simkit.experiments import gpu_validation as experiments_gpu

    for p in gpu.write_results(desc, tables, outdir, model=model):
        print(f"wrote {p}")
    cal = outdir / "kv-calibration-measured.json"
    for name, make in (
            ("tlb", lambda: experiments_gpu.tlb_validation(
                tables["tlb"], latency_df=tables.get("latency"),
                l2_cache_bytes=((desc or {}).get("torch") or {}).get("l2_cache_bytes"))
             if "tlb" in tables else None),
            ("kv", lambda: experiments_gpu.kv_validation(tables, cal, model)
             if cal.exists() else None)):
        try:
            res = make()
        except ValueError as exc:          # e.g. no TLB step: no preset to validate
            print(f"simkit: bench gpu: {name} validation skipped: {exc}")
            continue
        if res is None:
            continue
        df, fig = res
        csv, png = outdir / f"gpu-validation-{name}.csv", outdir / f"gpu-validation-{name}.png"
        df.to_csv(csv, index=False)
        fig.savefig(png, dpi=120, bbox_inches="tight")
        print(f"wrote {csv}\nwrote {png}")
