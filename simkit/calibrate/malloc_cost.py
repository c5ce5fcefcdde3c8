"""The allocator cost model (``simkit.allocators.cost``) measured and validated out of sample
against the real allocators (issue 17, item 3).

- ``measure_costs``: per-operation CPU costs on this machine from ``csrc/malloc_costs.c`` (page
  fault, page release, each system call kind, cache line by working set, memset line, bitmap
  word), and each installed real allocator's fast path (malloc + free pairs under
  ``LD_PRELOAD``);
- ``model_operations``: each model's operation counts on each trace, plus the replayer's own;
- ``leave_one_trace_out``: predicted vs measured CPU time of every (model, real allocator) pair
  on each trace, with the one fitted number (ns per call) fitted on the *other* traces only;
  and the same with the call cost taken from the real allocator's measured fast path (nothing
  fitted);
- ``rank_table``: Spearman's rho of predicted vs measured time across the real allocators, per
  trace and pooled (ns per event); ``verdict``: the one line that says whether the model ranks
  them.

``python -m simkit.calibrate.malloc_cost [--runs N] [--out F.json]`` runs all of it.
"""
from __future__ import annotations

import subprocess
import time

import numpy as np

from simkit.errors import InputError

# model preset -> the real allocator it models
PAIRS = {"ptmalloc": "glibc", "mimalloc": "mimalloc", "hardened": "hardened_malloc",
         "hardened-light": "hardened_malloc-light"}
RANK_RHO = 0.8          # "ranks": rho >= this on every trace (4 allocators: one adjacent swap)


