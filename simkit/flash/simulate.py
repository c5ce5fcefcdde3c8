"""The flash inference simulator: per token, what is read from flash, what it costs, what the
DRAM neuron cache does.

Per token (REFERENCE.md 3.1)::

    T = T_io + T_mem + T_compute                   (latency.py: the terms and their overlap)
    T_io  = dense_bytes / sequential + sparse reads in bursts (storage.burst_seconds): one
            burst per layer (``io_bursts="layer"``, default: a layer's reads start after its
            predictor has run) or one per token (``"token"``: the paper's Table 2 arithmetic,
            bytes / throughput when bursts are long)
    T_mem = rows copied by cache management * neuron_bytes / copy_bytes_per_s
    T_compute = (FFN computed + attention + head + predictor weights) / weights_per_s

``compute`` names a ``latency.ComputeProfile`` (``paper-m1max-cpu``, ``paper-rtx4090-gpu``:
derived from Table 3; ``host``: measured on this machine when the simulator is made) or is one;
``copy_bytes_per_s`` overrides its copy bandwidth.

- dense bytes: every weight not resident (naive: all; hybrid without predictor: the part of
  the model beyond ``dram_fraction``; predictor without hybrid: the non-FFN weights).
- sparse bytes: loaded neurons * neuron_bytes, in ``ffn_matrices`` reads of ``vector_bytes``
  each, or one read of ``neuron_bytes`` when bundled.
- loaded neurons: the policy's needed set (the predictor's, or the true active set for the
  oracle) minus the static resident neurons (hybrid without predictor only, unless
  ``static_ffn_fraction`` is set) minus the window cache.

``FlashSimulator(config).run(trace)`` returns ``FlashStats`` (raw per-token counters; derived
metrics as properties; ``to_frame()`` one tidy row with ``param_*`` columns, ``per_token()``
one row per token).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from simkit.flash import _kernels as K
from simkit.flash.activations import ActivationTrace
from simkit.flash.latency import ComputeProfile, add_latency, get_profile
from simkit.flash.models import FlashModel, get_model
from simkit.flash.policies import Policy, parse_policy
from simkit.flash.storage import StorageCalibration, load_calibration

IO_BURSTS = ("layer", "token")
PREDICTORS = ("oracle", "trace")     # trace: the trace's predicted sets (low-rank, error model)
MM_MODES = {"preallocated": K.MM_PREALLOCATED, "reallocate": K.MM_REALLOCATE}
NOMINAL_DENSE_READ = 1 << 20         # dense loads are counted as 1 MiB reads
TOK_COLUMNS = ("needed_neurons", "loaded_neurons", "window_hits", "static_hits",
               "deleted_rows", "copied_rows", "cache_rows")


@dataclass(frozen=True)
class FlashConfig:
    model: str | FlashModel = "opt-6.7b"     # a preset name, or a FlashModel
    policy: str = "all"
    window_tokens: int = 5
    predictor: str = "trace"
    storage: str = "published-m1max"
    threads: int = 32
    dram_fraction: float = 0.5
    static_ffn_fraction: float | None = None   # None: hybrid fills DRAM only without predictor
    memory_management: str = "preallocated"
    copy_bytes_per_s: float | None = None      # None: the compute profile's
    chunk_tokens: int = 256
    compute: str | ComputeProfile = "paper-m1max-cpu"
    context_tokens: int = 256                  # KV cache read per token (prompt + generated)
    io_bursts: str = "layer"                   # "layer": per-layer bursts; "token": one burst

    def __post_init__(self) -> None:
        get_model(self.model)
        parse_policy(self.policy)
        if isinstance(self.window_tokens, bool) or not isinstance(self.window_tokens, int) \
                or self.window_tokens < 0:
            raise ValueError(f"window_tokens: must be an integer >= 0, got "
                             f"{self.window_tokens!r}")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"predictor: must be one of {PREDICTORS}, got {self.predictor!r}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads: must be an integer >= 1, got {self.threads!r}")
        if not 0.0 <= self.dram_fraction <= 1.0:
            raise ValueError(f"dram_fraction: must be in [0, 1], got {self.dram_fraction!r}")
        if self.static_ffn_fraction is not None and not 0.0 <= self.static_ffn_fraction <= 1.0:
            raise ValueError(f"static_ffn_fraction: must be in [0, 1] or None, got "
                             f"{self.static_ffn_fraction!r}")
        if self.memory_management not in MM_MODES:
            raise ValueError(f"memory_management: must be one of {tuple(MM_MODES)}, got "
                             f"{self.memory_management!r}")
        if self.copy_bytes_per_s is not None and not self.copy_bytes_per_s > 0:
            raise ValueError(f"copy_bytes_per_s: must be > 0 or None, got "
                             f"{self.copy_bytes_per_s!r}")
        if not isinstance(self.compute, ComputeProfile):
            from simkit.flash.latency import PROFILES
            if self.compute not in list(PROFILES) + ["host"]:
                raise ValueError(f"compute: unknown {self.compute!r}; choose from "
                                 f"{', '.join(list(PROFILES) + ['host'])}")
        if isinstance(self.context_tokens, bool) or not isinstance(self.context_tokens, int) \
                or self.context_tokens < 0:
            raise ValueError(f"context_tokens: must be an integer >= 0, got "
                             f"{self.context_tokens!r}")
        if self.io_bursts not in IO_BURSTS:
            raise ValueError(f"io_bursts: must be one of {IO_BURSTS}, got {self.io_bursts!r}")
        if not isinstance(self.chunk_tokens, int) or self.chunk_tokens < 1:
            raise ValueError(f"chunk_tokens: must be an integer >= 1, got {self.chunk_tokens!r}")

    @property
    def shape(self) -> FlashModel:
        return get_model(self.model)

    @classmethod
    def from_dict(cls, d: dict) -> "FlashConfig":
        """Fields by name (a ``[flash]`` table of TOML, or a plain dict); unknown names are an
        error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"flash config: unknown field(s) {', '.join(unknown)} (fields: "
                             f"{', '.join(sorted(names))})")
        return cls(**d)

    @classmethod
    def from_toml(cls, path) -> "FlashConfig":
        """A TOML file with the fields at top level or under ``[flash]``."""
        from simkit.errors import InputError
        from simkit.tomlfile import read_toml

        data = read_toml(path)
        try:
            return cls.from_dict(data.get("flash", data))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: {exc}") from None

    @property
    def policy_obj(self) -> Policy:
        return parse_policy(self.policy)

    @property
    def window(self) -> int:
        return self.window_tokens if self.policy_obj.windowing else 0

    def static_fraction(self) -> float:
        """Share of each layer's FFN neurons kept resident for good."""
        pol, m = self.policy_obj, self.shape
        if not pol.hybrid:
            return 0.0
        if self.static_ffn_fraction is not None:
            return self.static_ffn_fraction
        if pol.predictor:
            return 0.0
        spare = self.dram_fraction * m.total_bytes - m.resident_bytes
        return float(min(max(spare / m.ffn_bytes, 0.0), 1.0))


