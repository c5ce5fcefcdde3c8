"""The self-tracing paper-regime programs (traces/src/paper/): built with gcc -DSIMKIT_TRACE at
tiny sizes, their .skt output checked against what each program's own layout and generator
imply, computed here by hand (sktrace.h: allocations at 0x100000000000, each at the next
2 MiB boundary; one record per 64-byte line; flags bit 0 = address from an earlier load)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from simkit.trace.format import ACCESS_DTYPE, HEADER_BYTES, Op, open_trace

PAPER = Path(__file__).resolve().parents[1] / "traces" / "src" / "paper"
BASE = 0x100000000000
MB2 = 2 << 20
M64 = (1 << 64) - 1

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def _align(n):
    return (n + MB2 - 1) // MB2 * MB2


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    d = tmp_path_factory.mktemp("paper-build")

    def make(prog):
        exe = d / prog
        if not exe.exists():
            subprocess.run(["gcc", "-O2", "-DSIMKIT_TRACE", "-o", str(exe),
                            str(PAPER / f"{prog}.c"), "-lm"], check=True)
        return exe
    return make


def _run(exe, args, out, **env):
    e = {"PATH": "/usr/bin:/bin", "SKT_OUT": str(out), **{k: str(v) for k, v in env.items()}}
    p = subprocess.run([str(exe), *map(str, args)], env=e, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_gups_windows_addresses_and_icounts(build, tmp_path):
    exe = build("gups")
    out = tmp_path / "g.skt"
    env = dict(SKT_SKIP=3, SKT_WINDOW=4, SKT_PERIOD=10, SKT_WINDOWS=2, SKT_IPR_MILLI=2500)
    _run(exe, [10, 64], out, **env)
    t = open_trace(out)
    r = t.read()
    # HPCC's LFSR by hand; update i touches table[ran & 1023] (8-byte words at BASE)
    ran, lines = 0x2545F4914F6CDD1D, []
    for _ in range(64):
        ran = ((ran << 1) & M64) ^ (7 if ran >> 63 else 0)
        lines.append((BASE + (ran & 1023) * 8) & ~63)
    want = [lines[i] for i in (3, 4, 5, 6, 13, 14, 15, 16)]
    assert r["addr"].tolist() == want
    assert r["icount"].tolist() == [2, 3, 2, 3, 2, 3, 2, 3]      # floor((k+1)*2.5)-floor(k*2.5)
    assert set(r["op"].tolist()) == {Op.MODIFY} and set(r["size"].tolist()) == {64}
    assert not r["flags"].any()                                    # index computed, not loaded
    assert t.meta.records == 8 and t.meta.instructions == 20
    assert t.meta.ops == {"load": 0, "store": 0, "ifetch": 0, "modify": 8}
    assert t.meta.extra["windows_written"] == 2 and t.meta.extra["mapped_bytes"] == _align(8192)
    raw = out.read_bytes()
    assert raw[:8] == b"SIMKTRC1" and len(raw) == HEADER_BYTES + 8 * ACCESS_DTYPE.itemsize
    out2 = tmp_path / "g2.skt"
    _run(exe, [10, 64], out2, **env)
    assert out2.read_bytes() == raw                                # deterministic, byte for byte


def _xorshift(s):
    s ^= s >> 12
    s ^= (s << 25) & M64
    s ^= s >> 27
    return s, (s * 0x2545F4914F6CDD1D) & M64


def test_dlrm_gathers_follow_the_index_array(build, tmp_path):
    tables, rows, dim, bags, pool = 2, 64, 32, 3, 2
    out = tmp_path / "d.skt"
    _run(build("dlrm"), [tables, rows, dim, bags, pool], out)
    r = open_trace(out).read()
    s, idx = 0x853C49E6748FEA9B, []
    for _ in range(bags * tables * pool):
        s, x = _xorshift(s)
        u = (x >> 11) * 2.0 ** -53
        row = min(int(rows * u * u * u), rows - 1)
        idx.append((row * 0x9E3779B97F4A7C15) & (rows - 1))
    tab = [BASE + t * _align(rows * dim * 4) for t in range(tables)]
    idx_at = BASE + tables * _align(rows * dim * 4)
    out_at = idx_at + _align(len(idx) * 4)
    want, last_i, last_o = [], None, None
    for b in range(bags):
        for t in range(tables):
            for p in range(pool):
                k = (b * tables + t) * pool + p
                line = (idx_at + 4 * k) & ~63
                wrote = line != last_i
                if wrote:
                    want.append((line, Op.LOAD, 0))
                    last_i = line
                for d in range(0, dim, 16):   # the row's lines come from ix[p]: the first is
                    # flagged where the index's load wrote the record just before it
                    want.append((tab[t] + (idx[k] * dim + d) * 4, Op.LOAD,
                                 int(d == 0 and wrote)))
            for d in range(dim):
                line = (out_at + ((b * tables + t) * dim + d) * 4) & ~63
                if line != last_o:
                    want.append((line, Op.STORE, 0))
                    last_o = line
    got = list(zip(r["addr"].tolist(), r["op"].tolist(), r["flags"].tolist()))
    assert got == want


def test_bfs_dependence_flags_by_array(build, tmp_path):
    out = tmp_path / "b.skt"
    stdout = _run(build("graph"), ["bfs", 8, 4], out)
    m = re.search(r"edges (\d+) reached (\d+)", stdout)
    E, reached, V = int(m.group(1)), int(m.group(2)), 256
    off, col = BASE, BASE + _align(8 * (V + 1))
    dist = col + _align(4 * E)
    queue = dist + _align(4 * V)
    r = open_trace(out).read()
    a, f, op = r["addr"].astype(np.int64), r["flags"], r["op"]
    assert (a % 64 == 0).all() and (r["size"] == 64).all()
    region = np.select([a < col, a < dist, a < queue, a < queue + 4 * V],
                       ["off", "col", "dist", "queue"], "other")
    assert not (region == "other").any()
    # a record is flagged only right after its producer's record: off[u] after a queue read
    # that wrote one (off[u + 1] after off[u]), dist[v] after a col[] line, its store after it
    prev = np.concatenate([["none"], region[:-1]])
    prev_op = np.concatenate([[-1], op[:-1]])
    assert (prev_op[f.astype(bool)] == Op.LOAD).all()
    dist_load = (region == "dist") & (op == Op.LOAD)
    assert (f[dist_load].astype(bool) == (prev[dist_load] == "col")).all()
    assert f[dist_load].any() and not f[dist_load].all()     # col lines hold several edges
    assert f[(region == "dist") & (op == Op.STORE)].all()
    off_flag = f[region == "off"].astype(bool)      # off[u] after the queue read's record,
    qload = (prev == "queue") & (prev_op == Op.LOAD)  # off[u + 1] (its own line) after off[u]
    assert (qload | (prev == "off"))[region == "off"][off_flag].all()
    assert off_flag.any() and not off_flag.all()
    assert not f[region == "queue"].any()
    # dist stores: one per vertex discovered (the source's is not traced)
    assert ((region == "dist") & (op == Op.STORE)).sum() == reached - 1
    # queue: appends to queue[1..reached) and reads of queue[0..reached), one record per line
    q_lines = lambda lo: len({(queue + 4 * i) >> 6 for i in range(lo, reached)})  # noqa: E731
    assert ((region == "queue") & (op == Op.STORE)).sum() == q_lines(1)
    assert ((region == "queue") & (op == Op.LOAD)).sum() == q_lines(0)
    # col: only the first line of each adjacency list is flagged (its start came from off[u])
    dequeued_with_edges = f[(region == "col")].sum()
    assert 0 < dequeued_with_edges <= reached
    assert (~f[region == "col"].astype(bool)).any()


def test_bad_window_settings_fail(build, tmp_path):
    p = subprocess.run([str(build("gups")), "8"], env={"SKT_OUT": str(tmp_path / "x.skt"),
                                                       "SKT_WINDOW": "0"},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "SKT_WINDOW" in p.stderr
    assert not (tmp_path / "x.skt").exists() and not (tmp_path / "x.skt.partial").exists()
    p = subprocess.run([str(build("gups")), "8"], env={}, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "SKT_OUT" in p.stderr
