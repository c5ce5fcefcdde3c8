"""Hostile input, every subcommand: one line ``simkit: error: ...`` naming the file or field,
exit status 2, no traceback, and nothing left in the output directory.

Each case is an argv (``{d}`` is the case's scratch directory, holding the valid inputs made by
``_inputs``) and the word the one error line must contain (the file or field it names). Cases run
in-process through ``simkit.cli.main`` (fast: one import); the cases that feed crafted records to a
numba kernel run in a subprocess, so that a segfault fails the test instead of killing pytest.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from simkit.cli import main
from simkit.trace.alloc import ALLOC_DTYPE, AllocOp
from simkit.trace.alloc import MAGIC as ALLOC_MAGIC
from simkit.trace.alloc import empty as alloc_empty
from simkit.trace.format import ACCESS_DTYPE, HEADER_BYTES, MAGIC, TraceMeta, make_records, write_trace

REPO = Path(__file__).resolve().parents[1]
REQS = REPO / "traces" / "llm-serving" / "AzureLLMInferenceTrace_code_first1000.csv"


def _raw_file(path: Path, head, records: np.ndarray | bytes = b"", magic: bytes = MAGIC) -> None:
    body = json.dumps(head).encode() if not isinstance(head, bytes) else head
    hdr = magic + len(body).to_bytes(4, "little") + body
    hdr += b"\0" * (HEADER_BYTES - len(hdr))
    path.write_bytes(hdr + (records.tobytes() if isinstance(records, np.ndarray) else records))


def _skt_head(n: int, **over) -> dict:
    head = {"format": 1, "dtype": ACCESS_DTYPE.descr, "records": n, "meta": {}}
    head.update(over)
    return head


def _skat(path: Path, recs: np.ndarray, objects: int) -> None:
    head = {"format": 1, "dtype": ALLOC_DTYPE.descr, "records": len(recs),
            "meta": {"extra": {"objects": objects}}}
    _raw_file(path, head, recs, ALLOC_MAGIC)


def _alloc_records(n_obj: int = 4) -> np.ndarray:
    recs = alloc_empty(2 * n_obj)
    for i in range(n_obj):
        recs[i]["id"], recs[i]["size"], recs[i]["op"] = i, 32 + 16 * i, AllocOp.MALLOC
        recs[n_obj + i]["id"], recs[n_obj + i]["op"] = i, AllocOp.FREE
    recs["time"] = np.arange(2 * n_obj)
    return recs


class _Payload:
    """Pickled, this runs ``touch <marker>`` when unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _inputs(d: Path) -> None:
    """The valid inputs each case may point at (made once per case: cheap)."""
    recs = make_records(np.arange(64, dtype=np.uint64) * 64 + 0x10000)
    write_trace(d / "t.skt", recs, TraceMeta(source="test"))
    shutil.copy(REQS, d / "reqs.csv")
    (d / "c.json").write_text("{}")
    (d / "adir.csv").mkdir()
    (d / "outdir_file").write_text("x")
    (d / "text.txt").write_text("hello\n")
    os.symlink(d / "loop_a", d / "loop_b")
    os.symlink(d / "loop_b", d / "loop_a")
    os.symlink(d / "reqs.csv", d / "reqs_link.csv")
    # crafted headers
    _raw_file(d / "list.skt", [1, 2, 3])
    _raw_file(d / "nodtype.skt", {"format": 1, "records": 0, "meta": {}})
    _raw_file(d / "baddtype.skt", _skt_head(0, dtype="garbage"))
    _raw_file(d / "baddtype2.skt", _skt_head(0, dtype=[["a", "zz9"]]))
    _raw_file(d / "negrec.skt", _skt_head(-5))
    _raw_file(d / "lots.skt", _skt_head("lots"))
    _raw_file(d / "badjson.skt", b"{not json")
    _raw_file(d / "meta_list.skt", _skt_head(0, meta=[1]))
    bad_op = make_records(np.arange(8, dtype=np.uint64) * 64)
    bad_op["op"][5] = 9
    _raw_file(d / "badop.skt", _skt_head(8), bad_op)
    (d / "empty.skt").write_bytes(b"")
    (d / "short.skt").write_bytes(MAGIC + b"\x10\0\0\0{}")
    _raw_file(d / "trunc.skt", _skt_head(1000), recs[:3])
    # allocation traces
    good = _alloc_records()
    _skat(d / "a.skat", good, 4)
    bad = good.copy()
    bad["id"][1] = 1 << 30
    _skat(d / "bigid.skat", bad, 4)
    bad = good.copy()
    bad["op"][2] = 7
    _skat(d / "badop.skat", bad, 4)
    bad = good.copy()
    bad["size"][0] = 1 << 50
    _skat(d / "hugesize.skat", bad, 4)
    bad = good.copy()
    bad["size"][0] = np.uint64(2**64 - 16)   # "negative" as a signed size
    _skat(d / "negsize.skat", bad, 4)
    _skat(d / "negobjects.skat", good, -3)
    # malloc logs
    (d / "empty.mtrace").write_text("= Start\n= End\n")
    (d / "allbad.mtrace").write_text("garbage\nmore garbage\n")
    import pickle
    (d / "payload.pickle").write_bytes(pickle.dumps(_Payload(d / "PWNED")))
    (d / "payload.bin").write_bytes(pickle.dumps(_Payload(d / "PWNED")))
    (d / "snap.json").write_text(json.dumps({"device_traces": [[
        {"action": "alloc", "addr": 4096, "size": 512, "time_us": 1},
        {"action": "free_completed", "addr": 4096, "time_us": 2}]]}))
    # grids and configs
    (d / "up.toml").write_text('name = "../../escape"\nsimulator = "cache"\ntraces = ["gups"]\n'
                               'max_records = 1000\n[base]\npreset = "zen3"\n[grid]\n'
                               '"L1.ways" = [4, 8]\n')
    (d / "abs.toml").write_text(f'name = "{d}/abs"\nsimulator = "cache"\ntraces = ["gups"]\n'
                                'max_records = 1000\n[base]\npreset = "zen3"\n[grid]\n'
                                '"L1.ways" = [4, 8]\n')
    (d / "broken.toml").write_text("name = [unclosed\n")
    (d / "cfg_bad.toml").write_text("[[levels]]\nname = 'L1'\nsize = 'lots'\n")


