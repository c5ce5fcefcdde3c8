"""Flash experiment, registered in ``simkit.experiments``: ``flash`` ("LLM in a flash",
REFERENCE.md section 3).

Parts (column ``part``):

- ``table2`` / ``params``: the I/O latency ladder of Table 2 for OPT-6.7B with the paper's
  throughput figures (published M1 Max preset), on the synthetic OPT trace (Table 6 per-layer
  fractions, the paper's 5% FN / 7% FP predictor), with every parameter listed beside its
  provenance (``params`` rows): activation persistence measured per layer and the predictor's
  per-neuron error propensity and error persistence measured on the shipped real SmolLM2
  trace (``calibration = "measured"``); and the same with the error persistence fitted so
  that windowing loads the paper's 2.4% (``"fitted-error-persistence"``).
- ``error_model``: on the real SmolLM2 active sets, the FFN loaded per token with the real
  predictor against the error model with measured per-neuron propensities and with evenly
  spread errors.
- ``selection``: the real trace's persistence (pooled, per layer) and window reuse per neuron
  selection rule (|SiLU(gate)*up| vs |SiLU(gate)| at the same per-layer density).
- ``falcon``: Falcon-7B at k = 4 with OPT's fitted error persistence (an out-of-sample check
  of the paper's 3.1% loaded / 33% cached).
- ``window``: loaded and cached FFN fractions per token vs window size, for both OPT traces
  and for the real SmolLM2 trace (its low-rank predictor, and the oracle).
- ``predictor``: the low-rank predictor trained on real SmolLM2 activations, per sparsity:
  FN/FP rates, over-prediction, activation mass missed, top-1 agreement of sparse decoding, and
  the flash bytes it costs against the oracle.
- ``dram``: neuron-cache management, the paper's preallocated matrix (delete by swapping the
  last row in, append) against reallocating every token: bytes copied per token from the
  kernel, and seconds per token measured with real rows (``dram.NeuronCache``) on this machine.
- ``storage``: a short ``simkit bench storage`` sweep on this machine, and (``validation``)
  the simulator's read schedule of the real trace executed on files laid out bundled (8 and
  12 KiB chunks) and unbundled (4 KiB), in per-layer and per-token bursts, repeated, measured
  vs predicted with the spread (this machine's disk is a virtual disk, not flash). The
  sweep's 4 and 16 KiB points at 8 threads and its bursts are measured again before each
  repeat, and the repeats go round the schedules.
- ``storage_fit``: the latency + transfer line fitted per thread count to that sweep.
- ``hotcold`` / ``budget`` / ``prompt`` / ``bits``: the PowerInfer-style hot/cold split on the
  real SmolLM2 trace (arbitrary ids vs hottest first, in sample and held out), the window
  chosen from a DRAM budget with the KV cache counted, the prompt phase, 4-bit weights.
- ``speed``: seconds (wall and CPU, with the load) to simulate 1,000 tokens of a 32-layer,
  16K-neuron model with windowing, bundling, per-layer bursts and the latency model (quick:
  250 tokens timed, scaled to 1,000).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from simkit.experiments._base import save_outputs, write_csv, experiment, summary_rows


def _table2_rows(quick):
    """Table 2 twice: every parameter of the OPT trace measured or published
    (``calibration = "measured"``), and with the predictor errors' persistence fitted to the
    paper's 2.4% loaded (``"fitted-error-persistence"``); each with its parameter list."""
    import pandas as pd

    from simkit.flash import paper

    tokens = 96 if quick else 256
    cal = paper.calibrated_params()
    fitted = paper.fit_persistence("error", tokens=48 if quick else 128)
    cal["fitted_error_stay"] = fitted
    rows, traces, params = [], {}, []
    stays = (("measured", None), ("fitted-error-persistence", fitted))
    for (name, es), tr in zip(stays, paper.opt_traces(tokens, [es for _, es in stays])):
        traces[name] = tr
        df = paper.table2(tr)
        lay = paper.table2(tr, io_bursts="layer").set_index("step")
        df["io_ms_per_layer_bursts"] = df.step.map(lay.io_ms_per_token)
        df["part"] = "table2"
        df["calibration"] = name
        df["persistence"] = tr.persistence()
        df["error_persistence"] = paper.error_persistence(tr)["fp_stay"]
        conf = tr.confusion()
        df["fp_rate"], df["fn_rate"] = conf["fp_rate"], conf["fn_rate"]
        rows.append(df)
        p = pd.DataFrame(paper.opt_parameters(None, es))
        p["part"] = "params"
        p["calibration"] = name
        params.append(p)
    return rows + params, traces, cal


def _error_model_rows():
    """On the real SmolLM2 active sets at 97% sparsity, windowing k=5: the real low-rank
    predictor against the error model with measured per-neuron propensities and against
    evenly spread errors of the same rates and persistence."""
    import pandas as pd

    from simkit.flash import paper
    from simkit.flash.predictor_errors import ErrorProfile, apply_errors, even_profile
    from simkit.flash.simulate import FlashConfig, FlashSimulator

    real = load_real(0.97)
    prof = ErrorProfile.measure(real)
    L, N = real.layers, real.neurons
    variants = {"real low-rank predictor": real,
                "error model, measured per-neuron propensity": apply_errors(real, prof, 1),
                "error model, rank-transferred propensity": apply_errors(
                    real, prof.transfer(prof.active_rate, seed=5), 1),
                "error model, evenly spread": apply_errors(
                    real, even_profile(L, N, float(prof.fp.mean()), float(prof.fn.mean()),
                                       prof.fp_stay), 1)}
    rows = []
    for name, tr in variants.items():
        s = FlashSimulator(FlashConfig(model="smollm2-135m", policy="all",
                                       window_tokens=5)).run(tr).summary()
        c = tr.confusion()
        rows.append({"part": "error_model", "predictor": name,
                     "loaded_fraction": s["loaded_fraction"],
                     "cached_fraction": s["cached_fraction"], "fp_rate": c["fp_rate"],
                     "fn_rate": c["fn_rate"],
                     "error_persistence": paper.error_persistence(tr)["fp_stay"]})
    return [pd.DataFrame(rows)]


