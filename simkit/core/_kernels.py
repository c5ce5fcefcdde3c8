"""The core model's kernel: one pass over a chunk's per-access latencies.

Interval/ROB-occupancy style (Karkhanis & Smith, ISCA 2004; Eyerman et al., TOCS 2009): not
cycle-accurate, a model of how much memory latency overlaps. Per record (k instructions, the
last of them the memory access):

- the k-1 other instructions dispatch at ``width`` per cycle, then the access itself;
- dispatch of instruction s waits until instruction s-ROB has retired (retirement is in order:
  an instruction retires once every older memory access has completed; other instructions are
  done when dispatched);
- a load also waits until the load ``lq`` loads earlier has retired (stores never block);
- a dependent access (``chain``, or the record's flag) issues when the previous load completes;
- translation: the TLB lookup cycles, then a walk, which waits for the earliest-free of
  ``walkers`` walkers and holds it for its cycles;
- completion = translation end + the data access latency; with ``mshrs`` > 0, a load that
  misses the L1D (data latency above ``l1_cycles``) waits for the earliest-free of ``mshrs``
  miss-status holding registers (fill buffers) and holds it until its data returns; 0: no
  limit (stores drain from the store queue after retirement and take none);
- with ``walk_mshr`` (and ``mshrs`` > 0), a walk whose PTE reads missed the L1D (``wm`` > 0:
  the sum of those reads' latencies) also waits for the earliest-free MSHR and holds it for
  ``wm`` from the walk's start: the PTE reads of a walk are serial, so one register at a time
  (Intel's page walker looks its loads up in the L1D and its fill buffers);
- memory bandwidth, with ``dram_line_cycles`` > 0: a load served by memory (data latency at
  least ``mem_cycles``) also waits for a single DRAM server that starts at most one line per
  ``dram_line_cycles`` (in dispatch order), and its data arrives that latency after its slot; a
  walk that read memory (the record's ``wdram``) takes one slot too, from the walk's start,
  without waiting for it (the throughput its PTE fill costs the data, not its own latency).
  0: no limit (the results bit-identical to the model without it).

Times are float64 cycles. State ``st``: [T dispatch time, SEQ instructions, LAST load
completion, FRONT retire frontier, CUMMAX completion of all dispatched accesses, HEAD, COUNT
ring occupancy, LQPOS the load queue's next slot]; ``ring`` (2, R), R the power of two
``ring_size(rob)``: the in-flight accesses' (seq, cumulative completion: the latest completion
of any access dispatched so far, which is when the access retires) in order, at positions
modulo R; ``lqr`` (lq,): the retire times of the last lq loads (zeros before there were lq
loads: no constraint, as times are >= 0); ``walk`` (walkers,): when each is free, kept as a
binary min-heap (the earliest-free walker at the root: O(log walkers) per walk); ``mshr``
(max(mshrs, 1) + 1,): when each MSHR is free, a min-heap the same way in its first mshrs
entries, and in its last when the DRAM server starts its next line.

``step`` advances one record (the state as a tuple, ``load``/``store`` move it from/to ``st``);
``run_core`` runs it over a chunk of arrays, and the TLB kernel (``simkit.tlb._kernels.run_mmu``)
runs it inside its own loop over the latencies it has just computed, a small buffer at a time
(no second pass over the trace, no per-record arrays from the front).
"""
from __future__ import annotations

import numpy as np
from numba import njit

S_T, S_SEQ, S_LAST, S_FRONT, S_CUMMAX, S_HEAD, S_COUNT, S_LQPOS = range(8)
NSTATE = 8
P_WIDTH, P_ROB, P_LQ, P_WALKERS, P_DEP, P_MSHRS, P_L1, P_DRAM_X1000, P_MEM, P_WALK_MSHR = range(10)
DEP_INDEPENDENT, DEP_CHAIN, DEP_FLAG = 0, 1, 2
STORE_OP = 1
NO = np.bool_(False)   # non-literal (one specialisation), as simkit.cache's
helper = njit(_nrt=False, no_cpython_wrapper=True, no_cfunc_wrapper=True)   # as simkit.cache's
inlined = njit(_nrt=False, no_cpython_wrapper=True, no_cfunc_wrapper=True, forceinline=True)


def ring_size(rob: int) -> int:
    """Columns of the ring: the power of two >= ``rob`` (positions by mask, not by compare)."""
    return 1 << (int(rob) - 1).bit_length()


@helper
def _replace_min(heap, n, value):
    """Replace the root of the binary min-heap ``heap[:n]`` by ``value`` and sift it down."""
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        child = left
        if left + 1 < n and heap[left + 1] < heap[left]:
            child = left + 1
        if heap[child] >= value:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = value


@helper
def _hold_earliest(heap, n, start, cycles):
    """Take the earliest-free of ``n`` units (min-heap ``heap``) at ``start`` or when it frees,
    hold it for ``cycles``; returns the end."""
    if heap[0] > start:
        start = heap[0]
    end = start + cycles
    _replace_min(heap, n, end)
    return end


