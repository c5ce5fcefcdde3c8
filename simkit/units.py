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


_COUNT = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:[eE]\+?\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_count(value: int | str, field: str = "count", minimum: int = 0,
                maximum: int | None = None) -> int:
    """A whole count from ``value``: 1000, "1_000", "1e6", "60M" (binary: 60 * 2^20, as sizes),
    "1GiB". Raises ValueError naming ``field`` unless ``minimum <= count <= maximum``."""
    from decimal import Decimal, InvalidOperation

    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a count, got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).replace("_", "")
        m = _COUNT.match(text)
        if not m or m.group(2).lower() not in _SUFFIX or m.group(2).lower() == "b":
            raise ValueError(f"{field}: expected a count such as 1000, 1e6 or 60M, "
                             f"got {value!r}")
        try:
            number = Decimal(m.group(1)) * _SUFFIX[m.group(2).lower()]
        except InvalidOperation:
            raise ValueError(f"{field}: expected a count, got {value!r}") from None
        if number != number.to_integral_value():
            raise ValueError(f"{field}: {value!r} is not a whole number")
        n = int(number)
    if n < minimum:
        raise ValueError(f"{field}: must be >= {minimum}, got {value}")
    if maximum is not None and n > maximum:
        raise ValueError(f"{field}: at most {maximum} here, got {value}")
    return n


def count_type(minimum: int = 0, maximum: int | None = None):
    """An argparse ``type=`` for counts (see ``parse_count``); argparse names the option."""
    import argparse

    def parse(value: str) -> int:
        try:
            return parse_count(value, "value", minimum, maximum)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None

    parse.__name__ = "count"
    return parse


def finite_type(lo: float | None = None, hi: float | None = None):
    """An argparse ``type=`` for a finite float within [lo, hi] (NaN and inf refused)."""
    import argparse
    import math

    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}")
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise argparse.ArgumentTypeError(f"must be within {rng}, got {value!r}")
        return x

    parse.__name__ = "number"
    return parse
