"""Request lengths from real LLM-serving traces (CSV).

``load_requests(path)`` returns an ``(n, 2)`` int64 array of (prompt_len, output_len), one row per
request in file order. It understands the column pairs of the traces in
``traces/llm-serving/``: Azure LLM inference (``ContextTokens``, ``GeneratedTokens``) and Vidur's
processed traces (``num_prefill_tokens``, ``num_decode_tokens``).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from simkit.errors import InputError
from simkit.kvpaging.workload import token_count

COLUMN_PAIRS = (("ContextTokens", "GeneratedTokens"),
                ("num_prefill_tokens", "num_decode_tokens"))


def load_requests(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """(prompt_len, output_len) per request, in file order; at most ``limit`` rows."""
    path = Path(path)
    from simkit.atomic import check_input_kind
    check_input_kind(path)
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    rows: list[tuple[int, int]] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file (expected a CSV header)")
            header = [h.strip() for h in header]
            pair = next((p for p in COLUMN_PAIRS if p[0] in header and p[1] in header), None)
            if pair is None:
                want = " or ".join(f"{a} and {b}" for a, b in COLUMN_PAIRS)
                raise InputError(f"{path}: no request-length columns: expected {want} "
                                 f"(found: {', '.join(header) or 'none'})")
            cols = [header.index(c) for c in pair]
            for lineno, rec in enumerate(reader, start=2):
                if limit is not None and len(rows) >= limit:
                    break
                if not rec or not any(x.strip() for x in rec):
                    continue
                vals = []
                for c, name in zip(cols, pair):
                    text = rec[c].strip() if c < len(rec) else ""
                    v = token_count(text)
                    if v is None:
                        raise InputError(f"{path}: line {lineno}: {name} {text!r} is not a "
                                         f"non-negative integer")
                    vals.append(v)
                rows.append((vals[0], vals[1]))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text CSV") from None
    except csv.Error as exc:
        raise InputError(f"{path}: bad CSV ({exc})") from None
    if not rows:
        raise InputError(f"{path}: no requests")
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)
