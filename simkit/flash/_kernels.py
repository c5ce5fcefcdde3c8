"""Jitted kernels of the flash simulator (numpy + numba only).

Activation sets are CSR arrays over (token, layer) rows: row ``t * layers + l`` lists, in
increasing order, the neuron ids of layer ``l`` in the set at token ``t``
(``indices[indptr[r]:indptr[r + 1]]``).

- ``markov_sets``: per neuron a two-state (on/off) Markov chain with stationary on-probability
  ``p`` and persistence ``stay_on`` = P(on at t+1 | on at t); durations are drawn as geometric
  run lengths and kept in per-token buckets (one layer at a time), so a token costs its toggles
  and its active set.
- ``combine_predicted``: predicted = (active minus FN) union (FP minus active).
- ``confusion``: true/false positives and false negatives of one CSR set against another.
- ``window_run``: the DRAM neuron cache of windowing ("LLM in a flash" 3.1): neurons used in
  the last ``window`` tokens stay; a needed neuron not there (nor in the static resident set)
  is loaded. The cache is the paper's preallocated matrix: a deleted row is filled by the last
  row (one row copied), a loaded row is appended; ``mm_mode`` 1 instead reallocates the matrix
  every token, copying every kept row. Incremental: a token costs its own set and the set
  leaving the window, not a pass over the cache.
"""
from __future__ import annotations

import numpy as np
from numba import njit

MM_PREALLOCATED = 0
MM_REALLOCATE = 1
NEVER = -(1 << 30)


# lowest set bit of a uint64 word via a de Bruijn sequence (no intrinsics)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_BIT_INDEX = np.zeros(64, np.int64)
for _b in range(64):
    _BIT_INDEX[((((1 << _b) * 0x03F79D71B4CB0A89) & 0xFFFFFFFFFFFFFFFF) >> 58)] = _b
_ONE = np.uint64(1)
_SHIFT = np.uint64(58)


@njit(cache=True)
def _run_length(log_stay):
    """Geometric run length >= 1 with continuation probability exp(``log_stay``)
    (``log_stay`` = -inf: always 1; 0: never ends)."""
    if log_stay == 0.0:
        return 1 << 30
    u = np.random.random()
    while u <= 0.0:
        u = np.random.random()
    return 1 + int(np.log(u) / log_stay)


@njit(cache=True)
def markov_sets(p, stay_on, tokens, seed):
    """CSR (indptr, indices int32) of ``tokens`` x layers rows from per-neuron chains.

    ``p`` and ``stay_on``: (layers, neurons) float64. P(off -> on) = p (1 - stay_on) / (1 - p).
    Event-driven, one layer at a time (its state fits in the L2 cache): every neuron sits in
    the bucket of the token at which it next toggles (run lengths are geometric) and the layer
    keeps a bitset of its active neurons, read out in increasing order, so a token costs its
    toggles and its active set.
    """
    np.random.seed(seed)
    layers, n = p.shape
    on = np.zeros(n, np.uint8)
    onb = np.zeros((n + 63) >> 6, np.uint64)         # the active set as a bitset
    head = np.empty(tokens + 1, np.int32)            # bucket per token: linked neuron ids
    nxt = np.empty(n, np.int32)
    log_on = np.empty(n)
    log_off = np.empty(n)
    cap = int(tokens * p.sum() * 1.1) + 1024
    buf = np.empty(cap, np.int32)                    # layer-major rows
    cnt = np.zeros((layers, tokens), np.int64)
    k = 0
    for l in range(layers):
        head[:] = -1
        onb[:] = 0
        nact = 0
        for i in range(n):
            pi = p[l, i]
            on_rate = pi * (1.0 - stay_on[l, i]) / (1.0 - pi) if pi < 1.0 else 1.0
            so = stay_on[l, i]
            sf = 1.0 - min(on_rate, 1.0)
            log_on[i] = np.log(so) if so > 0.0 else -np.inf
            log_off[i] = np.log(sf) if sf > 0.0 else -np.inf
            if np.random.random() < pi:
                on[i] = 1
                onb[i >> 6] |= _ONE << np.uint64(i & 63)
                nact += 1
                d = _run_length(log_on[i])
            else:
                on[i] = 0
                d = _run_length(log_off[i])
            if d < tokens:
                nxt[i] = head[d]
                head[d] = i
        for t in range(tokens):
            i = head[t]
            while i >= 0:
                following = nxt[i]
                if on[i]:                                 # switch off
                    on[i] = 0
                    onb[i >> 6] &= ~(_ONE << np.uint64(i & 63))
                    nact -= 1
                    d = _run_length(log_off[i])
                else:
                    on[i] = 1
                    onb[i >> 6] |= _ONE << np.uint64(i & 63)
                    nact += 1
                    d = _run_length(log_on[i])
                if t + d < tokens:
                    nxt[i] = head[t + d]
                    head[t + d] = i
                i = following
            if k + nact > cap:
                cap = max(cap * 2, k + nact)
                grown = np.empty(cap, np.int32)
                grown[:k] = buf[:k]
                buf = grown
            for w in range(len(onb)):                    # the active set, increasing
                word = onb[w]
                while word != 0:
                    b = word & (~word + _ONE)
                    word ^= b
                    buf[k] = w * 64 + _BIT_INDEX[(b * _DEBRUIJN) >> _SHIFT]
                    k += 1
            cnt[l, t] = nact
    # token-major CSR
    indptr = np.zeros(tokens * layers + 1, np.int64)
    for t in range(tokens):
        for l in range(layers):
            indptr[t * layers + l + 1] = indptr[t * layers + l] + cnt[l, t]
    indices = np.empty(k, np.int32)
    src = 0
    for l in range(layers):
        for t in range(tokens):
            c = cnt[l, t]
            dst = indptr[t * layers + l]
            indices[dst:dst + c] = buf[src:src + c]
            src += c
    return indptr, indices


