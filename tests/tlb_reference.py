"""A slow, plain-Python MMU with the documented semantics of simkit.tlb (radix baseline).

Written from the docstrings of simkit/tlb/config.py and _kernels.py: TLBs and page-walk caches
are dicts of LRU lists per set; the page table is a dict filled on first touch with the same
frame arithmetic (first-touch counters, or the seeded 28-bit scatter); PTE reads and data
accesses go through tests/cache_reference.RefHierarchy.
"""
from __future__ import annotations

from cache_reference import RefHierarchy

M64 = (1 << 64) - 1
MASK28 = (1 << 28) - 1
ZONE_2M, ZONE_PT, ZONE_POM = 1 << 41, 1 << 43, 1 << 44
IFETCH = 2
HOST_SALT = 0x5DEECE66D1CE4E5B


def mix(x):
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M64
    x ^= x >> 33
    return x


def scatter(n, seed, mask=MASK28):
    x = (n + seed) & mask
    x = (x * 0x9E3779B1) & mask
    x ^= x >> 13
    x = (x * 0x85EBCA77) & mask
    x ^= x >> 11
    return x


class LRUSets:
    def __init__(self, entries, ways):
        self.sets, self.ways = entries // ways, ways
        self.data = {}

    def _set(self, key):
        return self.data.setdefault(key % self.sets, [])

    def probe(self, key):
        s = self._set(key)
        if key in s:
            s.remove(key)
            s.insert(0, key)
            return True
        return False

    def contains(self, key):
        return key in self._set(key)

    def insert(self, key):
        s = self._set(key)
        s.insert(0, key)
        return s.pop() if len(s) > self.ways else None


