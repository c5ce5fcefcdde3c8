"""Serving metrics: raw counters, streaming latency histograms, and the memory timeline.

``ServingStats`` holds raw counters only; throughput, percentiles, mean batch size and hit
rates are properties. Stats subtract (region of interest = end - warm-up) and ``to_frame()``
gives one tidy row with ``param_*`` columns.

Latencies go into ``LatencyHistogram``: fixed log-spaced bins (200 per decade from 1 us to
1e5 s: a percentile read from a bin is within 1.2% of the true value) plus the exact samples
while there are at most ``EXACT_MAX`` of them, so small runs report exact percentiles
(nearest rank: the smallest sample with at least q% of the samples at or below it) and big runs
stay in constant memory.

Normalized latency (PagedAttention section 6.1): a request's end-to-end latency divided by its
output tokens (s/token); the stats keep its histogram (``norm_latency``), so the paper's metric
(the mean over requests) and percentiles come out of one run. SLO goodput (DistServe's
goodput): finished requests per second that met every bound of an ``SLO`` (time to first
token, time per output token after the first, normalized latency); bounds left at infinity do
not count.

``MemoryTimeline`` samples ``manager.usage()`` every ``every`` iterations into at most
``max_samples`` rows: when full, every other row is dropped and the interval doubles, so a run
of any length keeps a bounded, evenly spaced series.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

LO_EXP, HI_EXP, PER_DECADE = -6, 5, 200
NBINS = (HI_EXP - LO_EXP) * PER_DECADE
EXACT_MAX = 1 << 16
PERCENTILES = (50, 90, 99)


class LatencyHistogram:
    """Counts of latencies (seconds) in log-spaced bins, with exact samples while few."""

    __slots__ = ("counts", "n", "total", "maximum", "_vals", "_cnts", "exact")

    def __init__(self):
        self.counts = np.zeros(NBINS, dtype=np.int64)
        self.n = 0
        self.total = 0.0
        self.maximum = 0.0
        self._vals: list[float] = []
        self._cnts: list[int] = []
        self.exact = True

    def add(self, v: float, count: int = 1) -> None:
        if v <= 0:
            i = 0
        else:
            i = int((math.log10(v) - LO_EXP) * PER_DECADE)
            i = 0 if i < 0 else (NBINS - 1 if i >= NBINS else i)
        self.counts[i] += count
        self.n += count
        self.total += v * count
        if v > self.maximum:
            self.maximum = v
        if self.exact:
            if len(self._vals) < EXACT_MAX:
                self._vals.append(v)
                self._cnts.append(count)
            else:
                self.exact = False
                self._vals, self._cnts = [], []

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    def percentile(self, q: float) -> float:
        if not self.n:
            return float("nan")
        rank = max(1, math.ceil(q / 100.0 * self.n))
        if self.exact and self._vals:
            v = np.asarray(self._vals)
            order = np.argsort(v, kind="stable")
            cum = np.cumsum(np.asarray(self._cnts)[order])
            return float(v[order][np.searchsorted(cum, rank)])
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        lo = 10.0 ** (LO_EXP + i / PER_DECADE)
        hi = 10.0 ** (LO_EXP + (i + 1) / PER_DECADE)
        return math.sqrt(lo * hi)

    def __sub__(self, other: "LatencyHistogram") -> "LatencyHistogram":
        out = LatencyHistogram()
        out.counts = self.counts - other.counts
        out.n = self.n - other.n
        out.total = self.total - other.total
        out.maximum = self.maximum
        out.exact = other.n == 0 and self.exact
        if out.exact:
            out._vals, out._cnts = list(self._vals), list(self._cnts)
        return out

    def copy(self) -> "LatencyHistogram":
        return self - LatencyHistogram()


_MEM_PARTS = ("used", "internal_frag", "reserved", "cached", "free")


@dataclass(frozen=True)
class SLO:
    """Latency bounds a request must meet to count towards goodput (seconds; inf: none).
    ``tpot_s`` bounds the mean time per output token after the first of one request."""

    ttft_s: float = math.inf
    tpot_s: float = math.inf
    normalized_latency_s: float = math.inf

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{f.name}: must be a number > 0 (inf: no bound), got {v!r}")

    def met(self, ttft: float, tpot: float, normalized: float) -> bool:
        return (ttft <= self.ttft_s and tpot <= self.tpot_s
                and normalized <= self.normalized_latency_s)


@dataclass
class ServingStats:
    """Raw counters of one serving run (or a region of it)."""

    capacity_bytes: int = 0
    requests_arrived: int = 0
    requests_admitted: int = 0          # first admissions
    requests_finished: int = 0
    requests_rejected: int = 0          # prompt longer than the context, or never fits memory
    requests_over_context: int = 0      # of the rejected: prompt of max context tokens or more
    requests_truncated: int = 0         # output cut so prompt + output <= max context
    requests_aborted: int = 0           # outgrew the whole KV memory while running alone
    requests_slo_met: int = 0           # finished within every bound of ``slo``
    prompt_tokens: int = 0              # of first admissions
    prompt_tokens_hashed: int = 0       # of first admissions that carried prefix hashes
    cached_prompt_tokens: int = 0       # prefix-cache hits at first admissions
    cached_recompute_tokens: int = 0    # prefix-cache hits at re-admissions after recompute
    prefill_tokens: int = 0             # prefill tokens computed (recompute included)
    output_tokens: int = 0              # tokens emitted
    iterations: int = 0
    busy_s: float = 0.0                 # time inside iterations
    start_s: float = 0.0                # first arrival
    end_s: float = 0.0                  # last iteration end
    batch_seqs_sum: int = 0
    batch_seqs_max: int = 0             # not subtractable: a difference keeps the minuend's
    batch_tokens_sum: int = 0
    preemptions_recompute: int = 0
    preemptions_swap: int = 0
    swap_out_bytes: int = 0
    swap_in_bytes: int = 0
    host_load_bytes: int = 0            # prefix blocks copied back from a host-memory tier
    map_ops: int = 0                    # blocks / page-groups newly allocated
    map_calls: int = 0                  # driver calls (cuMemMap + cuMemSetAccess pairs)
    unmap_calls: int = 0                # cuMemUnmap calls
    map_s: float = 0.0                  # latency of the map and unmap calls
    map_exposed_s: float = 0.0          # the part added to iteration times
    mem_used_byte_s: float = 0.0        # time integrals of usage() over busy time
    mem_internal_frag_byte_s: float = 0.0
    mem_reserved_byte_s: float = 0.0
    mem_cached_byte_s: float = 0.0
    mem_free_byte_s: float = 0.0
    mem_unshared_byte_s: float = 0.0    # what the block tables would hold without sharing
    mem_used_max_bytes: int = 0         # not subtractable (as batch_seqs_max)
    ttft: LatencyHistogram = field(default_factory=LatencyHistogram)
    tbt: LatencyHistogram = field(default_factory=LatencyHistogram)
    e2e: LatencyHistogram = field(default_factory=LatencyHistogram)
    norm_latency: LatencyHistogram = field(default_factory=LatencyHistogram)   # e2e / output
    slo: SLO | None = None              # the bounds of requests_slo_met (None: not counted)
    params: dict = field(default_factory=dict)

    # ---- arithmetic ------------------------------------------------------------------
    def __sub__(self, other: "ServingStats") -> "ServingStats":
        out = ServingStats(params=dict(self.params))
        keep = {"capacity_bytes", "batch_seqs_max", "mem_used_max_bytes", "start_s", "end_s",
                "params", "slo"}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(out, f.name, a if f.name in keep else a - b)
        if other.iterations or other.requests_arrived:
            out.start_s = other.end_s
        return out

    def copy(self) -> "ServingStats":
        return self - ServingStats()

    # ---- derived ---------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def throughput_tokens_per_s(self) -> float:
        """Output tokens per second (0 when none was emitted, e.g. every request rejected)."""
        d = self.duration_s
        if not self.output_tokens:
            return 0.0
        return self.output_tokens / d if d > 0 else float("nan")

    @property
    def throughput_requests_per_s(self) -> float:
        d = self.duration_s
        if not self.requests_finished:
            return 0.0
        return self.requests_finished / d if d > 0 else float("nan")

    @property
    def normalized_latency_s(self) -> float:
        """PagedAttention's normalized latency: mean over finished requests of end-to-end
        latency / output tokens (s/token)."""
        return self.norm_latency.mean

    @property
    def goodput_requests_per_s(self) -> float:
        """Finished requests per second that met ``slo`` (nan without an SLO)."""
        d = self.duration_s
        return self.requests_slo_met / d if self.slo is not None and d > 0 else float("nan")

    @property
    def slo_attainment(self) -> float:
        """Share of finished requests that met ``slo``."""
        return (self.requests_slo_met / self.requests_finished
                if self.slo is not None and self.requests_finished else float("nan"))

    @property
    def mean_batch_seqs(self) -> float:
        return self.batch_seqs_sum / self.iterations if self.iterations else float("nan")

    @property
    def preemptions(self) -> int:
        return self.preemptions_recompute + self.preemptions_swap

    @property
    def prefix_hit_rate(self) -> float:
        """Prompt tokens found in the prefix cache at first admission, over the prompt tokens
        of requests that carried prefix hashes (token-weighted)."""
        return (self.cached_prompt_tokens / self.prompt_tokens_hashed
                if self.prompt_tokens_hashed else float("nan"))

    def mean_memory_bytes(self) -> dict:
        """Time-averaged breakdown over busy time: {part: bytes}."""
        if self.busy_s <= 0:
            return {p: float("nan") for p in _MEM_PARTS}
        return {p: getattr(self, f"mem_{p}_byte_s") / self.busy_s for p in _MEM_PARTS}

    @property
    def mean_waste_fraction(self) -> float:
        """Time-averaged share of allocated KV memory not holding tokens (internal
        fragmentation + reserved, over used + both) — PagedAttention Fig. 2's measure."""
        alloc = self.mem_used_byte_s + self.mem_internal_frag_byte_s + self.mem_reserved_byte_s
        return ((self.mem_internal_frag_byte_s + self.mem_reserved_byte_s) / alloc
                if alloc else float("nan"))

    @property
    def sharing_saving_fraction(self) -> float:
        """Time-averaged share of KV memory saved by sharing blocks (parallel sampling, beam
        search: PagedAttention Figs. 15 and 17): 1 - allocated / what the sequences' block
        tables would take unshared. 0 when nothing is shared."""
        alloc = self.mem_used_byte_s + self.mem_internal_frag_byte_s + self.mem_reserved_byte_s
        return (1 - alloc / self.mem_unshared_byte_s if self.mem_unshared_byte_s
                else float("nan"))

    def to_dict(self) -> dict:
        row = {"requests_arrived": self.requests_arrived,
               "requests_admitted": self.requests_admitted,
               "requests_finished": self.requests_finished,
               "requests_rejected": self.requests_rejected,
               "requests_over_context": self.requests_over_context,
               "requests_truncated": self.requests_truncated,
               "requests_aborted": self.requests_aborted,
               "prompt_tokens": self.prompt_tokens, "prefill_tokens": self.prefill_tokens,
               "output_tokens": self.output_tokens, "iterations": self.iterations,
               "duration_s": self.duration_s, "busy_s": self.busy_s,
               "throughput_tokens_per_s": self.throughput_tokens_per_s,
               "throughput_requests_per_s": self.throughput_requests_per_s}
        for name, h in (("ttft", self.ttft), ("tbt", self.tbt), ("e2e", self.e2e),
                        ("normalized_latency", self.norm_latency)):
            unit = "s_per_token" if name == "normalized_latency" else "s"
            row[f"{name}_mean_{unit}"] = h.mean
            for q in PERCENTILES:
                row[f"{name}_p{q}_{unit}"] = h.percentile(q)
        row.update(requests_slo_met=self.requests_slo_met,
                   goodput_requests_per_s=self.goodput_requests_per_s,
                   slo_attainment=self.slo_attainment)
        row.update(mean_batch_seqs=self.mean_batch_seqs, max_batch_seqs=self.batch_seqs_max,
                   mean_batch_tokens=(self.batch_tokens_sum / self.iterations
                                      if self.iterations else float("nan")),
                   preemptions=self.preemptions,
                   preemptions_recompute=self.preemptions_recompute,
                   preemptions_swap=self.preemptions_swap,
                   swap_out_bytes=self.swap_out_bytes, swap_in_bytes=self.swap_in_bytes,
                   host_load_bytes=self.host_load_bytes,
                   prefix_hit_rate=self.prefix_hit_rate,
                   cached_prompt_tokens=self.cached_prompt_tokens,
                   map_ops=self.map_ops, map_calls=self.map_calls, unmap_calls=self.unmap_calls, map_s=self.map_s,
                   map_exposed_s=self.map_exposed_s, capacity_bytes=self.capacity_bytes,
                   mem_used_max_bytes=self.mem_used_max_bytes)
        for p, v in self.mean_memory_bytes().items():
            row[f"mean_{p}_bytes"] = v
        row["mean_waste_fraction"] = self.mean_waste_fraction
        row["sharing_saving_fraction"] = self.sharing_saving_fraction
        return row

    def to_frame(self):
        """One tidy row: the metrics, then ``param_*`` columns for the run's configuration."""
        import pandas as pd

        row = self.to_dict()
        row.update({f"param_{k}": v for k, v in self.params.items()})
        if self.slo is not None:
            row.update({f"param_slo_{f.name}": getattr(self.slo, f.name)
                        for f in fields(self.slo)})
        return pd.DataFrame([row])


TIMELINE_COLUMNS = ("iteration", "time_s", "running", "waiting", "swapped", "batch_tokens",
                    "used_bytes", "internal_frag_bytes", "reserved_bytes", "cached_bytes",
                    "free_bytes", "virtual_bytes", "swapped_bytes")


class MemoryTimeline:
    """Bounded, evenly thinned samples of the memory breakdown (module docstring)."""

    def __init__(self, every: int = 1, max_samples: int = 4096):
        if every <= 0 or max_samples < 2:
            raise ValueError(f"timeline: every must be > 0 and max_samples >= 2, got "
                             f"{every}, {max_samples}")
        self.every = every
        self.max_samples = max_samples
        self.rows: list[tuple] = []

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.max_samples:
            self.rows = self.rows[::2]
            self.every *= 2

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(TIMELINE_COLUMNS))


__all__ = ["LatencyHistogram", "MemoryTimeline", "PERCENTILES", "SLO", "ServingStats",
           "TIMELINE_COLUMNS"]
