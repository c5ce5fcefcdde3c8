"""vAttention (ASPLOS 2025): the KV cache of each request is contiguous in *virtual* memory;
physical pages are mapped behind it on demand with the CUDA VMM API.

Virtual layout (REFERENCE.md 2.2; ``microsoft/vattention``): 2 * layers buffers (K and V of
each layer). Request slot ``i`` owns ``[i*S, (i+1)*S)`` in every buffer, where
``S = max_context * kv_row_bytes`` rounded up to a page::

    K buffer, layer 0:  | slot 0: S bytes          | slot 1: S bytes          | ...
                        |##|##|##|. . . . . . . . .|##|. . . . . . . . . . . |
    V buffer, layer 0:  |##|##|##|. . .            |##|. . .
    ...  (2 * layers buffers)          ## = mapped physical page, . = reserved virtual only

A request of ``t`` tokens needs ``ceil(t * kv_row_bytes / page_bytes)`` pages in each buffer;
the buffers grow in lockstep, so the unit of growth is a *page-group* of ``2 * layers`` pages
(``2 * layers * page_bytes`` bytes), and mapping one costs ``2 * layers`` cuMemMap +
cuMemSetAccess calls (``map_calls_per_op``; ~40 us each, REFERENCE.md 2.2/2.3).
``grow`` and ``Admission.map_ops`` report page-groups mapped synchronously (on the
critical path); the engine charges ``ops * map_calls_per_op`` calls.

Optimizations (config switches, paper section 6):

- ``overlap``: a background thread maps ahead: after every verb a running request keeps
  page-groups mapped for ``lookahead_tokens`` more tokens (if free memory allows; never
  reclaimed for it). Those maps are counted in ``background_map_groups``, not returned; the
  ahead-mapped groups show as ``reserved_bytes``.
- ``deferred_reclaim``: a finished request's pages stay mapped in its slot; a new request
  takes the idle slot whose mapped groups fit best (the fewest >= its prompt's need, else the
  most). When memory is short, idle slots' groups are unmapped (reclaimed) on demand, the
  slots holding the most groups first, then running requests' groups beyond their current
  need (over-committed pages count as free). Without it, ``free`` unmaps at once.
  Unmap calls made for background work (a reclamation feeding a lookahead or eager map; with
  ``overlap``, the unmaps of ``free``) are counted in ``background_unmap_calls`` as well as
  ``unmap_calls``: the engine hides them behind compute like background maps.
- ``eager_alloc``: a new request's prompt pages are mapped at admission, ahead of its prefill
  iteration, so ``Admission.map_ops`` is 0 (counted in ``background_map_groups``); without it
  they are mapped synchronously before prefill and reported.

Memory breakdown: tokens -> ``used_bytes``; the unfilled tail of the page-groups a running
request needs now -> ``internal_frag_bytes``; groups mapped to a running request beyond its
need (lookahead, a reused slot's extra groups) -> ``reserved_bytes``; groups mapped to idle
slots (deferred reclamation) count as **free** (they are reclaimable on demand, as the
vAttention code counts them; ``idle_mapped_bytes`` reports them); ``virtual_bytes`` is the
address space of the slots created so far (``slots * 2 * layers * S``).
"""
from __future__ import annotations

from typing import Sequence

from simkit.kvpaging.managers.base import Admission, MemoryUsage
from simkit.kvpaging.managers.config import VAttentionConfig
from simkit.kvpaging.managers.static import _check_mode
from simkit.kvpaging.models import ModelShape


