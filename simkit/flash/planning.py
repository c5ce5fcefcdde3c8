"""Planning with the flash simulator: the window that fits a DRAM budget (KV cache counted),
and the prompt phase.

- ``window_for_budget``: runs the simulator for each window size and keeps the largest whose
  DRAM need (``FlashStats.summary()["dram_need_bytes"]``: resident weights + the preallocated
  neuron-cache matrices + the KV cache at ``context_tokens``) fits the budget; a larger window
  loads less per token, so the largest that fits is the one to take.
- ``prompt_cost``: the prompt's ``P`` tokens go through each layer together, so a layer reads
  the union of the P tokens' needed neurons once (one burst per layer, after its predictor),
  and computes P tokens over those rows. Compute is priced at the profile's matrix-vector
  rate per token: an upper bound, since a batched prompt reuses each weight P times.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from simkit.flash.activations import ActivationTrace
from simkit.flash.latency import attention_weights, head_weights, predictor_weights
from simkit.flash.simulate import FlashConfig, FlashSimulator

WINDOWS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16)


def window_for_budget(trace: ActivationTrace, budget_bytes: float, config: FlashConfig,
                      windows=WINDOWS):
    """(largest window that fits, or None; one row per window tried)."""
    import pandas as pd

    if not budget_bytes > 0:
        raise ValueError(f"budget_bytes: must be > 0, got {budget_bytes!r}")
    if not config.policy_obj.windowing:
        raise ValueError(f"policy: {config.policy!r} has no windowing to size")
    rows = []
    for k in windows:
        s = FlashSimulator(replace(config, window_tokens=int(k))).run(trace).summary()
        rows.append({"window_tokens": int(k), "dram_need_bytes": s["dram_need_bytes"],
                     "kv_cache_bytes": s["kv_cache_bytes"],
                     "prealloc_cache_bytes": s["prealloc_cache_bytes"],
                     "loaded_fraction": s["loaded_fraction"],
                     "io_ms_per_token": s["io_ms_per_token"],
                     "fits": s["dram_need_bytes"] <= budget_bytes})
    df = pd.DataFrame(rows)
    ok = df[df.fits]
    best = int(ok.window_tokens.max()) if len(ok) else None
    return best, df


def prompt_cost(config: FlashConfig, trace: ActivationTrace, prompt_tokens: int) -> dict:
    """Flash reads and time of the prompt phase over the trace's first ``prompt_tokens``."""
    if not isinstance(prompt_tokens, int) or not 1 <= prompt_tokens <= trace.tokens:
        raise ValueError(f"prompt_tokens: must be an integer in 1..{trace.tokens}, got "
                         f"{prompt_tokens!r}")
    sim = FlashSimulator(config)
    m, pol, st, prof = config.shape, config.policy_obj, sim.storage, sim.profile
    L, N = m.layers, m.ffn
    static = int(round(config.static_fraction() * N))
    if pol.predictor:
        ptr, idx = trace.sets("predicted" if config.predictor == "trace" else "active")
        need = np.zeros((L, N), bool)
        for t in range(prompt_tokens):
            for l in range(L):
                r = t * L + l
                need[l, idx[ptr[r]:ptr[r + 1]]] = True
        need[:, :static] = False
        loads = need.sum(axis=1)
        reads = loads * (1 if pol.bundling else m.ffn_matrices)
        chunk = m.neuron_bytes if pol.bundling else m.vector_bytes
        io = float(st.burst_seconds(reads, chunk, config.threads).sum())
        dense = 0 if pol.hybrid else m.resident_bytes
        ffn_rows = loads.sum() + static * L
    else:
        loads = np.full(L, N - static)
        dense = m.total_bytes - (m.resident_bytes if pol.hybrid else 0) \
            - static * L * m.neuron_bytes
        io = 0.0
        ffn_rows = L * N
    io += dense / st.sequential_bytes_per_s
    w = prof.weights_per_s
    compute = prompt_tokens * (ffn_rows * m.ffn_matrices * m.d_model
                               + attention_weights(m, prompt_tokens)
                               + (predictor_weights(m) if pol.predictor else 0)) / w \
        + head_weights(m) / w
    return {"prompt_tokens": prompt_tokens, "loaded_fraction": float(loads.sum()) / (L * N),
            "flash_bytes": float(loads.sum()) * m.neuron_bytes * bool(pol.predictor) + dense,
            "io_s": io, "compute_s": compute, "time_s": io + compute,
            "per_token_s": (io + compute) / prompt_tokens}
