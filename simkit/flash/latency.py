"""Per-token latency of flash-offloaded inference ("LLM in a flash" Table 3: I/O + memory
management + compute, REFERENCE.md 3.2).

Per token, with ``p`` = a ``ComputeProfile``::

    io_s        the storage model's flash reads (``simulate.FlashStats``)
    mem_s       = bytes copied by neuron-cache management / p.copy_bytes_per_s
    ffn_s       = FFN weights computed / p.weights_per_s     (windowing: every cached row, the
                  paper computes on matrix[:num_used]; otherwise the needed neurons; dense
                  policies: the whole FFN)
    attn_s      = (attention projections + KV cache read at ``context_tokens``) / p.weights_per_s
    head_s      = output projection (vocab x d_model) / p.weights_per_s
    predictor_s = low-rank predictor weights, rank r: r (d_model + ffn) per layer (OPT: 128,
                  1024 in the last 4 layers, REFERENCE 3.3) / p.weights_per_s
    compute_s   = ffn_s + attn_s + head_s + predictor_s
    time_s      = io_s + mem_s + compute_s, or mem_s + max(io_s, compute_s) with
                  ``p.overlap_io`` and one burst per token (Table 3's totals are the plain
                  sums: 105 + 58 + 506 = 669); with per-layer bursts nothing overlaps: a
                  layer's reads wait for its predictor, which waits for the layer before

Batch-1 decoding touches every weight once per token, so compute is priced per weight (a
multiply-add), the same for any dtype: ``weights_per_s`` is an effective matrix-vector rate.

Profiles: ``paper-m1max-cpu`` and ``paper-rtx4090-gpu`` are derived [D] from the paper's own
Table 3 breakdown of OPT-6.7B "All" (compute 506 / 20 ms, memory 58 / 34 ms) with this module's
weight count and one row copied per row loaded (a delete copies the last row into the hole;
in steady state a row leaves per row that enters) at the paper's 2.4% loaded; ``measure_host()``
measures this machine: numpy throughput of one 7B-shaped FFN layer on a 1,640-row cache and
``memcpy`` bandwidth (``numpy.copyto`` of 64 MiB); the rate is checked on other cache sizes
and on a dense 4096 x 4096 product by the ``flash`` experiment.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from simkit.flash.models import FlashModel, get_model

# low-rank predictor ranks (REFERENCE 3.3 [P]): (rank, wide rank, layers at the wide rank,
# where: "last" or "middle")
PREDICTOR_RANKS = {"opt-6.7b": (128, 1024, 4, "last"), "falcon-7b": (256, 1152, 4, "last"),
                   "llama-2-7b": (256, 1024, 4, "middle")}
# Table 3 [P], OPT-6.7B "All": (I/O, memory, compute) ms
TABLE3_OPT = {"cpu": (105.0, 58.0, 506.0), "gpu": (30.0, 34.0, 20.0)}
PAPER_LOADED = 0.024
PAPER_CACHED = 0.24


@dataclass(frozen=True)
class ComputeProfile:
    name: str
    weights_per_s: float            # effective matrix-vector rate (weights per second)
    copy_bytes_per_s: float         # DRAM copy bandwidth of neuron-cache management
    overlap_io: bool = False
    kind: str = "derived"           # derived (from published numbers) | measured
    sources: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in ("weights_per_s", "copy_bytes_per_s"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{f}: must be > 0, got {v!r}")


def predictor_weights(m: FlashModel) -> int:
    """Weights of the low-rank predictor, all layers."""
    r, wide, n_wide, where = PREDICTOR_RANKS.get(m.name, (128, 128, 0, "last"))
    ranks = np.full(m.layers, r)
    if n_wide:
        start = m.layers - n_wide if where == "last" else (m.layers - n_wide) // 2
        ranks[start:start + n_wide] = wide
    return int(ranks.sum()) * (m.d_model + m.ffn)


def attention_weights(m: FlashModel, context_tokens: int) -> int:
    """Attention projections plus the K and V vectors read, per token, all layers."""
    kv = 2 * m.kv_heads * m.head_dim * context_tokens
    return m.layers * (m.attention_params_per_layer + kv)


def head_weights(m: FlashModel) -> int:
    return m.vocab * m.d_model


def _paper_profile(name: str, backend: str) -> ComputeProfile:
    """Throughputs at which our weight count for OPT-6.7B "All" (24% of the FFN cached and
    computed, attention at 256 tokens of context, head, predictor) takes Table 3's compute
    time, and one row copied per loaded row (2.4%) takes its memory time."""
    m = get_model("opt-6.7b")
    _, mem_ms, comp_ms = TABLE3_OPT[backend]
    w = (PAPER_CACHED * m.ffn_params + attention_weights(m, 256) + head_weights(m)
         + predictor_weights(m))
    copied = PAPER_LOADED * m.layers * m.ffn * m.neuron_bytes
    return ComputeProfile(
        name, w / (comp_ms / 1e3), copied / (mem_ms / 1e3), False, "derived",
        {"weights_per_s": f"[D] OPT-6.7B All, Table 3 {backend.upper()} compute {comp_ms:.0f} ms "
                          f"over {w / 1e9:.2f} G weights (24% of the FFN cached, attention, "
                          "head, predictor)",
         "copy_bytes_per_s": f"[D] Table 3 {backend.upper()} memory {mem_ms:.0f} ms over "
                             f"{copied / 1e9:.3f} GB (one 16 KiB row copied per row loaded, "
                             "2.4% of the FFN)"})


PROFILES = {"paper-m1max-cpu": _paper_profile("paper-m1max-cpu", "cpu"),
            "paper-rtx4090-gpu": _paper_profile("paper-rtx4090-gpu", "gpu")}


def get_profile(name: str | ComputeProfile) -> ComputeProfile:
    if isinstance(name, ComputeProfile):
        return name
    if name == "host":
        return measure_host()
    if name not in PROFILES:
        raise ValueError(f"compute: unknown {name!r}; choose from "
                         f"{', '.join(list(PROFILES) + ['host'])}")
    return PROFILES[name]


# ---- this machine ------------------------------------------------------------------------
COLD_BYTES = 256 << 20     # weights cycled through per measurement: more than any L3 cache


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _best_cold(fns, repeats: int) -> float:
    """Best time of one call, the calls cycling through ``fns`` (each over its own weights,
    together more than the caches hold: every call reads its weights from DRAM, as a token
    does)."""
    best = float("inf")
    for _ in range(repeats):
        for fn in fns:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
    return best


def measure_gemv(rows: int, cols: int = 4096, repeats: int = 3, seed: int = 0) -> float:
    """Weights per second of y = W x, W (rows, cols) float32, cold (best call)."""
    rng = np.random.default_rng(seed)
    n = max(2, -(-COLD_BYTES // (rows * cols * 4)))
    Ws = [rng.standard_normal((rows, cols), dtype=np.float32) for _ in range(n)]
    x = rng.standard_normal(cols, dtype=np.float32)
    return rows * cols / _best_cold([lambda W=W: W @ x for W in Ws], repeats)


def measure_copy(nbytes: int = 64 << 20, repeats: int = 5) -> float:
    """memcpy bandwidth (bytes copied per second) of numpy.copyto over ``nbytes``."""
    a = np.ones(nbytes, np.uint8)
    b = np.empty_like(a)
    return nbytes / _best(lambda: np.copyto(b, a), repeats)


CALIBRATION_ROWS = 1640      # 10% of a 7B layer's 16384 neurons: the paper's predicted set


def measure_host(repeats: int = 3) -> ComputeProfile:
    """This machine: the weights-per-second rate of one 7B-shaped FFN layer computed on a
    neuron-cache matrix of 1,640 rows (``measure_ffn_slice``, cold) and memcpy bandwidth."""
    w = CALIBRATION_ROWS * 2 * 4096 / measure_ffn_slice(CALIBRATION_ROWS, repeats=repeats)
    c = measure_copy()
    return ComputeProfile("host", w, c, False, "measured",
                          {"weights_per_s": "measured: numpy float32 FFN layer on a 1640 x "
                                            "8192 neuron-cache matrix (d_model 4096), cold "
                                            f"(256 MiB cycled), best call of {repeats} rounds",
                           "copy_bytes_per_s": "measured: numpy.copyto of 64 MiB, best of 5"})


def measure_ffn_slice(rows: int, d_model: int = 4096, repeats: int = 3, seed: int = 1) -> float:
    """Seconds of one layer's FFN on a neuron-cache matrix of ``rows`` bundled rows (up column
    and down row, float32), cold: u = M[:, :d] x, y = M[:, d:]^T relu(u) -- the paper's
    compute on matrix[:num_used] (REFERENCE 3.4)."""
    rng = np.random.default_rng(seed)
    n = max(2, -(-COLD_BYTES // (rows * 2 * d_model * 4)))
    Ms = [rng.standard_normal((rows, 2 * d_model), dtype=np.float32) for _ in range(n)]
    x = rng.standard_normal(d_model, dtype=np.float32)

    def run(M):
        return np.maximum(M[:, :d_model] @ x, 0) @ M[:, d_model:]
    return _best_cold([lambda M=M: run(M) for M in Ms], repeats)


# ---- the model -------------------------------------------------------------------------
def add_latency(df, stats, profile: ComputeProfile, context_tokens: int = 256):
    """Per-token columns ``df`` (a DataFrame or a dict of arrays, ``FlashStats``'s) with the
    latency columns added."""
    m = stats.model
    pol = stats.policy
    n = len(df["io_s"])
    if not pol.predictor:
        ffn_w = np.full(n, float(m.ffn_params))
    elif stats.config.window:
        ffn_w = (df["cache_rows"] + df["static_hits"]) * m.ffn_matrices * m.d_model
    else:
        ffn_w = df["needed_neurons"] * m.ffn_matrices * m.d_model
    w = profile.weights_per_s
    df["mem_s"] = df["copied_bytes"] / profile.copy_bytes_per_s
    df["ffn_s"] = ffn_w / w
    df["attn_s"] = np.full(n, attention_weights(m, context_tokens) / w)
    df["head_s"] = np.full(n, head_weights(m) / w)
    df["predictor_s"] = np.full(n, (predictor_weights(m) / w) if pol.predictor else 0.0)
    df["compute_s"] = df["ffn_s"] + df["attn_s"] + df["head_s"] + df["predictor_s"]
    if profile.overlap_io and stats.config.io_bursts == "token":
        df["time_s"] = df["mem_s"] + np.maximum(df["io_s"], df["compute_s"])
    else:
        df["time_s"] = df["io_s"] + df["mem_s"] + df["compute_s"]
    return df