def _selection_rows():
    """Persistence of the real SmolLM2 trace per selection rule and sparsity (pooled, first
    and last layer), and the share of needed neurons the window (k=5) already holds (oracle
    predictor): the paper's OPT figures imply 1 - 2.4% / ~10% = 0.76 at ~10% predicted."""
    import pandas as pd

    from simkit.flash.simulate import FlashConfig, FlashSimulator

    rows = []
    for sel in ("magnitude", "gate"):
        for sp in (0.8, 0.9, 0.95, 0.97):
            tr = load_real(sp, sel)
            per = tr.persistence_per_layer()
            s = FlashSimulator(FlashConfig(model="smollm2-135m", policy="all", window_tokens=5,
                                           predictor="oracle")).run(tr).summary()
            rows.append({"part": "selection", "selection": sel, "sparsity": sp,
                         "active_fraction": tr.active_fraction(),
                         "persistence": tr.persistence(), "persistence_first_layer": per[0],
                         "persistence_last_layer": per[-1],
                         "persistence_layer_min": float(per.min()),
                         "persistence_layer_max": float(per.max()),
                         "window_reuse": 1 - s["loaded_fraction"] / s["needed_fraction"],
                         "loaded_fraction": s["loaded_fraction"],
                         "cached_fraction": s["cached_fraction"]})
    return [pd.DataFrame(rows)]


_LOADED: dict = {}       # the shipped trace per (sparsity, selection), for one run of flash()


def load_real(sparsity, selection="magnitude"):
    """The shipped SmolLM2 trace at ``sparsity``, unpacked once per run (the parts read it 17
    times at 8 settings; nothing writes into a trace)."""
    from simkit.flash.activations import load_activations
    key = (float(sparsity), selection)
    if key not in _LOADED:
        _LOADED[key] = load_activations("smollm2-135m", sparsity, selection=selection)
    return _LOADED[key]


def _falcon_trace(fitted_error_stay, quick):
    """Falcon-7B (relufied, 95% sparse): measured per-layer activation persistence, the
    measured error profile at the paper's 5%/7% and OPT's fitted error persistence."""
    from simkit.flash import paper
    from simkit.flash.activations import synthetic_rates, synthetic_trace
    from simkit.flash.predictor_errors import apply_errors

    L, N = 32, 18176
    pers = paper.layer_profile(paper.calibrated_params()["persistence_per_layer"], L)
    stay = paper.stay_for_persistence(pers, paper.SKEW, L, N, 0, np.full(L, 0.05))
    tr = synthetic_trace(L, N, 64 if quick else 256, 0.05, stay, paper.SKEW, 0,
                         name="falcon-synthetic")
    prof = paper.measured_profile().transfer(synthetic_rates(L, N, 0.05, paper.SKEW, 0),
                                             paper.FP_RATE, paper.FN_RATE)
    return apply_errors(tr, prof.with_stay(fitted_error_stay, fitted_error_stay), 1)


def _falcon_rows(tr, fitted_error_stay):
    """Falcon-7B at k = 4: the paper reports 3.1% loaded and 33% cached (REFERENCE 3.3)."""
    from simkit.flash.simulate import FlashConfig, FlashSimulator

    s = FlashSimulator(FlashConfig(model="falcon-7b", policy="all", window_tokens=4)).run(tr)
    d = s.to_frame()
    d["part"] = "falcon"
    d["error_stay"] = fitted_error_stay
    return [d]


# Table 3 [P] (REFERENCE 3.2): model, backend, policy, column -> ms per token
TABLE3 = (("opt-6.7b", "cpu", "naive", "total", 3182.0),
          ("opt-6.7b", "cpu", "all", "io", 105.0), ("opt-6.7b", "cpu", "all", "mem", 58.0),
          ("opt-6.7b", "cpu", "all", "compute", 506.0), ("opt-6.7b", "cpu", "all", "total", 669.0),
          ("opt-6.7b", "gpu", "naive", "total", 2218.0),
          ("opt-6.7b", "gpu", "all", "io", 30.0), ("opt-6.7b", "gpu", "all", "mem", 34.0),
          ("opt-6.7b", "gpu", "all", "compute", 20.0), ("opt-6.7b", "gpu", "all", "total", 84.0),
          ("falcon-7b", "cpu", "naive", "total", 3095.0),
          ("falcon-7b", "cpu", "hybrid", "total", 1947.0),
          ("falcon-7b", "cpu", "all", "io", 161.0), ("falcon-7b", "cpu", "all", "mem", 92.0),
          ("falcon-7b", "cpu", "all", "compute", 453.0),
          ("falcon-7b", "cpu", "all", "total", 706.0))
_COLUMN = {"io": "io_ms_per_token", "mem": "mem_ms_per_token",
           "compute": "compute_ms_per_token", "total": "time_ms_per_token"}


def _table3_rows(opt_trace, falcon_trace, host):
    """Table 3 rows beside the paper: OPT-6.7B on CPU and GPU, Falcon-7B on CPU (out of
    sample: the profiles are derived from OPT's row), and OPT-6.7B "All" on this machine
    (measured numpy throughput and memcpy bandwidth)."""
    import pandas as pd

    from simkit.flash.latency import PROFILES
    from simkit.flash.simulate import FlashConfig, FlashSimulator
    from simkit.flash.storage import load_calibration

    traces = {"opt-6.7b": opt_trace, "falcon-7b": falcon_trace}
    windows = {"opt-6.7b": 5, "falcon-7b": 4}
    runs = {}
    rows = []
    storage = {"host": "published-m1max", "cpu": "published-m1max",
               "gpu": "rtx4090-linux-derived", "gpu-pcie": "pcie-rtx4090"}
    for model, backend, pol, col, ms in TABLE3 + tuple(
            ("opt-6.7b", b, "all", c, np.nan) for b in ("host", "gpu-pcie")
            for c in ("io", "mem", "compute", "total")):
        prof = {"host": host, "cpu": PROFILES["paper-m1max-cpu"],
                "gpu": PROFILES["paper-rtx4090-gpu"],
                "gpu-pcie": PROFILES["paper-rtx4090-gpu"]}[backend]
        key = (model, backend, pol)
        if key not in runs:
            runs[key] = FlashSimulator(FlashConfig(model=model, policy=pol, compute=prof,
                                                   window_tokens=windows[model],
                                                   storage=storage[backend])
                                       ).run(traces[model]).summary()
        sm = runs[key]
        rows.append({"part": "table3", "param_model": model, "backend": backend, "step": pol,
                     "column": col, "paper_ms": ms, "ours_ms": sm[_COLUMN[col]],
                     "compute_profile": prof.name, "profile_kind": prof.kind,
                     "storage": storage[backend],
                     "storage_kind": load_calibration(storage[backend]).kind,
                     "io_bursts": "layer",
                     "weights_per_s": prof.weights_per_s,
                     "copy_bytes_per_s": prof.copy_bytes_per_s,
                     "loaded_fraction": sm["loaded_fraction"],
                     "cached_fraction": sm["cached_fraction"],
                     "ffn_ms": sm["ffn_ms_per_token"], "attn_ms": sm["attn_ms_per_token"],
                     "predictor_ms": sm["predictor_ms_per_token"]})
    return [pd.DataFrame(rows)]


