"""Static reservation (Orca / FasterTransformer): a request gets one contiguous chunk of KV
slots for its whole life, sized at admission for the most tokens it may ever hold.

The KV memory is a line of ``capacity_bytes // kv_bytes_per_token`` token slots (a slot is one
token's K and V over all layers). A contiguous allocator hands out extents of slots::

    slot  0                                                              N
          |<- seq 3: R slots ->|  free  |<- seq 7 ->|       free         |
          |tokens|  reserved   |        |tok| res.  |                    |

Each request reserves ``R = max_tokens`` slots (``StaticConfig.reserve_tokens`` > 0: that many
instead, e.g. the model's max context; ``round_pow2``: rounded up to a power of two). The
allocator keeps a sorted list of free extents, picks one by first fit (lowest address that is
large enough) or best fit (smallest large-enough extent), splits it, and on release coalesces
with both neighbours. There is no compaction, so external fragmentation shows: admission fails
when no single free extent is large enough although the free slots add up
(``largest_free_extent_bytes`` < request).

Memory breakdown (``usage()``): tokens held -> ``used_bytes``; slots up to the request's
``max_tokens`` not yet holding a token -> ``reserved_bytes``; slots beyond ``max_tokens``
(a fixed ``reserve_tokens`` or power-of-two rounding) -> ``internal_frag_bytes``; free extents
and the bytes left over below one slot -> ``free_bytes``.

Sources: PagedAttention (SOSP 2023) section 2-3 and Fig. 2-3 (reservation, internal and
external fragmentation of static KV allocation); REFERENCE.md 2.1.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from typing import Sequence

from simkit.kvpaging.managers.base import Admission, MemoryUsage
from simkit.kvpaging.managers.config import StaticConfig
from simkit.kvpaging.models import ModelShape

PREEMPT_MODES = ("recompute", "swap")


def _check_mode(mode: str) -> None:
    if mode not in PREEMPT_MODES:
        raise ValueError(f"mode: expected one of {', '.join(PREEMPT_MODES)}, got {mode!r}")


class ExtentAllocator:
    """Contiguous extents over ``n`` slots: first/best fit, coalescing on release."""

    def __init__(self, n: int, fit: str = "first-fit"):
        self.n = n
        self.best = fit == "best-fit"
        self._starts: list[int] = [0] if n else []   # sorted starts of free extents
        self._len: dict[int, int] = {0: n} if n else {}   # start -> length
        self._end: dict[int, int] = {n: 0} if n else {}   # end (exclusive) -> start
        self.free_slots = n

    def find(self, size: int) -> int | None:
        """Start of the extent the policy would use for ``size`` slots (no change)."""
        best_start, best_len = None, None
        for s in self._starts:
            ln = self._len[s]
            if ln >= size:
                if not self.best:
                    return s
                if best_len is None or ln < best_len:
                    best_start, best_len = s, ln
                    if ln == size:
                        break
        return best_start

    def alloc(self, size: int) -> int | None:
        s = self.find(size)
        if s is None:
            return None
        ln = self._len.pop(s)
        del self._end[s + ln]
        i = bisect_left(self._starts, s)
        if ln == size:
            del self._starts[i]
        else:
            ns = s + size
            self._starts[i] = ns
            self._len[ns] = ln - size
            self._end[s + ln] = ns
        self.free_slots -= size
        return s

    def release(self, start: int, size: int) -> None:
        end = start + size
        self.free_slots += size
        # merge with the extent ending at ``start`` and the one starting at ``end``
        if start in self._end:
            ps = self._end.pop(start)
            plen = self._len.pop(ps)
            self._starts.pop(bisect_left(self._starts, ps))
            start, size = ps, plen + size
        if end in self._len:
            nlen = self._len.pop(end)
            del self._end[end + nlen]
            self._starts.pop(bisect_left(self._starts, end))
            size += nlen
        insort(self._starts, start)
        self._len[start] = size
        self._end[start + size] = start

    def largest(self) -> int:
        return max(self._len.values(), default=0)

    def extents(self) -> list[tuple[int, int]]:
        return [(s, self._len[s]) for s in self._starts]


class StaticManager:
    """Static reservation of ``max_tokens`` contiguous slots per request (see module doc)."""

    map_calls_per_op = 0   # no VMM calls: memory is carved out of one preallocated buffer

    def __init__(self, config: StaticConfig, model: ModelShape, capacity_bytes: int,
                 name: str = "static"):
        if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int) \
                or capacity_bytes < 0:
            raise ValueError(f"capacity_bytes: expected an integer >= 0, got {capacity_bytes!r}")
        self.config = config
        self.model = model
        self.name = name
        self.capacity_bytes = capacity_bytes
        self.slot_bytes = model.kv_bytes_per_token
        self.num_slots = capacity_bytes // self.slot_bytes
        self._alloc = ExtentAllocator(self.num_slots, config.fit)
        # seq -> [start, reserved slots R, tokens, max_tokens]
        self._seqs: dict[int, list[int]] = {}
        # seq -> (tokens, max_tokens) of swapped-out sequences
        self._swapped: dict[int, tuple[int, int]] = {}
        self._tokens = 0          # sum of tokens held
        self._promised = 0        # sum of max(tokens, max_tokens) (<= R)
        self._slots = 0           # sum of R
        self._swapped_tokens = 0

    # ---- helpers -------------------------------------------------------------------------
    def _reservation(self, max_tokens: int) -> int:
        r = self.config.reserve_tokens or max_tokens
        r = max(r, max_tokens)
        if self.config.round_pow2 and r > 0:
            r = 1 << (r - 1).bit_length()
        return r

    def _place(self, seq: int, tokens: int, max_tokens: int) -> bool:
        r = self._reservation(max_tokens)
        start = self._alloc.alloc(r) if r else 0
        if start is None:
            return False
        self._seqs[seq] = [start, r, tokens, max_tokens]
        self._tokens += tokens
        self._promised += max(tokens, max_tokens)
        self._slots += r
        return True

    def _remove(self, seq: int) -> list[int]:
        rec = self._seqs.pop(seq)
        start, r, tokens, max_tokens = rec
        if r:
            self._alloc.release(start, r)
        self._tokens -= tokens
        self._promised -= max(tokens, max_tokens)
        self._slots -= r
        return rec

    def _new_id(self, seq: int) -> None:
        if seq in self._seqs or seq in self._swapped:
            raise ValueError(f"seq: sequence {seq} is already known")

    # ---- verbs ---------------------------------------------------------------------------
    def admit(self, seq: int, prompt_tokens: int, max_tokens: int,
              prefix_hashes: Sequence[int] = ()) -> Admission | None:
        self._new_id(seq)
        if prompt_tokens < 0 or max_tokens < prompt_tokens:
            raise ValueError(f"max_tokens: must be >= prompt_tokens ({prompt_tokens}) >= 0, "
                             f"got {max_tokens}")
        if not self._place(seq, prompt_tokens, max_tokens):
            return None
        return Admission(0, 0)

    def grow(self, seq: int, tokens: int = 1) -> int | None:
        rec = self._seqs[seq]
        t = rec[2] + tokens
        if t > rec[1]:
            return None
        if t > rec[3]:                     # past max_tokens, into the rounding slots
            self._promised += t - max(rec[2], rec[3])
        rec[2] = t
        self._tokens += tokens
        return 0

    def fork(self, parent: int, child: int) -> bool:
        self._new_id(child)
        _, _, tokens, max_tokens = self._seqs[parent]
        return self._place(child, tokens, max_tokens)

    def free(self, seq: int) -> None:
        if seq in self._swapped:
            tokens, _ = self._swapped.pop(seq)
            self._swapped_tokens -= tokens
            return
        self._remove(seq)

    def preempt(self, seq: int, mode: str = "recompute") -> int:
        _check_mode(mode)
        _, _, tokens, max_tokens = self._remove(seq)
        if mode == "recompute":
            return 0
        self._swapped[seq] = (tokens, max_tokens)
        self._swapped_tokens += tokens
        return tokens * self.slot_bytes

    def swap_in(self, seq: int) -> int | None:
        tokens, max_tokens = self._swapped[seq]
        del self._swapped[seq]
        if not self._place(seq, tokens, max_tokens):
            self._swapped[seq] = (tokens, max_tokens)
            return None
        self._swapped_tokens -= tokens
        return tokens * self.slot_bytes

    def extent(self, seq: int) -> tuple[int, int]:
        """(first token slot, slots) of the contiguous extent reserved for ``seq``."""
        start, slots = self._seqs[seq][0], self._seqs[seq][1]
        return start, slots

    def tokens(self, seq: int) -> int:
        if seq in self._swapped:
            return self._swapped[seq][0]
        return self._seqs[seq][2]

    def usage(self) -> MemoryUsage:
        b = self.slot_bytes
        used = self._tokens * b
        reserved = (self._promised - self._tokens) * b
        frag = (self._slots - self._promised) * b
        return MemoryUsage(self.capacity_bytes, used, frag, reserved, 0,
                           self.capacity_bytes - used - reserved - frag, 0,
                           self._swapped_tokens * b)

    # ---- extras --------------------------------------------------------------------------
    @property
    def largest_free_extent_bytes(self) -> int:
        """The largest contiguous free extent: a request needing more cannot be admitted even
        when ``usage().free_bytes`` is larger (external fragmentation)."""
        return self._alloc.largest() * self.slot_bytes

    def running(self) -> list[int]:
        return list(self._seqs)

    def check(self) -> None:
        """Recompute the totals and the extent map from scratch; raise AssertionError on any
        inconsistency (tests)."""
        spans = sorted([(r[0], r[1]) for r in self._seqs.values() if r[1]]
                       + self._alloc.extents())
        pos = 0
        for s, ln in spans:
            if s != pos:
                raise AssertionError(f"slot map: gap or overlap at {pos} (next extent at {s})")
            pos = s + ln
        if pos != self.num_slots:
            raise AssertionError(f"slot map covers {pos} of {self.num_slots} slots")
        ext = self._alloc.extents()
        for (s1, l1), (s2, _) in zip(ext, ext[1:]):
            if s1 + l1 >= s2:
                raise AssertionError(f"free extents at {s1} and {s2} not coalesced")
        if self._alloc.free_slots != sum(ln for _, ln in ext):
            raise AssertionError("free slot count")
        if self._tokens != sum(r[2] for r in self._seqs.values()):
            raise AssertionError("token total")
        if self._promised != sum(max(r[2], r[3]) for r in self._seqs.values()):
            raise AssertionError("promised slot total")
        if self._slots != sum(r[1] for r in self._seqs.values()):
            raise AssertionError("slot total")
        if any(r[2] > r[1] for r in self._seqs.values()):
            raise AssertionError("a sequence holds more tokens than its reservation")
