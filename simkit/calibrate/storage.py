"""The flash simulator's read schedule executed on a real file: measured vs predicted I/O time.

``validate_schedule`` lays a model's FFN out in a file as a policy says (bundled: one chunk of
``neuron_bytes`` per neuron; unbundled: one region per matrix, one ``vector_bytes`` read per
neuron and matrix), plans the reads the simulator would issue for an activation trace
(windowing included), executes them token by token with ``threads`` parallel reads (the
readers of ``simkit.bench.storage``), and compares the measured time with the cost model's
prediction from a calibration.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from simkit.bench.storage import Reader, make_file, read_chunks


def schedule_offsets(loads, model, bundled: bool):
    """Reads (offset, length) for loaded (layer, neuron) pairs in the policy's file layout::

        bundled:    [layer 0: neuron 0 | neuron 1 | ...][layer 1: ...]     neuron_bytes each
        unbundled:  [layer 0: matrix 0 (ffn vectors) | matrix 1 | ...][layer 1: ...]
    """
    layer, neuron = loads
    if bundled:
        off = (layer.astype(np.int64) * model.ffn + neuron) * model.neuron_bytes
        return off, model.neuron_bytes
    m = np.arange(model.ffn_matrices, dtype=np.int64)
    base = (layer.astype(np.int64)[:, None] * model.ffn_matrices + m[None, :]) * model.ffn
    off = (base + neuron[:, None]) * model.vector_bytes
    return off.ravel(), model.vector_bytes


def validate_schedule(trace, model, policy: str, storage, path: Path, window: int = 5,
                      threads: int = 32, predictor: str = "trace", tokens: int | None = None,
                      direct: bool = True):
    """Measured vs predicted I/O time of the simulator's read schedule on a real file.
    Returns (per-token DataFrame, summary dict)."""
    import pandas as pd

    from simkit.flash.simulate import FlashConfig, FlashSimulator, read_schedule
    from simkit.flash.storage import load_calibration

    st = load_calibration(storage)
    cfg = FlashConfig(model=model, policy=policy, window_tokens=window,
                      predictor=predictor, threads=threads)
    sched = read_schedule(cfg, trace, model)
    n_tok = len(sched) if tokens is None else min(tokens, len(sched))
    pol = cfg.policy_obj
    need = model.layers * model.ffn * model.neuron_bytes
    path = make_file(Path(path), need)
    stats = FlashSimulator(cfg).run(trace)
    rows = []
    with Reader(path, direct) as reader, ThreadPoolExecutor(threads) as pool:
        chunk = None
        for t in range(n_tok):
            off, chunk = schedule_offsets(sched[t], model, pol.bundling)
            if chunk % reader.align:
                raise ValueError(f"model: chunk {chunk} B is not a multiple of the direct-I/O "
                                 f"alignment {reader.align} B; pick a model whose rows are")
            reader.drop_cache()
            parts = np.array_split(off, min(threads, max(len(off), 1)))
            start = time.perf_counter()
            futs = [pool.submit(read_chunks, reader.fd, p, chunk, None) for p in parts if len(p)]
            for f in futs:
                f.result()
            wall = time.perf_counter() - start
            pred = st.read_seconds(len(off) * chunk, chunk, threads)
            rows.append({"token": t, "reads": len(off), "chunk_bytes": chunk,
                         "bytes": len(off) * chunk, "measured_s": wall, "predicted_s": pred})
        direct_used, note = reader.direct, reader.note
    df = pd.DataFrame(rows)
    meas, pred = float(df.measured_s.sum()), float(df.predicted_s.sum())
    summary = {"policy": pol.name, "tokens": n_tok, "reads": int(df.reads.sum()),
               "bytes": int(df.bytes.sum()), "chunk_bytes": int(chunk or 0),
               "threads": threads, "measured_s": meas, "predicted_s": pred,
               "error_pct": 100.0 * (pred - meas) / meas if meas else float("nan"),
               "direct": direct_used, "note": note, "storage": st.kind,
               "simulator_loaded_fraction": stats.summary()["loaded_fraction"]}
    return df, summary