T = "{d}/t.skt"
KV = ["kv", "run", "--trace", "{d}/reqs.csv", "--model", "Llama-3-8B", "--gpu", "A100-80GB",
      "--manager", "paged-16", "--max-requests", "20"]
FLASH = ["flash", "run", "--model", "smollm2-135m", "--policy", "bundling",
         "--activations", "smollm2-135m"]
DECODE = ["kv", "decode-trace", "--model", "Llama-3-8B", "--requests", "{d}/reqs.csv",
          "--layout", "paged"]

CASES = [
    # 1 code execution
    ("pickle-sniffed", ["trace", "import-malloc", "{d}/payload.bin", "{d}/o.skat"], "payload.bin"),
    ("pickle-torch", ["trace", "import-malloc", "--format", "torch", "{d}/payload.pickle",
                      "{d}/o.skat"], "payload.pickle"),
    # 2 write errors, checked before the work
    ("out-readonly-dir", ["cache", "run", "--trace", T, "--preset", "zen3", "--out",
                          "/proc/simkit-x.csv"], "/proc"),
    ("out-is-dir", ["cache", "run", "--trace", T, "--preset", "zen3", "--out", "{d}/adir.csv"],
     "adir.csv"),
    ("out-no-parent", ["cache", "run", "--trace", T, "--preset", "zen3", "--out",
                       "{d}/nope/x.csv"], "nope"),
    ("gen-dst-dir", ["trace", "gen", "uniform", "--n", "100", "--footprint", "1MiB", "{d}/adir.csv"],
     "adir.csv"),
    ("gen-dst-readonly", ["trace", "gen", "uniform", "--n", "100", "--footprint", "1MiB",
                          "/proc/x.skt"], "/proc"),
    ("reproduce-outdir-file", ["reproduce", "cache-miss-curve", "--quick", "--outdir",
                               "{d}/outdir_file"], "outdir_file"),
    ("kv-out-readonly", KV + ["--out", "/proc/x.csv"], "/proc"),
    ("kv-timeline-dir", KV + ["--timeline", "{d}/adir.csv"], "adir.csv"),
    ("kv-plot-readonly", KV + ["--plot", "/proc/x.png"], "/proc"),
    ("alloc-out-dir", ["alloc", "run", "{d}/a.skat", "--out", "{d}/adir.csv"], "adir.csv"),
    ("decode-out-readonly", DECODE + ["--steps", "2", "--out", "/proc/x.skt"], "/proc"),
    ("sweep-out-file", ["sweep", "{d}/up.toml", "--out", "{d}/outdir_file"], "outdir_file"),
    # 3 an output that is an input
    ("kv-out-is-trace", KV + ["--out", "{d}/reqs.csv"], "reqs.csv"),
    ("kv-timeline-is-trace", KV + ["--timeline", "{d}/reqs.csv"], "reqs.csv"),
    ("kv-out-symlink-to-trace", KV + ["--out", "{d}/reqs_link.csv"], "reqs_link.csv"),
    ("alloc-cost-is-out", ["alloc", "run", "{d}/a.skat", "--cost", "{d}/c.json", "--out",
                           "{d}/c.json"], "c.json"),
    ("convert-onto-itself", ["trace", "convert", T, T], "t.skt"),
    ("import-onto-itself", ["trace", "import-malloc", "{d}/a.skat", "{d}/a.skat"], "a.skat"),
    ("decode-out-is-requests", DECODE + ["--steps", "2", "--out", "{d}/reqs.csv"], "reqs.csv"),
    # 5 records a kernel must not trust
    ("skt-bad-op-cache", ["cache", "run", "--trace", "{d}/badop.skt", "--preset", "zen3"],
     "record 5"),
    ("skt-bad-op-tlb", ["tlb", "run", "--trace", "{d}/badop.skt"], "record 5"),
    ("skat-id-out-of-range", ["alloc", "run", "{d}/bigid.skat"], "bigid.skat"),
    ("skat-bad-op", ["alloc", "run", "{d}/badop.skat"], "badop.skat"),
    ("skat-bad-op-slab", ["alloc", "run", "--allocator", "hardened", "{d}/badop.skat"],
     "badop.skat"),
    ("skat-id-slab", ["alloc", "run", "--allocator", "mimalloc", "{d}/bigid.skat"], "bigid.skat"),
    ("skat-neg-objects", ["alloc", "run", "{d}/negobjects.skat"], "objects"),
    # 6 headers and values
    ("skt-header-list", ["trace", "info", "{d}/list.skt"], "list.skt"),
    ("skt-no-dtype", ["trace", "info", "{d}/nodtype.skt"], "dtype"),
    ("skt-garbage-dtype", ["trace", "info", "{d}/baddtype.skt"], "dtype"),
    ("skt-garbage-dtype2", ["cache", "run", "--trace", "{d}/baddtype2.skt", "--preset", "zen3"],
     "dtype"),
    ("skt-negative-records", ["trace", "info", "{d}/negrec.skt"], "records"),
    ("skt-records-lots", ["cache", "run", "--trace", "{d}/lots.skt", "--preset", "zen3"],
     "lots.skt"),
    ("skt-bad-json", ["trace", "info", "{d}/badjson.skt"], "badjson.skt"),
    ("skt-meta-list", ["trace", "info", "{d}/meta_list.skt"], "meta"),
    ("skt-empty-file", ["trace", "info", "{d}/empty.skt"], "empty.skt"),
    ("skt-short-file", ["tlb", "run", "--trace", "{d}/short.skt"], "short.skt"),
    ("skt-truncated", ["cache", "run", "--trace", "{d}/trunc.skt", "--preset", "zen3"],
     "trunc.skt"),
    ("max-records-negative", ["cache", "run", "--trace", T, "--preset", "zen3",
                              "--max-records", "-1"], "--max-records"),
    ("warmup-beyond-trace", ["cache", "run", "--trace", T, "--preset", "zen3",
                             "--warmup", "1000"], "warmup"),
    ("tlb-warmup-beyond-trace", ["tlb", "run", "--trace", T, "--warmup", "64"], "warmup"),
    ("tlb-max-records-negative", ["tlb", "run", "--trace", T, "--max-records", "-3"],
     "--max-records"),
    ("gen-alpha-nan", ["trace", "gen", "zipf", "--n", "100", "--footprint", "1MiB", "--alpha",
                       "nan", "{d}/o.skt"], "alpha"),
    ("gen-address-wrap", ["trace", "gen", "uniform", "--n", "100", "--footprint", "1MiB",
                          "--base", str(2**64 - 4096), "{d}/o.skt"], "base"),
    ("gen-footprint-zero", ["trace", "gen", "uniform", "--n", "100", "--footprint", "0",
                            "{d}/o.skt"], "footprint"),
    ("gen-store-fraction", ["trace", "gen", "uniform", "--n", "100", "--footprint", "1MiB",
                            "--store-fraction", "1.5", "{d}/o.skt"], "store"),
    ("kv-capacity-zero", KV + ["--capacity", "0"], "capacity"),
    ("kv-rate-negative", KV + ["--rate", "-1"], "rate"),
    ("kv-bad-model", KV[:5] + ["nope"] + KV[6:], "nope"),
    ("kv-bad-gpu", KV[:7] + ["nope"] + KV[8:], "nope"),
    ("kv-bad-manager", KV[:9] + ["nope"] + KV[10:], "nope"),
    ("kv-trace-missing", ["kv", "run", "--trace", "{d}/missing.csv"] + KV[4:], "missing.csv"),
    ("kv-trace-garbage", ["kv", "run", "--trace", "{d}/text.txt"] + KV[4:], "text.txt"),
    ("decode-block-zero", DECODE + ["--block-tokens", "0", "--out", "{d}/o.skt"], "block"),
    ("import-empty-mtrace", ["trace", "import-malloc", "{d}/empty.mtrace", "{d}/o.skat"],
     "empty.mtrace"),
    ("import-lenient-all-bad", ["trace", "import-malloc", "--format", "mtrace", "--lenient",
                                "{d}/allbad.mtrace", "{d}/o.skat"], "allbad.mtrace"),
    ("import-device-negative", ["trace", "import-malloc", "--format", "torch", "--device", "-1",
                                "{d}/snap.json", "{d}/o.skat"], "--device"),
    ("flash-sparsity", FLASH + ["--sparsity", "1.5"], "sparsity"),
    ("flash-window-negative", FLASH + ["--window", "-1"], "window"),
    ("flash-threads-zero", FLASH + ["--threads", "0"], "threads"),
    ("flash-threads-outside-table", FLASH + ["--threads", "64"], "--threads: 64 is outside"),
    ("flash-storage-pcie-missing", FLASH + ["--storage", "pcie:/nonexistent/kv.json"],
     "/nonexistent/kv.json"),
    ("flash-bits", FLASH + ["--bits", "3"], "--bits"),
    ("flash-bad-model", ["flash", "run", "--model", "nope", "--policy", "bundling",
                         "--activations", "smollm2-135m"], "nope"),
    ("flash-bad-policy", ["flash", "run", "--model", "smollm2-135m", "--policy", "nope",
                          "--activations", "smollm2-135m"], "nope"),
    ("cache-bad-size", ["cache", "run", "--trace", T, "--size", "abc"], "abc"),
    ("cache-ways-zero", ["cache", "run", "--trace", T, "--size", "32KiB", "--ways", "0"], "ways"),
    ("cache-bad-preset", ["cache", "run", "--trace", T, "--preset", "nope"], "nope"),
    ("cache-bad-config", ["cache", "run", "--trace", T, "--config", "{d}/cfg_bad.toml"],
     "cfg_bad.toml"),
    ("tlb-bad-preset", ["tlb", "run", "--trace", T, "--preset", "nope"], "nope"),
    ("tlb-huge-fraction", ["tlb", "run", "--trace", T, "--huge-fraction", "2"], "huge"),
    ("alloc-bad-allocator", ["alloc", "run", "--allocator", "nope", "{d}/a.skat"], "nope"),
    ("alloc-access-trace", ["alloc", "run", T], "t.skt"),
    ("alloc-max-events-negative", ["alloc", "run", "--max-events", "-2", "{d}/a.skat"],
     "--max-events"),
    ("reproduce-unknown", ["reproduce", "nope"], "nope"),
    ("convert-skip-negative", ["trace", "convert", "--skip", "-1", T, "{d}/o.skt"], "--skip"),
    ("convert-garbage-src", ["trace", "convert", "--format", "lackey", "{d}/text.txt",
                             "{d}/o.skt"], "text.txt"),
    # 7 sizes that cannot fit
    ("gen-n-huge", ["trace", "gen", "uniform", "--n", "1T", "--footprint", "1MiB", "{d}/o.skt"],
     "--n"),
    ("flash-tokens-huge", ["flash", "run", "--model", "opt-6.7b", "--policy", "bundling",
                           "--activations", "synthetic", "--tokens", "1e12"], "--tokens"),
    ("flash-tokens-beyond-trace", FLASH + ["--tokens", "100000"], "--tokens"),
    ("decode-steps-huge", DECODE + ["--steps", "1e12", "--out", "{d}/o.skt"], "--steps"),
    # 8 paths
    ("sweep-name-parent", ["sweep", "{d}/up.toml", "--out", "{d}/sw"], "name"),
    ("sweep-name-absolute", ["sweep", "{d}/abs.toml", "--out", "{d}/sw"], "name"),
    ("sweep-grid-missing", ["sweep", "{d}/missing.toml"], "missing.toml"),
    ("sweep-grid-broken", ["sweep", "{d}/broken.toml"], "broken.toml"),
    ("trace-is-dir", ["trace", "info", "{d}/adir.csv"], "directory"),
    ("trace-symlink-loop", ["trace", "info", "{d}/loop_a"], "loop"),
    ("trace-dev-zero", ["cache", "run", "--trace", "/dev/zero", "--preset", "zen3"], "/dev/zero"),
    ("trace-fifo", ["tlb", "run", "--trace", "{d}/fifo.skt"], "FIFO"),
    ("fifo-alloc-trace", ["alloc", "run", "{d}/fifo.skt"], "FIFO"),
    ("fifo-kv-trace", ["kv", "run", "--trace", "{d}/fifo.skt"] + KV[4:], "FIFO"),
    ("fifo-activations", FLASH[:-1] + ["{d}/fifo.skt"], "FIFO"),
    ("fifo-import-malloc", ["trace", "import-malloc", "{d}/fifo.skt", "{d}/o.skat"], "FIFO"),
    ("fifo-sweep-grid", ["sweep", "{d}/fifo.skt"], "FIFO"),
    ("fifo-cache-config", ["cache", "run", "--trace", T, "--config", "{d}/fifo.skt"], "FIFO"),
    ("fifo-convert", ["trace", "convert", "{d}/fifo.skt", "{d}/o.skt"], "FIFO"),
    ("cache-trace-dir", ["cache", "run", "--trace", "{d}/adir.csv", "--preset", "zen3"],
     "directory"),
    # 10 messages that name the wrong thing
    ("cache-sweep-sizes-empty", ["cache", "sweep", "--trace", T, "--sizes", ","], "--sizes"),
    ("flash-activations-text", ["flash", "run", "--model", "smollm2-135m", "--policy", "bundling",
                                "--activations", "{d}/text.txt"], "text.txt"),
    # argparse errors are one line too
    ("argparse-missing", ["cache", "run"], "--trace"),
    ("argparse-bad-int", ["kv", "run", "--trace", "x", "--model", "m", "--gpu", "g",
                          "--manager", "m", "--max-requests", "many"], "--max-requests"),
    ("argparse-unknown-area", ["nope"], "nope"),
]
SUBPROCESS = {"skat-id-out-of-range", "skat-bad-op", "skat-bad-op-slab", "skat-id-slab",
              "skt-bad-op-cache", "skt-bad-op-tlb"}


def _listing(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _run(argv: list[str], capsys, subprocess_: bool) -> tuple[int, str]:
    if subprocess_:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        p = subprocess.run([sys.executable, "-m", "simkit", *argv], capture_output=True,
                           text=True, env=env, timeout=120)
        return p.returncode, p.stderr
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name,argv,names", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_line(name, argv, names, tmp_path, capsys, monkeypatch):
    d = tmp_path / "w"
    d.mkdir()
    _inputs(d)
    if "fifo" in name:
        os.mkfifo(d / "fifo.skt")
    monkeypatch.chdir(d)
    before = _listing(d)
    argv = [a.format(d=d) for a in argv]
    # a FIFO that is opened blocks for ever: those cases run in a subprocess with a timeout
    rc, err = _run(argv, capsys, name in SUBPROCESS or "fifo" in name)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("simkit: error: "), err
    assert names in lines[0], (names, lines[0])
    assert _listing(d) == before, sorted(_listing(d) ^ before)
    assert not (d / "PWNED").exists(), "the pickle payload ran"
    assert not list(Path("/proc").glob("simkit-x*"))


def test_at_least_sixty_cases():
    assert len(CASES) >= 60