@dataclass
class FlashStats:
    config: FlashConfig
    trace_name: str
    tokens: np.ndarray                 # (T, 7) kernel counters per token, TOK_COLUMNS
    per_layer_counts: np.ndarray       # (L, 3) needed, loaded, copied
    peak_rows: np.ndarray              # (L,) most cache rows ever in use
    static_neurons: int                # per layer
    layer_loads: np.ndarray = field(repr=False, default=None)   # (T, L) loaded per layer
    storage: StorageCalibration = field(repr=False, default=None)
    profile: ComputeProfile = field(repr=False, default=None)

    # ---- sizes -------------------------------------------------------------------------
    @property
    def model(self) -> FlashModel:
        return self.config.shape

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def policy(self) -> Policy:
        return self.config.policy_obj

    @property
    def resident_bytes(self) -> int:
        """Kept in DRAM for good: non-FFN weights (hybrid) plus static FFN neurons."""
        m = self.model
        base = m.resident_bytes if self.policy.hybrid else 0
        return base + self.static_neurons * m.layers * m.neuron_bytes

    @property
    def dense_bytes_per_token(self) -> int:
        m, pol = self.model, self.policy
        if pol.predictor:
            return 0 if pol.hybrid else m.resident_bytes
        return m.total_bytes - self.resident_bytes

    @property
    def chunk_bytes(self) -> int:
        m = self.model
        return m.neuron_bytes if self.policy.bundling else m.vector_bytes

    @property
    def reads_per_neuron(self) -> int:
        return 1 if self.policy.bundling else self.model.ffn_matrices

    # ---- per token ---------------------------------------------------------------------
    def per_token(self):
        import pandas as pd
        return pd.DataFrame(self._columns())

    def _columns(self) -> dict:
        """The per-token columns as numpy arrays (``per_token`` wraps them in a DataFrame;
        ``summary`` reduces them directly)."""
        m, st = self.model, self.storage
        n = len(self.tokens)
        d = {"token": np.arange(n)}
        for i, name in enumerate(TOK_COLUMNS):
            d[name] = self.tokens[:, i]
        if not self.policy.predictor:            # dense: every FFN neuron is needed
            d["needed_neurons"] = np.full(n, m.layers * m.ffn, np.int64)
            d["static_hits"] = np.full(n, m.layers * self.static_neurons, np.int64)
            d["loaded_neurons"] = np.full(n, m.layers * (m.ffn - self.static_neurons), np.int64)
        sparse = (d["loaded_neurons"] * m.neuron_bytes if self.policy.predictor
                  else np.zeros(n, np.int64))
        dense = self.dense_bytes_per_token
        full = np.ones(n, np.int64)
        d["flash_bytes"] = sparse + dense
        d["sparse_bytes"] = sparse
        d["dense_bytes"] = dense * full
        d["sparse_reads"] = (d["loaded_neurons"] * self.reads_per_neuron
                             if self.policy.predictor else 0 * full)
        d["dense_reads"] = -(-dense // NOMINAL_DENSE_READ) * full
        d["chunk_bytes"] = (self.chunk_bytes if self.policy.predictor
                            else NOMINAL_DENSE_READ) * full
        d["io_s"] = self.sparse_io_seconds() + dense / st.sequential_bytes_per_s
        d["copied_bytes"] = d["copied_rows"] * m.neuron_bytes
        add_latency(d, self, self.profile, self.config.context_tokens)
        d["cache_bytes"] = d["cache_rows"] * m.neuron_bytes
        # kept across tokens (Table 2's DRAM column); neurons read for one token only (no
        # window) occupy a transient buffer on top
        d["dram_bytes"] = self.resident_bytes + d["cache_bytes"]
        d["transient_bytes"] = 0 * full if self.config.window else sparse
        d["kv_bytes"] = m.kv_bytes(self.config.context_tokens) * full
        d["loaded_fraction"] = d["loaded_neurons"] / (m.layers * m.ffn)
        d["cached_fraction"] = d["cache_rows"] / (m.layers * m.ffn)
        d["needed_fraction"] = d["needed_neurons"] / (m.layers * m.ffn)
        return d

    def sparse_io_seconds(self) -> np.ndarray:
        """Seconds of the sparse reads per token: one burst per layer or per token."""
        if not self.policy.predictor:
            return np.zeros(self.n_tokens)
        st, q, c = self.storage, self.config.threads, self.chunk_bytes
        if self.config.io_bursts == "layer":
            return st.burst_seconds(self.layer_loads * self.reads_per_neuron, c, q).sum(axis=1)
        return st.burst_seconds(self.tokens[:, 1] * self.reads_per_neuron, c, q)

    def per_layer(self):
        """One row per layer: needed, loaded and copied rows summed over the tokens, and the
        preallocated matrix's rows (the most ever in use: the paper's Req_i)."""
        import pandas as pd
        m = self.model
        df = pd.DataFrame(self.per_layer_counts, columns=["needed_neurons", "loaded_neurons",
                                                          "copied_rows"])
        df.insert(0, "layer", np.arange(len(df)))
        df["prealloc_rows"] = self.peak_rows
        df["loaded_fraction"] = df.loaded_neurons / (max(self.n_tokens, 1) * m.ffn)
        return df

    def region(self, start: int, stop: int | None = None) -> "FlashStats":
        """The tokens ``start:stop`` only (e.g. skip the windowing warm-up); per-layer totals
        and peaks stay those of the whole run."""
        return FlashStats(self.config, self.trace_name, self.tokens[start:stop],
                          self.per_layer_counts, self.peak_rows, self.static_neurons,
                          self.layer_loads[start:stop], self.storage, self.profile)

    def __sub__(self, other: "FlashStats") -> "FlashStats":
        """The tokens after ``other``, a run of a prefix of the same trace with the same config
        (end - warm-up): per-token rows after ``other``'s, per-layer counts subtracted; the
        peaks (preallocated rows) are states and stay this run's."""
        n = len(other.tokens)
        if other.config != self.config or other.trace_name != self.trace_name:
            raise ValueError("cannot subtract stats of a different config or trace")
        if n > len(self.tokens) or not np.array_equal(self.tokens[:n], other.tokens):
            raise ValueError("cannot subtract: the other run is not a prefix of this one")
        return FlashStats(self.config, self.trace_name, self.tokens[n:],
                          self.per_layer_counts - other.per_layer_counts, self.peak_rows,
                          self.static_neurons, self.layer_loads[n:], self.storage,
                          self.profile)

    # ---- totals ------------------------------------------------------------------------
    def summary(self) -> dict:
        from types import SimpleNamespace
        d = SimpleNamespace(**self._columns())

        def mean(a):
            return float(np.mean(a)) if len(a) else float("nan")

        def top(a):
            return float(np.max(a)) if len(a) else float("nan")
        m = self.model
        out = {
            "trace": self.trace_name, "tokens": self.n_tokens,
            "needed_fraction": mean(d.needed_fraction),
            "loaded_fraction": mean(d.loaded_fraction),
            "cached_fraction": mean(d.cached_fraction),
            "flash_bytes_per_token": mean(d.flash_bytes),
            "flash_bytes_total": float(np.sum(d.flash_bytes)),
            "reads_per_token": mean(d.sparse_reads + d.dense_reads),
            "chunk_bytes": int(d.chunk_bytes[0]) if self.n_tokens else 0,
            "throughput_bytes_per_s": (self.storage.throughput(self.chunk_bytes,
                                                               self.config.threads)
                                       if self.policy.predictor
                                       else self.storage.sequential_bytes_per_s),
            "io_ms_per_token": 1e3 * mean(d.io_s),
            "mem_ms_per_token": 1e3 * mean(d.mem_s),
            "compute_ms_per_token": 1e3 * mean(d.compute_s),
            "ffn_ms_per_token": 1e3 * mean(d.ffn_s),
            "attn_ms_per_token": 1e3 * mean(d.attn_s),
            "predictor_ms_per_token": 1e3 * mean(d.predictor_s),
            "time_ms_per_token": 1e3 * mean(d.time_s),
            "copied_bytes_per_token": mean(d.copied_bytes),
            "resident_bytes": self.resident_bytes,
            "dram_bytes_mean": mean(d.dram_bytes),
            "dram_bytes_max": top(d.dram_bytes),
            "transient_bytes_max": top(d.transient_bytes),
            "prealloc_cache_bytes": int(self.peak_rows.sum()) * m.neuron_bytes,
            "kv_cache_bytes": m.kv_bytes(self.config.context_tokens),
        }
        # what must fit in DRAM: resident weights, the preallocated neuron-cache matrices (or
        # the per-token buffer without a window) and the KV cache at context_tokens
        out["dram_need_bytes"] = (self.resident_bytes + out["prealloc_cache_bytes"]
                                  + out["transient_bytes_max"] + out["kv_cache_bytes"])
        return out

    def to_frame(self):
        import pandas as pd

        row = {f"param_{f.name}": getattr(self.config, f.name) for f in fields(self.config)}
        row["param_compute"] = self.profile.name
        row["param_copy_bytes_per_s"] = self.profile.copy_bytes_per_s
        row["param_model"] = self.model.name
        row["param_policy"] = self.policy.name
        row["param_window_tokens"] = self.config.window
        row.update(self.summary())
        return pd.DataFrame([row])


class FlashSimulator:
    """Owns a config and the cache state; feeds the kernel a chunk of tokens at a time."""

    def __init__(self, config: FlashConfig | None = None, **kwargs):
        self.config = config if config is not None else FlashConfig(**kwargs)
        if config is not None and kwargs:
            raise ValueError("FlashSimulator: pass a FlashConfig or keyword fields, not both")
        self.storage = load_calibration(self.config.storage)
        self.storage._check_depth(self.config.threads)
        prof = get_profile(self.config.compute)
        if self.config.copy_bytes_per_s is not None:
            prof = replace(prof, copy_bytes_per_s=self.config.copy_bytes_per_s,
                           sources=dict(prof.sources, copy_bytes_per_s="given"))
        self.profile = prof

    def run(self, trace: ActivationTrace) -> FlashStats:
        cfg, m = self.config, self.config.shape
        if (trace.layers, trace.neurons) != (m.layers, m.ffn):
            raise ValueError(f"activations: trace {trace.name!r} has {trace.layers} layers x "
                             f"{trace.neurons} neurons; model {m.name} has {m.layers} x {m.ffn}")
        pol = cfg.policy_obj
        static = int(round(cfg.static_fraction() * m.ffn))
        L, N, T = m.layers, m.ffn, trace.tokens
        tok = np.zeros((T, len(TOK_COLUMNS)), np.int64)
        lay = np.zeros((L, 3), np.int64)
        peak = np.zeros(L, np.int64)
        tl = np.zeros((T, L), np.int32)
        if pol.predictor:
            ptr, idx = trace.sets("predicted" if cfg.predictor == "trace" else "active")
            last = np.full((L, N), K.NEVER, np.int64)
            rows = np.zeros((L, N), np.int32)
            pos = np.zeros((L, N), np.int32)
            count = np.zeros(L, np.int64)
            sc = np.full(L, static, np.int64)
            mm = MM_MODES[cfg.memory_management]
            for t0 in range(0, T, cfg.chunk_tokens):
                t1 = min(T, t0 + cfg.chunk_tokens)
                K.window_run(ptr, idx, L, t0, t1, cfg.window, sc, mm, last, rows, pos, count,
                             peak, tok[t0:t1], lay, tl[t0:t1])
        return FlashStats(cfg, trace.name, tok, lay, peak, static, tl, self.storage,
                          self.profile)


def config_fields() -> list[str]:
    return [f.name for f in fields(FlashConfig)]


def read_schedule(config: FlashConfig, trace: ActivationTrace, model: FlashModel | None = None):
    """The neurons a sparse policy reads per token: a list (one per token) of (layer array,
    neuron array). Same decisions as ``FlashSimulator.run``."""
    m = model or config.shape
    pol = config.policy_obj
    if not pol.predictor:
        raise ValueError("policy: a read schedule needs a predictor policy (dense policies "
                         "read whole matrices)")
    if (trace.layers, trace.neurons) != (m.layers, m.ffn):
        raise ValueError(f"activations: trace {trace.name!r} has {trace.layers} x "
                         f"{trace.neurons}; model {m.name} has {m.layers} x {m.ffn}")
    ptr, idx = trace.sets("predicted" if config.predictor == "trace" else "active")
    static = int(round(config.static_fraction() * m.ffn))
    rows = K.window_loads(ptr, idx, m.layers, config.window, np.full(m.layers, static, np.int64),
                          m.ffn)
    bounds = np.searchsorted(rows[:, 0], np.arange(trace.tokens + 1))
    return [(rows[bounds[t]:bounds[t + 1], 1], rows[bounds[t]:bounds[t + 1], 2])
            for t in range(trace.tokens)]
