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
                   help="experiments run N at a time in worker processes (default: the CPUs "
                        "this process may use); what they measure on this machine is measured "
                        "first, alone, so nothing else perturbs the timings")
    p.set_defaults(func=handle)


def _worker_init() -> None:
    """A worker process ends on SIGTERM through SystemExit, so its temporaries are removed."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _run_one(name: str, quick: bool, outdir: Path, step: str, piped: bool, measured=None,
             where: str = "", keep_going: bool = False):
    """One experiment, here or in a worker process: (name, rows, paths, wall s, CPU s, error).
    Says when it starts (piped) and when it ends, one flushed line each, from where it runs.
    ``keep_going`` (several experiments): an exception ends this experiment only, as one line
    naming it, and ``error`` carries that line; otherwise it propagates (``error`` is None)."""
    from simkit import experiments

    if piped:
        print(f"{step} {name}: running ({'quick' if quick else 'full'}{where})", flush=True)
    t, c = time.perf_counter(), time.process_time()
    try:
        df, paths = experiments.run(name, quick=quick, outdir=outdir, measured=measured)
    except Exception as exc:                       # noqa: BLE001 (reported, run goes on)
        if not keep_going:
            raise
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        error = _describe(exc)
        print(f"{name}: FAILED after {wall:.1f} s: {error} (the other experiments go on)",
              flush=True)
        return name, 0, [], wall, cpu, error
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    paths = [Path(p) for p in paths]
    print(f"{name}: {len(df)} rows in {wall:.1f} s ({cpu:.1f} s CPU) -> "
          + ", ".join(str(p) for p in paths), flush=True)
    return name, len(df), paths, wall, cpu, None


def _describe(exc: BaseException) -> str:
    """One line for a failed step: the message of an input error, else the exception's class
    and message."""
    from simkit.errors import InputError

    text = " ".join(str(exc).split()) or "(no message)"
    return text if isinstance(exc, InputError) else f"{type(exc).__name__}: {text}"


def _run_chain(chain, quick, outdir, piped, measured, steps):
    import os

    return [_run_one(n, quick, outdir, steps[n], piped, measured.get(n),
                     f", worker pid {os.getpid()}", keep_going=True) for n in chain]


def _jobs(args) -> int:
    import os

    if args.jobs is not None:
        return args.jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# each kernel family's entry kernel (module, name): whether numba's on-disk cache holds it
FAMILY_KERNEL = {"mmu": ("simkit.tlb._kernels", "run_mmu"),
                 "cache": ("simkit.cache._kernels", "run_records")}


def family_cached(family: str) -> bool:
    """Whether numba's on-disk cache holds a compiled ``family`` entry kernel for the current
    source (``make setup`` compiles them: ``python -m simkit.warmup``). False when unsure."""
    import importlib

    mod, name = FAMILY_KERNEL.get(family, (None, None))
    if mod is None:
        return False
    try:
        cache = getattr(importlib.import_module(mod), name)._cache
        return bool(cache._cache_file._load_index())   # numba drops an index of older source
    except Exception:                                  # noqa: BLE001 (numba internals moved)
        return False


def plan(names, cached=None) -> list[list[str]]:
    """The worker tasks, costliest first (``COST``), so the long ones start at once and the
    short ones fill in. Experiments of a kernel family (``FAMILY``) whose kernels are not in
    numba's cache yet are chained in registration order in one task (the first pays the cold
    compile, the rest load the cache: never two compiles of one kernel at once); with the cache
    warm (``cached(family)``, default ``family_cached``), every experiment is a task of its own."""
    from simkit.experiments import COST, FAMILY

    cached = family_cached if cached is None else cached
    warm = {f: cached(f) for f in set(FAMILY.get(n) for n in names) if f is not None}
    chains: dict[str, list[str]] = {}
    tasks = []
    for n in names:
        if n in FAMILY and not warm[FAMILY[n]]:
            if FAMILY[n] not in chains:
                chains[FAMILY[n]] = []
                tasks.append(chains[FAMILY[n]])
            chains[FAMILY[n]].append(n)
        else:
            tasks.append([n])
    return sorted(tasks, key=lambda t: -sum(COST.get(n, 0.0) for n in t))


def _results(names, args, piped):
    """Yield each experiment's result as it finishes. One worker (``--jobs 1``, or one
    experiment): one after another, here. Several: first what the experiments measure on this
    machine (``MEASURE``), here, one at a time, nothing else running; then every experiment's
    simulation and plots in ``--jobs`` worker processes (``plan``)."""
    from simkit.experiments import MEASURE

    quick = not args.full
    mode = "quick" if quick else "full"
    jobs = _jobs(args)
    steps = {n: f"[{i}/{len(names)}]" for i, n in enumerate(names, 1)}
    keep_going = len(names) > 1
    if jobs <= 1 or len(names) <= 1:
        for name in names:
            yield _run_one(name, quick, args.outdir, steps[name], piped, keep_going=keep_going)
        return
    measured, failed = {}, []
    for name in names:
        if name in MEASURE:
            if piped:
                print(f"{steps[name]} {name}: measuring this machine ({mode}, alone)",
                      flush=True)
            t, c = time.perf_counter(), time.process_time()
            try:
                measured[name] = MEASURE[name](quick)
            except Exception as exc:               # noqa: BLE001 (reported, run goes on)
                error = _describe(exc)
                print(f"{name}: FAILED while measuring: {error} (the other experiments go on)",
                      flush=True)
                failed.append((name, 0, [], time.perf_counter() - t,
                               time.process_time() - c, error))
                continue
            print(f"{name}: measured in {time.perf_counter() - t:.1f} s "
                  f"({time.process_time() - c:.1f} s CPU)", flush=True)
    yield from failed
    names = [n for n in names if n not in {f[0] for f in failed}]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    tasks = plan(names)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx,
                               initializer=_worker_init)
    try:
        futures = [pool.submit(_run_chain, chain, quick, args.outdir, piped,
                               {n: measured[n] for n in chain if n in measured}, steps)
                   for chain in tasks]
        for fut in as_completed(futures):
            yield from fut.result()
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _now_and_load():
    import datetime as dt
    import os

    return (dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            round(os.getloadavg()[0], 2))


def _write_run(args, names, started, steps, wall) -> Path:
    """``summary-run.json`` beside ``summary.csv``: which run made it (mode, dates, load,
    machine, simkit version, each step's time), for ``python -m simkit.experiments.readme``."""
    import json

    import simkit
    from simkit.bench.cpu.machine import describe_machine

    m = describe_machine()
    end = _now_and_load()
    run = {"mode": "full" if args.full else "quick", "jobs": _jobs(args),
           "date_utc_start": started[0], "date_utc_end": end[0],
           "loadavg_start": started[1], "loadavg_end": end[1], "wall_s": round(wall, 1),
           "simkit_version": simkit.__version__, "cpu_model": m.get("cpu_model"),
           "usable_cpus": m.get("usable_cpus"), "hypervisor": m.get("hypervisor"),
           "memory_bytes": m.get("memory_bytes"), "experiments": list(names), "steps": steps}
    out = args.outdir / "summary-run.json"
    write_via(out, lambda tmp: Path(tmp).write_text(json.dumps(run, indent=1) + "\n"))
    return out


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
    done, steps = {}, {}
    started = _now_and_load()
    t0 = time.perf_counter()
    errors = {}
    for name, rows, paths, wall, cpu, error in _results(names, args, piped):
        done[name] = paths
        steps[name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rows": rows}
        if error is not None:
            errors[name] = steps[name]["error"] = error
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
        _write_run(args, names, started, steps, time.perf_counter() - t0)
        held = int(allsum.holds.sum()) if "holds" in allsum else 0
        print(f"\nsummary: {held} of {len(allsum)} checks against the papers hold -> {out}")
        brief = [c for c in ("experiment", "check", "paper_value", "ours_value", "ratio",
                             "holds") if c in allsum]
        print(allsum[brief].to_string(index=False, float_format="{:.3g}".format,
                                      max_colwidth=70))
    if errors:
        print(f"\nsimkit: {len(errors)} of {len(names)} experiments failed (their rows are "
              f"missing above):", file=sys.stderr)
        for name, error in errors.items():
            print(f"  {name}: {error}", file=sys.stderr)
        return 1
    return 0
