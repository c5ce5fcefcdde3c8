"""Mutated ``.skt``/``.skat`` files (headers and record bytes) never crash a kernel: each gives a
clean ``InputError``/``ValueError`` or a valid result. Hypothesis writes the files; one
subprocess replays them all through the cache, TLB and allocator models, so that a segfault
fails this test instead of killing pytest."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simkit.trace.alloc import ALLOC_DTYPE
from simkit.trace.alloc import MAGIC as ALLOC_MAGIC
from simkit.trace.format import ACCESS_DTYPE, HEADER_BYTES, MAGIC

REPO = Path(__file__).resolve().parents[1]

RUNNER = r"""
import sys, math
from pathlib import Path
from simkit.errors import InputError
from simkit.cache import Hierarchy, PRESETS
from simkit.tlb import MMU
from simkit.allocators.replay import AllocatorModel
bad = []
for f in sorted(Path(sys.argv[1]).iterdir()):
    try:
        if f.suffix == ".skt":
            s = Hierarchy(PRESETS["zen3"]).run(f)
            assert all(v >= 0 for v in s.to_frame().select_dtypes("number").iloc[0]
                       if not math.isnan(v)), "negative counter"
            MMU().run(f)
        else:
            for name in ("ptmalloc", "hardened", "mimalloc"):
                s = AllocatorModel(name).run(f)
                assert 0 <= s.peak_footprint_bytes < 1 << 48, s.peak_footprint_bytes
    except (InputError, ValueError):
        pass
    except Exception as exc:
        bad.append(f"{f.name}: {exc.__class__.__name__}: {exc}")
print("\n".join(bad))
sys.exit(3 if bad else 0)
"""

HEAD_MUTATIONS = st.sampled_from(["keep", "drop_dtype", "drop_records", "list", "records_neg",
                                  "records_big", "records_str", "dtype_junk", "meta_junk",
                                  "objects_big", "objects_neg", "format_2"])


def _file(path: Path, magic: bytes, dtype: np.dtype, recs: bytes, n: int, mutation: str,
          objects: int) -> None:
    head = {"format": 1, "dtype": dtype.descr, "records": n,
            "meta": {"extra": {"objects": objects}}}
    if mutation == "drop_dtype":
        del head["dtype"]
    elif mutation == "drop_records":
        del head["records"]
    elif mutation == "records_neg":
        head["records"] = -n - 1
    elif mutation == "records_big":
        head["records"] = n + 1000
    elif mutation == "records_str":
        head["records"] = str(n)
    elif mutation == "dtype_junk":
        head["dtype"] = [["addr", "<u8"], ["x", 3]]
    elif mutation == "meta_junk":
        head["meta"] = {"extra": [1, 2], "ops": "x"}
    elif mutation == "objects_big":
        head["meta"]["extra"]["objects"] = 2**40
    elif mutation == "objects_neg":
        head["meta"]["extra"]["objects"] = -1
    elif mutation == "format_2":
        head["format"] = 2
    body = json.dumps(head if mutation != "list" else [head]).encode()
    hdr = magic + len(body).to_bytes(4, "little") + body
    path.write_bytes(hdr + b"\0" * (HEADER_BYTES - len(hdr)) + recs)


def test_mutated_files_give_clean_errors_or_valid_results(tmp_path):
    d = tmp_path / "files"
    d.mkdir()
    counter = iter(range(10**6))

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(alloc=st.booleans(), n=st.integers(1, 40), mutation=HEAD_MUTATIONS,
           data=st.data())
    def make(alloc, n, mutation, data):
        dtype = ALLOC_DTYPE if alloc else ACCESS_DTYPE
        raw = bytearray(np.zeros(n, dtype).tobytes())
        if alloc:   # start from a valid malloc/free pattern, then flip bytes
            recs = np.zeros(n, ALLOC_DTYPE)
            recs["id"] = np.arange(n) // 2
            recs["op"] = np.where(np.arange(n) % 2, 3, 0)
            recs["size"] = 64
            recs["old_id"] = 0xFFFFFFFF
            raw = bytearray(recs.tobytes())
        else:
            recs = np.zeros(n, ACCESS_DTYPE)
            recs["addr"] = np.arange(n, dtype=np.uint64) * 4096
            raw = bytearray(recs.tobytes())
        flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1),
                                             st.integers(0, 255)), max_size=8))
        for at, byte in flips:
            raw[at] = byte
        cut = data.draw(st.sampled_from([len(raw), len(raw) - 1, len(raw) // 2]))
        i = next(counter)
        name = f"{i:03d}-{mutation}" + (".skat" if alloc else ".skt")
        _file(d / name, ALLOC_MAGIC if alloc else MAGIC, dtype, bytes(raw[:cut]), n, mutation,
              (n + 1) // 2)

    make()
    assert len(os.listdir(d)) == 60
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", RUNNER, str(d)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stdout[-3000:], p.stderr[-3000:])
