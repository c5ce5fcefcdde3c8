"""ChampSim importer: record expansion by hand, icount, compression, truncation, options."""
import bz2
import gzip
import lzma

import numpy as np
import pytest

from champsim_writer import champsim_bytes, expected_records, pack
from simkit.errors import InputError
from simkit.trace.champsim import CHAMPSIM_DTYPE, import_champsim
from simkit.trace.format import open_trace

HAND = [(0x401000, (0x1000, 0, 0x2000), (0x3000,)),
        (0x401004, (), ()),
        (0x401008, (), (0x4000, 0x4008)),
        (0x40100C, (), ())]


def load(path):
    t = open_trace(path)
    return t.meta, np.asarray(t.read())


def rows(r):
    return [tuple(int(x) for x in (a["addr"], a["op"], a["size"], a["icount"])) for a in r]


def test_dtype_is_the_packed_64_byte_record():
    assert CHAMPSIM_DTYPE.itemsize == 64
    rec = np.frombuffer(pack(7, (1, 2), (3,), is_branch=1, taken=1, src_regs=(6,)),
                        dtype=CHAMPSIM_DTYPE)[0]
    assert (int(rec["ip"]), rec["is_branch"], rec["branch_taken"]) == (7, 1, 1)
    assert rec["source_memory"].tolist() == [1, 2, 0, 0]
    assert rec["destination_memory"].tolist() == [3, 0]
    assert rec["source_registers"].tolist() == [6, 0, 0, 0]


def test_hand_case_with_ifetch(tmp_path):
    src = tmp_path / "hand.champsim"
    src.write_bytes(champsim_bytes(HAND))
    meta, r = load(import_champsim(src, tmp_path / "hand.skt"))
    assert rows(r) == [(0x401000, 2, 4, 1), (0x1000, 0, 8, 0), (0x2000, 0, 8, 0),
                       (0x3000, 1, 8, 0), (0x401004, 2, 4, 1), (0x401008, 2, 4, 1),
                       (0x4000, 1, 8, 0), (0x4008, 1, 8, 0), (0x40100C, 2, 4, 1)]
    assert (meta.records, meta.instructions) == (9, 4)
    assert meta.ops == {"load": 2, "store": 3, "ifetch": 4, "modify": 0}
    assert "size 8" in meta.notes and meta.producer == "champsim"


def test_hand_case_without_ifetch(tmp_path):
    src = tmp_path / "hand.champsim"
    src.write_bytes(champsim_bytes(HAND))
    meta, r = load(import_champsim(src, tmp_path / "hand.skt", include_ifetch=False))
    assert rows(r) == [(0x1000, 0, 8, 1), (0x2000, 0, 8, 0), (0x3000, 1, 8, 0),
                       (0x4000, 1, 8, 2), (0x4008, 1, 8, 0)]
    assert (meta.records, meta.instructions) == (5, 4)     # the last instruction trails


def random_instrs(n, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        src = [int(a) if rng.random() < 0.3 else 0 for a in rng.integers(1, 2**48, 4)]
        dst = [int(a) if rng.random() < 0.2 else 0 for a in rng.integers(1, 2**48, 2)]
        out.append((0x400000 + 4 * i, tuple(src), tuple(dst)))
    return out


@pytest.mark.parametrize("include_ifetch", [True, False])
def test_plain_gz_xz_bz2_stream_equal_and_match_reference(tmp_path, include_ifetch):
    instrs = random_instrs(3000)
    raw = champsim_bytes(instrs)
    files = {"plain": raw, "gz": gzip.compress(raw), "xz": lzma.compress(raw),
             "bz2": bz2.compress(raw)}
    want, trailing = expected_records(instrs, include_ifetch)
    for kind, blob in files.items():
        src = tmp_path / f"t.{kind}.champsimtrace"
        src.write_bytes(blob)
        meta, r = load(import_champsim(src, tmp_path / f"{kind}.skt", chunk_instructions=333,
                                       include_ifetch=include_ifetch))
        assert rows(r) == want, kind
        assert meta.instructions == 3000 and meta.instructions - int(r["icount"].sum()) == trailing


def test_open_stream_input(tmp_path):
    raw = champsim_bytes(HAND)
    src = tmp_path / "hand.champsim"
    src.write_bytes(raw)
    _, whole = load(import_champsim(src, tmp_path / "a.skt"))
    with open(src, "rb") as f:
        _, streamed = load(import_champsim(f, tmp_path / "b.skt", chunk_instructions=1))
    assert np.array_equal(whole, streamed)


@pytest.mark.parametrize("compress", [None, lzma.compress])
def test_truncated_record_names_file_and_offset(tmp_path, compress):
    raw = champsim_bytes(random_instrs(3)) + b"\x01" * 10
    src = tmp_path / "trunc.champsim"
    src.write_bytes(compress(raw) if compress else raw)
    dst = tmp_path / "trunc.skt"
    with pytest.raises(InputError) as err:
        import_champsim(src, dst, chunk_instructions=2)
    assert str(err.value) == (f"{src}: truncated ChampSim record at byte offset 192 "
                              f"(10 of 64 bytes)")
    assert not dst.exists() and not (tmp_path / "trunc.skt.partial").exists()


def test_corrupt_compressed_stream(tmp_path):
    blob = lzma.compress(champsim_bytes(random_instrs(500)))
    src = tmp_path / "cut.champsimtrace.xz"
    src.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match=f"^{src}: unreadable or corrupt compressed input"):
        import_champsim(src, tmp_path / "cut.skt")
    assert not (tmp_path / "cut.skt").exists()