_HOST_CODE = """
import json
from simkit.flash.latency import measure_ffn_slice, measure_gemv, measure_host
h = measure_host()
print(json.dumps({"weights_per_s": h.weights_per_s, "copy_bytes_per_s": h.copy_bytes_per_s,
                  "slices": {n: measure_ffn_slice(n) for n in (410, 3900)},
                  "gemv_s": 4096 * 4096 / measure_gemv(4096, 4096)}))
"""


def _host_measurements():
    """This machine's matrix-vector rate, memcpy bandwidth and FFN-slice times, measured in a
    fresh interpreter with one BLAS thread: on the shared 2-vCPU machine a multi-threaded BLAS
    waits for busy cores (a ~25 ms floor per product under load), which is not compute."""
    import json
    import os
    import subprocess
    import sys

    from simkit.flash.latency import ComputeProfile

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _HOST_CODE], capture_output=True, text=True,
                         env=env, timeout=600, check=True)
    d = json.loads(out.stdout.strip().splitlines()[-1])
    prof = ComputeProfile("host", d["weights_per_s"], d["copy_bytes_per_s"], False, "measured",
                          {"weights_per_s": "measured: numpy float32 FFN layer on a 1640-row "
                                            "neuron cache (d_model 4096), cold, one BLAS thread",
                           "copy_bytes_per_s": "measured: numpy.copyto of 64 MiB, best of 5"})
    checks = {f"FFN layer over {k} cached rows": (int(k) * 2 * 4096, v)
              for k, v in d["slices"].items()}
    checks["dense 4096 x 4096 matrix-vector product (attention projection)"] = (
        4096 * 4096, d["gemv_s"])
    return prof, checks


def _compute_validation_rows(host, checks):
    """The compute term on this machine: 7B-shaped products the rate was not measured on
    (other neuron-cache sizes, a dense attention projection), measured vs predicted."""
    import pandas as pd

    rows = []
    for what, (weights, meas) in checks.items():
        pred = weights / host.weights_per_s
        rows.append({"part": "compute_validation", "what": what, "weights": weights,
                     "measured_ms": 1e3 * meas, "predicted_ms": 1e3 * pred,
                     "error_pct": 100 * (pred / meas - 1), "weights_per_s": host.weights_per_s,
                     "copy_bytes_per_s": host.copy_bytes_per_s})
    return [pd.DataFrame(rows)]


def _window_rows(traces, quick):
    from simkit.flash import paper
    from simkit.flash.models import get_model
    from simkit.flash.simulate import FlashConfig, FlashSimulator

    out = []
    for name, tr in traces.items():
        df = paper.window_curve(tr)
        df["part"] = "window"
        df["calibration"] = name
        df["param_model"] = "opt-6.7b"
        df["predictor"] = "error-model 5%/7%"
        out.append(df)
    import pandas as pd
    real = load_real(0.97)
    m = get_model("smollm2-135m")
    for pred in ("trace", "oracle"):
        rows = []
        for k in (1, 2, 3, 4, 5, 6, 8, 10, 16):
            s = FlashSimulator(FlashConfig(model=m.name, policy="all", window_tokens=k,
                                           predictor=pred)).run(real).summary()
            rows.append({"window_tokens": k, "loaded_fraction": s["loaded_fraction"],
                         "cached_fraction": s["cached_fraction"],
                         "io_ms_per_token": s["io_ms_per_token"],
                         "mem_ms_per_token": s["mem_ms_per_token"],
                         "trace": "smollm2-135m@0.97"})
        df = pd.DataFrame(rows)
        df["part"] = "window"
        df["calibration"] = "real"
        df["param_model"] = m.name
        df["predictor"] = "low-rank (trained)" if pred == "trace" else "oracle"
        out.append(df)
    return out


def _predictor_rows():
    import pandas as pd

    from simkit.flash.activations import trace_meta
    from simkit.flash.simulate import FlashConfig, FlashSimulator

    meta = trace_meta("smollm2-135m")
    rows = []
    for tag, st in meta["predictor_stats"].items():
        s = float(st["sparsity_target"])
        r = {"part": "predictor", "sparsity": s, "stored": bool(st.get("stored")),
             **{k: st.get(k) for k in ("active_fraction", "predicted_fraction", "fn_rate",
                                       "fp_rate", "over_prediction", "missed_activation_mass",
                                       "top1_agreement_sparse_oracle",
                                       "top1_agreement_sparse_predicted", "predictor_rank")}}
        if st.get("stored"):
            tr = load_real(s)
            r["persistence"] = tr.persistence()
            for pred in ("oracle", "trace"):
                sm = FlashSimulator(FlashConfig(model="smollm2-135m", policy="all",
                                                window_tokens=5, predictor=pred)
                                    ).run(tr).summary()
                r[f"loaded_fraction_{pred}"] = sm["loaded_fraction"]
                r[f"flash_bytes_per_token_{pred}"] = sm["flash_bytes_per_token"]
        rows.append(r)
    return [pd.DataFrame(rows).sort_values("sparsity")]


