"""Core timing results: cycles and IPC, and the share of cycles lost to translation."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CoreStats:
    """Counters of one run (or a measured region: ``end - warm``).

    cycles: until every instruction retired; ideal_cycles: the same run with every translation
    free (TLB hits at no cost, no walks), so ``translation_stall_share`` = 1 - ideal/cycles is
    the share of cycles the address translation costs once overlap is accounted for.
    """

    core: str = ""
    instructions: int = 0
    accesses: int = 0
    cycles: float = 0.0
    ideal_cycles: float = 0.0
    clock_ghz: float = 2.6

    @property
    def ipc(self) -> float:
        return self.instructions / self.cycles if self.cycles else float("nan")

    @property
    def translation_stall_share(self) -> float:
        return 1.0 - self.ideal_cycles / self.cycles if self.cycles else float("nan")

    @property
    def ns(self) -> float:
        return self.cycles / self.clock_ghz

    def __sub__(self, other: "CoreStats") -> "CoreStats":
        return CoreStats(self.core, self.instructions - other.instructions,
                         self.accesses - other.accesses, self.cycles - other.cycles,
                         self.ideal_cycles - other.ideal_cycles, self.clock_ghz)

    def row(self) -> dict:
        return {"core": self.core, "core_instructions": self.instructions,
                "core_accesses": self.accesses, "cycles": self.cycles,
                "ideal_translation_cycles": self.ideal_cycles, "ipc": self.ipc,
                "translation_stall_share": self.translation_stall_share,
                "ns_per_access": self.ns / self.accesses if self.accesses else float("nan")}

    def to_frame(self):
        import pandas as pd
        return pd.DataFrame([self.row()])
