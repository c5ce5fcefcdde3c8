"""Subcommands of the `simkit` command line, one module per area (top floor: may import anything).

Each module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
handler ``handler(args) -> int``. Handlers raise ``simkit.errors.InputError`` for bad input;
``simkit.cli.main`` turns it into one line on stderr and exit status 2.
"""
