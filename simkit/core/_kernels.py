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
  limit (stores drain from the store queue after retirement and take none).

Times are float64 cycles. State ``st``: [T dispatch time, SEQ instructions, LAST load
completion, FRONT retire frontier, CUMMAX completion of all dispatched accesses, HEAD, COUNT
ring occupancy, NLOADS]; ``ring`` (2, rob): the in-flight accesses' (seq, completion) in order;
``lqr`` (lq,): the retire times of the last lq loads; ``walk`` (walkers,): when each is free,
kept as a binary min-heap (the earliest-free walker at the root: O(log walkers) per walk);
``mshr`` (max(mshrs, 1),): when each MSHR is free, a min-heap the same way.
"""
from __future__ import annotations

import numpy as np
from numba import njit

S_T, S_SEQ, S_LAST, S_FRONT, S_CUMMAX, S_HEAD, S_COUNT, S_NLOADS = range(8)
NSTATE = 8
P_WIDTH, P_ROB, P_LQ, P_WALKERS, P_DEP, P_MSHRS, P_L1 = range(7)
DEP_INDEPENDENT, DEP_CHAIN, DEP_FLAG = 0, 1, 2
STORE_OP = 1
helper = njit(_nrt=False, no_cpython_wrapper=True, no_cfunc_wrapper=True)   # as simkit.cache's


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


@njit(cache=True, _nrt=False)
def run_core(icount, ops, flags, trans, walks, lat, params, st, ring, lqr, walk, mshr):
    """Advance the core over one chunk (arrays of equal length)."""
    width = float(params[P_WIDTH])
    rob = params[P_ROB]
    lq = params[P_LQ]
    nw = params[P_WALKERS]
    dep_mode = params[P_DEP]
    nm = params[P_MSHRS]
    l1 = params[P_L1]
    inv_w = 1.0 / width
    t = st[S_T]
    seq = st[S_SEQ]
    last = st[S_LAST]
    front = st[S_FRONT]
    cummax = st[S_CUMMAX]
    head = np.int64(st[S_HEAD])
    count = np.int64(st[S_COUNT])
    nloads = np.int64(st[S_NLOADS])
    lqpos = nloads % lq
    for i in range(icount.shape[0]):
        k = float(icount[i])
        if k >= 1.0:
            t += (k - 1.0) * inv_w
            seq += k
        # the reorder buffer: instruction seq - rob must have retired
        oldest = seq - rob
        while count > 0:
            j = head - count
            if j < 0:
                j += rob
            if ring[0, j] > oldest and count < rob:
                break
            if ring[1, j] > front:
                front = ring[1, j]
            count -= 1
        if front > t:
            t = front
        is_load = ops[i] != STORE_OP
        if is_load and nloads >= lq and lqr[lqpos] > t:
            t = lqr[lqpos]
        issue = t
        dependent = dep_mode == DEP_CHAIN or (dep_mode == DEP_FLAG and (flags[i] & 1) != 0)
        if dependent and last > issue:
            issue = last
        w = float(walks[i])
        done = issue + float(trans[i]) - w
        if w > 0.0:
            if walk[0] > done:                  # the earliest-free walker (a min-heap's root)
                done = walk[0]
            done += w
            _replace_min(walk, nw, done)
        if nm > 0 and is_load and lat[i] > l1:      # an L1D miss holds an MSHR until filled
            done = _hold_earliest(mshr, nm, done, float(lat[i]))
        else:
            done += float(lat[i])
        if done > cummax:
            cummax = done
        if is_load:
            last = done
            lqr[lqpos] = cummax
            lqpos += 1
            if lqpos == lq:
                lqpos = 0
            nloads += 1
        ring[0, head] = seq
        ring[1, head] = done
        head += 1
        if head == rob:
            head = 0
        count += 1
        t += inv_w
    st[S_T] = t
    st[S_SEQ] = seq
    st[S_LAST] = last
    st[S_FRONT] = front
    st[S_CUMMAX] = cummax
    st[S_HEAD] = head
    st[S_COUNT] = count
    st[S_NLOADS] = nloads
