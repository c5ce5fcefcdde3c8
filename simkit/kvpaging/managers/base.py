"""The interface every KV-cache manager implements (static reservation, PagedAttention,
vAttention), and the memory breakdown they report.

A manager owns the KV memory of one model replica on one GPU: ``capacity_bytes`` of device
memory set aside for the KV cache (GPU memory x utilisation - weights - activations; the
engine computes it). Sequences are identified by integer ids chosen by the caller. The verbs
follow vLLM v1 (``kv_cache_manager.py``, ``block_pool.py``): a verb that cannot get memory
returns ``None`` and changes nothing; it never raises in the middle of a run. Calling a verb
with an id in the wrong state (growing an unknown sequence, admitting an id twice) is a
programming error and raises ``KeyError``/``ValueError``.

    admit(seq, prompt_tokens, max_tokens, prefix_hashes=())  -> Admission | None
        Make room for the prompt's KV (static reservation: for ``max_tokens`` = prompt +
        the most it may generate). ``prefix_hashes``: chained hashes of the prompt's full
        blocks (vLLM / Mooncake style), for prefix caching; managers without it ignore them.
    grow(seq, tokens=1)  -> int | None
        Room for ``tokens`` more tokens (decode appends one per step; chunked prefill more).
        Returns the number of mapping operations it needed (PagedAttention: new blocks;
        vAttention: physical page-groups mapped; static: 0), or None.
    fork(parent, child)  -> bool
        ``child`` starts as a copy of ``parent`` (parallel sampling, beam search);
        PagedAttention shares blocks copy-on-write. False when memory is short.
    free(seq)  -> None
        The sequence finished; its memory returns (to a prefix cache, where there is one).
    preempt(seq, mode)  -> int
        Evict a running sequence: "recompute" frees its KV (it will be re-prefilled),
        "swap" copies it to host memory first. Returns the bytes copied to the host (0 for
        recompute).
    swap_in(seq)  -> int | None
        Bring a swapped sequence back; bytes copied to the device, or None.
    tokens(seq) -> int          tokens of KV the sequence holds now
    usage()  -> MemoryUsage     the breakdown below, at this instant

Memory breakdown (bytes, physical device memory; the parts add up to the capacity):

    used_bytes            KV of real tokens
    internal_frag_bytes   allocated to a sequence but not (yet) holding a token: the unfilled
                          tail of its last block / page-group
    reserved_bytes        reserved for a sequence's future tokens (static reservation's slots
                          up to max_tokens; vAttention's eagerly / ahead-of-time mapped pages)
    cached_bytes          free blocks that still hold reusable prefix KV (prefix cache)
    free_bytes            the rest
    virtual_bytes         virtual address space reserved (vAttention; 0 elsewhere)
    swapped_bytes         KV held in host memory for swapped-out sequences
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class Admission:
    """What ``admit`` did: tokens found in the prefix cache (need no prefill), mapping
    operations (new blocks / page-groups mapped), and bytes of cached prefix copied back from
    a host-memory tier (over PCIe, before the prefill)."""

    cached_tokens: int = 0
    map_ops: int = 0
    loaded_bytes: int = 0


@dataclass(frozen=True)
class MemoryUsage:
    capacity_bytes: int
    used_bytes: int
    internal_frag_bytes: int
    reserved_bytes: int
    cached_bytes: int
    free_bytes: int
    virtual_bytes: int = 0
    swapped_bytes: int = 0

    def __post_init__(self):
        parts = (self.used_bytes + self.internal_frag_bytes + self.reserved_bytes
                 + self.cached_bytes + self.free_bytes)
        if parts != self.capacity_bytes:
            raise ValueError(f"MemoryUsage: parts add up to {parts}, not the capacity "
                             f"{self.capacity_bytes}")

    @property
    def waste_fraction(self) -> float:
        """Share of allocated memory not holding real tokens (PagedAttention Fig. 2's measure:
        internal fragmentation + reserved-but-unused over everything allocated)."""
        alloc = self.used_bytes + self.internal_frag_bytes + self.reserved_bytes
        return (self.internal_frag_bytes + self.reserved_bytes) / alloc if alloc else 0.0

    @property
    def token_fraction(self) -> float:
        """Share of allocated memory holding real tokens' KV (1 - waste_fraction)."""
        alloc = self.used_bytes + self.internal_frag_bytes + self.reserved_bytes
        return self.used_bytes / alloc if alloc else 0.0


class KVManager(Protocol):
    """What the serving engine needs of a manager (see the module docstring)."""

    name: str
    capacity_bytes: int

    def admit(self, seq: int, prompt_tokens: int, max_tokens: int,
              prefix_hashes: Sequence[int] = ()) -> Admission | None: ...
    def grow(self, seq: int, tokens: int = 1) -> int | None: ...
    def fork(self, parent: int, child: int) -> bool: ...
    def free(self, seq: int) -> None: ...
    def preempt(self, seq: int, mode: str = "recompute") -> int: ...
    def swap_in(self, seq: int) -> int | None: ...
    def tokens(self, seq: int) -> int: ...
    def usage(self) -> MemoryUsage: ...