@njit(cache=True)
def combine_predicted(a_ptr, a_idx, fn_ptr, fn_idx, fp_ptr, fp_idx, neurons):
    """predicted = (active - FN) | (FP - active), row by row, sorted (the rows of ``a`` and
    ``fp`` are sorted, as every CSR set here: the two are merged)."""
    rows = len(a_ptr) - 1
    mark = np.zeros(neurons, np.uint8)
    cap = len(a_idx) + len(fp_idx)
    out = np.empty(cap, np.int32)
    ptr = np.zeros(rows + 1, np.int64)
    k = 0
    for r in range(rows):
        for j in range(a_ptr[r], a_ptr[r + 1]):
            mark[a_idx[j]] |= 1
        for j in range(fn_ptr[r], fn_ptr[r + 1]):
            mark[fn_idx[j]] |= 2
        # merge the two sorted streams: kept actives and false positives outside the actives
        ja, jae = a_ptr[r], a_ptr[r + 1]
        jf, jfe = fp_ptr[r], fp_ptr[r + 1]
        while ja < jae or jf < jfe:
            if ja < jae and mark[a_idx[ja]] != 1:         # a false negative: dropped
                ja += 1
                continue
            if jf < jfe and mark[fp_idx[jf]] & 1:         # a "false positive" that is active
                jf += 1
                continue
            if jf >= jfe or (ja < jae and a_idx[ja] < fp_idx[jf]):
                out[k] = a_idx[ja]
                ja += 1
            else:
                out[k] = fp_idx[jf]
                jf += 1
            k += 1
        for j in range(a_ptr[r], a_ptr[r + 1]):
            mark[a_idx[j]] = 0
        for j in range(fn_ptr[r], fn_ptr[r + 1]):
            mark[fn_idx[j]] = 0
        ptr[r + 1] = k
    return ptr, out[:k].copy()


@njit(cache=True)
def confusion(t_ptr, t_idx, p_ptr, p_idx):
    """(true positives, false positives, false negatives) of predicted vs true sets (sorted)."""
    tp = 0
    fp = 0
    fn = 0
    for r in range(len(t_ptr) - 1):
        i = t_ptr[r]
        j = p_ptr[r]
        ie = t_ptr[r + 1]
        je = p_ptr[r + 1]
        while i < ie and j < je:
            a = t_idx[i]
            b = p_idx[j]
            if a == b:
                tp += 1
                i += 1
                j += 1
            elif a < b:
                fn += 1
                i += 1
            else:
                fp += 1
                j += 1
        fn += ie - i
        fp += je - j
    return tp, fp, fn


