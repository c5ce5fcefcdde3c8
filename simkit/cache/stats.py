"""Cache statistics: raw counters from the kernel, derived metrics as properties.

``CacheStats`` supports subtraction (region of interest = end - warm-up) and ``to_frame()``
gives tidy rows, one per (config, trace, level), with ``param_*`` columns for the config.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simkit.cache import _kernels as K

OP_COLUMNS = ("load", "store", "ifetch", "modify", "writeback")


@dataclass(frozen=True)
class LevelStats:
    name: str
    counters: np.ndarray          # one row of the kernel's counter matrix
    instructions: int

    def _op(self, base: int, op: int) -> int:
        return int(self.counters[base + op])

    def hits_by_op(self) -> dict:
        return {name: self._op(K.C_HIT, i) for i, name in enumerate(OP_COLUMNS)}

    def misses_by_op(self) -> dict:
        return {name: self._op(K.C_MISS, i) for i, name in enumerate(OP_COLUMNS)}

    @property
    def demand_hits(self) -> int:
        return int(self.counters[K.C_HIT:K.C_HIT + K.WRITEBACK].sum())

    @property
    def demand_misses(self) -> int:
        return int(self.counters[K.C_MISS:K.C_MISS + K.WRITEBACK].sum())

    @property
    def hits(self) -> int:
        """Demand hits (write-backs arriving from above are counted apart)."""
        return self.demand_hits

    @property
    def misses(self) -> int:
        return self.demand_misses

    @property
    def accesses(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.accesses if self.accesses else float("nan")

    @property
    def miss_rate(self) -> float:
        return self.misses / self.accesses if self.accesses else float("nan")

    @property
    def mpki(self) -> float:
        return 1000.0 * self.misses / self.instructions if self.instructions else float("nan")

    @property
    def evictions(self) -> int:
        return int(self.counters[K.C_EVICT])

    @property
    def writebacks(self) -> int:
        """Dirty lines this level sent down."""
        return int(self.counters[K.C_WB_OUT])

    @property
    def back_invalidations(self) -> int:
        return int(self.counters[K.C_BACKINV])


class CacheStats:
    """Counters of one run of a hierarchy over (part of) a trace; ``core``: the timing
    (``simkit.core.CoreStats``) when a core model rode along, else None."""

    def __init__(self, names, counters, instructions, records, config=None, trace="",
                 core=None):
        self.names = tuple(names)
        self.counters = np.asarray(counters, dtype=np.int64).copy()
        self.instructions = int(instructions)
        self.records = int(records)
        self.config = config
        self.trace = trace
        self.core = core          # CoreStats when a core model times the run (simkit.core)

    @property
    def levels(self) -> list[LevelStats]:
        return [LevelStats(n, self.counters[i], self.instructions)
                for i, n in enumerate(self.names)]

    def __getitem__(self, name_or_index) -> LevelStats:
        if isinstance(name_or_index, str):
            try:
                name_or_index = self.names.index(name_or_index)
            except ValueError:
                raise KeyError(f"no level {name_or_index!r}; levels are {self.names}") from None
        return self.levels[name_or_index]

    @property
    def memory_reads(self) -> int:
        """Lines read from memory."""
        return int(self.counters[len(self.names), K.M_READ])

    @property
    def memory_writes(self) -> int:
        """Lines (or write-through stores) written to memory."""
        return int(self.counters[len(self.names), K.M_WRITE])

    def __sub__(self, other: "CacheStats") -> "CacheStats":
        if other.names != self.names:
            raise ValueError("cannot subtract stats of different hierarchies")
        return CacheStats(self.names, self.counters - other.counters,
                          self.instructions - other.instructions, self.records - other.records,
                          self.config, self.trace,
                          self.core - other.core if self.core is not None and
                          other.core is not None else self.core)

    def __eq__(self, other) -> bool:
        return (isinstance(other, CacheStats) and self.names == other.names
                and np.array_equal(self.counters, other.counters)
                and self.instructions == other.instructions)

    def __repr__(self) -> str:
        parts = ", ".join(f"{lv.name}: {lv.hits}/{lv.accesses} hits" for lv in self.levels)
        return f"CacheStats({parts}; {self.records} records)"

    def to_frame(self):
        """Tidy rows: one per level, with per-op hit/miss columns and ``param_*`` config."""
        import pandas as pd

        rows = []
        for i, lv in enumerate(self.levels):
            row = {"trace": self.trace, "level": lv.name, "records": self.records,
                   "instructions": self.instructions, "accesses": lv.accesses,
                   "hits": lv.hits, "misses": lv.misses, "hit_rate": lv.hit_rate,
                   "miss_rate": lv.miss_rate, "mpki": lv.mpki}
            for name, v in lv.hits_by_op().items():
                row[f"{name}_hits"] = v
            for name, v in lv.misses_by_op().items():
                row[f"{name}_misses"] = v
            row.update(evictions=lv.evictions, writebacks=lv.writebacks,
                       back_invalidations=lv.back_invalidations,
                       memory_read_lines=self.memory_reads,
                       memory_write_lines=self.memory_writes)
            if self.config is not None:
                row["param_inclusion"] = self.config.inclusion
                for k, v in self.config.levels[i].to_dict().items():
                    if k != "name":
                        row[f"param_{k}"] = v
            if self.core is not None:
                row.update(self.core.row())
            rows.append(row)
        return pd.DataFrame(rows)
