"""A small out-of-order core timing model: cycles and IPC from per-access translation and data
latencies, with the overlap a reorder buffer, a load queue and page walkers allow.

    from simkit.core import CoreConfig, CoreModel
    stats = CoreModel("victima").run(icount, trans_cycles, walk_cycles, data_cycles, dependent)
    stats.ipc, stats.translation_stall_share

``simkit.tlb.MMU(..., core=...)`` runs it over the latencies its kernel produces, record by record.
"""
from simkit.core.config import CORE_PRESETS, CoreConfig
from simkit.core.model import CoreModel
from simkit.core.stats import CoreStats

__all__ = ["CORE_PRESETS", "CoreConfig", "CoreModel", "CoreStats"]