@njit(cache=True)
def window_run(indptr, indices, layers, t0, t1, window, static_count, mm_mode,
               last_seen, rows, pos, count, peak, out_tok, out_layer, out_tl):
    """Feed tokens ``t0`` to ``t1`` (rows of ``layers`` sets of the whole trace's CSR) through
    the neuron cache.

    State (kept by the caller between calls, all tokens before ``t0`` already fed):
    ``last_seen`` (layers, neurons) int64, token of last use or NEVER; ``rows`` (layers,
    neurons) int32, the cache matrix's row -> neuron; ``pos`` (layers, neurons) int32, neuron
    -> its row while cached; ``count`` (layers,) rows in use; ``peak`` (layers,) the most rows
    ever in use.

    Incremental: the cache after token ``t`` holds the non-static neurons last used in
    ``t - window + 1 .. t``, so the rows deleted at ``t`` are those of the set at
    ``t - window`` whose last use is still that token. Their rows are marked in a bitset and
    visited in increasing row order, which deletes (swap with the last row, re-checking the
    row moved in) exactly as a scan of all rows from the first would.

    ``out_tok`` (t1 - t0, 7) int64 per token, summed over layers: needed, loaded, window
    hits, static hits, deleted rows, rows copied by memory management, cache rows after the
    token. ``out_layer`` (layers, 3): needed, loaded, rows copied. ``out_tl`` (t1 - t0,
    layers) int32: neurons loaded per token and layer (the layer's burst).
    """
    neurons = last_seen.shape[1]
    newbuf = np.empty(neurons, np.int32)
    cand = np.empty(neurons, np.int32)
    bits = np.zeros((neurons >> 6) + 1, np.uint64)
    for l in range(layers):              # layer-major: one layer's state stays in the L2 cache
        sc = static_count[l]
        ls = last_seen[l]
        rw = rows[l]
        ps = pos[l]
        c = count[l]
        for t in range(t0, t1):
            tt = t - t0
            r = t * layers + l
            nnew = 0
            hits = 0
            shits = 0
            lo = t - window
            needed = indptr[r + 1] - indptr[r]
            if window > 0:
                for j in range(indptr[r], indptr[r + 1]):
                    i = indices[j]
                    if i < sc:
                        shits += 1
                        continue
                    s = ls[i]
                    ls[i] = t
                    newbuf[nnew] = i
                    nnew += s < lo
                hits = needed - shits - nnew
            else:
                for j in range(indptr[r], indptr[r + 1]):
                    i = indices[j]
                    if i < sc:
                        shits += 1
                        continue
                    ls[i] = t
                nnew = needed - shits
            deleted = 0
            copied = 0
            if window > 0:
                if lo >= 0:
                    ro = lo * layers + l
                    top = 0
                    nd = 0
                    for j in range(indptr[ro], indptr[ro + 1]):
                        i = indices[j]
                        if i < sc:
                            continue
                        cand[nd] = i
                        nd += ls[i] == lo
                    for k in range(nd):
                        p = ps[cand[k]]
                        bits[p >> 6] |= _ONE << np.uint64(p & 63)
                        top = max(top, p + 1)
                    for w in range((top + 63) >> 6):
                        word = bits[w]
                        if word == 0:
                            continue
                        bits[w] = 0
                        while word != 0:
                            b = word & (~word + _ONE)
                            word ^= b
                            p = w * 64 + _BIT_INDEX[(b * _DEBRUIJN) >> _SHIFT]
                            while p < c and ls[rw[p]] <= lo:  # delete; re-check the row moved in
                                deleted += 1
                                c -= 1
                                if p != c:
                                    q = rw[c]
                                    rw[p] = q             # swap the last row into the hole
                                    ps[q] = p
                                    if mm_mode == MM_PREALLOCATED:
                                        copied += 1
                if mm_mode == MM_REALLOCATE:
                    copied += c                       # every kept row into a new matrix
                for q in range(nnew):
                    i = newbuf[q]
                    rw[c] = i
                    ps[i] = c
                    c += 1
                if c > peak[l]:
                    peak[l] = c
                out_tok[tt, 6] += c
            out_tok[tt, 0] += needed
            out_tok[tt, 1] += nnew
            out_tl[tt, l] = nnew
            out_tok[tt, 2] += hits
            out_tok[tt, 3] += shits
            out_tok[tt, 4] += deleted
            out_tok[tt, 5] += copied
            out_layer[l, 0] += needed
            out_layer[l, 1] += nnew
            out_layer[l, 2] += copied
        count[l] = c
    return t1 - t0


@njit(cache=True)
def window_loads(indptr, indices, layers, window, static_count, neurons):
    """The loads ``window_run`` counts, as (token, layer, neuron) rows: the read schedule."""
    tokens = (len(indptr) - 1) // layers
    last = np.full((layers, neurons), NEVER, np.int64)
    out = np.empty((len(indices), 3), np.int32)
    k = 0
    for t in range(tokens):
        for l in range(layers):
            r = t * layers + l
            for j in range(indptr[r], indptr[r + 1]):
                i = indices[j]
                if i < static_count[l]:
                    continue
                if not (window > 0 and last[l, i] >= t - window):
                    out[k, 0] = t
                    out[k, 1] = l
                    out[k, 2] = i
                    k += 1
                last[l, i] = t
    return out[:k].copy()
