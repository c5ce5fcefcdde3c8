"""Shared output for subcommands: a readable table on stdout, ``--out FILE`` written atomically."""
from __future__ import annotations

import argparse
from pathlib import Path

from simkit.errors import InputError
from simkit.atomic import write_via

OUT_SUFFIXES = (".csv", ".parquet", ".json")


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="FILE", type=Path,
                        help="also write the table to FILE (.csv, .parquet or .json)")


def check_out_path(path: Path | None, option: str = "--out",
                   suffixes: tuple[str, ...] = OUT_SUFFIXES) -> None:
    """Fail early (before any work) when an output file cannot be written."""
    if path is None:
        return
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{option} {path}: unsupported format {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: directory {parent} does not exist")


def write_frame(df, path: Path) -> Path:
    """Write ``df`` to ``path`` by way of a temporary file, so no partial file is ever left."""
    check_out_path(path)
    suffix = path.suffix.lower()

    def write(tmp):
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        elif suffix == ".json":
            df.to_json(tmp, orient="records", indent=1)
        else:
            try:
                df.to_parquet(tmp, index=False)
            except ImportError:
                raise InputError(f"--out {path}: parquet needs pyarrow "
                                 f"(pip install 'simkit[parquet]')") from None

    return write_via(path, write)


def print_frame(df, columns=None, floatfmt: str = "{:.4g}") -> None:
    """Print a DataFrame as a plain aligned table (all rows)."""
    import pandas as pd

    view = df if columns is None else df[[c for c in columns if c in df.columns]]
    with pd.option_context("display.max_rows", None, "display.max_columns", None,
                           "display.width", 200):
        print(view.to_string(index=False, float_format=floatfmt.format))


def emit(df, args, columns=None) -> None:
    """Print ``df`` and, with ``--out``, write it."""
    print_frame(df, columns)
    if getattr(args, "out", None) is not None:
        write_frame(df, args.out)
        print(f"wrote {args.out}")
