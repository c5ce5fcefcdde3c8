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

Bad input ends with one line ``simkit: error: <file or field>: <problem>`` on stderr, exit status 2,
and no output file (complete or partial). SIGINT exits 130, SIGTERM 143 (``simkit: terminated``),
both removing partial outputs. Output locations are checked before any work starts, and an output
that is one of the command's inputs is refused.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from simkit import atomic
from simkit.errors import InputError

AREAS = ("trace", "cache", "tlb", "kv", "alloc", "flash", "bench", "reproduce", "sweep")

# Arguments that name an output file or directory, by destination; a command adds its own with
# ``set_defaults(_outputs=(...), _output_dirs=(...))`` (``_output_dirs`` wins over this list).
OUTPUT_FILES = ("out", "timeline", "plot", "per_token", "export_kv_trace", "export_alloc_trace",
                "dst", "runs_out", "validation_out", "security_out", "validate_out")
OUTPUT_DIRS = ("outdir", "gallery")


class Terminated(BaseException):
    """SIGTERM arrived (raised in the main thread by the handler main() installs)."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (no usage block): ``simkit: error: PROG: message``."""

    def error(self, message: str):  # noqa: D401 (argparse's name)
        self.exit(2, f"simkit: error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from simkit import __version__

    parser = Parser(
        prog="simkit", description="Trace-driven memory-system simulators and microbenchmarks.")
    parser.add_argument("--version", action="version", version=f"simkit {__version__}")
    sub = parser.add_subparsers(dest="area", metavar="AREA")
    sub.required = True
    for area in AREAS:
        importlib.import_module(f"simkit.commands.{area}").register(sub)
    return parser


def _values(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _values(v)
    elif isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        yield value


def check_paths(args: argparse.Namespace) -> None:
    """Check every output location before the work starts, and refuse an output that is an
    input (``kv run --trace r.csv --out r.csv`` would destroy the trace)."""
    dirs = set(OUTPUT_DIRS) | set(getattr(args, "_output_dirs", ()))
    files = (set(OUTPUT_FILES) | set(getattr(args, "_outputs", ()))) - dirs
    outputs = []
    for dest, value in vars(args).items():
        if value is None or dest.startswith("_"):
            continue
        option = "--" + dest.replace("_", "-") if dest not in ("dst", "src") else dest
        if dest in files:
            for v in _values(value):
                atomic.check_output_file(v, option)
                outputs.append((option, v))
        elif dest in dirs:
            atomic.check_output_dir(value, option)
    if not outputs:
        return
    for dest, value in vars(args).items():
        if dest in files or dest in dirs or dest.startswith("_") or value is None:
            continue
        for v in _values(value):
            for option, out in outputs:
                if atomic.same_file(out, v):
                    raise InputError(f"{option} {out}: is the input {v}; refusing to overwrite it")


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # --help, --version, or a one-line argument error
        return exc.code if isinstance(exc.code, int) else 2
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    atomic.start_command()
    ok = False
    try:
        check_paths(args)
        rc = int(args.func(args) or 0)
        ok = True   # a command's own non-zero status (a failed check) keeps its outputs
        return rc
    except InputError as exc:
        print(f"simkit: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:   # config validation: names the field and the bad value
        print(f"simkit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        ok = True
        return 0
    except OSError as exc:      # writing: read-only place, full disk, ...
        where = exc.filename if exc.filename is not None else "output"
        print(f"simkit: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("simkit: error: out of memory (try a smaller --max-records, --n or chunk)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simkit: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("simkit: terminated", file=sys.stderr)
        return 143
    finally:
        atomic.cleanup(rollback=not ok)
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