def _run_costs(lib: str = "", alloc: bool = False) -> dict:
    from simkit.bench.malloc.build import build
    from simkit.bench.malloc.libraries import preload_env

    exe = build("malloc_costs")
    r = subprocess.run([str(exe)] + (["alloc"] if alloc else []), env=preload_env(lib),
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise InputError(f"malloc_costs failed under {lib or 'glibc'} (status {r.returncode}): "
                         f"{r.stderr.strip()[-200:]}")
    return {k: float(v) for k, v in (line.split() for line in r.stdout.splitlines())}


def measure_costs(allocators=None) -> dict:
    """Per-operation CPU ns on this machine, and each real allocator's fast path. Returns
    ``{"cost_ns": {...}, "line_ns": {KiB: ns}, "fast_path_ns": {allocator: {...}}, "date",
    "load"}`` (``cost_ns`` has no ``call``: it is fitted, or a fast path)."""
    from simkit.allocators.cost import COST_NS
    from simkit.bench.malloc.libraries import available

    raw = _run_costs()
    cost = {k: raw[k] for k in COST_NS if k in raw}
    lines = {int(k.split("_")[1]): v for k, v in raw.items() if k.startswith("line_")}
    from simkit.allocators.cost import META_LINE_KIB
    cost["meta_line"] = lines[META_LINE_KIB]
    have = available()
    fast = {a: _run_costs(have[a], alloc=True) for a in (allocators or PAIRS.values())
            if a in have}
    return {"cost_ns": cost, "line_ns": lines, "fast_path_ns": fast,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load": open("/proc/loadavg").read().split()[:3]}


def model_operations(traces: dict, models=tuple(PAIRS)):
    """One row per (trace, model): operation counts ``n_<operation>``, the model's plus the
    replayer's (``simkit.allocators.cost.harness_operations``)."""
    import pandas as pd

    from simkit.allocators import AllocatorModel
    from simkit.allocators.cost import OPERATIONS, harness_operations

    rows = []
    for tname, recs in traces.items():
        h = harness_operations(recs)
        for m in models:
            s = AllocatorModel(m).run(recs, name=tname, timeline_points=0)
            ops = s.operations
            row = {"trace": tname, "model": m, "real": PAIRS.get(m), "events": s.events,
                   "peak_footprint_bytes": s.peak_footprint_bytes}
            for k in OPERATIONS:
                row[f"n_{k}"] = ops[k] + h[k]
            rows.append(row)
    return pd.DataFrame(rows)


def _fixed_ns(df, cost: dict):
    """The counted part of each row's prediction: every operation but ``call``."""
    from simkit.allocators.cost import OPERATIONS

    tot = np.zeros(len(df))
    for k in OPERATIONS:
        if k == "call":
            continue
        tot = tot + cost[k] * df[f"n_{k}"].to_numpy(float)
    return tot


def fit_call_ns(fixed, calls, measured) -> float:
    """The ns per call minimising the squared relative error of fixed + x * calls against
    measured (closed form), clamped at 0."""
    fixed, calls, measured = (np.asarray(a, float) for a in (fixed, calls, measured))
    a = calls / measured
    b = (measured - fixed) / measured
    den = float((a * a).sum())
    return max(float((a * b).sum()) / den, 0.0) if den > 0 else 0.0


def leave_one_trace_out(ops, measured, cost: dict, fast_path_ns: dict | None = None,
                        fast_key: str = "alloc_batch_64"):
    """Predicted vs measured CPU ns per (trace, model). ``ops``: ``model_operations``;
    ``measured``: rows of (trace, allocator, cpu_ns) (``bench_malloc`` medians). For each held-
    out trace the ns per call is fitted on the other traces' pairs only (``call_ns``,
    ``fitted_on``); ``predicted_fast_path_ns`` uses instead half the real allocator's measured
    malloc + free pair (``fast_path_ns``), nothing fitted."""
    m = measured.set_index(["trace", "allocator"]).cpu_ns
    df = ops[ops.real.notna()].copy()
    df = df[[(t, a) in m.index for t, a in zip(df.trace, df.real)]].reset_index(drop=True)
    if df.trace.nunique() < 2:
        raise InputError("leave_one_trace_out: needs measured times on at least 2 traces")
    df["measured_ns"] = [float(m.loc[(t, a)]) for t, a in zip(df.trace, df.real)]
    df["counted_ns"] = _fixed_ns(df, cost)
    out = []
    for held in dict.fromkeys(df.trace):
        train = df[df.trace != held]
        x = fit_call_ns(train.counted_ns, train.n_call, train.measured_ns)
        d = df[df.trace == held].copy()
        d["call_ns"] = x
        d["fitted_on"] = ",".join(dict.fromkeys(train.trace))
        out.append(d)
    df = __import__("pandas").concat(out, ignore_index=True)
    df["predicted_ns"] = df.counted_ns + df.call_ns * df.n_call
    df["error"] = df.predicted_ns / df.measured_ns - 1
    if fast_path_ns:
        fp = df.real.map(lambda a: fast_path_ns.get(a, {}).get(fast_key, np.nan) / 2)
        df["fast_path_call_ns"] = fp
        df["predicted_fast_path_ns"] = df.counted_ns + fp * df.n_call
        df["error_fast_path"] = df.predicted_fast_path_ns / df.measured_ns - 1
    return df


def spearman(a, b) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import pandas as pd

    ra = pd.Series(np.asarray(a, float)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, float)).rank().to_numpy()
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def rank_table(loo, predicted: str = "predicted_ns"):
    """Spearman's rho of predicted vs measured across the real allocators: one row per trace
    (times) and one pooled over every (trace, allocator) (ns per event)."""
    import pandas as pd

    rows = []
    for t, d in loo.groupby("trace", sort=False):
        order_m = list(d.sort_values("measured_ns").real)
        order_p = list(d.sort_values(predicted).real)
        rows.append({"trace": t, "allocators": len(d), "rho": spearman(d[predicted],
                                                                        d.measured_ns),
                     "measured_order": " < ".join(order_m), "predicted_order": " < ".join(order_p),
                     "mean_abs_error": float((d[predicted] / d.measured_ns - 1).abs().mean())})
    rows.append({"trace": "pooled (ns/event)", "allocators": len(loo),
                 "rho": spearman(loo[predicted] / loo.events, loo.measured_ns / loo.events),
                 "measured_order": "", "predicted_order": "",
                 "mean_abs_error": float((loo[predicted] / loo.measured_ns - 1).abs().mean())})
    return pd.DataFrame(rows)


def verdict(ranks, what: str = "the cost model") -> str:
    """"... ranks / cannot rank the real allocators (Spearman rho = ...)"."""
    per = ranks[ranks.trace != "pooled (ns/event)"]
    pooled = float(ranks[ranks.trace == "pooled (ns/event)"].rho.iloc[0])
    ok = bool(len(per)) and bool((per.rho >= RANK_RHO - 1e-9).all())    # 0.8 is 0.7999...
    rhos = ", ".join(f"{t} {r:+.2f}" for t, r in zip(per.trace, per.rho))
    return (f"{what} {'ranks' if ok else 'cannot rank'} the real allocators (Spearman rho = "
            f"{rhos}; pooled over traces {pooled:+.2f}; 'ranks' means rho >= {RANK_RHO} on "
            f"every trace)")


def fault_check(ops, measured):
    """The model's page faults (+ the replayer's) vs the real allocator's measured minor faults
    over the replay."""
    m = measured.set_index(["trace", "allocator"])
    d = ops[ops.real.notna()].copy()
    d = d[[(t, a) in m.index for t, a in zip(d.trace, d.real)]]
    d["measured_faults"] = [float(m.loc[(t, a), "minor_faults"]) for t, a in zip(d.trace, d.real)]
    d["fault_error"] = d.n_fault / d.measured_faults - 1
    return d[["trace", "model", "real", "n_fault", "measured_faults", "fault_error"]]


def validate(traces: dict, runs: int = 5, progress: bool = False) -> dict:
    """Measure the costs and the real allocators, count the models' operations, and validate:
    ``{"costs", "measured", "ops", "loo", "ranks", "ranks_fast_path", "faults", "verdict",
    "verdict_fast_path"}``."""
    from simkit.bench.malloc import bench_malloc

    costs = measure_costs()
    _, med = bench_malloc(traces, list(PAIRS.values()), runs=runs, progress=progress)
    med = med[med.get("cpu_ns", np.nan).notna()] if "cpu_ns" in med else med.iloc[0:0]
    ops = model_operations(traces)
    return evaluate(costs, med, ops)


def evaluate(costs: dict, med, ops) -> dict:
    from simkit.allocators.cost import COST_NS

    cost = dict(COST_NS, **costs["cost_ns"])
    loo = leave_one_trace_out(ops, med, cost, costs.get("fast_path_ns"))
    ranks = rank_table(loo)
    out = {"costs": costs, "measured": med, "ops": ops, "loo": loo, "ranks": ranks,
           "faults": fault_check(ops, med), "verdict": verdict(ranks)}
    if "predicted_fast_path_ns" in loo and loo.predicted_fast_path_ns.notna().all():
        rf = rank_table(loo, "predicted_fast_path_ns")
        out["ranks_fast_path"] = rf
        out["verdict_fast_path"] = verdict(
            rf, "with each real allocator's measured fast path as the call cost, the model")
    return out


def main(argv=None) -> int:
    import argparse
    import json

    import pandas as pd

    from simkit.trace.alloc import open_alloc_trace
    from simkit.trace.alloc_catalog import find_alloc_trace, list_alloc_traces

    ap = argparse.ArgumentParser(prog="python -m simkit.calibrate.malloc_cost")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", help="write the measured costs (a --cost calibration) here")
    a = ap.parse_args(argv)
    traces = {n: open_alloc_trace(find_alloc_trace(n)).read()
              for n in list_alloc_traces().name}
    r = validate(traces, runs=a.runs, progress=False)
    pd.set_option("display.width", 200)
    print("per-operation CPU ns:", json.dumps(r["costs"], indent=None))
    cols = ["trace", "model", "real", "measured_ns", "predicted_ns", "error", "call_ns"]
    if "predicted_fast_path_ns" in r["loo"]:
        cols += ["predicted_fast_path_ns", "error_fast_path"]
    print(r["loo"][cols].to_string(index=False))
    print(r["ranks"].to_string(index=False))
    if "ranks_fast_path" in r:
        print(r["ranks_fast_path"].to_string(index=False))
    print(r["faults"].to_string(index=False))
    print(r["verdict"])
    if "verdict_fast_path" in r:
        print(r["verdict_fast_path"])
    if a.out:
        cal = dict(r["costs"]["cost_ns"], call=float(r["loo"].call_ns.mean()))
        with open(a.out, "w") as f:
            json.dump({"cost_ns": cal, **{k: v for k, v in r["costs"].items()
                                         if k != "cost_ns"}}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["PAIRS", "evaluate", "fault_check", "fit_call_ns", "leave_one_trace_out",
           "measure_costs", "model_operations", "rank_table", "spearman", "validate", "verdict"]
