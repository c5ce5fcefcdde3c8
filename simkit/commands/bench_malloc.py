"""``simkit bench malloc``: real allocators on the same allocation trace, side by side.

    simkit bench malloc [--trace NAME|FILE ...] [--allocator NAME ...] [--runs N] [--quick]
                        [--max-events N] [--validate] [--security] [--out FILE]
                        [--runs-out FILE] [--validation-out FILE] [--security-out FILE]
"""
from __future__ import annotations

from pathlib import Path

from simkit.commands._output import add_out_argument, check_out_path, emit, print_frame, write_frame
from simkit.errors import InputError
from simkit.units import count_type
from simkit.atomic import write_via

QUICK_TRACES = ("cc1", "python-json")
TABLE = ("trace", "allocator", "ns_per_op", "delta_hwm_kib", "hwm_kib", "time_ratio_to_glibc",
         "delta_hwm_ratio_to_glibc", "skipped")


def register(what) -> None:
    p = what.add_parser(
        "malloc", help="replay an allocation trace through glibc, jemalloc, mimalloc, "
                       "tcmalloc and Scudo",
        description="Replay the same allocation trace against each installed allocator "
                    "(LD_PRELOAD) with a C replayer compiled at run time that touches every "
                    "page; elapsed time and peak RSS over several runs, medians and ratios to "
                    "glibc. --validate compares the allocator models' predicted peak "
                    "footprint; --security runs the probe suite on models and real "
                    "allocators.")
    p.add_argument("--trace", action="append", metavar="NAME|FILE",
                   help="allocation trace (catalog name or .skat file); repeatable "
                        "(default: every shipped trace; --quick: cc1 and python-json)")
    p.add_argument("--allocator", action="append", metavar="NAME",
                   help="glibc, jemalloc, mimalloc, tcmalloc, scudo (the default set), "
                        "hardened_malloc, hardened_malloc-light (built by `make tools`), "
                        "efence; repeatable")
    p.add_argument("--runs", type=count_type(1), default=None, help="runs per allocator (default 5; "
                                                          "quick 3)")
    p.add_argument("--quick", action="store_true", help="two small traces, 3 runs")
    p.add_argument("--max-events", type=count_type(0), help="replay only the first N events")
    p.add_argument("--validate", action="store_true",
                   help="model peak footprint vs measured peak RSS, per trace")
    p.add_argument("--security", action="store_true", help="the allocator x property table")
    add_out_argument(p)
    p.add_argument("--runs-out", type=Path, metavar="FILE", help="every run (.csv/.json)")
    p.add_argument("--validation-out", type=Path, metavar="FILE")
    p.add_argument("--security-out", type=Path, metavar="FILE")
    p.add_argument("--calibration", type=Path, metavar="FILE.json",
                   help="measure the cost model's per-operation costs on this machine "
                        "(microbenchmark), validate the model leave-one-trace-out against the "
                        "measured allocators (name glibc, mimalloc, hardened_malloc[-light]) "
                        "and write the costs as JSON; use with simkit alloc run --cost")
    p.set_defaults(func=run_malloc, _outputs=("calibration",))


def load_traces(names, max_events=None) -> dict:
    from simkit.trace.alloc import open_alloc_trace
    from simkit.trace.alloc_catalog import find_alloc_trace

    out = {}
    for n in names:
        path = find_alloc_trace(n)
        recs = open_alloc_trace(path).read()
        if max_events is not None:
            recs = recs[:max_events]
        out[path.name.split(".")[0] if "/" in str(n) or str(n).endswith("skat") else n] = recs
    return out


def run_malloc(args) -> int:
    check_out_path(args.calibration, "--calibration", (".json",))
    for path, opt in ((args.out, "--out"), (args.runs_out, "--runs-out"),
                      (args.validation_out, "--validation-out"),
                      (args.security_out, "--security-out")):
        check_out_path(path, opt)
    runs = args.runs if args.runs is not None else (3 if args.quick else 5)
    if runs < 1:
        raise InputError(f"--runs: must be >= 1, got {runs}")
    if args.max_events is not None and args.max_events < 1:
        raise InputError(f"--max-events: must be >= 1, got {args.max_events}")
    from simkit.bench import malloc as bm
    from simkit.calibrate import malloc as cm
    from simkit.trace.alloc_catalog import list_alloc_traces

    names = args.trace or (list(QUICK_TRACES) if args.quick else list(list_alloc_traces().name))
    traces = load_traces(names, args.max_events)
    have = bm.available()
    for a in args.allocator or bm.ALLOCATORS:
        if a in bm.LIBRARIES and a not in have:
            print(f"skipping {a}: {bm.missing_reason(a)}")
    runs_df, med = bm.bench_malloc(traces, args.allocator, runs=runs)
    print(f"medians of {runs} runs (ns per event; peak RSS growth KiB; ratios to glibc):")
    emit(med, args, columns=TABLE)
    if args.runs_out is not None:
        write_frame(runs_df, args.runs_out)
        print(f"wrote {args.runs_out}")
    if args.validate:
        v = cm.validate_models(traces, med)
        print("\nmodel peak footprint vs measured peak RSS growth:")
        print_frame(v.assign(error_pct=100 * v.error),
                    ("trace", "model", "real", "model_peak_footprint_bytes",
                     "measured_delta_hwm_bytes", "error_pct", "within_tolerance"))
        if args.validation_out is not None:
            write_frame(v, args.validation_out)
            print(f"wrote {args.validation_out}")
    if args.calibration is not None:
        import json
        import os

        from simkit.calibrate import malloc_cost as mcost

        costs = mcost.measure_costs()
        cal = {"cost_ns": dict(costs["cost_ns"]), **{k: v for k, v in costs.items()
                                                     if k != "cost_ns"}}
        try:
            r = mcost.evaluate(costs, med, mcost.model_operations(traces))
        except InputError as exc:
            print(f"\ncost model not validated: {exc}")
        else:
            cal["cost_ns"]["call"] = float(r["loo"].call_ns.mean())
            cal["validation"] = r["loo"].to_dict("records")
            print("\ncost model, leave one trace out (CPU ns):")
            print_frame(r["loo"], ("trace", "model", "real", "measured_ns", "predicted_ns",
                                   "error", "call_ns"))
            print(r["verdict"])
        print("per-operation costs measured (CPU ns): "
              + ", ".join(f"{k} {v:.3g}" for k, v in cal["cost_ns"].items()))
        text = json.dumps(cal, indent=1, default=str)
        write_via(args.calibration, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.calibration}")
    if args.security:
        from simkit.experiments.allocators import security_table
        t = security_table()
        print("\nsecurity probes (models, then real allocators vs their measured/documented "
              "properties; n/m: not modelled, see docs/allocators.md):")
        print_frame(t)
        if args.security_out is not None:
            write_frame(t, args.security_out)
            print(f"wrote {args.security_out}")
    return 0