def test_skip_and_max_records(tmp_path):
    src = tmp_path / "hand.champsim"
    src.write_bytes(champsim_bytes(HAND))
    meta, r = load(import_champsim(src, tmp_path / "a.skt", skip_instructions=2))
    assert rows(r) == [(0x401008, 2, 4, 1), (0x4000, 1, 8, 0), (0x4008, 1, 8, 0),
                       (0x40100C, 2, 4, 1)]
    assert meta.instructions == 2 and meta.extra["skipped_instructions"] == 2
    meta, r = load(import_champsim(src, tmp_path / "b.skt", max_records=3))
    assert [a for a, *_ in rows(r)] == [0x401000, 0x1000, 0x2000]
    assert (meta.records, meta.instructions) == (3, 1)


# --- export (simkit -> ChampSim), unpacked with the test's own struct layout -------------------

def _unpack_all(path):
    import struct

    from champsim_writer import INSTR
    raw = lzma.open(path).read() if str(path).endswith(".xz") else open(path, "rb").read()
    return [INSTR.unpack_from(raw, o) for o in range(0, len(raw), 64)]


def test_export_groups_data_records_under_their_ifetch(tmp_path):
    from simkit.trace.champsim import export_champsim
    from simkit.trace.format import Op, make_records

    r = make_records([0x401000, 0x1000, 0x2000, 0x401004, 0x401008, 0x3000, 0x3000, 0x4000],
                     op=Op.LOAD, size=8, icount=0)
    r["op"] = [Op.IFETCH, Op.LOAD, Op.MODIFY, Op.IFETCH, Op.IFETCH, Op.STORE, Op.LOAD, Op.LOAD]
    r["flags"][6] = 1                                       # 0x3000's load depends on a load
    c = export_champsim(r, tmp_path / "t.champsim.xz")
    assert c == {"instructions": 3, "records": 8, "dropped_operands": 0}
    got = _unpack_all(tmp_path / "t.champsim.xz")
    # (ip, is_branch, taken, dst regs 2, src regs 4, dst mem 2, src mem 4)
    assert got[0] == (0x401000, 0, 0, 1, 0, 0, 0, 0, 0, 0x2000, 0, 0x1000, 0x2000, 0, 0)
    assert got[1] == (0x401004, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert got[2] == (0x401008, 0, 0, 1, 0, 1, 0, 0, 0, 0x3000, 0, 0x3000, 0x4000, 0, 0)


def test_export_data_only_trace_adds_the_instructions_between(tmp_path):
    from simkit.trace.champsim import DEP_REGISTER, FILLER_IP, export_champsim
    from simkit.trace.format import Op, make_records

    r = make_records([0x1000, 0x2000], op=Op.STORE, size=8, icount=3)
    c = export_champsim(r, tmp_path / "d.champsim")
    got = _unpack_all(tmp_path / "d.champsim")
    assert c["instructions"] == 6 and len(got) == 6
    assert [g[0] for g in got] == [FILLER_IP + 4 * i for i in range(6)]
    assert [g[9] for g in got] == [0, 0, 0x1000, 0, 0, 0x2000]       # destination_memory[0]
    assert all(g[3] == 0 for g in got) and DEP_REGISTER == 1          # stores write no register


def test_export_then_import_keeps_every_access(tmp_path):
    from simkit.trace.champsim import export_champsim
    from simkit.trace.format import Op

    rng = np.random.default_rng(3)
    n = 5000
    r = np.zeros(n, dtype=open_trace.__globals__["ACCESS_DTYPE"])
    r["op"] = rng.choice([Op.IFETCH, Op.IFETCH, Op.LOAD, Op.STORE], n)
    r["op"][0] = Op.IFETCH
    r["addr"] = rng.integers(1, 1 << 40, n)
    r["size"] = 8
    r["icount"] = (r["op"] == Op.IFETCH).astype(np.uint32)
    # at most 4 loads and 2 stores per instruction, else they are dropped (counted)
    export_champsim(r, tmp_path / "x.champsim.xz")
    import_champsim(tmp_path / "x.champsim.xz", tmp_path / "x.skt")
    _, back = load(tmp_path / "x.skt")
    want = []                                # per instruction: ifetch, loads, then stores
    for i in np.flatnonzero(r["op"] == Op.IFETCH):
        j = i + 1
        while j < n and r["op"][j] != Op.IFETCH:
            j += 1
        grp = r[i:j]
        want += [int(grp["addr"][0])] + [int(a) for a in grp["addr"][grp["op"] == Op.LOAD][:4]] \
            + [int(a) for a in grp["addr"][grp["op"] == Op.STORE][:2]]
    assert back["addr"].tolist() == want
