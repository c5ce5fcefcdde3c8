"""Sizes with units: ``"32KiB"``, ``"2MiB"``, ``"4k"``, ``"64"`` <-> ints, and byte formatting.

Binary prefixes throughout (k = KiB = 1024); a bare number is bytes (or a count).
"""
from __future__ import annotations

import re

_SUFFIX = {
    "": 1, "b": 1,
    "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, field: str = "size") -> int:
    """Return an int number of bytes from ``value`` ("32KiB", "4k", "1.5MiB", 64).

    Raises ValueError naming ``field`` when the value is not a non-negative whole size.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a size such as 32KiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{field}: size must be >= 0, got {value}")
        return value
    m = _PATTERN.match(str(value))
    if not m or m.group(2).lower() not in _SUFFIX:
        raise ValueError(f"{field}: expected a size such as 32KiB, 2MiB or 4096, got {value!r}")
    number = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if number != int(number):
        raise ValueError(f"{field}: {value!r} is not a whole number of bytes")
    return int(number)


def format_bytes(n: int | float) -> str:
    """Human-readable binary size: 32768 -> '32KiB', 1536 -> '1.5KiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            text = f"{n:.1f}".rstrip("0").rstrip(".") if unit != "B" else f"{int(n)}"
            return f"{text}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0
