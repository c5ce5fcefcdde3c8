"""Reading configuration files: a TOML file as a dict, with one-line errors naming the file."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from simkit.errors import InputError


def read_toml(path: str | os.PathLike) -> dict:
    """The table of TOML file ``path``; ``InputError`` naming the file when it is missing,
    unreadable or not valid TOML."""
    from simkit.atomic import check_input_kind

    path = check_input_kind(path)     # a FIFO or device would block or never end
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
