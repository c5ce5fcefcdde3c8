"""The catalog of real traces shipped in the repository's top-level ``traces/`` directory.

``traces/catalog.toml`` has one table per trace (file, description, how it was made, records,
instructions, licence); ``traces/src/make_traces.py`` regenerates the traces and the catalog.
Set ``SIMKIT_TRACES`` to use another directory laid out the same way.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from simkit.errors import InputError

ENV_VAR = "SIMKIT_TRACES"
CATALOG = "catalog.toml"
COLUMNS = ("name", "file", "records", "instructions", "description")
TRACE_SUFFIXES = (".skt", ".skt.xz", ".skt.gz")


def traces_dir() -> Path:
    """``$SIMKIT_TRACES`` if set, else the repository's ``traces/`` beside the package."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "traces"


def load_catalog() -> dict[str, dict]:
    """The catalog as {name: table}, in file order."""
    path = traces_dir() / CATALOG
    if not path.is_file():
        raise InputError(f"{path}: no trace catalog (set {ENV_VAR} to a directory with "
                         f"{CATALOG})")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: bad TOML ({exc})") from None
    for name, entry in data.items():
        if not isinstance(entry, dict) or "file" not in entry:
            raise InputError(f"{path}: [{name}] has no 'file'")
    return data


def list_traces():
    """The shipped traces as a DataFrame: name, file, records, instructions, description."""
    import pandas as pd

    rows = [{"name": name, "file": e["file"], "records": int(e.get("records", 0)),
             "instructions": int(e.get("instructions", 0)),
             "description": e.get("description", "")}
            for name, e in load_catalog().items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(TRACE_SUFFIXES)


def find_trace(name_or_path: str | os.PathLike) -> Path:
    """The file for a catalog name ("gups") or a path; InputError for anything else."""
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(str(name_or_path)) \
            or Path(name_or_path).is_file():
        from simkit.atomic import check_input_kind

        return check_input_kind(name_or_path)
    catalog = load_catalog()
    name = str(name_or_path)
    if name not in catalog:
        raise InputError(f"unknown trace {name!r}; the catalog has: {', '.join(catalog)}")
    path = traces_dir() / catalog[name]["file"]
    if not path.is_file():
        raise InputError(f"{path}: listed in the catalog as {name!r} but missing")
    return path