class RefMMU:
    def __init__(self, cfg):
        self.cfg = cfg
        self.caches = RefHierarchy(cfg.caches)
        self.lat = [lv.latency_cycles for lv in cfg.caches.levels] + \
            [cfg.caches.memory_latency_cycles]
        self.block = list(cfg.victima_block_cycles) or self.lat[:-1]   # block-hit cycles
        self.parallel = cfg.victima_probe == "parallel-stlb"
        self.l1d = LRUSets(cfg.l1d.entries, cfg.l1d.ways)
        self.l1i = LRUSets(cfg.l1i.entries, cfg.l1i.ways)
        self.l2 = LRUSets(cfg.l2.entries, cfg.l2.ways)
        self.pwc = [LRUSets(e, cfg.pwc_ways) if e else None for e in cfg.pwc_entries]
        self.pom = LRUSets(cfg.pom_entries, cfg.pom_ways) if cfg.pom_entries else None
        self.l3 = LRUSets(cfg.l3.entries, cfg.l3.ways) if cfg.l3 else None
        self.seed = (cfg.seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 64)
        self.thresh = int(round(cfg.huge_page_fraction * (1 << 32)))
        self.next = {"4k": 0x100, "2m": 0, "node": 0, "h4k": 0x100, "h2m": 0, "hnode": 0}
        self.fields = {"4k": 2, "2m": 3, "node": 4, "h4k": 14, "h2m": 15, "hnode": 16}
        self.regions, self.pages, self.nodes = {}, {}, {}
        self.hregions, self.hpages, self.hnodes = {}, {}, {}          # nested paging's host
        self.hthresh = int(round(cfg.host_huge_page_fraction * (1 << 32)))
        self.ntlb = LRUSets(cfg.nested_tlb.entries, cfg.nested_tlb.ways)
        self.c = dict(l1d_hits=0, l1d_misses=0, l1i_hits=0, l1i_misses=0, l2_hits=0,
                      l2_misses=0, walks=0, walks_2m=0, walk_refs=0, walk_cycles=0,
                      translation_cycles=0, pwc_hits=[0, 0, 0], pwc_misses=[0, 0, 0],
                      refs_at=[0] * (len(self.lat)), data_accesses=0, pages_4k=0, pages_2m=0,
                      nodes=0, pom_hits=0, pom_misses=0, pom_refs=0, pom_inserts=0,
                      l3_hits=0, l3_misses=0, vic_hits=[0] * (len(self.lat) - 1),
                      vic_misses=0, vic_alloc_ptw=0, vic_alloc_evict=0, ptwcp_costly=0,
                      ptwcp_cheap=0, ptwcp_bypass=0, vic_bg_walks=0, epochs=0,
                      pressure_epochs=0, ntlb_hits=0, ntlb_misses=0, host_walks=0,
                      host_refs=0, host_cycles=0, nvic_hits=0, nvic_alloc=0, host_pages=0,
                      host_nodes=0)
        # Victima as the paper describes it: L2-only blocks, PTW-CP, pressure epochs
        self.paper = cfg.victima and cfg.victima_l2_only
        self.ptwcp = {}                                  # TLB key -> [freq, cost]
        self.rrip_gate = cfg.victima and cfg.caches.levels[1].policy == "srrip-victima"
        self.epoch = cfg.pressure_epoch_instructions if (cfg.victima_ptw_cp or
                                                         self.rrip_gate) else 0
        self.epoch_instr, self.epoch_tlb_misses, self.epoch_cache_misses = 0, 0, 0
        self.cache_pressure = False
        if self.rrip_gate:
            self.caches.levels[1].pressure = False

    def frame(self, kind):
        n = self.next[kind]
        self.next[kind] += 1
        if self.cfg.placement == "random":
            span = self.cfg.placement_span_bytes
            # 4 KiB frames and nodes over the span's power of two of frames (2 MiB frames
            # always over 2^28); past the span, in order
            mask = MASK28 if not span or kind.endswith("2m") else \
                (1 << ((span + 4095) // 4096 - 1).bit_length()) - 1
            run = 1 if kind.endswith("2m") else self.cfg.placement_run_frames
            if n <= mask and run == 1:
                return scatter(n, (self.seed + self.fields[kind]) & M64, mask)
            if n <= mask and (mask + 1) // run > 1:     # runs of frames, their starts scattered
                return scatter(n // run, (self.seed + self.fields[kind]) & M64,
                               (mask + 1) // run - 1) * run + n % run
        return n

    def translate(self, va, host=False):
        regions, pages, h = (self.hregions, self.hpages, "h") if host else \
            (self.regions, self.pages, "")
        r = va >> 21
        if r not in regions:
            salt, thresh = (HOST_SALT, self.hthresh) if host else (0, self.thresh)
            huge = (mix(r ^ self.seed ^ salt) >> 32) < thresh
            regions[r] = self.frame(h + "2m") if huge else None
            if huge:
                self.c["host_pages" if host else "pages_2m"] += 1
        if regions[r] is not None:
            return ZONE_2M + (regions[r] << 21) + (va & 0x1FFFFF), True
        p = va >> 12
        if p not in pages:
            pages[p] = self.frame(h + "4k")
            self.c["host_pages" if host else "pages_4k"] += 1
        return (pages[p] << 12) + (va & 0xFFF), False

    def node(self, level, va, top, host=False):
        if level == top:
            return 0
        nodes = self.hnodes if host else self.nodes
        key = (level, va >> (12 + 9 * level))
        if key not in nodes:
            nodes[key] = self.frame("hnode" if host else "node")
            self.c["host_nodes" if host else "nodes"] += 1
        return nodes[key] + 1

    def walk_estimate(self, va, huge):
        """What a native walk would cost now, changing nothing."""
        top, leaf = self.cfg.radix_levels, 2 if huge else 1
        start = self.pwc_start(va, leaf, probe=False, charged=False)
        cycles = self.cfg.pwc_latency_cycles
        for level in range(start, leaf - 1, -1):
            if level == top:
                node = 0
            else:
                node = self.nodes.get((level, va >> (12 + 9 * level)))
                if node is None:
                    cycles += self.lat[-1]
                    continue
                node += 1
            pte = ZONE_PT + (node << 12) + (((va >> (12 + 9 * (level - 1))) & 511) << 3)
            cycles += self.lat[self.block_level(pte >> 6)]
        return cycles

    def host_walk(self, gpa, huge, charged):
        top, leaf = self.cfg.radix_levels, 2 if huge else 1
        cycles, dram = 0, False
        for level in range(top, leaf - 1, -1):
            pte = ZONE_PT + (self.node(level, gpa, top, True) << 12) + \
                (((gpa >> (12 + 9 * (level - 1))) & 511) << 3)
            served = self.caches.access(pte >> 6, 0)
            dram |= served == len(self.caches.levels)
            cycles += self.lat[served]
            if charged:
                self.c["host_refs"] += 1
                self.c["walk_refs"] += 1
                self.c["refs_at"][served] += 1
        if charged:
            self.c["host_walks"] += 1
            self.c["host_cycles"] += cycles
        return cycles, dram

    def host_translate(self, gpa, charged):
        """Nested TLB, then (Victima) a nested TLB block, then a host walk."""
        hpa, hhuge = self.translate(gpa, True)
        key4, key2 = gpa >> 12, (gpa >> 21) | (1 << 62)
        cycles = self.cfg.nested_tlb.latency_cycles
        if self.ntlb.probe(key4) or self.ntlb.probe(key2):
            self.c["ntlb_hits"] += charged
            return hpa, cycles, False
        self.c["ntlb_misses"] += charged
        nkey = key2 if hhuge else key4
        hit, dram = False, False
        if self.cfg.victima:
            line = self.tlb_block(nkey) | (1 << 54)
            if self.paper:
                L = self.caches.levels[1]
                if L.find(line) is not None:
                    L.touch(line, L.find(line), 0)
                    cycles += self.block[1]
                    hit = True
            else:
                k = self.block_level(line)
                if k < len(self.caches.levels):
                    if k > 0:
                        self.caches.access(line, 0)
                    cycles += self.block[k]
                    hit = True
            self.c["nvic_hits"] += hit and charged
        if not hit:
            hc, dram = self.host_walk(gpa, hhuge, charged)
            cycles += hc
            if self.paper and self.cfg.victimize_on_ptw and self.place_block(nkey, None, 1 << 54):
                self.c["nvic_alloc"] += 1
        victim = self.ntlb.insert(nkey)
        if victim is not None and self.cfg.victima and self.cfg.victima_insert_on_eviction:
            line = self.tlb_block(victim) | (1 << 54)
            if self.paper:
                if self.caches.levels[1].find(line) is None:
                    vh = bool(victim & (1 << 62))
                    vg = (victim & ~(1 << 62)) << 21 if vh else victim << 12
                    self.host_walk(vg, vh, False)
                    self.place_block(victim, None, 1 << 54)
                    self.c["nvic_alloc"] += 1
            elif self.block_level(line) == len(self.caches.levels):
                self.caches.access(line, 0)
                self.c["nvic_alloc"] += 1
        return hpa, cycles, dram

    def pwc_start(self, va, leaf, probe, charged):
        """Below the deepest PWC hit, or the root; ``probe`` updates LRU and counts."""
        for pl in (2, 1, 0):
            elevel = 4 - pl
            if elevel <= leaf or self.pwc[pl] is None:
                continue
            key = va >> (12 + 9 * (elevel - 1))
            if self.pwc[pl].probe(key) if probe else self.pwc[pl].contains(key):
                self.c["pwc_hits"][pl] += probe and charged
                return elevel - 1
            self.c["pwc_misses"][pl] += probe and charged
        return self.cfg.radix_levels

    def walk(self, va, huge, charged=True):
        top, leaf = self.cfg.radix_levels, 2 if huge else 1
        start = self.pwc_start(va, leaf, probe=True, charged=charged)
        cycles = self.cfg.pwc_latency_cycles
        dram, pte = False, 0
        for level in range(start, leaf - 1, -1):
            node = self.node(level, va, top)
            index = (va >> (12 + 9 * (level - 1))) & 511
            pte = ZONE_PT + (node << 12) + (index << 3)
            if self.cfg.nested:
                pte, hc, hd = self.host_translate(pte, charged)
                cycles += hc
                dram |= hd
            served = self.caches.access(pte >> 6, 0)
            dram |= served == len(self.caches.levels)
            if charged:
                self.c["walk_refs"] += 1
                self.c["refs_at"][served] += 1
            cycles += self.lat[served]
            if 2 <= level <= 4 and level > leaf:
                pl = 4 - level
                if self.pwc[pl] is not None:
                    key = va >> (12 + 9 * (level - 1))
                    if not self.pwc[pl].contains(key):
                        self.pwc[pl].insert(key)
        if self.cfg.nested:
            _, hc, hd = self.host_translate(self.translate(va)[0], charged)
            cycles += hc
            dram |= hd
        if not charged:
            self.c["vic_bg_walks"] += 1
            return cycles, pte >> 6
        self.c["walks"] += 1
        self.c["walks_2m"] += int(huge)
        self.c["walk_cycles"] += cycles
        if self.cfg.victima_ptw_cp:                        # 3-bit freq, 4-bit cost, saturating
            key = (va >> 21) | (1 << 62) if huge else va >> 12
            f, cost = self.ptwcp.get(key, (0, 0))
            self.ptwcp[key] = (min(f + 1, 7), min(cost + dram, 15))
        return cycles, pte >> 6

    def costly(self, key):
        if not self.cfg.victima_ptw_cp:
            return True
        if self.cache_pressure:
            self.c["ptwcp_bypass"] += 1
            return True
        f, cost = self.ptwcp.get(key, (0, 0))
        (flo, fhi), (clo, chi) = self.cfg.ptw_cp_freq_range, self.cfg.ptw_cp_cost_range
        if self.cfg.ptw_cp_comparator == "artifact":      # ptw_cp/predict.py's offline rule
            ok = (cost >= 1 and f >= 2) or (cost == 1 and f == 1)
        else:
            ok = flo <= f <= fhi and clo <= cost <= chi
        self.c["ptwcp_costly" if ok else "ptwcp_cheap"] += 1
        return ok

    def place_block(self, key, old_line=None, ns=0):
        """The paper's insertion into the L2 cache (re-tagging the walk's leaf-PTE line)."""
        L = self.caches.levels[1]
        line = self.tlb_block(key) | ns
        if L.find(line) is not None:
            return False
        if old_line is not None and L.find(old_line) is not None:
            L.invalidate(old_line, L.find(old_line))
        v = L.fill(line, 0)
        if v is not None:
            self.caches._dispose(1, v, [None] * len(self.caches.levels))
        return True

    def end_epoch(self):
        cfg = self.cfg
        n = self.epoch_instr
        tlb_m = self.c["l2_misses"] - self.epoch_tlb_misses
        on = tlb_m * 1_000_000 > round(cfg.pressure_mpki * 1000) * n
        cm = sum(self.caches.levels[1].misses[:4])
        self.cache_pressure = (cm - self.epoch_cache_misses) * 1_000_000 > \
            round(cfg.ptw_cp_bypass_mpki * 1000) * n
        if self.rrip_gate:
            self.caches.levels[1].pressure = on
        self.c["epochs"] += 1
        self.c["pressure_epochs"] += on
        self.epoch_instr, self.epoch_tlb_misses, self.epoch_cache_misses = \
            0, self.c["l2_misses"], cm

    def pom_line(self, key):
        return (ZONE_POM + (key % self.pom.sets) * self.pom.ways * 16) >> 6

    def pom_probe(self, key4, key2):
        """Both sets' lines are read; a hit costs its own line's latency, a miss the larger."""
        lat4 = self.lat[self.caches.access(self.pom_line(key4), 0)]
        lat2 = self.lat[self.caches.access(self.pom_line(key2), 0)]
        self.c["pom_refs"] += 2
        if self.pom.probe(key4):
            hit, cycles = key4, lat4
        elif self.pom.probe(key2):
            hit, cycles = key2, lat2
        else:
            hit, cycles = None, max(lat4, lat2)
        self.c["pom_hits" if hit is not None else "pom_misses"] += 1
        return hit, cycles

    def tlb_block(self, key):
        huge = key & (1 << 62)
        line = ((key & ~(1 << 62)) >> 3) | (1 << 56)
        if huge and not self.cfg.artifact_compat:
            line |= 1 << 55
        return line

    def block_level(self, line):
        for k, L in enumerate(self.caches.levels):
            if L.find(line) is not None:
                return k
        return len(self.caches.levels)

    def l2_insert(self, key):
        victim = self.l2.insert(key)
        if victim is not None and self.paper and self.cfg.victima_insert_on_eviction:
            if self.caches.levels[1].find(self.tlb_block(victim)) is None \
                    and self.costly(victim):
                huge = bool(victim & (1 << 62))
                va = (victim & ~(1 << 62)) << 21 if huge else victim << 12
                self.walk(va, huge, charged=False)
                self.place_block(victim)
                self.c["vic_alloc_evict"] += 1
        elif victim is not None and self.cfg.victima and self.cfg.victima_insert_on_eviction:
            line = self.tlb_block(victim)
            if self.block_level(line) == len(self.caches.levels):
                self.caches.access(line, 0)
                self.c["vic_alloc_evict"] += 1
        if victim is not None and self.l3 is not None and self.cfg.stlb_fill == "l1-victims" \
                and not self.l3.contains(victim):
            self.l3.insert(victim)
        if victim is not None and self.pom is not None and not self.pom.contains(victim):
            self.pom.insert(victim)
            self.caches.access(self.pom_line(victim), 0)
            self.c["pom_refs"] += 1
            self.c["pom_inserts"] += 1

    def access(self, va, op, size):
        fetch = op == IFETCH
        l1, name = (self.l1i, "l1i") if fetch else (self.l1d, "l1d")
        key4, key2 = va >> 12, (va >> 21) | (1 << 62)
        cycles = (self.cfg.l1i if fetch else self.cfg.l1d).latency_cycles
        if l1.probe(key4) or l1.probe(key2):
            self.c[f"{name}_hits"] += 1
        else:
            self.c[f"{name}_misses"] += 1
            cycles += self.cfg.l2.latency_cycles
            if self.l2.probe(key4):
                self.c["l2_hits"] += 1
                key = key4
            elif self.l2.probe(key2):
                self.c["l2_hits"] += 1
                key = key2
            else:
                self.c["l2_misses"] += 1
                key = None
                if self.l3 is not None:
                    cycles += self.cfg.l3.latency_cycles
                    if self.l3.probe(key4):
                        key = key4
                    elif self.l3.probe(key2):
                        key = key2
                    self.c["l3_hits" if key is not None else "l3_misses"] += 1
                if key is None and self.pom is not None:
                    key, pc = self.pom_probe(key4, key2)
                    cycles += pc
                if key is None and self.paper:
                    huge = self.translate(va)[1]
                    vkey = key2 if huge else key4
                    L = self.caches.levels[1]
                    w = L.find(self.tlb_block(vkey))
                    if w is not None:
                        L.touch(self.tlb_block(vkey), w, 0)
                        self.c["vic_hits"][1] += 1
                        # in parallel with the walk: the shorter of the two (native); the
                        # walk starts after the STLB lookup the probe may have overlapped
                        w = self.walk_estimate(va, huge) + \
                            (self.cfg.l2.latency_cycles if self.parallel else 0)
                        cycles += self.block[1] if self.cfg.nested else min(self.block[1], w)
                        cycles -= self.cfg.l2.latency_cycles if self.parallel else 0
                        key = vkey
                    else:
                        self.c["vic_misses"] += 1
                elif key is None and self.cfg.victima:
                    huge = self.translate(va)[1]
                    vkey = key2 if huge else key4
                    line = self.tlb_block(vkey)
                    k = self.block_level(line)
                    if k < len(self.caches.levels):
                        if k > 0:
                            self.caches.access(line, 0)
                        self.c["vic_hits"][k] += 1
                        cycles += self.block[k]
                        cycles -= self.cfg.l2.latency_cycles if self.parallel else 0
                        key = vkey
                    else:
                        self.c["vic_misses"] += 1
                        if self.cfg.victimize_on_ptw:
                            self.caches.access(line, 0)
                            self.c["vic_alloc_ptw"] += 1
                if key is None:
                    huge = self.translate(va)[1]
                    key = key2 if huge else key4
                    wc, leaf_line = self.walk(va, huge)
                    cycles += wc
                    if huge and self.cfg.nested and self.cfg.nested_splinter and \
                            not self.translate(self.translate(va)[0], host=True)[1]:
                        key = key4                  # guest 2 MiB over host 4 KiB: 4 KiB
                    if self.paper and self.cfg.victimize_on_ptw and self.costly(key) \
                            and self.place_block(key, leaf_line):
                        self.c["vic_alloc_ptw"] += 1
                    if self.l3 is not None and self.cfg.stlb_fill == "walk":
                        self.l3.insert(key)
                if self.cfg.stlb_fill == "walk":
                    self.l2_insert(key)
            victim = l1.insert(key)
            if self.cfg.stlb_fill == "l1-victims" and victim is not None \
                    and not self.l2.contains(victim):
                self.l2_insert(victim)
        self.c["translation_cycles"] += cycles
        if self.cfg.data_through_caches:
            pa = self.translate(va)[0]
            if self.cfg.nested:
                pa = self.translate(pa, True)[0]
            last = (pa + size - 1) >> 6 if size > 1 else pa >> 6
            for line in range(pa >> 6, last + 1):
                self.caches.access(line, op)
                self.c["data_accesses"] += 1

    def run(self, records):
        for r in records:
            if self.epoch:
                self.epoch_instr += int(r["icount"])
                if self.epoch_instr >= self.epoch:
                    self.end_epoch()
            self.access(int(r["addr"]), int(r["op"]), int(r["size"]))
