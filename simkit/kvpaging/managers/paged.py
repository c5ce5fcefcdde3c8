"""PagedAttention (vLLM): KV memory in blocks of ``B`` tokens (all layers' K and V of B tokens:
``B * kv_bytes_per_token`` bytes), per-sequence block tables, reference counts, copy-on-write,
automatic prefix caching with an LRU free queue, preemption by recompute or swap.

::

    block table of seq 7     physical blocks (ref count, filled slots)
      [ 4, 9, 2 ]     --->   4:(2, B)  9:(2, B)  2:(1, 5)      <- last block: 5 of B filled
    block table of seq 8          ^        ^                      (B-5 slots: internal frag.)
      [ 4, 9, 11 ]    -----------/--------/   11:(1, 3)

    free queue (LRU, head evicted first):  head -> 6 -> 3(h=a1) -> 12(h=c7) -> ... <- tail
    hash map:  a1 -> 3,  c7 -> 12,  (hashes of full blocks, in use or free)

Following vLLM v1 (``vllm/v1/core/block_pool.py``, ``kv_cache_manager.py``; REFERENCE.md 2.1):

- a new block is allocated only when the sequence's last block is full, so a sequence wastes
  less than one block; ``grow`` is O(1) when no new block is needed;
- ``fork`` shares the parent's blocks (ref counts +1); the first of the sharers to append into
  a shared, partly filled last block gets a private copy of it (copy-on-write, counted in
  ``cow_copies``); full shared blocks are never copied;
- prefix caching: the caller passes chained hashes of the prompt's full blocks
  (``prefix_hashes``; each may cover ``hash_block_tokens`` = k * B tokens, split into k block
  keys ``(hash, j)``). ``admit`` takes the longest run of leading blocks found in the hash map
  (in use by another sequence, or free but still cached), at most ``(prompt - 1) // B``
  blocks so that at least one prompt token is computed (vLLM recomputes the last token of a
  full hit). Full prompt blocks it allocates are entered in the hash map. Blocks filled by
  generated tokens are not hashed (the trace has no token ids);
- freed blocks go to the tail of the free queue (a sequence's blocks in reverse order, so its
  tail is evicted first); allocation pops the head and drops its hash; a hit on a free cached
  block unlinks it from the queue and bumps its ref count;
- with ``cpu_cache_bytes``, a host-memory tier: a cached block evicted from the GPU (popped
  from the free queue) leaves its hash in a host LRU; ``admit`` continues the prefix match
  there after the GPU's hash map ends and loads those blocks into fresh GPU blocks
  (``Admission.loaded_bytes``, copied over PCIe by the engine) instead of recomputing them.
  Swapped-out sequences take the tier's room first (cached hashes are dropped, LRU first);
- preemption by recompute frees the blocks (hashed ones stay cached); by swap copies the
  sequence's blocks to host memory (``swapped_bytes``) and frees them; ``swap_in`` allocates
  fresh blocks (sharing and prefix hits are not restored).

Decode ride (the engine's fast path, ``ride_join`` / ``ride_step`` / ``ride_end``): sequences
that grow by one token in every step ride a shared clock. ``ride_step`` is ``grow(seq, 1)`` for
every rider in join order, but touches only the riders whose last block is full (found by
arithmetic when they joined: ``(-tokens) % B + 1`` steps ahead, then every B steps); the
others' token counts and last-block fills are kept as the clock minus their join tick and
written back when they leave (``free``, ``preempt``, any other verb, or ``ride_end``). The
totals (``usage``, ``logical_bytes``) are exact at every step.

Memory breakdown: filled slots of allocated blocks -> ``used_bytes`` (a shared block counts
once); the rest of allocated blocks -> ``internal_frag_bytes``; free blocks that still hold a
hashed prefix -> ``cached_bytes``; the rest (and bytes below one block) -> ``free_bytes``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from simkit.kvpaging.managers.base import Admission, MemoryUsage
from simkit.kvpaging.managers.config import PagedConfig
from simkit.kvpaging.managers.static import _check_mode
from simkit.kvpaging.models import ModelShape


class PagedManager:
    """PagedAttention block manager (see module doc)."""

    map_calls_per_op = 0   # a new block is bookkeeping in a preallocated pool: no VMM calls

    def __init__(self, config: PagedConfig, model: ModelShape, capacity_bytes: int,
                 name: str | None = None):
        if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int) \
                or capacity_bytes < 0:
            raise ValueError(f"capacity_bytes: expected an integer >= 0, got {capacity_bytes!r}")
        self.config = config
        self.model = model
        self.name = name or f"paged-{config.block_tokens}"
        self.capacity_bytes = capacity_bytes
        self.block_tokens = B = config.block_tokens
        self.token_bytes = model.kv_bytes_per_token
        self.block_bytes = B * self.token_bytes
        self.num_blocks = n = capacity_bytes // self.block_bytes
        self._per_hash = (config.hash_block_tokens or B) // B
        self._ref = [0] * n
        self._fill = [0] * n
        self._hash: list = [None] * n
        self._queue: OrderedDict[int, None] = OrderedDict.fromkeys(range(n))
        self._hmap: dict = {}
        self._seqs: dict[int, list] = {}        # seq -> [tokens, block table]
        self._swapped: dict[int, int] = {}      # seq -> tokens
        self._swapped_blocks = 0
        self._n_alloc = 0                       # blocks with ref > 0
        self._filled = 0                        # filled slots of allocated blocks
        self._n_cached = 0                      # free blocks holding a hash
        self._logical = 0                       # block-table entries, all sequences
        self._host_blocks = config.cpu_cache_bytes // self.block_bytes if n else 0
        self._host: OrderedDict = OrderedDict()  # host tier: hashes of cached blocks, LRU first
        # counters (raw, cumulative)
        self.blocks_allocated = 0
        self.cow_copies = 0
        self.cached_evictions = 0
        self.prefix_query_tokens = 0
        self.prefix_hit_tokens = 0
        self.host_hit_tokens = 0                # of prefix_hit_tokens: loaded from the host
        self.host_offload_blocks = 0            # cached blocks copied to the host on eviction
        self.host_evictions = 0                 # dropped from the host tier
        # decode ride (module doc)
        self._tick = 0                          # ride steps done
        self._riders: dict[int, tuple] = {}     # seq -> (tick its record is of, join order)
        self._due: dict[int, list] = {}         # tick -> [(join order, seq)] needing a block
        self._joins = 0

    # ---- block pool ----------------------------------------------------------------------
    def _pop(self) -> int:
        b = self._queue.popitem(last=False)[0]
        h = self._hash[b]
        if h is not None:
            del self._hmap[h]
            self._hash[b] = None
            self._n_cached -= 1
            self.cached_evictions += 1
            if self._host_blocks:
                self._host_put(h)
        self._ref[b] = 1
        self._n_alloc += 1
        self.blocks_allocated += 1
        return b

    def _release(self, table: list[int]) -> None:
        ref, queue, fill, hsh = self._ref, self._queue, self._fill, self._hash
        for b in reversed(table):
            r = ref[b] - 1
            ref[b] = r
            if r == 0:
                self._n_alloc -= 1
                self._filled -= fill[b]
                queue[b] = None
                if hsh[b] is not None:
                    self._n_cached += 1

    def _host_put(self, h) -> None:
        """A cached block leaves the GPU: its copy enters the host tier (LRU)."""
        host = self._host
        if h in host:
            host.move_to_end(h)
        else:
            host[h] = None
            self.host_offload_blocks += 1
        self._host_trim()

    def _host_trim(self) -> None:
        room = self._host_blocks - self._swapped_blocks
        host = self._host
        while host and len(host) > max(room, 0):
            host.popitem(last=False)
            self.host_evictions += 1

    def _keys(self, prefix_hashes: Sequence[int], nfull: int) -> list:
        k = self._per_hash
        if k == 1:
            return list(prefix_hashes[:nfull])
        keys = []
        for h in prefix_hashes:
            for j in range(k):
                if len(keys) == nfull:
                    return keys
                keys.append((h, j))
        return keys

    # ---- verbs ---------------------------------------------------------------------------
    def admit(self, seq: int, prompt_tokens: int, max_tokens: int,
              prefix_hashes: Sequence[int] = ()) -> Admission | None:
        if seq in self._seqs or seq in self._swapped:
            raise ValueError(f"seq: sequence {seq} is already known")
        if prompt_tokens < 0 or max_tokens < prompt_tokens:
            raise ValueError(f"max_tokens: must be >= prompt_tokens ({prompt_tokens}) >= 0, "
                             f"got {max_tokens}")
        B = self.block_tokens
        nblk = -(-prompt_tokens // B)
        nfull = prompt_tokens // B
        keys = self._keys(prefix_hashes, nfull) if self.config.prefix_caching else []
        hits: list[int] = []
        if keys:
            hmap = self._hmap
            for key in keys[:max(prompt_tokens - 1, 0) // B]:
                b = hmap.get(key)
                if b is None:
                    break
                hits.append(b)
            if len(set(hits)) != len(hits):     # a repeated hash: keep the hits before it
                seen: set[int] = set()
                for i, b in enumerate(hits):
                    if b in seen:
                        del hits[i:]
                        break
                    seen.add(b)
        ref = self._ref
        nhit = len(hits)
        nhost = 0
        if self._host and keys:
            host = self._host
            for key in keys[nhit:max(prompt_tokens - 1, 0) // B]:
                if key not in host or key in self._hmap:
                    break
                nhost += 1
        revived = sum(1 for b in hits if ref[b] == 0)
        new = nblk - nhit
        if new > len(self._queue) - revived:
            return None
        if nhost:
            for key in keys[nhit:nhit + nhost]:
                self._host.move_to_end(key)
        fill = self._fill
        for b in hits:
            if ref[b] == 0:
                del self._queue[b]
                self._n_cached -= 1
                self._n_alloc += 1
                self._filled += fill[b]
            ref[b] += 1
        table = hits                                     # the hits, then the new blocks
        for _ in range(new):
            b = self._pop()
            fill[b] = B
            table.append(b)
        if new:
            fill[table[-1]] = prompt_tokens - (nblk - 1) * B
            self._filled += prompt_tokens - nhit * B
        for i in range(nhit, len(keys)):          # register the new full prompt blocks
            key, b = keys[i], table[i]
            if key not in self._hmap:
                self._hmap[key] = b
                self._hash[b] = key
        self._seqs[seq] = [prompt_tokens, table]
        self._logical += len(table)
        self.prefix_query_tokens += prompt_tokens
        cached = (nhit + nhost) * B
        self.prefix_hit_tokens += cached
        self.host_hit_tokens += nhost * B
        return Admission(cached, new, nhost * self.block_bytes)

    def grow(self, seq: int, tokens: int = 1) -> int | None:
        if self._riders and seq in self._riders:
            self._land(seq)
        rec = self._seqs[seq]
        t = rec[0]
        if tokens == 1 and t % self.block_tokens:          # fast path: room in the last block
            last = rec[1][-1]
            if self._ref[last] == 1:
                rec[0] = t + 1
                self._fill[last] += 1
                self._filled += 1
                return 0
        if tokens < 0:
            raise ValueError(f"tokens: must be >= 0, got {tokens}")
        B = self.block_tokens
        table = rec[1]
        r = t % B
        cow = bool(tokens and r and self._ref[table[-1]] > 1)
        new = -(-(t + tokens) // B) - -(-t // B) + cow
        if new > len(self._queue):
            return None
        fill = self._fill
        if cow:                                              # private copy of the shared tail
            old = table[-1]
            self._ref[old] -= 1                              # still held by the other sharers
            b = self._pop()
            fill[b] = r
            self._filled += r
            table[-1] = b
            self.cow_copies += 1
        left = tokens
        if r:                                                # top up the last block
            add = min(B - r, left)
            fill[table[-1]] += add
            left -= add
        while left:
            b = self._pop()
            add = min(B, left)
            fill[b] = add
            table.append(b)
            left -= add
        self._filled += tokens
        self._logical += new - cow
        rec[0] = t + tokens
        return new

    def grow_each(self, seqs: list) -> tuple[int, int]:
        """``grow(seq, 1)`` for each of ``seqs`` in order, stopping at the first that cannot
        grow (it is left unchanged). Returns (sequences grown, blocks allocated). The engine's
        decode fast path: one call per iteration instead of one per sequence."""
        recs, ref, fill, B = self._seqs, self._ref, self._fill, self.block_tokens
        if self._riders:
            for sid in seqs:
                if sid in self._riders:
                    self._land(sid)
        n = fast = ops = 0
        for sid in seqs:
            rec = recs[sid]
            t = rec[0]
            if t % B:
                last = rec[1][-1]
                if ref[last] == 1:
                    rec[0] = t + 1
                    fill[last] += 1
                    fast += 1
                    n += 1
                    continue
            r = self.grow(sid, 1)
            if r is None:
                break
            ops += r
            n += 1
        self._filled += fast
        return n, ops

    def fork(self, parent: int, child: int) -> bool:
        if child in self._seqs or child in self._swapped:
            raise ValueError(f"seq: sequence {child} is already known")
        if parent in self._riders:
            self._land(parent)
        t, table = self._seqs[parent]
        ref = self._ref
        for b in table:
            ref[b] += 1
        self._seqs[child] = [t, list(table)]
        self._logical += len(table)
        return True

    def free(self, seq: int) -> None:
        if seq in self._swapped:
            t = self._swapped.pop(seq)
            self._swapped_blocks -= -(-t // self.block_tokens)
            return
        if seq in self._riders:
            self._land(seq)
        _, table = self._seqs.pop(seq)
        self._logical -= len(table)
        self._release(table)

    def preempt(self, seq: int, mode: str = "recompute") -> int:
        _check_mode(mode)
        if seq in self._riders:
            self._land(seq)
        t, table = self._seqs.pop(seq)
        self._logical -= len(table)
        self._release(table)
        if mode == "recompute":
            return 0
        self._swapped[seq] = t
        self._swapped_blocks += len(table)
        if self._host:
            self._host_trim()
        return len(table) * self.block_bytes

    def swap_in(self, seq: int) -> int | None:
        t = self._swapped[seq]
        B = self.block_tokens
        n = -(-t // B)
        if n > len(self._queue):
            return None
        del self._swapped[seq]
        self._swapped_blocks -= n
        fill = self._fill
        table = []
        for _ in range(n):
            b = self._pop()
            fill[b] = B
            table.append(b)
        if n:
            fill[table[-1]] = t - (n - 1) * B
        self._filled += t
        self._seqs[seq] = [t, table]
        self._logical += n
        return n * self.block_bytes

    def tokens(self, seq: int) -> int:
        if seq in self._swapped:
            return self._swapped[seq]
        t = self._seqs[seq][0]
        if seq in self._riders:
            t += self._tick - self._riders[seq][0]
        return t

    # ---- decode ride (module doc) ----------------------------------------------------------
    def ride_join(self, seq: int) -> bool:
        """``seq`` grows by one token in every ``ride_step`` from now on, after the riders
        already there. False (nothing changed) when its last block is shared and partly
        filled (a copy-on-write the ride does not do) or it holds no tokens."""
        if seq in self._riders:
            raise ValueError(f"seq: sequence {seq} already rides")
        t, table = self._seqs[seq]
        B = self.block_tokens
        if not t or (t % B and self._ref[table[-1]] != 1):
            return False
        order = self._joins
        self._joins = order + 1
        self._riders[seq] = (self._tick, order)
        self._due.setdefault(self._tick + (-t) % B + 1, []).append((order, seq))
        return True

    def ride_step(self, riders: int) -> int | None:
        """``grow(seq, 1)`` for every rider (``riders``: how many the caller has joined; a
        mismatch raises). Returns the blocks allocated, or None (nothing changed) when the
        riders whose last block is full outnumber the free blocks."""
        if riders != len(self._riders):
            raise RuntimeError(f"decode ride: {riders} riders expected, the manager has "
                               f"{len(self._riders)}")
        t = self._tick + 1
        due = self._due.get(t)
        ops = 0
        if due:
            ops = len(due)
            if ops > len(self._queue):
                return None
            del self._due[t]
            if ops > 1:
                due.sort()                                  # join order
            recs, fill, B, pop = self._seqs, self._fill, self.block_tokens, self._pop
            for _, seq in due:
                table = recs[seq][1]
                fill[table[-1]] = B                         # the full block (fill was lazy)
                b = pop()
                fill[b] = 1
                table.append(b)
            self._due.setdefault(t + B, []).extend(due)
            self._logical += ops
        self._tick = t
        self._filled += riders
        return ops

    def _land(self, seq: int) -> None:
        """A rider leaves the ride: its token count and last block's fill written back."""
        tick0, order = self._riders.pop(seq)
        rec = self._seqs[seq]
        B = self.block_tokens
        t = rec[0] + self._tick - tick0
        rec[0] = t
        table = rec[1]
        self._fill[table[-1]] = t - (len(table) - 1) * B
        k = self._tick + (-t) % B + 1
        due = self._due[k]
        due.remove((order, seq))
        if not due:
            del self._due[k]

    def ride_end(self) -> None:
        """Every rider leaves the ride."""
        if not self._riders:
            return
        recs, fill, B, tick = self._seqs, self._fill, self.block_tokens, self._tick
        for seq, (tick0, _) in self._riders.items():
            rec = recs[seq]
            t = rec[0] + tick - tick0
            rec[0] = t
            table = rec[1]
            fill[table[-1]] = t - (len(table) - 1) * B
        self._riders.clear()
        self._due.clear()

    @property
    def riders(self) -> int:
        """Sequences on the decode ride."""
        return len(self._riders)

    def usage(self) -> MemoryUsage:
        tb = self.token_bytes
        used = self._filled * tb
        frag = (self._n_alloc * self.block_tokens - self._filled) * tb
        cached = self._n_cached * self.block_bytes
        return MemoryUsage(self.capacity_bytes, used, frag, 0, cached,
                           self.capacity_bytes - used - frag - cached, 0,
                           self._swapped_blocks * self.block_bytes)

    # ---- extras --------------------------------------------------------------------------
    def logical_bytes(self) -> int:
        """Blocks the sequences' tables hold, each counted once per sequence (what they would
        take without sharing), in bytes."""
        return self._logical * self.block_bytes

    @property
    def free_blocks(self) -> int:
        """Blocks an allocation can take now (free, cached or not)."""
        return len(self._queue)

    def block_table(self, seq: int) -> list[int]:
        return list(self._seqs[seq][1])

    def ref_count(self, block: int) -> int:
        return self._ref[block]

    def running(self) -> list[int]:
        return list(self._seqs)

    def counters(self) -> dict[str, int]:
        return {"blocks_allocated": self.blocks_allocated, "cow_copies": self.cow_copies,
                "cached_evictions": self.cached_evictions,
                "prefix_query_tokens": self.prefix_query_tokens,
                "prefix_hit_tokens": self.prefix_hit_tokens,
                "host_hit_tokens": self.host_hit_tokens,
                "host_offload_blocks": self.host_offload_blocks,
                "host_evictions": self.host_evictions}

    def check(self) -> None:
        """Recompute ref counts, fills and totals from the block tables; AssertionError on any
        inconsistency (tests)."""
        B, n = self.block_tokens, self.num_blocks
        ref = [0] * n
        fill_seen: dict[int, int] = {}
        fills = list(self._fill)
        due = sorted(x for v in self._due.values() for x in v)
        if due != sorted((o, s) for s, (_, o) in self._riders.items()):
            raise AssertionError("decode ride: riders and their due blocks disagree")
        for k, v in self._due.items():
            for _, seq in v:
                if k != self._tick + (-self.tokens(seq)) % B + 1:
                    raise AssertionError(f"decode ride: seq {seq} due at the wrong step")
        for seq, (t, table) in self._seqs.items():
            if seq in self._riders:             # the lazy count and fill, as they stand
                t = self.tokens(seq)
                fills[table[-1]] = t - (len(table) - 1) * B
            if len(table) != -(-t // B):
                raise AssertionError(f"seq {seq}: {len(table)} blocks for {t} tokens")
            if len(set(table)) != len(table):
                raise AssertionError(f"seq {seq}: a block twice in one table")
            for i, b in enumerate(table):
                ref[b] += 1
                want = B if i < len(table) - 1 else t - i * B
                if fills[b] != want:
                    raise AssertionError(f"seq {seq}: block {b} fill {fills[b]} != {want}")
                if fill_seen.setdefault(b, want) != want:
                    raise AssertionError(f"block {b}: sharers disagree on its fill")
        if ref != self._ref:
            bad = next(b for b in range(n) if ref[b] != self._ref[b])
            raise AssertionError(f"block {bad}: ref count {self._ref[bad]}, tables say {ref[bad]}")
        in_use = {b for b in range(n) if ref[b]}
        if any(b in self._queue for b in in_use):
            raise AssertionError("a block in use is in the free queue")
        if len(self._queue) + len(in_use) != n:
            raise AssertionError("free queue + blocks in use != all blocks")
        if self._n_alloc != len(in_use):
            raise AssertionError("allocated block count")
        if self._filled != sum(fills[b] for b in in_use):
            raise AssertionError("filled slot total")
        for key, b in self._hmap.items():
            if self._hash[b] != key:
                raise AssertionError(f"hash map entry of block {b} not its hash")
        if sum(h is not None for h in self._hash) != len(self._hmap):
            raise AssertionError("blocks with a hash != hash map entries")
        if self._n_cached != sum(1 for b in self._queue if self._hash[b] is not None):
            raise AssertionError("cached free block count")
        if len(self._host) > max(self._host_blocks - self._swapped_blocks, 0):
            raise AssertionError("host tier over its room")
        if self._logical != sum(len(t) for _, t in self._seqs.values()):
            raise AssertionError("logical block count")
        if self._swapped_blocks != sum(-(-t // B) for t in self._swapped.values()):
            raise AssertionError("swapped block count")