def _dram_rows(trace):
    import pandas as pd

    from simkit.flash.dram import measure_management
    from simkit.flash.simulate import FlashConfig, FlashSimulator

    rows = []
    ptr, idx = trace.predicted
    L = trace.layers
    sets = [idx[ptr[t * L + L - 1]:ptr[t * L + L]] for t in range(trace.tokens)]   # last layer
    for mode in ("preallocated", "reallocate"):
        s = FlashSimulator(FlashConfig(model="opt-6.7b", policy="all", window_tokens=5,
                                       memory_management=mode)).run(trace).summary()
        real = measure_management(sets, trace.neurons, 2 * 4096, 5, mode)
        rows.append({"part": "dram", "memory_management": mode,
                     "copied_bytes_per_token": s["copied_bytes_per_token"],
                     "mem_ms_per_token": s["mem_ms_per_token"],
                     "prealloc_cache_bytes": s["prealloc_cache_bytes"],
                     "measured_layer_bytes_copied_per_token": real["bytes_copied_per_token"],
                     "measured_layer_ms_per_token": 1e3 * real["seconds_per_token"],
                     "measured_layer": L - 1})
    return [pd.DataFrame(rows)]


def _storage_rows(quick, outdir: Path):
    import os

    import pandas as pd

    from simkit.bench import storage as S
    from simkit.calibrate.storage import summarize, validate_schedule
    from simkit.commands.bench_storage import validation_model
    from simkit.flash.storage import from_dict

    out = []
    outdir.mkdir(parents=True, exist_ok=True)
    two, three = validation_model(2, 2048), validation_model(3, 2048)
    size = three.layers * three.ffn * three.neuron_bytes          # 566 MB, both layouts fit
    trace = load_real(0.9)
    n = 16 if quick else 64
    # schedules the calibration did not see: bundled chunks of 8 and 12 KiB (the grid has
    # 4, 16, 64 KiB and 1 MiB), unbundled 4 KiB reads three per neuron, per-layer bursts
    # and one burst per token
    schedules = ((two, "all", "layer"), (two, "all", "token"),
                 (three, "all", "layer"), (three, "windowing", "layer"))
    runs = {i: [] for i in range(len(schedules))}
    base = {}
    with tempfile.TemporaryDirectory(prefix="flash-io-", dir=outdir) as d:    # removed after
        bench = S.measure_storage(Path(d) / "ffn.bin", size,
                                  chunks=(4096, 16384, 65536, 1 << 20),
                                  threads=(1, 4, 8), seconds=0.3 if quick else 1.0)
        b = bench.copy()
        b["part"] = "storage"
        b["disk_note"] = bench.attrs.get("disk_note", "")
        out.append(b)
        doc = S.calibration(bench)
        fit = from_dict(doc, "measured").fit()
        fit["part"] = "storage_fit"
        out.append(fit)
        for rep in range(5 if quick else 9):
            # on a shared machine this disk's speed drifts within a minute (a 4 KiB x 8 point
            # measured 148-324 us per read at load 6-9 within a minute), so before each repeat
            # the points the schedules use (4 and 16 KiB at 8 threads: 4, 8 and 12 KiB reads
            # lie on them) and the bursts at 8 threads are measured again, as long as in the
            # sweep; the repeats go round the schedules so every schedule sees the same time
            load = os.getloadavg()[0]
            now = S.calibration(S.measure_storage(Path(d) / "ffn.bin", size,
                                                  chunks=(4096, 16384), threads=(8,),
                                                  seconds=0.3 if quick else 1.0))
            cal = from_dict(_refreshed(doc, now), "measured")
            for i, (model, policy, bursts) in enumerate(schedules):
                df, summ = validate_schedule(trace, model, policy, cal, Path(d) / "ffn.bin",
                                             tokens=n, threads=8, repeats=1, io_bursts=bursts)
                df["repeat"] = rep
                df["load_1min"] = load
                runs[i].append(df)
                base.setdefault(i, dict(summ, param_model=model.name))
    for i in range(len(schedules)):
        df = pd.concat(runs[i], ignore_index=True)
        summ = summarize(df, base[i])
        per_rep = df.groupby("repeat")[["measured_s", "predicted_s"]].sum()
        summ.update({"part": "validation",
                     "calibration": "sweep, its 4/16 KiB x 8 points and bursts measured again "
                                    "before each repeat",
                     "load_1min_min": float(df.load_1min.min()),
                     "load_1min_max": float(df.load_1min.max()),
                     "runs": "; ".join(f"{1e3 * m:.0f}/{1e3 * p:.0f} ms" for m, p in
                                       zip(per_rep.measured_s, per_rep.predicted_s))})
        out.append(pd.DataFrame([summ]))
    return out


def _refreshed(doc: dict, now: dict) -> dict:
    """Calibration ``doc`` with the points and burst costs that ``now`` measured again."""
    new = {(p["chunk_bytes"], p["threads"]): p for p in now["points"]}
    return dict(doc, points=[new.get((p["chunk_bytes"], p["threads"]), p)
                             for p in doc["points"]],
                burst_excess_s=dict(doc["burst_excess_s"], **now["burst_excess_s"]))


def _planning_rows(opt_trace):
    """Issue 16 item 6: the hot/cold split on the real trace, the window chosen from a DRAM
    budget with the KV cache counted, the prompt phase, 4-bit weights."""
    import pandas as pd

    from simkit.flash.models import quantized
    from simkit.flash.planning import prompt_cost, window_for_budget
    from simkit.flash.simulate import FlashConfig, FlashSimulator

    rows = []
    real = load_real(0.97)
    half = real.tokens // 2
    held = real.hot_first(on=real.head(half))          # hottest on the first half
    for frac in (0.1, 0.2):
        cfg = FlashConfig(model="smollm2-135m", policy="hybrid+predictor",
                          static_ffn_fraction=frac, window_tokens=0)
        for order, tr, start in (("arbitrary ids", real, 0), ("hottest first", real.hot_first(), 0),
                                 ("hottest first, held out", held, half)):
            st = FlashSimulator(cfg).run(tr).region(start)
            rows.append({"part": "hotcold", "order": order, "resident_fraction": frac,
                         "loaded_fraction": st.summary()["loaded_fraction"],
                         "tokens": st.n_tokens, "sparsity": 0.97})
    budget_cfg = FlashConfig(model="opt-6.7b", policy="all", context_tokens=2048)
    m = budget_cfg.shape
    for budget_gb in (7.0, 7.5):
        best, df = window_for_budget(opt_trace, budget_gb * 1e9, budget_cfg)
        r = df[df.window_tokens == best].iloc[0] if best is not None else df.iloc[0]
        rows.append({"part": "budget", "budget_gb": budget_gb, "window_tokens": best,
                     "dram_need_gb": r.dram_need_bytes / 1e9,
                     "kv_cache_gb": r.kv_cache_bytes / 1e9, "loaded_fraction": r.loaded_fraction,
                     "io_ms_per_token": r.io_ms_per_token, "context_tokens": 2048,
                     "resident_gb": m.resident_bytes / 1e9})
    for prompt in (16, 64):
        p = prompt_cost(FlashConfig(model="opt-6.7b", policy="all"), opt_trace,
                        min(prompt, opt_trace.tokens))
        rows.append(dict(p, part="prompt", param_model="opt-6.7b"))
    for bits in (16, 4):
        s = FlashSimulator(FlashConfig(model=quantized("opt-6.7b", bits), policy="all")
                           ).run(opt_trace).summary()
        rows.append({"part": "bits", "bits": bits, "chunk_bytes": s["chunk_bytes"],
                     "flash_bytes_per_token": s["flash_bytes_per_token"],
                     "throughput_bytes_per_s": s["throughput_bytes_per_s"],
                     "io_ms_per_token": s["io_ms_per_token"],
                     "time_ms_per_token": s["time_ms_per_token"],
                     "resident_gb": s["resident_bytes"] / 1e9})
    return [pd.DataFrame(rows)]


