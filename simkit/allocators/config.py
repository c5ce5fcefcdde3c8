"""Allocator model configurations: frozen dataclasses and named presets.

``PtmallocConfig`` -- glibc 2.36 ptmalloc2 (``models/ptmalloc.py``); defaults are glibc's
(``malloc/malloc.c``: tcache 64 bins x 7, fastbins to 128 B, mmap threshold 128 KiB raised
dynamically up to 32 MiB, trim threshold 128 KiB, top pad 128 KiB).

``SlabConfig`` -- a size-class slab allocator with out-of-line metadata (``models/slab.py``),
parameterized so that SJMalloc-, hardened_malloc- and mimalloc-style designs are presets of
one model, not copies.

Sizes are bytes (``*_bytes``); every field is checked at construction.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace

SLOT_POLICIES = ("lowest", "lifo", "random", "sharded")


def _positive(obj, *names, zero_ok=False):
    for n in names:
        v = getattr(obj, n)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or (v == 0 and not zero_ok):
            raise ValueError(f"{type(obj).__name__}.{n}: must be a "
                             f"{'non-negative' if zero_ok else 'positive'} integer, got {v!r}")


@dataclass(frozen=True)
class PtmallocConfig:
    name: str = "ptmalloc"
    tcache_count: int = 7
    tcache_bins: int = 64
    fastbin_max_bytes: int = 128
    top_pad_bytes: int = 128 << 10
    mmap_threshold_bytes: int = 128 << 10
    mmap_threshold_max_bytes: int = 32 << 20
    trim_threshold_bytes: int = 128 << 10
    dynamic_mmap_threshold: bool = True
    mmap_max: int = 65536
    design: str = field(default="ptmalloc", init=False)

    def __post_init__(self):
        _positive(self, "tcache_count", "tcache_bins", "fastbin_max_bytes", "top_pad_bytes",
                  zero_ok=True)
        _positive(self, "mmap_threshold_bytes", "mmap_threshold_max_bytes",
                  "trim_threshold_bytes", "mmap_max")
        if self.tcache_bins > 64:
            raise ValueError(f"PtmallocConfig.tcache_bins: at most 64, got {self.tcache_bins}")
        if self.fastbin_max_bytes > 160:
            raise ValueError(f"PtmallocConfig.fastbin_max_bytes: at most 160 (M_MXFAST), "
                             f"got {self.fastbin_max_bytes}")


def _classes_4_per_doubling(first: tuple, top: int) -> tuple:
    out = list(first)
    step = first[-1] // 4
    s = first[-1]
    while s < top:
        s += step
        out.append(s)
        if s & (s - 1) == 0:
            step = s // 4
    return tuple(out)


# hardened_malloc's size classes (README; REFERENCE 4.3): 16, 32, 48, 64, then 4 per doubling
HARDENED_CLASSES = _classes_4_per_doubling((16, 32, 48, 64), 131072)
# hardened_malloc's slots per class (h_malloc.c size_class_slots; the slab is slots x size
# rounded up to pages): 12-64 KiB slabs for 256 B-16 KiB, one slot from 20 KiB
HARDENED_SLOTS = (256, 128, 85, 64, 51, 42, 36, 64, 51, 64, 54, 64, 64, 64, 64, 64, 64, 64, 64,
                  64, 16, 16, 16, 16, 8, 8, 8, 8, 8, 8, 8, 8, 6, 5, 4, 4) + (1,) * 12
# jemalloc/SJMalloc-like classes: 8, 16..128 by 16, then 4 per doubling (assumed for SJMalloc)
JE_CLASSES = (8,) + tuple(range(16, 129, 16)) + _classes_4_per_doubling((128,), 131072)[1:]
# mimalloc bins: word-size steps to 64, then 4 per doubling up to 128 KiB (MI_MEDIUM_OBJ_SIZE_MAX)
MI_CLASSES = (8, 16, 24, 32, 40, 48, 56, 64) + _classes_4_per_doubling((64,), 131072)[1:]
# Scudo (LLVM 14 standalone, DefaultConfig -> DefaultSizeClassMap, size_class_map.h): 32 to 256
# by 32 (MinSizeLog 5, MidSizeLog 8), then 4 per doubling (NumBits 3) to 128 KiB (MaxSizeLog 17)
SCUDO_CLASSES = tuple(range(32, 257, 32)) + _classes_4_per_doubling((256,), 131072)[1:]
# blocks a class's region maps in at a time, shuffled (primary64.h populateFreeList): 8 batches
# (MaxNumBatches) of max(1, min(14, 1024 / size)) blocks (MaxNumCachedHint 14, MaxBytesCachedLog 10)
SCUDO_SLOTS = tuple(8 * max(1, min(14, 1024 // s)) for s in SCUDO_CLASSES)


@dataclass(frozen=True)
class SlabConfig:
    name: str
    size_classes: tuple = JE_CLASSES
    slot_policy: str = "lowest"           # lowest | lifo | random | sharded
    slab_bytes: int = 4096                # slab size for the smallest classes
    slab_min_slots: int = 1               # a class's slab grows (power of two) to hold this many
    slab_max_bytes: int = 65536
    class_slots: tuple = ()               # slots per class, given (slab = slots x size, page-
                                          # rounded); () computes them from the three above
    single_slot_bytes: int = 0            # classes from this size get one slot per slab
    large_round_bytes: int = 4096         # objects above the last class: own mapping, rounded
    header_bytes: int = 0                 # in-band bytes before each object (0: out-of-line)
    canary_bytes: int = 0                 # at the end of each slot (hardened_malloc: 8)
    quarantine_random: int = 0            # per class: a freed slot swaps into a random array
    quarantine_fifo: int = 0              # ... and the slot it evicts waits in a FIFO
    quarantine_scaled: bool = False       # both lengths x 2^(17 - log2 class size)
                                          # (hardened_malloc: 8,192 slots for 16 B)
    zero_on_free: bool = False
    write_after_free_check: bool = False  # hardened_malloc: a slot is checked zero when reused
    guard_slab_interval: int = 0          # a guard (unmapped, not resident) slab every N slabs
    large_guard_pages: int = 0            # guard pages around each large mapping (virtual)
    empty_slabs_kept: int = 1             # empty slabs per class kept for that class
    empty_slabs: str = "class"            # the others: "class" (purged, kept for the class),
                                          # "resident" / "purged" (to a pool any class reuses)
    shuffle_fresh: bool = False           # a fresh slab's free list in random order (Scudo;
                                          # lifo policy, extend_bytes 0)
    extend_bytes: int = 0                 # free list of a fresh slab grows this much at a time
                                          # (0: all slots at once; mimalloc: 4 KiB)
    large_cache: int = 0                  # freed large mappings kept (resident) for reuse
    large_cache_max_bytes: int = 0        # ... only those up to this size (0: any size;
                                          # Scudo: 512 KiB)
    slab_meta_bytes: int = 64             # out-of-line descriptor per slab (assumed)
    slot_meta_bits: int = 1               # out-of-line bits per slot (bitmap)
    detects_double_free: bool = False
    detects_invalid_free: bool = False
    secure_free_list: bool = False        # mimalloc secure mode: encoded free list
    seed: int = 0
    design: str = field(default="slab", init=False)

    def __post_init__(self):
        if self.empty_slabs not in ("class", "resident", "purged"):
            raise ValueError(f"SlabConfig.empty_slabs: class, resident or purged, got "
                             f"{self.empty_slabs!r}")
        if self.slot_policy not in SLOT_POLICIES:
            raise ValueError(f"SlabConfig.slot_policy: one of {', '.join(SLOT_POLICIES)}, "
                             f"got {self.slot_policy!r}")
        cls = self.size_classes
        if not cls or any(b <= a for a, b in zip(cls, cls[1:])) or cls[0] <= 0:
            raise ValueError(f"SlabConfig.size_classes: must be increasing and positive, "
                             f"got {cls!r}")
        _positive(self, "slab_bytes", "slab_min_slots", "slab_max_bytes", "large_round_bytes")
        if self.class_slots and (len(self.class_slots) != len(cls) or
                                 any(not isinstance(n, int) or n < 1 for n in self.class_slots)):
            raise ValueError(f"SlabConfig.class_slots: one positive integer per size class "
                             f"({len(cls)}), got {self.class_slots!r}")
        _positive(self, "single_slot_bytes", "header_bytes", "canary_bytes", "quarantine_fifo", "quarantine_random",
                  "guard_slab_interval", "large_guard_pages", "empty_slabs_kept",
                  "slab_meta_bytes", "slot_meta_bits", "seed", "extend_bytes",
                  "large_cache", "large_cache_max_bytes", zero_ok=True)


PRESETS: dict[str, object] = {
    "ptmalloc": PtmallocConfig(),
    # SJMalloc (Bauroth 2024; REFERENCE 4.1, abstract only): out-of-band metadata. Assumed:
    # jemalloc-like classes, 4 KiB..64 KiB slabs, per-slab bitmap, lowest free slot first.
    "sjmalloc": SlabConfig(name="sjmalloc", size_classes=JE_CLASSES, slot_policy="lowest",
                           slab_bytes=4096, slab_min_slots=8, slab_max_bytes=65536,
                           detects_double_free=True, detects_invalid_free=True),
    # hardened_malloc default (GrapheneOS README, REFERENCE 4.3): slots per class as h_malloc.c's
    # size_class_slots (16 B -> 256 slots / 4 KiB, 1024 B -> 64 / 64 KiB, >= 20480 B -> 1);
    # random slots, zero-on-free, 8 B canaries at the slot's end, a guard slab after every
    # slab; slab quarantines of 1 (random) + 1 (queue) (config/default.mk) scaled by the class,
    # << (clz64(size) - 46): 8,192 + 8,192 slots for 16 B (h_malloc.c). Empty slabs stay resident up
    # to max_empty_slabs_total = 128 KiB per class (h_malloc.c, extended size classes), beyond
    # that they are purged: 32 of the small classes' 4 KiB slabs (the model counts slabs, not
    # bytes). Leave-one-trace-out fits against real hardened_malloc chose 16-64 (default) and
    # 4-16 (light) of {0, 1, 4, 16, 64} (docs/allocators.md); 0 (all purged) was 19-50% off.
    "hardened": SlabConfig(name="hardened", size_classes=HARDENED_CLASSES,
                           slot_policy="random", slab_bytes=4096, slab_min_slots=64,
                           slab_max_bytes=128 << 10, class_slots=HARDENED_SLOTS,
                           single_slot_bytes=20480, canary_bytes=8, quarantine_fifo=1,
                           quarantine_random=1, quarantine_scaled=True, zero_on_free=True,
                           write_after_free_check=True, guard_slab_interval=1,
                           large_guard_pages=1, empty_slabs_kept=32,
                           detects_double_free=True, detects_invalid_free=True, seed=1),
    # light: no quarantine, no write-after-free check, no slot randomization; guard slab
    # every 8 (hardened_malloc config/light.mk)
    "hardened-light": SlabConfig(name="hardened-light", size_classes=HARDENED_CLASSES,
                                 slot_policy="lowest", slab_bytes=4096, slab_min_slots=64,
                                 slab_max_bytes=128 << 10, class_slots=HARDENED_SLOTS,
                                 single_slot_bytes=20480,
                                 canary_bytes=8, zero_on_free=True,
                                 guard_slab_interval=8, large_guard_pages=1,
                                 empty_slabs_kept=32, detects_double_free=True,
                                 detects_invalid_free=True),
    # mimalloc (readme, REFERENCE 4.3): 64 KiB pages per size class, free-list sharding:
    # frees go to the page's local-free list, collected only when its free list runs dry,
    # before the free list is extended into the page's next 4 KiB (MI_MAX_EXTEND_SIZE);
    # empty pages are purged but stay their class's (empty_slabs="class"); freed large spans
    # stay in their segment (4 kept). Chosen against real mimalloc 2.0.9's peak RSS on the
    # shipped traces from a 0/1 kept x 4/16 spans x class/resident/purged grid: "resident"
    # (mimalloc's own mechanism: an empty page returns to its segment, resident, for any class,
    # unless mi_page_retire keeps it as its class's only page) overshoots python-json by 62%.
    "mimalloc": SlabConfig(name="mimalloc", size_classes=MI_CLASSES, slot_policy="sharded",
                           slab_bytes=65536, slab_min_slots=8, slab_max_bytes=1 << 19,
                           large_round_bytes=65536, empty_slabs_kept=0, slab_meta_bytes=96,
                           extend_bytes=4096, large_cache=4),
    # Scudo (LLVM 14 compiler-rt standalone, DefaultConfig; ScudoHardenedAllocator.rst): a 16 B
    # in-band checksummed header before each block, so n takes the class of n + 16 (measured
    # on the real libclang_rt.scudo_standalone: 16 B -> 32, 17 -> 64, 113 -> 160, 131057 B ->
    # secondary); each class's blocks come from its own region, 8 batches at a time in shuffled
    # order (shuffle_fresh); a freed block goes to the thread's per-class cache and is the next
    # one handed out (local_cache.h: a LIFO array), hence slot_policy "lifo" ("random" reuses
    # freed slots at random too and was 10-16% off on cc1 and python-json). The header check
    # catches double and invalid frees; the quarantine is off (quarantine_size_kb=0). Release
    # of free pages to the OS (release_to_os_interval_ms, 5000 by default) is a time rule: at most one release per
    # class per 5 s, so a replay of milliseconds keeps its classes' pages: empty_slabs_kept
    # is unbounded here (the fitted knob). Blocks above 128 KiB - 16 get their own mapping
    # between guard pages; freed ones up to 512 KiB stay cached, resident, 32 entries
    # (SecondaryCacheDefaultMaxEntriesCount, SecondaryCacheDefaultMaxEntrySize).
    "scudo": SlabConfig(name="scudo", size_classes=SCUDO_CLASSES, slot_policy="lifo",
                        shuffle_fresh=True, class_slots=SCUDO_SLOTS, header_bytes=16, large_guard_pages=1,
                        empty_slabs_kept=1 << 20, large_cache=32,
                        large_cache_max_bytes=1 << 19, slab_meta_bytes=0,
                        slot_meta_bits=0, detects_double_free=True,
                        detects_invalid_free=True, seed=1),
}
DESIGNS = tuple(PRESETS)

# Where the SJMalloc preset's properties come from: only the abstract is public (Bauroth 2024;
# REFERENCE 4.1). "abstract": stated there; "assumed": ours, chosen after jemalloc.
SJMALLOC_PROVENANCE = {
    "out-of-band metadata, no in-band headers (header_bytes=0)": "abstract",
    "about glibc's speed": "abstract (a target; the allocators experiment reports our cost "
    "model's estimate beside that model's out-of-sample ranking check)",
    "about 5% memory overhead vs glibc": "abstract (a target the experiment compares with)",
    "size classes (jemalloc-like: 8, 16..128 by 16, then 4 per doubling)": "assumed",
    "slabs of 4 KiB growing to hold 8 slots, at most 64 KiB": "assumed",
    "a bitmap per slab, lowest free slot first (slot_policy='lowest')": "assumed",
    "slab descriptor 64 B, 1 bit per slot (slab_meta_bytes, slot_meta_bits)": "assumed",
    "double and invalid frees detected from the bitmap": "assumed (follows from out-of-band "
    "metadata with a bitmap, not stated)",
    "one empty slab kept per class, the others purged": "assumed",
    "no canaries, guard slabs, randomization, quarantine or zeroing": "assumed (the abstract "
    "names none)",
}
PROVENANCE = {"sjmalloc": SJMALLOC_PROVENANCE}


def get_config(spec) -> object:
    """A preset by name, or a config passed through."""
    if isinstance(spec, (PtmallocConfig, SlabConfig)):
        return spec
    if spec not in PRESETS:
        raise ValueError(f"allocator: unknown preset {spec!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[spec]


def load_config(path) -> object:
    """A config from TOML: ``design = "ptmalloc"|"slab"``, ``base = PRESET`` (optional) and
    fields to override."""
    with open(path, "rb") as f:
        d = tomllib.load(f)
    base = d.pop("base", None)
    design = d.pop("design", None)
    if base is not None:
        cfg = get_config(base)
    elif design == "ptmalloc":
        cfg = PtmallocConfig()
    elif design == "slab":
        cfg = SlabConfig(name=d.get("name", "slab"))
    else:
        raise ValueError(f"{path}: give base = PRESET or design = 'ptmalloc'|'slab'")
    known = {f.name for f in fields(cfg) if f.init}
    for k in d:
        if k not in known:
            raise ValueError(f"{path}: unknown field {k!r}")
    if "size_classes" in d:
        d["size_classes"] = tuple(d["size_classes"])
    return replace(cfg, **d)
