"""`simkit reproduce NAME|all [--quick]`: run registered experiments, write results/."""
from __future__ import annotations

import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="run experiments (tables + plots under results/)")
    p.add_argument("name", help="experiment name, or 'all'; 'list' lists them")
    p.add_argument("--quick", action="store_true", help="shipped data, a few minutes on 2 cores")
    p.add_argument("--outdir", type=Path, default=Path("results"))
    p.set_defaults(func=handle)


def handle(args) -> int:
    import pandas as pd

    from simkit import experiments
    from simkit.errors import InputError

    if args.name == "list":
        for name, fn in experiments.REGISTRY.items():
            print(f"{name:20s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    names = list(experiments.REGISTRY) if args.name == "all" else [args.name]
    for name in names:
        if name not in experiments.REGISTRY:
            raise InputError(f"experiment {name!r} is unknown; choose from "
                             f"{', '.join(experiments.REGISTRY)} or all")
    for name in names:
        t = time.perf_counter()
        df, paths = experiments.run(name, quick=args.quick, outdir=args.outdir)
        print(f"{name}: {len(df)} rows in {time.perf_counter() - t:.1f} s -> "
              + ", ".join(str(p) for p in paths))
        for path in paths:                      # an experiment's summary table, if any
            if not path.name.endswith("-summary.csv"):
                continue
            summary = pd.read_csv(path)
            cols = [c for c in ("environment", "check", "paper_value", "ours_value", "ratio",
                                "holds") if c in summary]
            print(summary[cols].to_string(index=False, float_format="{:.3g}".format))
    return 0
