"""Cache and hierarchy configurations: frozen, checked at construction, loadable from TOML.

    CacheConfig(name="L2", size_bytes="1MiB", ways=16, policy="srrip")
    HierarchyConfig.preset("zen3")
    HierarchyConfig.from_toml("my_hierarchy.toml")

A TOML file holds ``inclusion`` and ``memory_latency_cycles`` at the top and one
``[[levels]]`` table per level with the fields of ``CacheConfig``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

from simkit.cache.policies import PLRU, inclusion_id, policy_id
from simkit.errors import InputError
from simkit.units import is_power_of_two, parse_size


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class CacheConfig:
    """One set-associative cache level. Sizes accept unit strings ("32KiB")."""

    name: str = "L1"
    size_bytes: int = 32 * 1024
    ways: int = 8
    line_bytes: int = 64
    policy: str = "lru"
    write_back: bool = True          # False: write-through
    write_allocate: bool = True      # False: a store miss does not fill this level
    latency_cycles: int = 4          # hit latency, used by cost estimates (tlb, validation)
    rrpv_bits: int = 2               # RRIP policies: M
    brrip_throttle: int = 32         # BRRIP/DRRIP: 1 in this many fills inserts "long"
    psel_bits: int = 10              # DRRIP: saturating policy-selection counter width
    seed: int = 0                    # random policy and BRRIP insertion

    def __post_init__(self):
        _set(self, "size_bytes", parse_size(self.size_bytes, "size_bytes"))
        _set(self, "line_bytes", parse_size(self.line_bytes, "line_bytes"))
        for name in ("ways", "latency_cycles", "rrpv_bits", "brrip_throttle", "psel_bits",
                     "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{self.name}.{name}: expected an integer, got {v!r}")
        for name in ("write_back", "write_allocate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{self.name}.{name}: expected true/false, "
                                 f"got {getattr(self, name)!r}")
        if not is_power_of_two(self.line_bytes):
            raise ValueError(f"{self.name}.line_bytes: must be a power of two, got {self.line_bytes}")
        if self.ways < 1:
            raise ValueError(f"{self.name}.ways: must be >= 1, got {self.ways}")
        if self.size_bytes <= 0 or self.size_bytes % (self.ways * self.line_bytes):
            raise ValueError(f"{self.name}.size_bytes: {self.size_bytes} is not a multiple of "
                             f"ways*line_bytes = {self.ways * self.line_bytes}")
        if not is_power_of_two(self.sets):
            raise ValueError(f"{self.name}.size_bytes: gives {self.sets} sets; the number of sets "
                             f"(size / (ways*line_bytes)) must be a power of two")
        pid = policy_id(self.policy)
        if pid == PLRU and (not is_power_of_two(self.ways) or self.ways > 64):
            raise ValueError(f"{self.name}.ways: plru needs a power of two <= 64, got {self.ways}")
        if not 1 <= self.rrpv_bits <= 7:
            raise ValueError(f"{self.name}.rrpv_bits: must be in 1..7, got {self.rrpv_bits}")
        if self.brrip_throttle < 1:
            raise ValueError(f"{self.name}.brrip_throttle: must be >= 1, got {self.brrip_throttle}")
        if not 1 <= self.psel_bits <= 30:
            raise ValueError(f"{self.name}.psel_bits: must be in 1..30, got {self.psel_bits}")
        if self.latency_cycles < 0:
            raise ValueError(f"{self.name}.latency_cycles: must be >= 0, got {self.latency_cycles}")

    @property
    def sets(self) -> int:
        return self.size_bytes // (self.ways * self.line_bytes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class HierarchyConfig:
    """Levels from the core outwards (L1 first), sharing one line size."""

    levels: tuple = field(default_factory=lambda: (CacheConfig(),))
    inclusion: str = "non-inclusive"
    memory_latency_cycles: int = 200

    def __post_init__(self):
        levels = tuple(lv if isinstance(lv, CacheConfig) else _level_from_dict(lv, i)
                       for i, lv in enumerate(self.levels))
        _set(self, "levels", levels)
        if not levels:
            raise ValueError("levels: a hierarchy needs at least one level")
        inclusion_id(self.inclusion)
        names = [lv.name for lv in levels]
        if len(set(names)) != len(names):
            raise ValueError(f"levels: names must be unique, got {names}")
        lines = {lv.line_bytes for lv in levels}
        if len(lines) != 1:
            raise ValueError(f"levels: all levels must share one line_bytes, got {sorted(lines)}")
        if self.inclusion != "non-inclusive":
            for lv in levels:
                if not (lv.write_back and lv.write_allocate):
                    raise ValueError(f"{lv.name}: {self.inclusion} hierarchies need write_back and "
                                     f"write_allocate on every level")
        if not isinstance(self.memory_latency_cycles, int) or self.memory_latency_cycles < 0:
            raise ValueError(f"memory_latency_cycles: must be an integer >= 0, "
                             f"got {self.memory_latency_cycles!r}")

    @property
    def line_bytes(self) -> int:
        return self.levels[0].line_bytes

    def to_dict(self) -> dict:
        return {"inclusion": self.inclusion, "memory_latency_cycles": self.memory_latency_cycles,
                "levels": [lv.to_dict() for lv in self.levels]}

    @classmethod
    def from_dict(cls, d: dict) -> "HierarchyConfig":
        unknown = set(d) - {"inclusion", "memory_latency_cycles", "levels"}
        if unknown:
            raise ValueError(f"hierarchy: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path) -> "HierarchyConfig":
        from simkit.tomlfile import read_toml

        data = read_toml(path)
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None

    @classmethod
    def preset(cls, name: str) -> "HierarchyConfig":
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"preset: unknown {name!r}; choose from {', '.join(PRESETS)}") from None


def _level_from_dict(d: dict, index: int) -> CacheConfig:
    if not isinstance(d, dict):
        raise ValueError(f"levels[{index}]: expected a table of CacheConfig fields, got {d!r}")
    known = {f.name for f in fields(CacheConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"levels[{index}]: unknown field(s) {', '.join(sorted(unknown))}")
    d = dict(d)
    d.setdefault("name", f"L{index + 1}")
    return CacheConfig(**d)


def single(size="32KiB", ways=8, line_bytes=64, policy="lru", **kw) -> HierarchyConfig:
    """A one-level hierarchy."""
    return HierarchyConfig(levels=(CacheConfig("L1", size, ways, line_bytes, policy, **kw),))


PRESETS: dict[str, HierarchyConfig] = {
    # REFERENCE.md section 6: the speed and pycachesim comparison hierarchy.
    "reference-3level": HierarchyConfig(levels=(
        CacheConfig("L1", "32KiB", 8, latency_cycles=4),
        CacheConfig("L2", "1MiB", 16, latency_cycles=14),
        CacheConfig("L3", "8MiB", 16, latency_cycles=40),
    )),
    # The dev/CI VM (AMD EPYC Zen 3; REFERENCE.md 5.2/5.4): 32K 8-way L1d, 512K 8-way L2,
    # 32 MiB 16-way L3 (shared by the CCX; behaves like ~4 MiB inside the VM). Latencies are
    # the measured 1.65 / 4.3 / ~18 ns at ~2.93 GHz.
    "zen3": HierarchyConfig(levels=(
        CacheConfig("L1", "32KiB", 8, latency_cycles=5),
        CacheConfig("L2", "512KiB", 8, latency_cycles=13),
        CacheConfig("L3", "32MiB", 16, latency_cycles=53),
    ), memory_latency_cycles=500),
    # The same machine as seen from inside its KVM guest: the measured DRAM step comes at
    # 2-4 MiB (REFERENCE.md 5.4: "the L3 behaves like ~4 MiB"), so validation uses a 4 MiB L3.
    "zen3-vm": HierarchyConfig(levels=(
        CacheConfig("L1", "32KiB", 8, latency_cycles=5),
        CacheConfig("L2", "512KiB", 8, latency_cycles=13),
        CacheConfig("L3", "4MiB", 16, latency_cycles=53),
    ), memory_latency_cycles=500),
    # Victima's baseline data caches (REFERENCE.md 1.1, nehalem + utopia configs); the L2 runs
    # Sniper's SRRIP (cache_set_srrip.cc: insert 2, a hit lowers the RRPV by one) = srrip-fp.
    "victima-baseline": HierarchyConfig(levels=(
        CacheConfig("L1D", "32KiB", 8, latency_cycles=5),
        CacheConfig("L2", "2MiB", 16, policy="srrip-fp", latency_cycles=19),  # Sniper SRRIP
        CacheConfig("LLC", 1441792, 11, latency_cycles=24),   # 1.375 MiB, 2048 sets
    ), memory_latency_cycles=117),   # 45 ns at 2.6 GHz
    "l1-32k": single("32KiB", 8),
}