def _speed_rows(quick):
    """Seconds to simulate 1,000 tokens; quick times 250 (generating the trace costs ~15x the
    simulation) and scales by 4: simulation time is linear in tokens (one kernel pass each)."""
    import pandas as pd

    from simkit.flash import paper
    from simkit.flash.simulate import FlashConfig, FlashSimulator

    tokens = 250 if quick else 1000
    tr = paper.opt_trace(tokens)
    sim = FlashSimulator(FlashConfig(model="opt-6.7b", policy="all", window_tokens=5))
    sim.run(tr.head(8))                                  # load the compiled kernel
    import os
    t, c = time.perf_counter(), time.process_time()
    sim.run(tr).summary()                                # kernel + per-layer bursts + latency
    sec = (time.perf_counter() - t) * 1000 / tokens
    cpu = (time.process_time() - c) * 1000 / tokens
    return [pd.DataFrame([{"part": "speed", "tokens": 1000, "timed_tokens": tokens,
                           "layers": 32, "neurons": 16384, "simulate_s": sec, "cpu_s": cpu,
                           "load_1min": os.getloadavg()[0], "io_bursts": sim.config.io_bursts,
                           "needed_per_token": int(tr.predicted[1].size // tokens)}])]


@experiment("flash", cost=49)
def flash(quick: bool = True, outdir: Path = Path("results")):
    """LLM in a flash: Table 2 ladder, windowing fractions, real SmolLM2 predictor, storage."""
    import pandas as pd

    t2, traces, cal = _table2_rows(quick)
    falcon = _falcon_trace(cal["fitted_error_stay"], quick)
    host, slices = _host_measurements()
    try:
        parts = t2 + _error_model_rows() + _selection_rows() + \
            _falcon_rows(falcon, cal["fitted_error_stay"]) + \
            _table3_rows(traces["fitted-error-persistence"], falcon, host) + \
            _compute_validation_rows(host, slices) + \
            _window_rows(traces, quick) + _predictor_rows() + _dram_rows(traces["measured"]) + \
            _planning_rows(traces["fitted-error-persistence"]) + \
            _storage_rows(quick, Path(outdir)) + _speed_rows(quick)
    finally:
        _LOADED.clear()
    df = pd.concat(parts, ignore_index=True)
    df.attrs["calibration"] = cal
    summary = flash_summary(df, cal)
    fig = _figure(df)
    paths = save_outputs(df, fig, Path(outdir), "flash")
    return df, paths + [write_csv(summary, Path(outdir) / "flash-summary.csv")]


def flash_summary(df, cal):
    """Paper vs ours, one row per claim (REFERENCE.md section 3)."""
    import pandas as pd

    rows, row = summary_rows()

    t2 = df[df.part == "table2"]
    prm = df[df.part == "params"]
    for calib in ("measured", "fitted-error-persistence"):
        d = t2[t2.calibration == calib]
        pr = prm[prm.calibration == calib]
        fitted = [r.name for r in pr.itertuples() if r.provenance == "fitted"]
        used = "; ".join(f"{r.name} {r.value:.3g} ({r.provenance})" for r in pr.itertuples())
        tag = ("holds on fitted " + " and ".join(fitted)) if fitted else "no parameter fitted"
        for r in d.itertuples():
            ok = abs(r.io_ratio - 1) <= 0.10
            dep = r.step in ("windowing", "all")
            row(f"Table 2 I/O ms per token, {r.step} ({calib})",
                f"{r.paper_io_ms:.0f} ms", r.paper_io_ms, f"{r.io_ms_per_token:.0f} ms",
                r.io_ms_per_token, ok,
                f"loaded {r.loaded_gb:.3f} GB (paper {r.paper_loaded_gb}) at "
                f"{r.gb_per_s:.2f} GB/s (paper {r.paper_gb_per_s}), one burst per token (the "
                f"paper's arithmetic; per-layer bursts: {r.io_ms_per_layer_bursts:.0f} ms); "
                + (f"{tag}; parameters: {used}" if dep else
                   "depends on sizes, throughput and the published 5%/7% rates only"))
    d = t2[t2.calibration == "fitted-error-persistence"]
    for r in d.itertuples():
        if r.paper_dram_gb == 0:
            continue
        row(f"Table 2 DRAM GB, {r.step} (fitted error persistence)", f"{r.paper_dram_gb} GB",
            r.paper_dram_gb, f"{r.dram_gb:.2f} GB", r.dram_gb,
            abs(r.dram_gb / r.paper_dram_gb - 1) <= 0.10,
            "kept across tokens: resident weights + window cache (the paper's predictor row "
            "also holds the predictor, ~1.25% of the model)")
    em = df[df.part == "error_model"].set_index("predictor")
    if len(em):
        real = em.loc["real low-rank predictor"]
        for name in em.index[1:]:
            r = em.loc[name]
            row(f"real SmolLM2 trace, 97% sparsity, k=5: FFN loaded per token, {name}",
                f"{100 * real.loaded_fraction:.2f}% (real predictor)",
                100 * real.loaded_fraction, f"{100 * r.loaded_fraction:.2f}%",
                100 * r.loaded_fraction, abs(r.loaded_fraction / real.loaded_fraction - 1) <= 0.10,
                "same true active sets, same FP/FN rates "
                f"({100 * r.fp_rate:.1f}% / {100 * r.fn_rate:.1f}%); the reference is our "
                "measurement, not the paper")
    t3 = df[df.part == "table3"]
    for r in t3.itertuples():
        why = _table3_note(r)
        paper = f"{r.paper_ms:.0f} ms" if np.isfinite(r.paper_ms) else "(no paper number)"
        ok = abs(r.ours_ms / r.paper_ms - 1) <= 0.15 if np.isfinite(r.paper_ms) else True
        fit = ("" if r.step in ("naive", "hybrid") else
               "; holds on the error persistence fitted to OPT's 2.4% loaded (Table 2), ")
        row(f"Table 3 {r.param_model} ({r.backend}) {r.step}: {r.column} ms per token", paper,
            r.paper_ms, f"{r.ours_ms:.0f} ms", r.ours_ms, ok,
            f"{why}{fit or '; '}storage {r.storage} ({r.storage_kind}), one burst per "
            f"{r.io_bursts}; compute profile {r.compute_profile} ({r.profile_kind}): "
            f"{r.weights_per_s / 1e9:.2f} G weights/s, copy {r.copy_bytes_per_s / 1e9:.2f} GB/s; "
            f"loaded {100 * r.loaded_fraction:.2f}%, cached {100 * r.cached_fraction:.1f}% of "
            f"the FFN; compute = FFN {r.ffn_ms:.0f} + attention/head "
            f"{r.attn_ms:.0f} + predictor {r.predictor_ms:.0f} ms")
    cv = df[df.part == "compute_validation"]
    for r in cv.itertuples():
        row(f"compute term on this machine: {r.what}, predicted vs measured (numpy)",
            "(no paper number)", np.nan,
            f"{r.predicted_ms:.2f} vs {r.measured_ms:.2f} ms ({r.error_pct:+.0f}%)",
            r.error_pct, abs(r.error_pct) <= 25,
            f"rate {r.weights_per_s / 1e9:.2f} G weights/s measured on a 1640-row neuron cache "
            "(one BLAS thread, cold); the 2-vCPU machine is shared by other jobs, so timings "
            "are noisy")
    if len(cv):
        c = float(cv.copy_bytes_per_s.iloc[0])
        row("DRAM copy bandwidth for neuron-cache management (memcpy, this machine)",
            "(not in the paper; 20 GB/s was assumed before)", np.nan, f"{c / 1e9:.2f} GB/s",
            c / 1e9, True, "numpy.copyto of 64 MiB, best of 5")
    sel = df[df.part == "selection"]
    for r in sel.itertuples():
        if r.sparsity not in (0.9, 0.97):
            continue
        row(f"real SmolLM2, {r.selection} selection, {r.sparsity:.0%} sparsity: window (k=5) "
            "reuse, share of needed neurons already in DRAM (oracle)",
            "~0.76 (OPT: 1 - 2.4% / ~10%)", 0.76, f"{r.window_reuse:.2f}", r.window_reuse,
            abs(r.window_reuse / 0.76 - 1) <= 0.10 if r.sparsity == 0.9 else True,
            f"persistence P(active at t+1 | t) {r.persistence:.2f} pooled, per layer "
            f"{r.persistence_layer_min:.2f}..{r.persistence_layer_max:.2f} (first "
            f"{r.persistence_first_layer:.2f}, last {r.persistence_last_layer:.2f}); "
            + ("the paper's ~10% predicted density is the comparable one" if r.sparsity == 0.9
               else "at 97% only the true 3% is needed: not comparable to OPT's ~10% "
                    "predicted, no bar"))
    w = df[(df.part == "window") & (df.window_tokens == 5)]
    for calib in ("measured", "fitted-error-persistence"):
        d = w[w.calibration == calib].iloc[0]
        row(f"OPT windowing k=5: FFN loaded per token ({calib})", "2.4%", 2.4,
            f"{100 * d.loaded_fraction:.2f}%", 100 * d.loaded_fraction,
            abs(d.loaded_fraction / 0.024 - 1) <= 0.25,
            f"error persistence {cal['fitted_error_stay']:.2f} fitted to hit 2.4%, so this "
            "row holds by construction" if calib != "measured" else
            f"activation persistence measured per layer on the real SmolLM2 trace at 97% "
            f"sparsity (pooled {cal['stay_on']:.3f}), FP persistence {cal['fp_stay']:.3f} and "
            f"per-neuron FP propensity of its real predictor (80% of FPs on "
            f"{100 * cal['fp_hot_share']:.0f}% of neurons), at the paper's 5%/7% rates")
        row(f"OPT windowing k=5: FFN cached in DRAM ({calib})", "24%", 24.0,
            f"{100 * d.cached_fraction:.1f}%", 100 * d.cached_fraction,
            abs(d.cached_fraction / 0.24 - 1) <= 0.25,
            "a prediction in both rows (nothing was fitted to it)")
    f = df[df.part == "falcon"]
    if len(f):
        r = f.iloc[0]
        row("Falcon-7B windowing k=4: FFN loaded per token (OPT's fitted error persistence)",
            "3.1%",
            3.1, f"{100 * r.loaded_fraction:.2f}%", 100 * r.loaded_fraction,
            abs(r.loaded_fraction / 0.031 - 1) <= 0.25,
            "out of sample: 5% active in every layer (relufied, 95% sparse), measured per-layer "
            "activation persistence, the OPT predictor model; nothing fitted to Falcon")
        row("Falcon-7B windowing k=4: FFN cached in DRAM", "33%", 33.0,
            f"{100 * r.cached_fraction:.1f}%", 100 * r.cached_fraction,
            abs(r.cached_fraction / 0.33 - 1) <= 0.25, "")
    p = df[df.part == "predictor"].set_index("sparsity")
    if 0.97 in p.index:
        r = p.loc[0.97]
        row("low-rank predictor false negatives (SmolLM2, 97% sparsity, held-out text)",
            "5% (OPT)", 5.0, f"{100 * r.fn_rate:.1f}%", 100 * r.fn_rate, r.fn_rate <= 0.10,
            "rank 128 of d_model 576; threshold set for 5% FN on the calibration text")
        row("low-rank predictor false positives (SmolLM2, 97% sparsity)", "7% (OPT)", 7.0,
            f"{100 * r.fp_rate:.1f}%", 100 * r.fp_rate, r.fp_rate <= 0.14, "")
        row("over-prediction (predicted / active)", "~3x", 3.0, f"{r.over_prediction:.2f}x",
            r.over_prediction, 1.5 <= r.over_prediction <= 6, "")
    for s in (0.5, 0.9):
        if s in p.index:
            r = p.loc[s]
            row(f"SmolLM2 greedy tokens kept with the FFN sparsified to {s:.0%} (oracle)",
                "CATS/TEAL: ~50% sparsity within 1-2% quality", np.nan,
                f"{100 * r.top1_agreement_sparse_oracle:.1f}% top-1 agreement",
                100 * r.top1_agreement_sparse_oracle, True,
                "magnitude threshold on a SwiGLU model; the paper's 90-97% assumes ReLU models")
    d = df[df.part == "dram"].set_index("memory_management")
    if len(d) == 2:
        a, b = d.loc["preallocated"], d.loc["reallocate"]
        row("memory management: bytes copied per token, preallocated vs reallocation",
            "paper: delete = copy the last row, O(c d)", np.nan,
            f"{a.copied_bytes_per_token / 1e6:.1f} MB vs {b.copied_bytes_per_token / 1e6:.1f} MB",
            b.copied_bytes_per_token / max(a.copied_bytes_per_token, 1),
            a.copied_bytes_per_token < b.copied_bytes_per_token,
            f"ours_value = ratio; measured on one layer with real rows: "
            f"{a.measured_layer_ms_per_token:.2f} vs {b.measured_layer_ms_per_token:.2f} ms")
    v = df[df.part == "validation"]
    for r in v.itertuples():
        row(f"read schedule on a real file ({r.param_model}, {r.policy}, "
            f"{int(r.chunk_bytes) // 1024} KiB reads, one burst per {r.io_bursts}): predicted vs "
            f"measured I/O, median of {int(r.repeats)} runs",
            "(no paper number; issue 16 bar +-20%)", np.nan,
            f"{1e3 * r.predicted_s:.0f} vs {1e3 * r.measured_s:.0f} ms ({r.error_pct:+.0f}%; "
            f"runs {r.error_pct_min:+.0f}..{r.error_pct_max:+.0f}%)",
            r.error_pct, abs(r.error_pct) <= 20,
            "a schedule the calibration did not see (its grid: 4/16/64 KiB and 1 MiB at 1, 4, 8 "
            "threads; its 4/16 KiB x 8 points and bursts measured again just before each run; 8 "
            "threads here); measured/predicted "
            f"per run: {r.runs}; load {r.load_1min_min:.1f}-{r.load_1min_max:.1f}; this "
            "machine's disk is a virtual disk, not flash, shared with other jobs")
    fit = df[df.part == "storage_fit"]
    for r in fit.itertuples():
        row(f"this disk at {int(r.threads)} threads: per-request latency and per-stream rate "
            "(line fitted to the bench grid)", "(no paper number)", np.nan,
            f"{1e6 * r.latency_s:.0f} us + c / {r.stream_bytes_per_s / 1e6:.0f} MB/s",
            1e6 * r.latency_s, True,
            f"fitted on {int(r.points)} chunk sizes, largest relative misfit "
            f"{100 * r.max_rel_error:.0f}% (the model interpolates between points and uses the "
            "line only above the largest chunk)")
    hc = df[df.part == "hotcold"]
    for frac in sorted(set(hc.resident_fraction.dropna())):
        d = hc[hc.resident_fraction == frac].set_index("order")
        a, h = d.loc["arbitrary ids"], d.loc["hottest first, held out"]
        row(f"hot/cold split, real SmolLM2 trace at 97% sparsity, no window, "
            f"{frac:.0%} of each layer resident: FFN loaded per token, arbitrary -> hottest",
            "issue 16: 20.6% -> 15.8%", 15.8,
            f"{100 * a.loaded_fraction:.1f}% -> {100 * h.loaded_fraction:.1f}% "
            f"(in-sample {100 * d.loc['hottest first'].loaded_fraction:.1f}%)",
            100 * h.loaded_fraction, h.loaded_fraction < a.loaded_fraction,
            "measured on the real trace with its low-rank predictor; held out: hottest "
            "counted on the first half, loads on the second half")
    for r in df[df.part == "budget"].itertuples():
        row(f"window from a DRAM budget of {r.budget_gb} GB (OPT-6.7B All, KV cache at "
            f"{int(r.context_tokens)} tokens counted)", "(no paper number)", np.nan,
            f"k = {r.window_tokens}: need {r.dram_need_gb:.2f} GB (KV {r.kv_cache_gb:.2f} GB), "
            f"loaded {100 * r.loaded_fraction:.2f}%", r.window_tokens if r.window_tokens
            is not None else np.nan, True, "largest window whose resident weights + "
            "preallocated neuron cache + KV cache fit; fitted error persistence trace")
    for r in df[df.part == "prompt"].itertuples():
        row(f"prompt phase, OPT-6.7B All, {int(r.prompt_tokens)} tokens at once: FFN read",
            "(no paper number)", np.nan,
            f"{100 * r.loaded_fraction:.1f}% of the FFN, {1e3 * r.io_s:.0f} ms I/O, "
            f"{1e3 * r.per_token_s:.0f} ms per prompt token", 100 * r.loaded_fraction, True,
            "union of the prompt's predicted neurons, one burst per layer; compute at the "
            "matrix-vector rate (an upper bound for a batched prompt)")
    b = df[df.part == "bits"].set_index("bits")
    if len(b) == 2:
        row("OPT-6.7B All at 4-bit vs 16-bit weights: I/O ms per token", "(no paper number)",
            np.nan, f"{b.loc[4].io_ms_per_token:.0f} vs {b.loc[16].io_ms_per_token:.0f} ms",
            b.loc[4].io_ms_per_token, b.loc[4].io_ms_per_token < b.loc[16].io_ms_per_token,
            f"a quarter of the bytes in {int(b.loc[4].chunk_bytes) // 1024} KiB bundles, read "
            f"at {b.loc[4].throughput_bytes_per_s / 1e9:.2f} GB/s (below the table's 8 KiB: "
            "same IOPS); scales not counted")
    sp = df[df.part == "speed"]
    if len(sp):
        s = float(sp.simulate_s.iloc[0])
        c = float(sp.cpu_s.iloc[0]) if "cpu_s" in sp else np.nan
        row("simulate 1,000 tokens, 32 layers x 16K neurons, windowing + bundling + per-layer "
            "bursts + latency model", "< 1 s", 1.0, f"{s:.2f} s wall, {c:.2f} s CPU", s,
            s < 1.0, "issue 16 target; one process, compiled kernel, on the shared 2-vCPU "
            f"machine at load {float(sp.load_1min.iloc[0]):.1f}"
            + (f"; {int(sp.timed_tokens.iloc[0])} tokens timed, scaled to 1,000"
               if "timed_tokens" in sp and sp.timed_tokens.iloc[0] != 1000 else ""))
    return pd.DataFrame(rows)


def _table3_note(r) -> str:
    """Why a Table 3 row holds or cannot."""
    if r.backend == "host":
        return ("this machine: compute and memory from measured numpy rates, I/O from the M1 "
                "Max figures (this disk is virtual, not flash); per-layer bursts")
    if r.step == "naive":
        return ("out of sample: the whole model read at 6.1 GB/s and computed dense at the "
                "rate derived from the All row" + (
                    "; Falcon at fp32 (the paper's 35.5 KiB bundle) reads 28 GB, more than "
                    "the paper's naive total allows: its naive row cannot be fp32"
                    if r.param_model == "falcon-7b" else ""))
    if r.step == "hybrid":
        return "out of sample: half the model resident, the rest read sequentially"
    if r.param_model == "falcon-7b":
        return ("out of sample: the OPT-derived CPU profile on Falcon's fp32 shapes (the "
                "paper's Falcon predictor ranks 256/1152)")
    if r.backend == "gpu-pcie":
        return ("GPU variant: neurons in pinned host memory, copied over PCIe 4.0 x16 "
                "(31.5 GB/s published, 5 us per copy assumed); no paper number")
    if r.backend == "gpu" and r.column in ("io", "total"):
        return ("storage rtx4090-linux-derived: derived from this very row (the paper "
                "publishes no SSD figures for its GPU machine), so the I/O is near by "
                "construction, per-layer bursts on top")
    if r.column in ("compute", "mem"):
        return ("near by construction: the profile's rate is derived from this row at the "
                "paper's 24% cached / 2.4% loaded; ours differs by our cached and copied rows")
    return "sum of the three terms (Table 3 does not overlap them)"


def _figure(df):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 8.5))
    (a, b), (c, e) = fig.subplots(2, 2)
    t2 = df[df.part == "table2"]
    steps = list(dict.fromkeys(t2.step))
    x = np.arange(len(steps))
    paper = t2[t2.calibration == "measured"].set_index("step").loc[steps, "paper_io_ms"]
    a.bar(x - 0.27, paper, 0.27, label="paper (Table 2)", color="k")
    for k, calib in enumerate(("measured", "fitted-error-persistence")):
        v = t2[t2.calibration == calib].set_index("step").loc[steps, "io_ms_per_token"]
        a.bar(x + k * 0.27, v, 0.27, label=f"ours ({calib} persistence)")
    a.set_yscale("log")
    a.set_xticks(x, steps, rotation=15, fontsize=8)
    a.set_ylabel("I/O ms per token")
    a.set_title("Table 2 ladder, OPT-6.7B, M1 Max throughput figures")
    a.legend(fontsize=8)
    w = df[df.part == "window"]
    for (calib, pred), d in w.groupby(["calibration", "predictor"], sort=False):
        lab = f"{d.param_model.iloc[0]} {calib}, {pred}"
        ln, = b.plot(d.window_tokens, 100 * d.loaded_fraction, "o-", ms=3, label=lab)
        b.plot(d.window_tokens, 100 * d.cached_fraction, "s--", ms=3, color=ln.get_color())
    b.axhline(2.4, color="k", lw=0.8, ls=":")
    b.axhline(24, color="k", lw=0.8, ls=":")
    b.plot([5], [2.4], "k*", ms=12, label="paper: 2.4% loaded, 24% cached (OPT, k=5)")
    b.plot([5], [24], "k*", ms=12)
    b.set_yscale("log")
    b.set_xlabel("window (tokens)")
    b.set_ylabel("% of FFN: loaded per token (solid), cached (dashed)")
    b.set_title("Windowing: loaded and cached FFN vs window size")
    b.legend(fontsize=6)
    st = df[(df.part == "storage") & (df["mode"] == "random")]
    for t, d in st.groupby("threads"):
        c.plot(d.chunk_bytes / 1024, d.bytes_per_s / 1e9, "o-", ms=3, label=f"{int(t)} threads")
    seq = df[(df.part == "storage") & (df["mode"] == "sequential")]
    if len(seq):
        c.axhline(seq.bytes_per_s.iloc[0] / 1e9, color="k", ls="--", lw=1, label="sequential")
    c.set_xscale("log", base=2)
    c.set_xlabel("chunk (KiB)")
    c.set_ylabel("GB/s")
    c.set_title("This machine: random reads, O_DIRECT (virtual disk, not flash)")
    c.legend(fontsize=7)
    p = df[df.part == "predictor"]
    e.plot(100 * p.sparsity, 100 * p.fn_rate, "o-", label="FN rate (of active)")
    e.plot(100 * p.sparsity, 100 * p.fp_rate, "s-", label="FP rate (of inactive)")
    e.plot(100 * p.sparsity, 100 * p.top1_agreement_sparse_oracle, "^-",
           label="top-1 agreement, oracle-sparse FFN")
    e.plot(100 * p.sparsity, 100 * p.top1_agreement_sparse_predicted, "v-",
           label="top-1 agreement, predicted-sparse FFN")
    e.set_xlabel("target sparsity (%)")
    e.set_ylabel("%")
    e.set_title("Real SmolLM2-135M: low-rank predictor (rank 128) and sparse decoding")
    e.legend(fontsize=7)
    fig.tight_layout()
    return fig
