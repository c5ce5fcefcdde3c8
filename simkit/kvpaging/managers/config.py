"""Configurations of the KV-cache managers: one frozen dataclass per manager, checked at
construction (``ValueError`` naming the field and the bad value), no side effects.

Presets are plain values of these classes, keyed by spec string (``"static"``, ``"paged-16"``,
``"vattention-2MiB"``); ``simkit.kvpaging.managers.make_manager`` parses a spec and applies
overrides with ``dataclasses.replace``.
"""
from __future__ import annotations

from dataclasses import dataclass

from simkit.units import format_bytes, is_power_of_two, parse_size


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


def _int(obj, name: str, lo: int = 0) -> None:
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name}: expected an integer, got {v!r}")
    if v < lo:
        raise ValueError(f"{name}: must be >= {lo}, got {v}")


def _bool(obj, name: str) -> None:
    v = getattr(obj, name)
    if not isinstance(v, bool):
        raise ValueError(f"{name}: expected true/false, got {v!r}")


FITS = ("first-fit", "best-fit")


@dataclass(frozen=True)
class StaticConfig:
    """Orca / FasterTransformer static reservation.

    ``reserve_tokens``: slots reserved per request; 0 reserves the request's own
    ``max_tokens`` (prompt + the most it may generate, Orca-Oracle/-Pow2 style); a positive
    value reserves that many for every request (FasterTransformer: the model's max context).
    ``fit``: how the contiguous allocator picks a free extent (``first-fit`` or ``best-fit``).
    ``round_pow2``: round each reservation up to a power of two (Orca-Pow2; the extra slots are
    internal fragmentation).
    """

    reserve_tokens: int = 0
    fit: str = "first-fit"
    round_pow2: bool = False

    def __post_init__(self):
        _int(self, "reserve_tokens", 0)
        _bool(self, "round_pow2")
        if self.fit not in FITS:
            raise ValueError(f"fit: expected one of {', '.join(FITS)}, got {self.fit!r}")


@dataclass(frozen=True)
class PagedConfig:
    """PagedAttention (vLLM).

    ``block_tokens``: tokens per block (vLLM default 16). ``prefix_caching``: automatic prefix
    caching with chained hashes of full blocks and an LRU free queue. ``hash_block_tokens``:
    tokens covered by one of the caller's ``prefix_hashes`` (0: ``block_tokens``); must be a
    multiple of ``block_tokens`` (Mooncake's hashes cover 512 tokens: each is split into
    ``512 / block_tokens`` derived block hashes).
    ``cpu_cache_bytes``: a host-memory tier (0: none) holding prefix-cached blocks evicted from
    the GPU (an LRU of hashes, inclusive: a block loaded back stays in it) and sharing its room
    with swapped-out sequences, which come first; a prompt's prefix continues into it where the
    GPU's hash map ends, and those blocks are copied back over PCIe instead of recomputed.
    """

    block_tokens: int = 16
    prefix_caching: bool = True
    hash_block_tokens: int = 0
    cpu_cache_bytes: int = 0

    def __post_init__(self):
        _set(self, "cpu_cache_bytes", parse_size(self.cpu_cache_bytes, "cpu_cache_bytes"))
        _int(self, "cpu_cache_bytes", 0)
        _int(self, "block_tokens", 1)
        _int(self, "hash_block_tokens", 0)
        _bool(self, "prefix_caching")
        if self.hash_block_tokens and self.hash_block_tokens % self.block_tokens:
            raise ValueError(f"hash_block_tokens: must be a multiple of block_tokens "
                             f"({self.block_tokens}), got {self.hash_block_tokens}")


@dataclass(frozen=True)
class VAttentionConfig:
    """vAttention (ASPLOS 2025): contiguous virtual reservation, physical pages on demand.

    ``page_bytes``: physical page size (64KiB/128KiB/256KiB need the vAttention repo's patched
    UVM driver; 2MiB is the stock CUDA granularity). ``overlap``: page-groups for the next step
    are mapped in the background, behind compute (the engine does not charge them);
    ``lookahead_tokens``: with overlap, after every verb the sequence keeps page-groups mapped
    for this many tokens beyond its current length. ``deferred_reclaim``: a finished request's
    pages stay mapped in its slot for the next request; reclaimed (unmapped) on demand.
    ``eager_alloc``: a new request's prompt pages are mapped when it is admitted, ahead of its
    prefill iteration (off the critical path; admission reports 0 synchronous map operations).
    ``max_slots``: virtual request slots (the batch size B the buffers are reserved for);
    0: as many as requests need.
    """

    page_bytes: int = 2 << 20
    overlap: bool = True
    lookahead_tokens: int = 1
    deferred_reclaim: bool = True
    eager_alloc: bool = True
    max_slots: int = 0

    def __post_init__(self):
        _set(self, "page_bytes", parse_size(self.page_bytes, "page_bytes"))
        if not is_power_of_two(self.page_bytes) or self.page_bytes < 4096:
            raise ValueError(f"page_bytes: must be a power of two >= 4KiB, got {self.page_bytes}")
        for name in ("overlap", "deferred_reclaim", "eager_alloc"):
            _bool(self, name)
        _int(self, "lookahead_tokens", 0)
        _int(self, "max_slots", 0)

    @property
    def page_label(self) -> str:
        return format_bytes(self.page_bytes)


ManagerConfig = StaticConfig | PagedConfig | VAttentionConfig
