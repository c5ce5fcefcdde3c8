"""`simkit sweep GRID.toml`: a grid of configurations x traces on dask.distributed."""
from __future__ import annotations

from pathlib import Path
from simkit.units import count_type


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of configurations x traces (dask.distributed)",
                       description="Expand GRID.toml into tasks and run them on a dask "
                                   "LocalCluster (or --scheduler ADDRESS); results go to a "
                                   "parquet dataset, one file per task; a re-run skips "
                                   "finished tasks; a failing task is recorded and the others "
                                   "go on. Grid format: see simkit.sweep.")
    p.add_argument("grid", type=Path, metavar="GRID.toml")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output directory (default: results/sweeps/<grid name>)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing dask scheduler (tcp://host:8786)")
    p.add_argument("--workers", type=count_type(0), default=2, metavar="N",
                   help="LocalCluster worker processes (0: run inline, no dask)")
    p.add_argument("--progress", action="store_true", default=None,
                   help="progress bar (default: on a terminal)")
    p.set_defaults(func=handle, _output_dirs=("out",))


def handle(args) -> int:
    from simkit.errors import InputError
    from simkit.sweep import Grid, load_results, run_sweep

    if args.workers < 0:
        raise InputError(f"--workers: must be >= 0, got {args.workers}")
    grid = Grid.from_toml(args.grid)
    out = args.out if args.out is not None else Path("results") / "sweeps" / grid.name
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    rep = run_sweep(grid, out, scheduler=args.scheduler, workers=args.workers,
                    progress=args.progress)
    rows = len(load_results(out))
    print(f"sweep {grid.name}: {rep.tasks} tasks, {rep.skipped} already done, {rep.done} run, "
          f"{rep.failed} failed in {rep.seconds:.1f} s ({rep.tasks_per_s:.2f} tasks/s); "
          f"{rows} result rows in {out / 'results'}")
    for tid, err in sorted(rep.errors.items()):
        print(f"  failed {tid}: {err} (details: {out / 'failed' / (tid + '.json')})")
    return 1 if rep.failed else 0