class VAttentionManager:
    """vAttention's per-request virtual slots with demand-mapped page-groups (module doc)."""

    def __init__(self, config: VAttentionConfig, model: ModelShape, capacity_bytes: int,
                 name: str | None = None):
        if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int) \
                or capacity_bytes < 0:
            raise ValueError(f"capacity_bytes: expected an integer >= 0, got {capacity_bytes!r}")
        self.config = config
        self.model = model
        self.name = name or f"vattention-{config.page_label}"
        self.capacity_bytes = capacity_bytes
        P = self.page_bytes = config.page_bytes
        self.row_bytes = model.kv_row_bytes
        self.token_bytes = model.kv_bytes_per_token
        self.buffers = 2 * model.layers
        self.map_calls_per_op = self.buffers             # cuMemMap+cuMemSetAccess per group
        self.group_bytes = self.buffers * P
        self.max_groups = -(-model.max_context * self.row_bytes // P)
        self.slot_virtual_bytes = self.buffers * self.max_groups * P
        self.total_groups = capacity_bytes // self.group_bytes
        self._la = config.lookahead_tokens if config.overlap else 0
        self._m: list[int] = []                           # slot -> mapped groups
        self._new_slot = -1                               # the slot created last
        self._idle: list[dict[int, None]] = [dict() for _ in range(self.max_groups + 1)]
        self._seqs: dict[int, list[int]] = {}            # seq -> [tokens, slot, need, cap]
        self._swapped: dict[int, int] = {}               # seq -> tokens
        self._mapped = 0           # groups mapped, all slots
        self._idle_mapped = 0      # groups mapped to idle slots
        self._need = 0             # sum of need(tokens) over running requests
        self._tokens = 0
        self._swapped_tokens = 0
        # counters (raw, cumulative)
        self.map_calls = 0
        self.unmap_calls = 0
        self.sync_map_groups = 0
        self.background_map_groups = 0
        self.reclaimed_groups = 0
        self.background_unmap_calls = 0
        self._in_bg = False        # the verb running now is the background thread's work

    # ---- helpers -------------------------------------------------------------------------
    def need(self, tokens: int) -> int:
        """Page-groups ``tokens`` tokens occupy."""
        return -(-tokens * self.row_bytes // self.page_bytes)

    def _cap(self, groups: int) -> int:
        """Tokens ``groups`` page-groups hold."""
        return groups * self.page_bytes // self.row_bytes

    def _idle_add(self, slot: int) -> None:
        m = self._m[slot]
        self._idle[m][slot] = None
        self._idle_mapped += m

    def _idle_remove(self, slot: int) -> None:
        m = self._m[slot]
        del self._idle[m][slot]
        self._idle_mapped -= m

    def _pick_slot(self, need: int) -> int | None:
        """Best fit among idle slots: the fewest groups >= need, else the most; a new slot
        when none is idle (``None`` past ``max_slots``)."""
        idle = self._idle
        for m in range(min(need, self.max_groups), self.max_groups + 1):
            if idle[m]:
                return next(iter(idle[m]))
        for m in range(min(need, self.max_groups + 1) - 1, -1, -1):
            if idle[m]:
                return next(iter(idle[m]))
        if self.config.max_slots and len(self._m) >= self.config.max_slots:
            return None
        self._m.append(0)
        self._new_slot = len(self._m) - 1
        self._idle[0][self._new_slot] = None
        return self._new_slot

    def _excess(self) -> int:
        """Groups of running requests beyond their current need (reserved)."""
        return self._mapped - self._idle_mapped - self._need

    def _unmap(self, slot: int, groups: int) -> None:
        self._m[slot] -= groups
        self._mapped -= groups
        self.unmap_calls += groups * self.buffers
        if self._in_bg:
            self.background_unmap_calls += groups * self.buffers

    def _take(self, slot: int, groups: int, trim: bool) -> None:
        """Map ``groups`` more groups into ``slot`` (already checked to be available):
        from the free pool, then idle slots' groups, then (``trim``) running requests'
        excess groups."""
        short = groups - (self.total_groups - self._mapped)
        if short > 0:
            idle = self._idle
            for m in range(self.max_groups, 0, -1):
                while idle[m] and short > 0:
                    s = next(iter(idle[m]))           # (``slot`` itself is never idle here)
                    take = min(m, short)
                    self._idle_remove(s)
                    self._unmap(s, take)
                    self._idle_add(s)
                    short -= take
                    self.reclaimed_groups += take
                if short <= 0:
                    break
        if short > 0 and trim:
            for rec in sorted(self._seqs.values(), key=lambda r: -r[1]):
                s = rec[1]
                extra = self._m[s] - rec[2]
                if s == slot or extra <= 0:
                    continue
                take = min(extra, short)
                self._unmap(s, take)
                short -= take
                self.reclaimed_groups += take
                if short <= 0:
                    break
        if short > 0:
            raise AssertionError("vattention: mapped more groups than available")
        self._m[slot] += groups
        self._mapped += groups
        self.map_calls += groups * self.buffers

    def _available(self, own_excess: int) -> int:
        """Groups a running (or just picked, no longer idle) slot could get now: the free
        pool, idle slots' groups, and other running requests' excess groups."""
        return self.total_groups - self._mapped + self._idle_mapped + self._excess() - own_excess

    def _lookahead(self, rec: list[int]) -> None:
        """Background-map groups for ``lookahead_tokens`` more tokens, from free memory."""
        want = min(self.need(rec[0] + self._la), self.max_groups) - self._m[rec[1]]
        if want > 0:
            want = min(want, self.total_groups - self._mapped + self._idle_mapped)
            if want > 0:
                self._in_bg = True
                self._take(rec[1], want, trim=False)
                self._in_bg = False
                self.background_map_groups += want

    def _start(self, seq: int, tokens: int, sync: bool) -> int | None:
        """Give ``seq`` a slot with groups for ``tokens``; groups mapped, or None."""
        n = self.need(tokens)
        self._new_slot = -1
        slot = self._pick_slot(n)
        if slot is None:
            return None
        g = max(0, n - self._m[slot])
        self._idle_remove(slot)
        if g > self._available(self._m[slot]):
            if slot == len(self._m) - 1 and slot == self._new_slot:
                self._m.pop()                      # a slot created for nothing: undo
            else:
                self._idle_add(slot)
            return None
        if g:
            self._in_bg = not sync
            self._take(slot, g, trim=True)
            self._in_bg = False
        rec = [tokens, slot, n, self._cap(n)]
        self._seqs[seq] = rec
        self._need += n
        self._tokens += tokens
        if sync:
            self.sync_map_groups += g
        else:
            self.background_map_groups += g
        if self._la:
            self._lookahead(rec)
        return g if sync else 0

    def _stop(self, seq: int) -> list[int]:
        rec = self._seqs.pop(seq)
        t, slot, n, _ = rec
        self._need -= n
        self._tokens -= t
        if not self.config.deferred_reclaim and self._m[slot]:
            self._in_bg = self.config.overlap
            self._unmap(slot, self._m[slot])
            self._in_bg = False
        self._idle_add(slot)
        return rec

    def _known(self, seq: int) -> None:
        if seq in self._seqs or seq in self._swapped:
            raise ValueError(f"seq: sequence {seq} is already known")

    # ---- verbs ---------------------------------------------------------------------------
    def admit(self, seq: int, prompt_tokens: int, max_tokens: int,
              prefix_hashes: Sequence[int] = ()) -> Admission | None:
        self._known(seq)
        if prompt_tokens < 0 or max_tokens < prompt_tokens:
            raise ValueError(f"max_tokens: must be >= prompt_tokens ({prompt_tokens}) >= 0, "
                             f"got {max_tokens}")
        if prompt_tokens > self.model.max_context:
            raise ValueError(f"prompt_tokens: {prompt_tokens} exceeds {self.model.name}'s "
                             f"max_context {self.model.max_context} (the virtual slot size)")
        g = self._start(seq, prompt_tokens, sync=not self.config.eager_alloc)
        if g is None:
            return None
        return Admission(0, g)

    def grow(self, seq: int, tokens: int = 1) -> int | None:
        rec = self._seqs[seq]
        t = rec[0] + tokens
        if t + self._la <= rec[3]:                          # fast path: inside mapped need
            rec[0] = t
            self._tokens += tokens
            return 0
        if tokens < 0:
            raise ValueError(f"tokens: must be >= 0, got {tokens}")
        n = self.need(t)
        if n > self.max_groups:
            return None                                      # past the model's max context
        slot = rec[1]
        g = max(0, n - self._m[slot])
        if g and g > self._available(self._m[slot] - rec[2]):
            return None
        if g:
            self._take(slot, g, trim=True)
            self.sync_map_groups += g
        self._need += n - rec[2]
        self._tokens += tokens
        rec[0], rec[2], rec[3] = t, n, self._cap(n)
        if self._la:
            self._lookahead(rec)
        return g

    def fork(self, parent: int, child: int) -> bool:
        self._known(child)
        t = self._seqs[parent][0]
        return self._start(child, t, sync=True) is not None

    def free(self, seq: int) -> None:
        if seq in self._swapped:
            self._swapped_tokens -= self._swapped.pop(seq)
            return
        self._stop(seq)

    def preempt(self, seq: int, mode: str = "recompute") -> int:
        _check_mode(mode)
        t = self._stop(seq)[0]
        if mode == "recompute":
            return 0
        self._swapped[seq] = t
        self._swapped_tokens += t
        return t * self.token_bytes

    def swap_in(self, seq: int) -> int | None:
        t = self._swapped.pop(seq)
        if self._start(seq, t, sync=True) is None:
            self._swapped[seq] = t
            return None
        self._swapped_tokens -= t
        return t * self.token_bytes

    def tokens(self, seq: int) -> int:
        if seq in self._swapped:
            return self._swapped[seq]
        return self._seqs[seq][0]

    def usage(self) -> MemoryUsage:
        used = self._tokens * self.token_bytes
        frag = self._need * self.group_bytes - used
        reserved = self._excess() * self.group_bytes
        return MemoryUsage(self.capacity_bytes, used, frag, reserved, 0,
                           self.capacity_bytes - used - frag - reserved,
                           len(self._m) * self.slot_virtual_bytes,
                           self._swapped_tokens * self.token_bytes)

    # ---- extras --------------------------------------------------------------------------
    @property
    def idle_mapped_bytes(self) -> int:
        """Pages left mapped in idle slots by deferred reclamation (inside ``free_bytes``)."""
        return self._idle_mapped * self.group_bytes

    @property
    def tokens_per_page(self) -> float:
        return self.page_bytes / self.row_bytes

    def slot(self, seq: int) -> int:
        """The virtual slot (request buffer index) ``seq`` lives in."""
        return self._seqs[seq][1]

    def mapped_groups(self, seq: int) -> int:
        return self._m[self._seqs[seq][1]]

    def running(self) -> list[int]:
        return list(self._seqs)

    def counters(self) -> dict[str, int]:
        return {"map_calls": self.map_calls, "unmap_calls": self.unmap_calls,
                "sync_map_groups": self.sync_map_groups,
                "background_map_groups": self.background_map_groups,
                "reclaimed_groups": self.reclaimed_groups,
                "background_unmap_calls": self.background_unmap_calls}

    def check(self) -> None:
        """Recompute totals from the slots; AssertionError on any inconsistency (tests)."""
        running = {rec[1]: rec for rec in self._seqs.values()}
        if len(running) != len(self._seqs):
            raise AssertionError("two requests share a slot")
        idle = {s for d in self._idle for s in d}
        if idle & set(running) or len(idle) + len(running) != len(self._m):
            raise AssertionError("slots: idle and running do not partition them")
        for m, d in enumerate(self._idle):
            if any(self._m[s] != m for s in d):
                raise AssertionError("idle bucket holds a slot of another size")
        if self._mapped != sum(self._m) or self._mapped > self.total_groups:
            raise AssertionError(f"mapped groups {self._mapped} (slots say {sum(self._m)}, "
                                 f"capacity {self.total_groups})")
        if self._idle_mapped != sum(self._m[s] for s in idle):
            raise AssertionError("idle mapped total")
        for s, (t, _, n, cap) in running.items():
            if n != self.need(t) or cap != self._cap(n) or self._m[s] < n:
                raise AssertionError(f"slot {s}: need {n}, mapped {self._m[s]}, {t} tokens")
        if self._need != sum(r[2] for r in self._seqs.values()):
            raise AssertionError("need total")
        if self._tokens != sum(r[0] for r in self._seqs.values()):
            raise AssertionError("token total")
        if not self.config.deferred_reclaim and self._idle_mapped:
            raise AssertionError("idle slots hold pages without deferred reclamation")
