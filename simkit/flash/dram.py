"""The DRAM neuron cache of one layer, with real weight rows ("LLM in a flash" 3.3, Fig. 7).

The paper keeps, per layer, a preallocated matrix of ``Req`` rows of ``2 * d_model`` weights
(``neuron_bytes`` in general: every FFN matrix's vector of the neuron), a row -> neuron pointer
array and ``num_used``::

    rows  0 .. num_used-1 in use          token t:   1. delete every neuron that left the window:
    +-----------------------+                           copy the last used row into its hole
    | n17 | n3 | n52 | n9 | ...free...|                 (one row copied per delete)
    +-----------------------+                        2. append the newly loaded rows at num_used
                                                     3. compute on matrix[:num_used]

``NeuronCache(mode="preallocated")`` does exactly that with numpy rows and counts rows and bytes
copied; ``mode="reallocate"`` is the naive alternative that builds a new matrix every token from
the kept rows and the new ones (every kept row copied). ``step`` also times itself, so
``time_per_token`` is a measured number on this machine. The jitted ``window_run`` kernel counts
the same copies without moving data; the tests check one against the other.
"""
from __future__ import annotations

import time

import numpy as np

MODES = ("preallocated", "reallocate")


class NeuronCache:
    def __init__(self, neurons: int, row_elems: int, capacity: int | None = None,
                 window: int = 5, mode: str = "preallocated", dtype=np.float16):
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
        if window < 1:
            raise ValueError(f"window: must be >= 1, got {window!r}")
        self.mode, self.window = mode, window
        self.capacity = neurons if capacity is None else capacity
        self.matrix = np.zeros((self.capacity, row_elems), dtype)
        self.row_bytes = row_elems * np.dtype(dtype).itemsize
        self.neuron = np.zeros(self.capacity, np.int64)       # row -> neuron
        self.last_seen = np.full(neurons, -(1 << 30), np.int64)
        self.used = 0
        self.peak = 0
        self.rows_copied = 0
        self.seconds = 0.0
        self.tokens = 0

    def step(self, t: int, needed, fetch) -> np.ndarray:
        """Token ``t`` needs neurons ``needed``; ``fetch(ids) -> (len(ids), row_elems)`` reads the
        missing ones. Returns the ids that were loaded."""
        t0 = time.perf_counter()
        needed = np.asarray(needed, np.int64)
        hit = self.last_seen[needed] >= t - self.window
        new = needed[~hit]
        self.last_seen[needed] = t
        data = fetch(new) if len(new) else np.zeros((0, self.matrix.shape[1]), self.matrix.dtype)
        used = self.used
        if self.mode == "preallocated":
            k = 0
            while k < used:
                if self.last_seen[self.neuron[k]] <= t - self.window:
                    used -= 1
                    if k != used:
                        self.matrix[k] = self.matrix[used]
                        self.neuron[k] = self.neuron[used]
                        self.rows_copied += 1
                else:
                    k += 1
            self.matrix[used:used + len(new)] = data
            self.neuron[used:used + len(new)] = new
            used += len(new)
        else:
            keep = self.last_seen[self.neuron[:used]] > t - self.window
            kept = int(keep.sum())
            matrix = np.empty_like(self.matrix)               # a new matrix every token
            matrix[:kept] = self.matrix[:used][keep]
            matrix[kept:kept + len(new)] = data
            neuron = np.zeros_like(self.neuron)
            neuron[:kept] = self.neuron[:used][keep]
            neuron[kept:kept + len(new)] = new
            self.matrix, self.neuron = matrix, neuron
            self.rows_copied += kept
            used = kept + len(new)
        self.used = used
        self.peak = max(self.peak, used)
        self.seconds += time.perf_counter() - t0
        self.tokens += 1
        return new

    def cached(self) -> set:
        return set(int(n) for n in self.neuron[:self.used])

    @property
    def bytes_copied(self) -> int:
        return self.rows_copied * self.row_bytes

    @property
    def time_per_token(self) -> float:
        return self.seconds / self.tokens if self.tokens else float("nan")


def measure_management(sets, neurons: int, row_elems: int, window: int, mode: str,
                       dtype=np.float16) -> dict:
    """Replay one layer's needed sets (a list of id arrays) through a ``NeuronCache`` with real
    rows; bytes copied and measured seconds per token."""
    c = NeuronCache(neurons, row_elems, window=window, mode=mode, dtype=dtype)
    rows = np.ones((1, row_elems), dtype)

    def fetch(ids):
        return np.broadcast_to(rows, (len(ids), row_elems))
    for t, s in enumerate(sets):
        c.step(t, s, fetch)
    return {"mode": mode, "tokens": c.tokens, "rows_copied": c.rows_copied,
            "bytes_copied": c.bytes_copied, "bytes_copied_per_token": c.bytes_copied / c.tokens,
            "seconds_per_token": c.time_per_token, "peak_rows": c.peak}
