"""The shipped traces: the catalog lists them, each opens and matches its recorded numbers."""
import hashlib

import numpy as np
import pytest

from simkit.errors import InputError
from simkit.trace.catalog import find_trace, list_traces, load_catalog, traces_dir
from simkit.trace.format import open_trace

SHIPPED = ["gups", "bfs", "matmul", "embedding"]          # lackey captures
LLM = ["llm-decode-contiguous", "llm-decode-paged"]       # simkit.kvpaging decode traces
PAPER = ["paper-bfs", "paper-pagerank", "paper-xsbench", "paper-gups", "paper-dlrm",
         "paper-llm-decode"]                              # self-traced windows (sktrace.h)


def test_catalog_lists_every_shipped_trace():
    df = list_traces()
    assert df["name"].tolist() == SHIPPED + LLM + PAPER
    assert list(df.columns) == ["name", "file", "records", "instructions", "description"]
    assert (df["records"][:len(SHIPPED)] == 3_000_000).all()
    assert df["records"][len(SHIPPED):len(SHIPPED) + 2].tolist() == [2_878_079, 3_148_196]
    assert (df["records"][len(SHIPPED) + 2:] == 200_000).all()
    on_disk = sorted(p.name for p in traces_dir().glob("*.skt*"))
    assert on_disk == sorted(df["file"])
    old = df[~df.name.isin(PAPER)]
    assert sum((traces_dir() / f).stat().st_size for f in old["file"]) < 6_000_000
    new = df[df.name.isin(PAPER)]
    assert sum((traces_dir() / f).stat().st_size for f in new["file"]) < 3_000_000


@pytest.mark.parametrize("name", PAPER)
def test_paper_windows_match_the_catalog(name):
    """Line-granular records of a 4+ GiB program, icount the measured instructions per record
    spread evenly, dependence flags only where an address is loaded by the access just before
    (whose record is the one before)."""
    entry = load_catalog()[name]
    path = find_trace(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    t = open_trace(path)
    r = t.read()
    assert len(r) == entry["records"] and t.meta.producer == "sktrace.h"
    assert t.meta.instructions == entry["instructions"] == int(r["icount"].sum())
    assert t.meta.ops == entry["ops"]
    assert (r["addr"] % 64 == 0).all() and (r["size"] == 64).all()
    ipr = entry["instructions_per_record"]
    assert set(np.unique(r["icount"]).tolist()) <= {int(ipr), int(ipr) + 1}
    assert abs(t.meta.instructions / len(r) - ipr) < 1e-3
    assert entry["footprint_bytes"] >= 3.9 * 2**30 and t.meta.extra["windows_written"] == 4
    lo, hi = 0x100000000000, 0x100000000000 + entry["footprint_bytes"]
    assert ((r["addr"] >= lo) & (r["addr"] < hi)).all()      # the program's own mappings
    dep = int(r["flags"].astype(bool).sum())
    assert dep == entry["dependent_records"]
    if name in ("paper-gups", "paper-llm-decode"):
        assert dep == 0                                       # computed addresses
    else:     # gathers through loaded indices: flagged right after the producer's record
        f = r["flags"].astype(bool)
        assert 0 < dep < len(r) and (r["op"][:-1][f[1:]] == 0).all()     # a load before it


@pytest.mark.parametrize("name", SHIPPED)
def test_each_trace_opens_and_matches_the_catalog(name):
    entry = load_catalog()[name]
    path = find_trace(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    t = open_trace(path)
    assert len(t) == entry["records"]
    assert t.meta.instructions == entry["instructions"]
    assert t.meta.ops == entry["ops"]
    assert t.meta.producer == "lackey" and entry["licence"].startswith("MIT")
    first = next(t.chunks(1024))
    # every trace starts at the sentinel: the first instruction of kernel()
    assert int(first["addr"][0]) == int(entry["start_address"], 16)
    assert int(first["op"][0]) == 2 and int(first["icount"][0]) == 1


def test_gups_updates_are_read_modify_writes_over_8_mib():
    r = np.asarray(open_trace(find_trace("gups")).read())
    m = r[r["op"] == 3]
    assert len(m) == 230_769 and set(m["size"].tolist()) == {8}
    span = int(m["addr"].max()) - int(m["addr"].min())
    assert 7 << 20 < span < 8 << 20                 # the table is 8 MiB
    # uniformly random slots: n draws from 2^20 hit m(1 - exp(-n/m)) distinct ones (89.8 %)
    slots, n = 1 << 20, len(m)
    assert len(np.unique(m["addr"])) == pytest.approx(slots * -np.expm1(-n / slots), rel=0.01)


def test_find_trace_paths_and_unknown_names(tmp_path):
    assert find_trace(traces_dir() / "gups.skt.xz") == traces_dir() / "gups.skt.xz"
    with pytest.raises(InputError, match=r"unknown trace 'gupz'; the catalog has: gups, bfs"):
        find_trace("gupz")
    with pytest.raises(InputError, match="no such file"):
        find_trace(tmp_path / "missing.skt")


def test_simkit_traces_overrides_the_directory(tmp_path, monkeypatch):
    (tmp_path / "catalog.toml").write_text('[tiny]\nfile = "tiny.skt"\nrecords = 2\n'
                                           'instructions = 2\ndescription = "two"\n')
    from simkit.trace.format import make_records, write_trace
    write_trace(tmp_path / "tiny.skt", make_records([1, 2]))
    monkeypatch.setenv("SIMKIT_TRACES", str(tmp_path))
    assert traces_dir() == tmp_path
    assert list_traces()["name"].tolist() == ["tiny"]
    assert find_trace("tiny") == tmp_path / "tiny.skt"
    monkeypatch.setenv("SIMKIT_TRACES", str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="no trace catalog"):
        list_traces()
