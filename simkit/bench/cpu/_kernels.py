"""Jitted kernels for the CPU pointer chase (numpy + numba only).

Kernels with stable uint64 dtypes (REFERENCE 5.1: int64 indices make numba add a
negative-index fix-up to every link, +35% per L1 hit):

The chains themselves come from ``simkit.trace.synth.sattolo`` (one Sattolo cycle, jitted in
``simkit.trace._kernels``), the same generator the synthetic chase traces use.
- ``chase(mem, start, n_loads)``: the measured loop, ``i = mem[i]``, a truly dependent load
  chain; returns the last index (so the compiler cannot drop the loads, and the next run can
  continue where this one stopped).
- ``clock_chain(n, x, k, c)``: ``x = (x * k) ^ c``, a dependent imul (3 cycles on Zen 3) + xor
  (1 cycle) chain, 4 cycles per step, to estimate the core clock.
"""
from __future__ import annotations

from numba import njit



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
