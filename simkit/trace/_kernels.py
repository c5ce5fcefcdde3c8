"""Jitted kernels of the trace library (numpy + numba only)."""
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
