"""Dinero IV din import/export and the lackey -> skt -> din -> skt round trip."""
import gzip

import numpy as np
import pytest

from simkit.errors import InputError
from simkit.trace.din import export_din, format_din, import_din
from simkit.trace.format import Op, make_records, open_trace, write_trace
from simkit.trace.lackey import import_lackey
from test_trace_lackey import SAMPLE

DIN = """\
2 400100 fetch, the rest of a line is a comment
0 7ff0001a8
  1\t7FF0001B0
3 0
2 0x400104
0 10
4 0
1 18
"""


def load(path):
    t = open_trace(path)
    return t.meta, np.asarray(t.read())


def test_import_by_hand(tmp_path):
    src = tmp_path / "t.din"
    src.write_text(DIN)
    meta, r = load(import_din(src, tmp_path / "t.skt"))
    assert r["addr"].tolist() == [0x400100, 0x7FF0001A8, 0x7FF0001B0, 0x400104, 0x10, 0x18]
    assert r["op"].tolist() == [Op.IFETCH, Op.LOAD, Op.STORE, Op.IFETCH, Op.LOAD, Op.STORE]
    assert r["icount"].tolist() == [1, 0, 0, 1, 0, 0]
    assert r["size"].tolist() == [4] * 6                 # Dinero IV reads din as 4-byte words
    assert (meta.records, meta.instructions) == (6, 2)
    assert (meta.extra["escape_records_3"], meta.extra["escape_records_4"]) == (1, 1)


def test_data_only_din_counts_one_instruction_per_record(tmp_path):
    src = tmp_path / "d.din"
    src.write_text("0 100\n1 200\n0 300\n")
    meta, r = load(import_din(src, tmp_path / "d.skt", size=8))
    assert r["icount"].tolist() == [1, 1, 1] and meta.instructions == 3
    assert r["size"].tolist() == [8, 8, 8]


@pytest.mark.parametrize("bad, problem", [
    ("7 100", "unknown label '7'"),
    ("", "short line"),
    ("0", "short line"),
    ("0 10g0", "bad hex address '10g0'"),
    ("x 100", "bad label 'x'"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad, problem):
    src = tmp_path / "bad.din"
    src.write_text(f"2 400100\n0 10\n{bad}\n1 18\n")
    dst = tmp_path / "bad.skt"
    with pytest.raises(InputError) as err:
        import_din(src, dst, block_bytes=8)
    assert str(err.value).startswith(f"{src}:3: {problem}")
    assert not dst.exists() and not (tmp_path / "bad.skt.partial").exists()


def test_export_text_exactly():
    r = make_records([0x400000, 0x7FF0001A8, 0x10, 0, 0xFFFFFFFFFFFFFFFF],
                     op=[Op.IFETCH, Op.LOAD, Op.MODIFY, Op.STORE, Op.LOAD])
    assert format_din(r) == (b"2 400000\n0 7ff0001a8\n0 10\n1 10\n1 0\n"
                             b"0 ffffffffffffffff\n")


def test_export_compressed_and_atomic(tmp_path):
    r = make_records(np.arange(0, 640, 64), op=Op.LOAD)
    out = export_din(r, tmp_path / "a.din.gz")
    assert gzip.decompress(out.read_bytes()).decode().splitlines()[:2] == ["0 0", "0 40"]
    with pytest.raises(InputError, match="cannot write"):
        export_din(r, tmp_path / "no" / "a.din")


def test_lackey_skt_din_skt_round_trip(tmp_path):
    src = tmp_path / "s.lackey"
    src.write_text(SAMPLE)
    first = load(import_lackey(src, tmp_path / "a.skt"))[1]
    export_din(tmp_path / "a.skt", tmp_path / "a.din")
    second = load(import_din(tmp_path / "a.din", tmp_path / "b.skt"))[1]
    # a MODIFY leaves as a read and a write of the same address
    twice = first["op"] == Op.MODIFY
    want_addr = np.repeat(first["addr"], 1 + twice)
    want_op = np.repeat(first["op"], 1 + twice)
    want_op[np.cumsum(1 + twice)[twice] - 2] = Op.LOAD
    want_op[np.cumsum(1 + twice)[twice] - 1] = Op.STORE
    assert second["addr"].tolist() == want_addr.tolist()
    assert second["op"].tolist() == want_op.tolist()
    # and a trace without MODIFY comes back identical in address and op, chunk by chunk
    rng = np.random.default_rng(3)
    r = make_records(rng.integers(0, 2**63, 50_000, dtype=np.uint64),
                     op=rng.integers(0, 3, 50_000).astype(np.uint8))
    write_trace(tmp_path / "r.skt.xz", r)
    export_din(tmp_path / "r.skt.xz", tmp_path / "r.din.xz")
    back = load(import_din(tmp_path / "r.din.xz", tmp_path / "r2.skt", block_bytes=4096))[1]
    assert np.array_equal(back["addr"], r["addr"]) and np.array_equal(back["op"], r["op"])
