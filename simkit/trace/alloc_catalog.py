"""The catalog of allocation traces shipped in ``traces/malloc/`` (``catalog.toml`` there:
file, description, how it was made, events, licence). ``$SIMKIT_TRACES/malloc`` if set."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from simkit.errors import InputError
from simkit.trace.alloc import SUFFIXES
from simkit.trace.catalog import traces_dir

COLUMNS = ("name", "file", "events", "objects", "peak_live_bytes", "description")


def malloc_dir() -> Path:
    return traces_dir() / "malloc"


def load_alloc_catalog() -> dict[str, dict]:
    path = malloc_dir() / "catalog.toml"
    if not path.is_file():
        raise InputError(f"{path}: no allocation trace catalog")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: bad TOML ({exc})") from None


def list_alloc_traces():
    import pandas as pd

    rows = [{"name": n, "file": e["file"], "events": int(e.get("events", 0)),
             "objects": int(e.get("objects", 0)),
             "peak_live_bytes": int(e.get("peak_live_bytes", 0)),
             "description": e.get("description", "")} for n, e in load_alloc_catalog().items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def find_alloc_trace(name_or_path) -> Path:
    """The file for a catalog name ("cc1") or a path."""
    text = str(name_or_path)
    if isinstance(name_or_path, os.PathLike) or "/" in text or text.lower().endswith(SUFFIXES) \
            or Path(text).is_file():
        p = Path(text)
        from simkit.atomic import check_input_kind
        check_input_kind(p)
        return p
    cat = load_alloc_catalog()
    if text not in cat:
        raise InputError(f"unknown allocation trace {text!r}; the catalog has: {', '.join(cat)}")
    p = malloc_dir() / cat[text]["file"]
    if not p.is_file():
        raise InputError(f"{p}: listed in the catalog as {text!r} but missing")
    return p
