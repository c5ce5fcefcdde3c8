"""Sweeps: a grid of configurations x traces, expanded into tasks, run on dask.distributed
(a LocalCluster by default, or an existing cluster), with results appended task by task to a
parquet dataset so that a re-run skips what is done.

A grid is a TOML file::

    name = "l2-size"
    simulator = "cache"                      # cache | tlb | kv
    traces = ["gups", "bfs"]                 # catalog names or paths (kv: azure-conv, ...)
    max_records = 500000                     # cache/tlb: records per task (kv: max_requests)
    warmup_records = 50000                   # cache/tlb

    [base]                                   # the configuration every task starts from
    preset = "victima-baseline"

    [grid]                                   # the cartesian product of these lists
    "L2.size_bytes" = ["256KiB", "1MiB", "4MiB"]
    "L2.policy" = ["lru", "srrip", "drrip"]

Keys: ``cache`` -- ``preset`` (a HierarchyConfig preset), ``LEVEL.field`` for a level named
LEVEL (``L2.size_bytes``), or a HierarchyConfig field (``inclusion``); ``tlb`` -- ``preset``
(an MMUConfig preset), an MMUConfig field (``huge_page_fraction``, ``nested``), ``TLB.field``
for one of its TLBs (``l2.entries``, ``l2.ways``), or ``caches.LEVEL.field``; ``kv`` --
``model``, ``gpu``, ``manager``, ``capacity_bytes``, ``rate``, ``chunked_prefill``,
``preemption``, ``max_num_seqs``, ``seed``, ``max_context`` (the model's context, tokens),
``max_num_batched_tokens``, ``calibration`` (a calibration file, or ``"published"``),
``paged_kernel`` (a profile of ``simkit.kvpaging.kernels``), ``parallel_samples``,
``beam_width``, ``tensor_parallel``, ``replicas``, ``router``, and ``manager.FIELD`` for a field of the manager's config
(``manager.block_tokens``, ``manager.overlap``, ``manager.lookahead_tokens``, ...).

Layout of the output directory::

    sweep.json                  the grid and its task list (provenance)
    results/part-<task>.parquet one file per finished task: the simulator's tidy rows, plus
                                task_id, sweep, simulator, sweep_trace, task_seconds and one
                                grid_<key> column per grid key ("L2.size_bytes" ->
                                grid_l2_size_bytes, as text),
                                written atomically: a task is done when its file exists
    failed/<task>.json          the error of a task that raised (removed once it succeeds)

A task's id is a hash of (simulator, parameters, trace, run options), so a re-run of the same
grid skips the tasks whose file exists, and a task run twice (a worker killed after it wrote,
then the task rescheduled) still leaves exactly one file. ``load_results(outdir)`` reads the
dataset back as one DataFrame.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import time
import traceback
from pathlib import Path
from typing import Callable

from simkit.errors import InputError
from simkit.atomic import write_via

SIMULATORS = ("cache", "tlb", "kv")
RUN_KEYS = ("max_records", "warmup_records")


@dataclasses.dataclass(frozen=True)
class Task:
    sweep: str
    simulator: str
    trace: str
    params: tuple            # ((key, value), ...) sorted: base overridden by the grid point
    grid: tuple              # the grid point alone, for the grid_* columns
    max_records: int | None
    warmup_records: int

    @property
    def id(self) -> str:
        blob = json.dumps([self.simulator, self.trace, list(self.params), self.max_records,
                           self.warmup_records], sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Grid:
    name: str
    simulator: str
    traces: tuple
    base: dict
    grid: dict
    max_records: int | None = None
    warmup_records: int = 0

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "Grid":
        from simkit.tomlfile import read_toml

        return cls.from_dict(read_toml(path), str(path))

    @classmethod
    def from_dict(cls, d: dict, where: str = "grid") -> "Grid":
        known = {"name", "simulator", "traces", "base", "grid", *RUN_KEYS}
        for k in d:
            if k not in known:
                raise InputError(f"{where}: unknown key {k!r} (expected {', '.join(sorted(known))})")
        sim = d.get("simulator")
        if sim not in SIMULATORS:
            raise InputError(f"{where}: simulator: expected one of {', '.join(SIMULATORS)}, "
                             f"got {sim!r}")
        traces = d.get("traces")
        if isinstance(traces, str):
            traces = [traces]
        if not traces or not all(isinstance(t, str) for t in traces):
            raise InputError(f"{where}: traces: expected a non-empty list of trace names or paths")
        grid = d.get("grid", {})
        if not isinstance(grid, dict):
            raise InputError(f"{where}: grid: expected a table of lists")
        grid = {k: (v if isinstance(v, list) else [v]) for k, v in grid.items()}
        for k, v in grid.items():
            if not v:
                raise InputError(f"{where}: grid.{k}: empty list")
        base = d.get("base", {})
        if not isinstance(base, dict):
            raise InputError(f"{where}: base: expected a table")
        for k in RUN_KEYS:
            v = d.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InputError(f"{where}: {k}: expected a non-negative integer, got {v!r}")
        name = d.get("name", "sweep")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) \
                or name in (".", ".."):
            raise InputError(f"{where}: name: {str(name)[:60]!r} is not a plain name (letters, "
                             f"digits, '.', '_', '-'; it names the output folder)")
        return cls(name=name, simulator=sim, traces=tuple(traces),
                   base=dict(base), grid=grid, max_records=d.get("max_records"),
                   warmup_records=d.get("warmup_records", 0) or 0)

    def tasks(self) -> list[Task]:
        keys = sorted(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            point = dict(zip(keys, values))
            params = {**self.base, **point}
            for trace in self.traces:
                out.append(Task(self.name, self.simulator, trace,
                                tuple(sorted(params.items())), tuple(sorted(point.items())),
                                self.max_records, self.warmup_records))
        return out

    def check(self) -> None:
        """Build every task's configuration (no simulation): a bad key or value fails here,
        before any work, naming the grid point."""
        for t in self.tasks():
            if t.trace != self.traces[0]:
                continue
            try:
                _CONFIG[t.simulator](dict(t.params))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"grid point {dict(t.grid)}: {exc}") from None


# ---- configurations -------------------------------------------------------------------------
def _replace_level(levels, name, field, value):
    names = [lv.name for lv in levels]
    if name not in names:
        raise ValueError(f"no cache level {name!r} (levels: {', '.join(names)})")
    i = names.index(name)
    levels = list(levels)
    levels[i] = dataclasses.replace(levels[i], **{field: value})
    return tuple(levels)


def _hierarchy(params: dict, preset_default: str):
    from simkit.cache.config import HierarchyConfig

    params = dict(params)
    cfg = HierarchyConfig.preset(params.pop("preset", preset_default))
    for key, value in params.items():
        if "." in key:
            name, field = key.split(".", 1)
            cfg = dataclasses.replace(cfg, levels=_replace_level(cfg.levels, name, field, value))
        else:
            cfg = dataclasses.replace(cfg, **{key: value})
    return cfg


def _cache_config(params: dict):
    return _hierarchy(params, "reference-3level")


def _tlb_config(params: dict):
    from simkit.tlb.config import MMUConfig

    params = dict(params)
    cfg = MMUConfig.preset(params.pop("preset", "victima-radix"))
    cache_keys = {k[len("caches."):]: v for k, v in params.items() if k.startswith("caches.")}
    if cache_keys:
        caches = cfg.caches
        for key, value in cache_keys.items():
            name, field = key.split(".", 1)
            caches = dataclasses.replace(caches, levels=_replace_level(caches.levels, name,
                                                                       field, value))
        cfg = cfg.replace(caches=caches)
    for key, value in params.items():
        if key.startswith("caches."):
            continue
        if "." in key:
            part, field = key.split(".", 1)
            tlb = getattr(cfg, part)
            if tlb is None or not dataclasses.is_dataclass(tlb):
                raise ValueError(f"{key}: {part} is not a TLB of this configuration")
            cfg = cfg.replace(**{part: dataclasses.replace(tlb, **{field: value})})
        else:
            cfg = cfg.replace(**{key: value})
    return cfg


KV_KEYS = ("model", "gpu", "manager", "capacity_bytes", "rate", "chunked_prefill",
           "preemption", "max_num_seqs", "seed", "max_context", "max_num_batched_tokens",
           "calibration", "paged_kernel", "parallel_samples", "beam_width", "tensor_parallel",
           "replicas", "router")
# plus "manager.<field>": a field of the manager's config (block_tokens, prefix_caching,
# page_bytes, overlap, lookahead_tokens, deferred_reclaim, eager_alloc, fit, round_pow2, ...)


def _kv_config(params: dict):
    """(model, gpu, manager spec, scheduler config, capacity, calibration, manager overrides)
    of a kv grid point; ``ValueError`` naming the key for anything wrong."""
    import dataclasses as dc

    from simkit.kvpaging import SchedulerConfig, get_gpu, get_model
    from simkit.kvpaging.costmodel import default_calibration, load_calibration
    from simkit.kvpaging.managers import parse_spec
    from simkit.units import parse_size

    bad = [k for k in params if k not in KV_KEYS and not k.startswith("manager.")]
    if bad:
        raise ValueError(f"unknown kv key {bad[0]!r} (expected {', '.join(KV_KEYS)}, or "
                         f"manager.<field>)")
    model = get_model(params.get("model", "Llama-3-8B"))
    if "max_context" in params:
        mc = params["max_context"]
        if isinstance(mc, bool) or not isinstance(mc, int) or mc < 2:
            raise ValueError(f"max_context: expected an integer >= 2, got {mc!r}")
        model = dc.replace(model, max_context=mc)
    gpu = get_gpu(params.get("gpu", "A100-80GB"))
    manager = params.get("manager", "paged-16")
    config = parse_spec(manager, model)
    overrides = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("manager.")}
    names = {f.name for f in dc.fields(config)}
    for k, v in overrides.items():
        if k not in names:
            raise ValueError(f"manager.{k}: not a field of {type(config).__name__} (fields: "
                             f"{', '.join(sorted(names))})")
    if overrides:
        try:
            dc.replace(config, **overrides)
        except ValueError as exc:
            raise ValueError(f"manager.{exc}") from None
    sched = SchedulerConfig(chunked_prefill=bool(params.get("chunked_prefill", False)),
                            preemption=params.get("preemption", "recompute"),
                            max_num_seqs=params.get("max_num_seqs", 256),
                            max_num_batched_tokens=params.get("max_num_batched_tokens", 0),
                            parallel_samples=params.get("parallel_samples", 1),
                            beam_width=params.get("beam_width", 1),
                            seed=params.get("seed", 0))
    cap = params.get("capacity_bytes")
    cap = parse_size(cap, "capacity_bytes") if cap is not None else None
    calp = params.get("calibration", "published")
    if not isinstance(calp, str) or not calp:
        raise ValueError(f"calibration: expected a file path or 'published', got {calp!r}")
    try:
        cal = (default_calibration(gpu.name) if calp == "published"
               else load_calibration(calp))
    except InputError as exc:
        raise ValueError(f"calibration: {exc}") from None
    if "paged_kernel" in params:
        cal = cal.with_paged_kernel(params["paged_kernel"])
    from simkit.kvpaging.cluster import ROUTERS
    from simkit.kvpaging.models import tp_shard

    tp_shard(model, params.get("tensor_parallel", 1))
    reps = params.get("replicas", 1)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"replicas: expected an integer >= 1, got {reps!r}")
    if params.get("router", "round-robin") not in ROUTERS:
        raise ValueError(f"router: expected one of {', '.join(ROUTERS)}, got "
                         f"{params.get('router')!r}")
    return model, gpu, manager, sched, cap, cal, overrides


_CONFIG: dict[str, Callable] = {"cache": _cache_config, "tlb": _tlb_config, "kv": _kv_config}


# ---- running one task -----------------------------------------------------------------------
def _simulate(task: Task):
    params = dict(task.params)
    if task.simulator == "kv":
        from simkit.kvpaging import ServingSimulator, load_trace

        model, gpu, manager, sched, cap, cal, overrides = _kv_config(params)
        src = load_trace(task.trace, limit=task.max_records, rate=params.get("rate"),
                         seed=int(params.get("seed", 0)))
        kw = dict(config=sched, capacity_bytes=cap, calibration=cal,
                  manager_overrides=overrides or None, progress=False,
                  tensor_parallel=params.get("tensor_parallel", 1))
        if params.get("replicas", 1) > 1:
            from simkit.kvpaging.cluster import ServingCluster

            return ServingCluster(model, gpu, manager, src, replicas=params["replicas"],
                                  router=params.get("router", "round-robin"),
                                  **kw).run().to_frame()
        return ServingSimulator(model, gpu, manager, src, **kw).run().to_frame()
    from simkit.trace.catalog import find_trace

    trace = find_trace(task.trace)
    if task.simulator == "cache":
        from simkit.cache import Hierarchy

        stats = Hierarchy(_cache_config(params)).run(
            trace, warmup_records=task.warmup_records, max_records=task.max_records,
            progress=False)
    else:
        from simkit.tlb import MMU

        stats = MMU(_tlb_config(params)).run(trace, warmup_records=task.warmup_records,
                                             max_records=task.max_records, progress=False)
    return stats.to_frame()


def run_task(task: Task, outdir: str) -> dict:
    """Run one task and write its parquet file (atomically); errors are recorded, not raised.
    Runs on a dask worker (or inline)."""
    out = Path(outdir)
    t0 = time.perf_counter()
    try:
        df = _simulate(task)
    except Exception as exc:                               # recorded, the sweep goes on
        (out / "failed").mkdir(parents=True, exist_ok=True)
        err = {"task_id": task.id, "trace": task.trace, "params": dict(task.params),
               "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        _atomic_write(out / "failed" / f"{task.id}.json",
                      lambda p: p.write_text(json.dumps(err, indent=1, default=str)))
        return {"task_id": task.id, "status": "failed", "error": err["error"],
                "seconds": time.perf_counter() - t0}
    df = df.assign(task_id=task.id, sweep=task.sweep, simulator=task.simulator,
                   sweep_trace=task.trace, task_seconds=time.perf_counter() - t0)
    for k, v in task.grid:
        df[grid_column(k)] = str(v)
    (out / "results").mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "results" / f"part-{task.id}.parquet",
                  lambda p: df.to_parquet(p, index=False))
    failed = out / "failed" / f"{task.id}.json"
    if failed.exists():
        failed.unlink()
    return {"task_id": task.id, "status": "done", "seconds": time.perf_counter() - t0}


def grid_column(key: str) -> str:
    """The result column of grid key ``key``: "L2.size_bytes" -> "grid_l2_size_bytes"."""
    return "grid_" + re.sub(r"[^0-9a-zA-Z]+", "_", key).strip("_").lower()


def _atomic_write(path: Path, write) -> None:
    write_via(path, write)


def done_ids(outdir: str | os.PathLike) -> set[str]:
    d = Path(outdir) / "results"
    return {p.stem[len("part-"):] for p in d.glob("part-*.parquet")} if d.is_dir() else set()


def load_results(outdir: str | os.PathLike):
    """Every finished task's rows, as one DataFrame."""
    import pandas as pd

    files = sorted((Path(outdir) / "results").glob("part-*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


# ---- the sweep ------------------------------------------------------------------------------
@dataclasses.dataclass
class SweepReport:
    tasks: int
    skipped: int
    done: int
    failed: int
    seconds: float
    errors: dict

    @property
    def tasks_per_s(self) -> float:
        ran = self.done + self.failed
        return ran / self.seconds if self.seconds > 0 else float("nan")


def run_sweep(grid: Grid, outdir: str | os.PathLike, *, scheduler: str | None = None,
              workers: int = 2, client=None, progress: bool | None = None,
              on_result: Callable | None = None, limit: int | None = None) -> SweepReport:
    """Run the tasks of ``grid`` not yet done in ``outdir``: on ``client``, or a cluster at
    ``scheduler``, or a LocalCluster of ``workers`` single-threaded processes (``workers=0``:
    inline, no dask). ``on_result(n, result, client)`` is called after each task (tests kill a
    worker there); ``limit`` stops after that many tasks have finished (a partial run)."""
    grid.check()
    try:
        import pyarrow  # noqa: F401 (results are parquet files)
    except ImportError:
        raise InputError("sweep: results are parquet files, which need pyarrow "
                         "(pip install -e '.[parquet]')") from None
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = grid.tasks()
    _atomic_write(out / "sweep.json", lambda p: p.write_text(json.dumps(
        {"name": grid.name, "simulator": grid.simulator, "traces": list(grid.traces),
         "base": grid.base, "grid": grid.grid, "max_records": grid.max_records,
         "warmup_records": grid.warmup_records,
         "tasks": [{"id": t.id, "trace": t.trace, "grid": dict(t.grid)} for t in tasks]},
        indent=1, default=str)))
    have = done_ids(out)
    todo = [t for t in tasks if t.id not in have]
    if limit is not None:
        todo = todo[:limit]
    t0 = time.perf_counter()
    results = []
    bar = _bar(len(todo), grid.name, progress)
    if workers == 0 and client is None and scheduler is None:
        for t in todo:
            results.append(run_task(t, str(out)))
            bar.update(1)
            if on_result:
                on_result(len(results), results[-1], None)
    else:
        own = None
        if client is None:
            try:
                from distributed import Client
            except ImportError:
                raise InputError("sweep: dask.distributed is not installed (pip install -e "
                                 "'.[dist]'), or run inline with --workers 0") from None
            if scheduler:
                try:
                    client = own = Client(scheduler, timeout=10)
                except (OSError, TimeoutError, ValueError) as exc:
                    raise InputError(f"--scheduler {scheduler}: cannot connect "
                                     f"({exc.__class__.__name__}: {str(exc)[:120]})") from None
            else:
                client = own = Client(local_cluster(workers))
        try:
            from distributed import as_completed

            futures = [client.submit(run_task, t, str(out.resolve()), key=f"simkit-{t.id}",
                                     pure=False, retries=2) for t in todo]
            for fut in as_completed(futures):
                try:
                    r = fut.result()
                except Exception as exc:       # the task could not run at all (worker lost...)
                    r = {"task_id": fut.key, "status": "failed",
                         "error": f"{type(exc).__name__}: {exc}"}
                results.append(r)
                bar.update(1)
                if on_result:
                    on_result(len(results), r, client)
        finally:
            if own is not None:
                cluster = getattr(own, "cluster", None)
                own.close()
                if cluster is not None and not scheduler:
                    cluster.close()
    bar.close()
    failed = {r["task_id"]: r.get("error", "") for r in results if r["status"] != "done"}
    return SweepReport(tasks=len(tasks), skipped=len(have & {t.id for t in tasks}),
                       done=len(results) - len(failed), failed=len(failed),
                       seconds=time.perf_counter() - t0, errors=failed)


def local_cluster(workers: int):
    """A dask LocalCluster of ``workers`` single-threaded processes that listens on the loopback
    interface only and serves no dashboard (nothing reachable from another machine)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None,
                        worker_dashboard_address=None)


def _bar(total: int, desc: str, progress: bool | None):
    import sys

    from tqdm import tqdm

    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(total=total, desc=f"sweep {desc}", unit="task", disable=not progress)
