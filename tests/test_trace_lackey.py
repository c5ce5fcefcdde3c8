"""valgrind lackey importer: icount semantics by hand, options, malformed input, streams."""
import gzip
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simkit.errors import InputError
from simkit.trace.format import open_trace
from simkit.trace.lackey import LackeyReader, import_lackey

# 10 access lines: instructions 1..6 are the I lines, in order
SAMPLE = """\
==123== Lackey, an example Valgrind tool
==123== Command: ./t
I  04000000,3
 L 1ffefffd48,8
I  04000003,5
I  04000008,4
 S 1ffefffd40,8
 M 0601040,4
I  0400000c,2
I  0400000e,7
 L 0601048,4
I  04000015,3
==123== 
==123==   guest instrs:  6
"""
ADDR = [0x04000000, 0x1FFEFFFD48, 0x04000003, 0x04000008, 0x1FFEFFFD40, 0x0601040,
        0x0400000C, 0x0400000E, 0x0601048, 0x04000015]
OPS = [2, 0, 2, 2, 1, 3, 2, 2, 0, 2]
SIZES = [3, 8, 5, 4, 8, 4, 2, 7, 4, 3]


@pytest.fixture
def sample(tmp_path):
    p = tmp_path / "sample.lackey"
    p.write_text(SAMPLE)
    return p


def run(src, tmp_path, name="out.skt", **kw):
    t = open_trace(import_lackey(src, tmp_path / name, **kw))
    return t.meta, np.asarray(t.read())


def test_with_ifetch_every_I_is_one_instruction(sample, tmp_path):
    meta, r = run(sample, tmp_path)
    assert r["addr"].tolist() == ADDR
    assert r["op"].tolist() == OPS
    assert r["size"].tolist() == SIZES
    assert r["icount"].tolist() == [1, 0, 1, 1, 0, 0, 1, 1, 0, 1]
    assert (meta.records, meta.instructions) == (10, 6)
    assert meta.ops == {"load": 2, "store": 1, "ifetch": 6, "modify": 1}
    assert meta.producer == "lackey"
    assert meta.extra["valgrind_guest_instructions"] == 6


def test_without_ifetch_instructions_fold_into_the_next_data_record(sample, tmp_path):
    meta, r = run(sample, tmp_path, include_ifetch=False)
    assert r["op"].tolist() == [0, 1, 3, 0]
    assert r["icount"].tolist() == [1, 2, 0, 2]      # instr 1 | 2,3 | (same as S) | 4,5
    assert (meta.records, meta.instructions) == (4, 6)   # instr 6 trails: 5 + 1


def test_skip_instructions_drops_them_and_their_data(sample, tmp_path):
    meta, r = run(sample, tmp_path, skip_instructions=2)
    assert r["addr"].tolist() == ADDR[3:]
    assert r["icount"].tolist() == [1, 0, 0, 1, 1, 0, 1]
    assert (meta.records, meta.instructions) == (7, 4)
    assert meta.extra["skipped_instructions"] == 2
    meta, r = run(sample, tmp_path, "b.skt", skip_instructions=2, include_ifetch=False)
    assert r["icount"].tolist() == [1, 0, 2] and meta.instructions == 4


def test_max_records_stops_there(sample, tmp_path):
    meta, r = run(sample, tmp_path, max_records=3)
    assert r["addr"].tolist() == ADDR[:3]
    assert (meta.records, meta.instructions) == (3, 2)
    assert meta.extra["stopped_at_max_records"] is True
    meta, r = run(sample, tmp_path, "b.skt", max_records=2, include_ifetch=False)
    assert r["icount"].tolist() == [1, 2] and meta.instructions == 3


def test_start_address_is_a_sentinel(sample, tmp_path):
    meta, r = run(sample, tmp_path, start_address=0x0400000C)
    assert r["addr"].tolist() == ADDR[6:]
    assert meta.instructions == 3 and meta.extra["skipped_instructions"] == 3
    with pytest.raises(InputError, match="never executed"):
        import_lackey(sample, tmp_path / "none.skt", start_address=0x1234)
    assert not (tmp_path / "none.skt").exists()