@helper
def _dram_fill(mshr, nm, start, lat, interval):
    """A line fill from memory requested at ``start``: it takes the earliest-free MSHR (of
    ``nm``, none when 0), then the DRAM server's next slot (``mshr[-1]``, which it pushes
    ``interval`` on), and its data arrives ``lat`` after that slot; returns then (the MSHR is
    held until then)."""
    if nm > 0 and mshr[0] > start:
        start = mshr[0]
    d = mshr.shape[0] - 1
    if mshr[d] > start:
        start = mshr[d]
    mshr[d] = start + interval
    end = start + lat
    if nm > 0:
        _replace_min(mshr, nm, end)
    return end


@inlined
def load(st):
    """The state ``st`` as the tuple ``step`` carries (kept in registers inside a loop)."""
    return (st[S_T], st[S_SEQ], st[S_LAST], st[S_FRONT], st[S_CUMMAX], np.int64(st[S_HEAD]),
            np.int64(st[S_COUNT]), np.int64(st[S_LQPOS]))


@inlined
def store(st, s):
    """Write the tuple ``s`` of ``step`` back to the state array ``st``."""
    st[S_T], st[S_SEQ], st[S_LAST], st[S_FRONT], st[S_CUMMAX] = s[0], s[1], s[2], s[3], s[4]
    st[S_HEAD], st[S_COUNT], st[S_LQPOS] = s[5], s[6], s[7]


@inlined
def step(s, k, is_load, dependent, trans, w, wm, wdram, lat, params, inv_w, ring, lqr, walk, mshr):
    """Advance the core state ``s`` (``load``'s tuple) by one record and return it: ``k``
    instructions (float, the access last), whether it is a load and depends on the previous
    load, its translation cycles ``trans`` (float) of which ``w`` are a walk (``wm`` of them
    PTE reads that missed the L1D; ``wdram``: the walk read memory), and its data latency
    ``lat``; ``inv_w`` = 1 / width."""
    t, seq, last, front, cummax, head, count, lqpos = s
    rob = params[P_ROB]
    lq = params[P_LQ]
    mask = ring.shape[1] - 1
    if k >= 1.0:
        t += (k - 1.0) * inv_w
        seq += k
    # the reorder buffer: instruction seq - rob must have retired, and a full ring retires its
    # oldest access; the retire frontier is the cumulative completion the ring keeps
    if count == rob:
        front = ring[1, (head - count) & mask]
        count -= 1
    oldest = seq - rob
    while count > 0:
        j = (head - count) & mask
        if ring[0, j] > oldest:
            break
        front = ring[1, j]
        count -= 1
    if front > t:
        t = front
    if is_load and lqr[lqpos] > t:          # the load lq loads back has retired
        t = lqr[lqpos]
    issue = t
    if dependent and last > issue:
        issue = last
    done = issue + trans - w
    dram = params[P_DRAM_X1000]
    nm = params[P_MSHRS]
    if w > 0.0:
        if walk[0] > done:                  # the earliest-free walker (a min-heap's root)
            done = walk[0]
        if wm > 0.0 and nm > 0 and params[P_WALK_MSHR] != 0:
            if mshr[0] > done:              # its L1D-missing PTE reads hold an MSHR
                done = mshr[0]
            _replace_min(mshr, nm, done + wm)
        if dram > 0 and wdram:              # its PTE fill takes a DRAM slot from its start
            d = mshr.shape[0] - 1
            if mshr[d] < done:
                mshr[d] = done
            mshr[d] += dram * 0.001
        done += w
        _replace_min(walk, params[P_WALKERS], done)
    if dram > 0 and is_load and lat >= params[P_MEM]:
        done = _dram_fill(mshr, nm, done, lat, dram * 0.001)
    elif nm > 0 and is_load and lat > params[P_L1]:   # an L1D miss holds an MSHR until filled
        done = _hold_earliest(mshr, nm, done, lat)
    else:
        done += lat
    if done > cummax:
        cummax = done
    if is_load:
        last = done
        lqr[lqpos] = cummax
        lqpos += 1
        if lqpos == lq:
            lqpos = 0
    ring[0, head] = seq
    ring[1, head] = cummax
    head = (head + 1) & mask
    count += 1
    t += inv_w
    return (t, seq, last, front, cummax, head, count, lqpos)


@njit(cache=True, _nrt=False)
def run_core(icount, ops, flags, trans, walks, lat, params, st, ring, lqr, walk, mshr):
    """Advance the core over one chunk (arrays of equal length); walks here take no DRAM slot
    and no MSHR (the arrays do not say whether a walk read memory or missed the L1D:
    ``run_mmu``'s inline core does)."""
    inv_w = 1.0 / float(params[P_WIDTH])
    dep_mode = params[P_DEP]
    s = load(st)
    for i in range(icount.shape[0]):
        dependent = dep_mode == DEP_CHAIN or (dep_mode == DEP_FLAG and (flags[i] & 1) != 0)
        s = step(s, float(icount[i]), ops[i] != STORE_OP, dependent, float(trans[i]),
                 float(walks[i]), 0.0, NO, float(lat[i]), params, inv_w, ring,
                 lqr, walk, mshr)
    store(st, s)
