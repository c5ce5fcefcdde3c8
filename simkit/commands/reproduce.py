"""`simkit reproduce NAME|all|list [--quick|--full]`: run registered experiments, write results/.

Quick is the default, as for ``python experiments/NAME.py``; ``--full`` runs the full sweeps.
When stdout is not a terminal, one line per step says which step starts (flushed at once), so a
piped or logged run shows where it is."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from simkit.atomic import write_via
from simkit.units import count_type


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="run experiments (tables + plots under results/)")
    p.add_argument("name", help="experiment name, or 'all'; 'list' lists them")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false",
                      help="the default: shipped data and short sweeps")
    mode.add_argument("--full", dest="full", action="store_true",
                      help="full traces and sweeps (tens of minutes)")
    p.set_defaults(full=False)
    p.add_argument("--outdir", type=Path, default=Path("results"))
    p.add_argument("--gallery", type=Path, default=None, metavar="DIR",
                   help="also copy every plot into DIR (the README gallery: docs/gallery)")
    p.add_argument("--jobs", type=count_type(1), default=None, metavar="N",
                   help="simulation experiments run N at a time in worker processes (default: "
                        "the CPUs this process may use); the ones that measure this machine "
                        "run first, alone, so nothing else perturbs their timings")
    p.set_defaults(func=handle)


# Experiments that time this machine: run one at a time, before the others start.
MEASURING = ("cpu-validation", "tlb-validation", "core-validation")


def _worker_init() -> None:
    """A worker process ends on SIGTERM through SystemExit, so its temporaries are removed."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _run_one(name: str, quick: bool, outdir: Path):
    """One experiment: (name, rows, paths, wall s, CPU s); in a worker process or here."""
    from simkit import experiments

    t, c = time.perf_counter(), time.process_time()
    df, paths = experiments.run(name, quick=quick, outdir=outdir)
    return name, len(df), [Path(p) for p in paths], time.perf_counter() - t, \
        time.process_time() - c


def _jobs(args) -> int:
    import os

    if args.jobs is not None:
        return args.jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _results(names, args, piped):
    """Yield each experiment's result as it finishes: the measuring ones here, one at a time,
    then the rest ``--jobs`` at a time in worker processes (in registration order of start)."""
    quick = not args.full
    serial = [n for n in names if n in MEASURING]
    rest = [n for n in names if n not in MEASURING]
    jobs = _jobs(args)
    if jobs <= 1 or len(rest) <= 1:
        serial, rest = names, []
    for i, name in enumerate(serial, 1):
        if piped:
            print(f"[{i}/{len(names)}] {name}: running ({'full' if args.full else 'quick'})",
                  flush=True)
        yield _run_one(name, quick, args.outdir)
    if not rest:
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(rest)), mp_context=ctx,
                               initializer=_worker_init)
    try:
        futures = {}
        for i, name in enumerate(rest, len(serial) + 1):
            if piped:
                print(f"[{i}/{len(names)}] {name}: started ({'full' if args.full else 'quick'},"
                      f" {min(jobs, len(rest))} at a time)", flush=True)
            futures[pool.submit(_run_one, name, quick, args.outdir)] = name
        for fut in as_completed(futures):
            yield fut.result()
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def handle(args) -> int:
    import pandas as pd

    from simkit import experiments
    from simkit.errors import InputError

    if args.name == "list":
        for name, fn in experiments.REGISTRY.items():
            doc = (fn.__doc__ or "").strip().splitlines()
            print(f"{name:20s} {doc[0] if doc else ''}")
        return 0
    names = list(experiments.REGISTRY) if args.name == "all" else [args.name]
    for name in names:
        if name not in experiments.REGISTRY:
            raise InputError(f"experiment {name!r} is unknown; choose from "
                             f"{', '.join(experiments.REGISTRY)} or all")
    if args.gallery is not None and args.gallery.exists() and not args.gallery.is_dir():
        raise InputError(f"--gallery {args.gallery}: exists and is not a directory")
    summaries = []
    piped = not sys.stdout.isatty()
    done = {}
    for name, rows, paths, wall, cpu in _results(names, args, piped):
        print(f"{name}: {rows} rows in {wall:.1f} s ({cpu:.1f} s CPU) -> "
              + ", ".join(str(p) for p in paths), flush=True)
        done[name] = paths
    for name in names:                          # summaries in registration order
        paths = done[name]
        for path in paths:                      # an experiment's summary table, if any
            if not path.name.endswith("-summary.csv"):
                continue
            summary = pd.read_csv(path)
            summaries.append(summary.assign(experiment=name))
            if len(names) == 1:                 # several: one combined table at the end
                cols = [c for c in ("environment", "check", "paper_value", "ours_value",
                                    "ratio", "holds") if c in summary]
                print(summary[cols].to_string(index=False, float_format="{:.3g}".format))
        if args.gallery is not None:
            import shutil

            args.gallery.mkdir(parents=True, exist_ok=True)
            for path in paths:
                if path.suffix == ".png":
                    write_via(args.gallery / path.name,
                              lambda tmp, src=path: shutil.copyfile(src, tmp))
    if len(names) > 1 and summaries:
        allsum = pd.concat(summaries, ignore_index=True)
        cols = ["experiment"] + [c for c in ("environment", "check", "paper", "paper_value",
                                             "ours", "ours_value", "ratio", "holds", "note")
                                 if c in allsum]
        out = args.outdir / "summary.csv"
        write_via(out, lambda tmp: allsum[cols].to_csv(tmp, index=False))
        held = int(allsum.holds.sum()) if "holds" in allsum else 0
        print(f"\nsummary: {held} of {len(allsum)} checks against the papers hold -> {out}")
        brief = [c for c in ("experiment", "check", "paper_value", "ours_value", "ratio",
                             "holds") if c in allsum]
        print(allsum[brief].to_string(index=False, float_format="{:.3g}".format,
                                      max_colwidth=70))
    return 0
