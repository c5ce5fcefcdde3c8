"""A slow, plain-Python cache hierarchy with the documented semantics of simkit.cache.

Written from the semantics in simkit/cache/policies.py and _kernels.py docstrings, not from the
kernel code: LRU/FIFO sets are Python lists in recency/fill order; the other policies keep
fixed way positions. Random choices use the same xorshift64* stream as the kernel (seeded the
same way), so random, BRRIP and DRRIP runs are comparable exactly.
"""
from __future__ import annotations

M64 = (1 << 64) - 1
LOAD, STORE, IFETCH, MODIFY, WRITEBACK = range(5)
TLB_LINE = 1 << 56         # line numbers of TLB blocks (simkit.cache._kernels.TLB_LINE)


class Rng:
    def __init__(self, seed: int, level_index: int):
        self.x = ((seed * 0x9E3779B97F4A7C15 + 0xD1B54A32D192ED03 * (level_index + 1)) % (1 << 64)) | 1

    def next(self) -> int:
        x = self.x
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        self.x = x
        return (x * 2685821657736338717) & M64


class Level:
    def __init__(self, cfg, index):
        self.cfg = cfg
        self.sets = cfg.sets
        self.ways = cfg.ways
        self.policy = cfg.policy
        self.rng = Rng(cfg.seed, index)
        self.rmax = (1 << cfg.rrpv_bits) - 1
        self.psel_max = (1 << cfg.psel_bits) - 1
        self.psel = (self.psel_max + 1) // 2
        self.stride = max(self.sets // 32, 2) if self.sets >= 4 else 1
        if self.policy in ("lru", "fifo"):
            self.order = [[] for _ in range(self.sets)]          # [line, dirty] MRU first
        else:
            self.lines = [[None] * self.ways for _ in range(self.sets)]
            self.dirty = [[0] * self.ways for _ in range(self.sets)]
            self.rrpv = [[self.rmax] * self.ways for _ in range(self.sets)]
            self.plru = [0] * self.sets
            self.spared = [[False] * self.ways for _ in range(self.sets)]
        self.pressure = True          # srrip-victima's translation-pressure switch
        self.hits = [0] * 5
        self.misses = [0] * 5
        self.evictions = self.writebacks = self.backinv = 0

    # --- queries -------------------------------------------------------------------
    def find(self, line):
        s = line % self.sets
        if self.policy in ("lru", "fifo"):
            for i, e in enumerate(self.order[s]):
                if e[0] == line:
                    return i
            return None
        for w in range(self.ways):
            if self.lines[s][w] == line:
                return w
        return None

    def contents(self):
        if self.policy in ("lru", "fifo"):
            return sorted(e[0] for st in self.order for e in st)
        return sorted(l for st in self.lines for l in st if l is not None)

    # --- verbs ---------------------------------------------------------------------
    def touch(self, line, w, op):
        s = line % self.sets
        if op == WRITEBACK or self.policy in ("fifo", "random"):
            return
        if self.policy == "lru":
            self.order[s].insert(0, self.order[s].pop(w))
        elif self.policy == "plru":
            self._plru_touch(s, w)
        elif self.policy in ("srrip", "brrip", "drrip"):
            self.rrpv[s][w] = 0
        else:                     # srrip-fp, srrip-victima(-artifact): frequency priority
            dec = 1
            if line & TLB_LINE and self.policy == "srrip-victima-artifact":
                dec = self.rrpv[s][w]
            elif line & TLB_LINE and self.policy == "srrip-victima" and self.pressure:
                dec = 3
            self.rrpv[s][w] = max(self.rrpv[s][w] - dec, 0)

    def set_dirty(self, line, w, d):
        s = line % self.sets
        if self.policy in ("lru", "fifo"):
            self.order[s][w][1] |= d
        else:
            self.dirty[s][w] |= d

    def get_dirty(self, line, w):
        s = line % self.sets
        return self.order[s][w][1] if self.policy in ("lru", "fifo") else self.dirty[s][w]

    def invalidate(self, line, w):
        s = line % self.sets
        if self.policy in ("lru", "fifo"):
            return self.order[s].pop(w)[1]
        d = self.dirty[s][w]
        self.lines[s][w] = None
        self.dirty[s][w] = 0
        return d

    def fill(self, line, d):
        """Insert ``line``; returns (victim_line, victim_dirty) or None."""
        s = line % self.sets
        if self.policy in ("lru", "fifo"):
            o = self.order[s]
            o.insert(0, [line, d])
            if len(o) > self.ways:
                v = o.pop()
                return v[0], v[1]
            return None
        empty = [w for w in range(self.ways) if self.lines[s][w] is None]
        if empty:
            w = empty[0]
        elif self.policy == "random":
            w = self.rng.next() % self.ways
        elif self.policy == "plru":
            w = self._plru_victim(s)
        else:
            w = self._rrip_victim(s)
        victim = None if self.lines[s][w] is None else (self.lines[s][w], self.dirty[s][w])
        self.lines[s][w] = line
        self.dirty[s][w] = d
        if self.policy == "plru":
            self._plru_touch(s, w)
        elif self.policy in ("srrip", "brrip", "drrip"):
            self.rrpv[s][w] = self._insert_rrpv(s)
        elif self.policy != "random":
            tlb_first = self.policy == "srrip-victima" and self.pressure and line & TLB_LINE
            self.rrpv[s][w] = 0 if tlb_first else self.rmax - 1
            self.spared[s][w] = False
        return victim

    def _rrip_victim(self, s):
        """First way at rmax after ageing; srrip-victima under pressure spares each TLB
        block once (it drops to rmax - 1 and the search goes on)."""
        r = self.rrpv[s]
        while True:
            m = max(r)
            if m < self.rmax:
                for i in range(self.ways):
                    r[i] += self.rmax - m
            for w in range(self.ways):
                if r[w] != self.rmax:
                    continue
                if (self.policy == "srrip-victima" and self.pressure
                        and self.lines[s][w] & TLB_LINE and not self.spared[s][w]):
                    self.spared[s][w] = True
                    r[w] = self.rmax - 1
                    continue
                return w

    def _insert_rrpv(self, s):
        pol = self.policy
        if pol == "drrip":
            r = s % self.stride
            if r == 0:
                self.psel = min(self.psel + 1, self.psel_max)
                pol = "srrip"
            elif r == self.stride - 1:
                self.psel = max(self.psel - 1, 0)
                pol = "brrip"
            else:
                pol = "brrip" if self.psel >= (self.psel_max + 1) // 2 else "srrip"
        if pol == "srrip":
            return self.rmax - 1
        if self.rng.next() % self.cfg.brrip_throttle == 0:
            return self.rmax - 1
        return self.rmax

    def _plru_touch(self, s, w):
        node, half = 1, self.ways >> 1
        while half:
            right = bool(w & half)
            if right:
                self.plru[s] &= ~(1 << node)
            else:
                self.plru[s] |= 1 << node
            node = 2 * node + int(right)
            half >>= 1

    def _plru_victim(self, s):
        node = 1
        while node < self.ways:
            node = 2 * node + ((self.plru[s] >> node) & 1)
        return node - self.ways


class RefHierarchy:
    def __init__(self, config):
        self.config = config
        self.levels = [Level(c, i) for i, c in enumerate(config.levels)]
        self.mode = config.inclusion
        self.mem_reads = self.mem_writes = 0
        self.shift = config.line_bytes.bit_length() - 1

    def run(self, records):
        for r in records:
            a, size, op = int(r["addr"]), int(r["size"]), int(r["op"])
            first = a >> self.shift
            last = (a + size - 1) >> self.shift if size > 1 else first
            for line in range(first, last + 1):
                self.access(line, op)

    def access(self, line, op):
        if self.mode == "exclusive":
            return self._exclusive(line, op)
        n = len(self.levels)
        need_data = op != STORE
        store_pending = op in (STORE, MODIFY)
        vict = [None] * n
        served = n
        for i, L in enumerate(self.levels):
            if not (need_data or store_pending):
                break
            d = int(store_pending and L.cfg.write_back)
            alloc = need_data or (store_pending and L.cfg.write_allocate)
            w = L.find(line)
            if w is not None:
                L.hits[op] += 1
                L.touch(line, w, op)
                w = L.find(line)
                L.set_dirty(line, w, d)
                if (need_data or d) and served == n:
                    served = i
                need_data = False
            else:
                L.misses[op] += 1
                if alloc:
                    vict[i] = L.fill(line, d)
                    need_data = True
            if d and (w is not None or alloc):
                store_pending = False
        if need_data:
            self.mem_reads += 1
        if store_pending:
            self.mem_writes += 1
        for i in range(n - 1, -1, -1):
            if vict[i] is not None:
                v, vict[i] = vict[i], None
                self._dispose(i, v, vict)
        return served

    def _dispose(self, i, victim, vict):
        n = len(self.levels)
        while victim is not None:
            L = self.levels[i]
            L.evictions += 1
            vline, vd = victim
            if self.mode == "inclusive" and i > 0:
                for j in range(i):
                    U = self.levels[j]
                    w = U.find(vline)
                    if w is not None:
                        vd |= U.invalidate(vline, w)
                        U.backinv += 1
                    elif vict[j] is not None and vict[j][0] == vline:
                        vd |= vict[j][1]
                        vict[j] = None
            if not vd and self.mode != "exclusive":
                return
            if vd:
                L.writebacks += 1
            if i + 1 == n:
                if vd:
                    self.mem_writes += 1
                return
            N = self.levels[i + 1]
            w = N.find(vline)
            if w is not None:
                N.hits[WRITEBACK] += 1
                N.set_dirty(vline, w, vd)
                return
            N.misses[WRITEBACK] += 1
            victim = N.fill(vline, vd)
            i += 1

    def _exclusive(self, line, op):
        is_store = op in (STORE, MODIFY)
        L0 = self.levels[0]
        w = L0.find(line)
        if w is not None:
            L0.hits[op] += 1
            L0.touch(line, w, op)
            if is_store:
                L0.set_dirty(line, L0.find(line), 1)
            return
        L0.misses[op] += 1
        d = int(is_store)
        served = None
        for i in range(1, len(self.levels)):
            L = self.levels[i]
            w = L.find(line)
            if w is not None:
                L.hits[op] += 1
                d |= L.invalidate(line, w)
                served = i
                break
            L.misses[op] += 1
        if served is None:
            self.mem_reads += 1
        v = L0.fill(line, d)
        if v is not None:
            self._dispose(0, v, [None] * len(self.levels))

    def counters(self):
        """Rows comparable with CacheStats: (hits[5], misses[5], evictions, writebacks, backinv)."""
        return [(tuple(L.hits), tuple(L.misses), L.evictions, L.writebacks, L.backinv)
                for L in self.levels], (self.mem_reads, self.mem_writes)