@pytest.mark.parametrize("block", [1, 7, 40, 1 << 22])
def test_block_boundaries_do_not_matter(sample, tmp_path, block):
    _, whole = run(sample, tmp_path)
    _, r = run(sample, tmp_path, f"b{block}.skt", block_bytes=block)
    assert np.array_equal(r, whole)


def test_text_binary_and_gzip_streams(sample, tmp_path):
    _, whole = run(sample, tmp_path)
    for i, src in enumerate([io.StringIO(SAMPLE), io.BytesIO(SAMPLE.encode())]):
        _, r = run(src, tmp_path, f"s{i}.skt")
        assert np.array_equal(r, whole)
    gz = tmp_path / "sample.txt.gz"
    gz.write_bytes(gzip.compress(SAMPLE.encode()))
    assert np.array_equal(run(gz, tmp_path, "gz.skt")[1], whole)


@pytest.mark.parametrize("bad, lineno, problem", [
    ("I  04zz0003,5", 5, "bad hex address"),
    (" X 0601040,4", 5, "not a lackey line"),
    ("I  0601040", 5, "expected 'address,size'"),
    ("I  0601040,70000", 5, "bad size"),
    ("I  ,4", 5, "bad hex address"),
    ("I  12345678901234567,4", 5, "bad hex address"),
])
def test_malformed_line_names_file_and_line_and_leaves_nothing(tmp_path, bad, lineno, problem):
    lines = SAMPLE.splitlines()
    lines[lineno - 1] = bad
    src = tmp_path / "bad.lackey"
    src.write_text("\n".join(lines) + "\n")
    dst = tmp_path / "bad.skt"
    with pytest.raises(InputError) as err:
        import_lackey(src, dst, block_bytes=16)
    assert str(err.value).startswith(f"{src}:{lineno}: {problem}")
    assert "\n" not in str(err.value)
    assert not dst.exists() and not (tmp_path / "bad.skt.partial").exists()


def test_missing_input_creates_nothing(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        import_lackey(tmp_path / "nope.txt", tmp_path / "x.skt")
    assert list(tmp_path.iterdir()) == []


# --- against a slow reference on random lackey text ----------------------------------------

def reference(lines, include_ifetch, skip):
    """(addr, op, size, icount) records and trailing instructions, the obvious way."""
    out, pending, n_instr = [], 0, 0
    for kind, addr, size in lines:
        if kind == "I":
            n_instr += 1
        if skip and n_instr <= skip:
            continue
        if kind == "I":
            pending += 1
            if not include_ifetch:
                continue
        out.append((addr, "LSIM".index(kind), size, pending))
        pending = 0
    return out, pending


line = st.tuples(st.sampled_from("ILSMI"), st.integers(0, 2**64 - 1), st.integers(0, 65535))


@settings(max_examples=60, deadline=None)
@given(st.lists(line, max_size=60), st.booleans(), st.integers(0, 5), st.integers(1, 50))
def test_random_text_matches_reference(tmp_path_factory, lines, include_ifetch, skip, block):
    text = "".join(f"I  {a:08x},{s}\n" if k == "I" else f" {k} {a:x},{s}\n"
                   for k, a, s in lines)
    reader = LackeyReader(io.StringIO(text), include_ifetch=include_ifetch,
                          skip_instructions=skip, block_bytes=block)
    chunks = list(reader.chunks())
    got = np.concatenate(chunks) if chunks else np.zeros(0, dtype=[("addr", "u8")])
    want, trailing = reference(lines, include_ifetch, skip)
    assert [tuple(int(x) for x in (r["addr"], r["op"], r["size"], r["icount"])) for r in got] \
        == want
    assert reader.trailing_instructions == trailing
    assert reader.skipped_instructions == min(skip, sum(k == "I" for k, _, _ in lines))
