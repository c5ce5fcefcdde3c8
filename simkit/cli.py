"""The `simkit` command (also `python -m simkit`).

    simkit trace  list|info|convert|gen|capture|capture-malloc|import-malloc ...
    simkit cache  run|sweep|presets ...
    simkit tlb    run|presets ...
    simkit bench  cpu ...
    simkit kv     run|decode-trace|models ...
    simkit alloc  run|security|presets|traces ...
    simkit flash  run|models|policies ...
    simkit reproduce NAME|all [--quick]
    simkit sweep GRID.toml [--scheduler ADDRESS] [--workers N] [--out DIR]

Bad input ends with one line ``simkit: error: ...`` on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from simkit.errors import InputError

AREAS = ("trace", "cache", "tlb", "kv", "alloc", "flash", "bench", "reproduce", "sweep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simkit", description="Trace-driven memory-system simulators and microbenchmarks.")
    from simkit import __version__
    parser.add_argument("--version", action="version", version=f"simkit {__version__}")
    sub = parser.add_subparsers(dest="area", metavar="AREA")
    sub.required = True
    for area in AREAS:
        importlib.import_module(f"simkit.commands.{area}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"simkit: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:   # config validation: names the field and the bad value
        print(f"simkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
