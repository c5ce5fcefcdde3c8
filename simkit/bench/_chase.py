"""Jitted kernels for the CPU pointer chase (numpy + numba only).

Three kernels, all with stable uint64 dtypes (REFERENCE 5.1: int64 indices make numba add a
negative-index fix-up to every link, +35% per L1 hit):

- ``sattolo_order(draws)``: Sattolo's single-cycle shuffle, then one walk of the cycle from
  node 0; returns the successor array and the visiting order.
- ``chase(mem, start, n_loads)``: the measured loop, ``i = mem[i]``, a truly dependent load
  chain; returns the last index (so the compiler cannot drop the loads, and the next run can
  continue where this one stopped).
- ``clock_chain(n, x, k, c)``: ``x = (x * k) ^ c``, a dependent imul (3 cycles on Zen 3) + xor
  (1 cycle) chain, 4 cycles per step, to estimate the core clock.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, boundscheck=False)
def sattolo_order(draws):
    """Sattolo's algorithm over ``n = len(draws)`` nodes.

    ``draws[i]`` (for i >= 1) must be a uniform integer in [0, i); ``draws[0]`` is unused.
    For i from n-1 down to 1, swap ``succ[i]`` with ``succ[draws[i]]``. The result ``succ`` is a
    single n-cycle (``succ[v]`` is v's successor); ``order`` lists the nodes in the order a walk
    from node 0 visits them: ``order[0] = 0``, ``order[k+1] = succ[order[k]]``.
    """
    n = draws.shape[0]
    succ = np.empty(n, dtype=np.uint64)
    for i in range(n):
        succ[i] = np.uint64(i)
    for i in range(n - 1, 0, -1):
        j = draws[i]
        t = succ[i]
        succ[i] = succ[j]
        succ[j] = t
    order = np.empty(n, dtype=np.uint64)
    v = np.uint64(0)
    for k in range(n):
        order[k] = v
        v = succ[v]
    return succ, order


@njit(cache=True, boundscheck=False)
def chase(mem, start, n_loads):
    """Follow ``n_loads`` links ``i = mem[i]`` from ``start`` (uint64 word indices)."""
    i = start
    for _ in range(n_loads):
        i = mem[i]
    return i


@njit(cache=True, boundscheck=False)
def clock_chain(n, x, k, c):
    """``n`` dependent steps ``x = (x * k) ^ c`` on uint64 (4 cycles per step on Zen 3)."""
    for _ in range(n):
        x = (x * k) ^ c
    return x
