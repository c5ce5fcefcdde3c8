"""The flash simulator's read schedule executed on a real file: measured vs predicted I/O time.

``validate_schedule`` lays a model's FFN out in a file as a policy says (bundled: one chunk of
``neuron_bytes`` per neuron; unbundled: one region per matrix, one ``vector_bytes`` read per
neuron and matrix), plans the reads the simulator would issue for an activation trace
(windowing included), executes them token by token -- one burst per layer (a layer's reads
start when the one before is done, as after its predictor) or one per token -- with up to
``threads`` parallel reads (the readers of ``simkit.bench.storage``), ``repeats`` times, and
compares the measured time with the simulator's prediction from a calibration (median error
over the repeats and its spread).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from simkit.bench.storage import Reader, issue_burst, make_file


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
                      direct: bool = True, io_bursts: str = "layer", repeats: int = 1):
    """Measured vs predicted I/O time of the simulator's read schedule on a real file.

    ``io_bursts="layer"``: each layer's reads are one burst, the next layer's start when it is
    done (as after the layer's predictor); ``"token"``: one burst per token. The schedule is
    executed ``repeats`` times; the prediction is the simulator's own (``FlashStats.
    sparse_io_seconds``). Returns (per-token DataFrame with a ``repeat`` column, summary dict:
    ``error_pct`` is the median over repeats of (predicted - measured) / measured,
    ``error_pct_min``/``max`` the spread)."""
    import pandas as pd

    from simkit.flash.simulate import FlashConfig, FlashSimulator, read_schedule
    from simkit.flash.storage import load_calibration

    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: must be an integer >= 1, got {repeats!r}")
    st = load_calibration(storage)
    cfg = FlashConfig(model=model, policy=policy, window_tokens=window, storage=st,
                      predictor=predictor, threads=threads, io_bursts=io_bursts)
    sched = read_schedule(cfg, trace, model)
    n_tok = len(sched) if tokens is None else min(tokens, len(sched))
    pol = cfg.policy_obj
    need = model.layers * model.ffn * model.neuron_bytes
    path = Path(path)
    if not (path.is_file() and path.stat().st_size >= need):   # a larger file serves as well
        path = make_file(path, need)
    stats = FlashSimulator(cfg).run(trace)
    pred = stats.sparse_io_seconds()
    rows = []
    with Reader(path, direct) as reader, ThreadPoolExecutor(threads) as pool:
        chunk = model.neuron_bytes if pol.bundling else model.vector_bytes
        if chunk % reader.align:
            raise ValueError(f"model: chunk {chunk} B is not a multiple of the direct-I/O "
                             f"alignment {reader.align} B; pick a model whose rows are")
        for rep in range(repeats):
            for t in range(n_tok):
                layer = sched[t][0]
                off, chunk = schedule_offsets(sched[t], model, pol.bundling)
                if io_bursts == "layer":
                    per = model.ffn_matrices if not pol.bundling else 1
                    lay = np.repeat(layer, per)
                    bursts = [off[lay == l] for l in np.unique(layer)]
                else:
                    bursts = [off]
                reader.drop_cache()
                start = time.perf_counter()
                for b in bursts:
                    issue_burst(pool, reader.fd, b, chunk, threads)
                wall = time.perf_counter() - start
                rows.append({"repeat": rep, "token": t, "reads": len(off), "bursts": len(bursts),
                             "chunk_bytes": chunk, "bytes": len(off) * chunk,
                             "measured_s": wall, "predicted_s": float(pred[t])})
        direct_used, note = reader.direct, reader.note
    df = pd.DataFrame(rows)
    summary = {"policy": pol.name, "io_bursts": io_bursts, "tokens": n_tok,
               "chunk_bytes": int(chunk), "threads": threads,
               "direct": direct_used, "note": note, "storage": st.kind,
               "simulator_loaded_fraction": stats.summary()["loaded_fraction"]}
    return df, summarize(df, summary)


def summarize(df, summary: dict) -> dict:
    """``summary`` with the repeats of ``df`` (columns repeat, reads, bytes, measured_s,
    predicted_s per token) folded in: per repeat the sums over tokens; ``error_pct`` is the
    median over repeats of (predicted - measured) / measured, ``error_pct_min``/``max`` the
    spread, ``measured_s``/``predicted_s`` the medians (a repeat may carry its own
    prediction, from a calibration measured next to it)."""
    per_rep = df.groupby("repeat")[["measured_s", "predicted_s"]].sum()
    errs = 100.0 * (per_rep.predicted_s - per_rep.measured_s) / per_rep.measured_s
    first = df[df.repeat == df.repeat.min()]
    return dict(summary, reads=int(first.reads.sum()), bytes=int(first.bytes.sum()),
                repeats=len(per_rep), measured_s=float(per_rep.measured_s.median()),
                measured_s_min=float(per_rep.measured_s.min()),
                measured_s_max=float(per_rep.measured_s.max()),
                predicted_s=float(per_rep.predicted_s.median()),
                error_pct=float(errs.median()), error_pct_min=float(errs.min()),
                error_pct_max=float(errs.max()))
