"""GUPS timed natively (``simkit.bench.cpu.gups``), the core model's validation workload."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("objdump") is None,
                               reason="gcc and objdump (binutils) build and read the program")


@needs_gcc
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind counts the instructions")
@pytest.mark.parametrize("program,log2,lo,hi", [("gups_timed", "10", 8, 20),
                                                ("gather_timed", "16", 17, 32)])
def test_instructions_per_update_equal_what_callgrind_counts(tmp_path, program, log2, lo, hi):
    """The static count of the loop body equals the dynamic count of the kernel's
    instructions (callgrind, kernel only) over 2 x 20,000 updates or lookups (one warm run,
    one timed); the gather's body holds its 8 vector loads and the LFSR step."""
    from simkit.bench.cpu.gups import build, instructions_per_update

    exe = build(program)
    ipu = instructions_per_update(exe)
    out = tmp_path / "cg.out"
    subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=kernel",
                    f"--callgrind-out-file={out}", str(exe), log2, "20000", "1", "4k"],
                   capture_output=True, check=True, timeout=300)
    total = int(re.search(r"^summary: (\d+)", out.read_text(), re.M).group(1))
    assert lo <= ipu <= hi
    assert total / 40_000 == pytest.approx(ipu, abs=0.01)


@needs_gcc
def test_measure_gather_rows():
    """The gather's table in the L2 costs less per lookup than one 64x the L2's size."""
    from simkit.bench.cpu.gups import COLUMNS, measure_gather
    from simkit.errors import InputError

    df = measure_gather([256 << 10, 16 << 20], ("4k",), lookups=50_000, reps=3, progress=False)
    assert list(df.columns) == list(COLUMNS) and len(df) == 2
    assert (df.ns_per_update > 0).all() and df.ns_per_update.iloc[0] < df.ns_per_update.iloc[1]
    with pytest.raises(InputError, match="table_bytes"):
        measure_gather([128], ("4k",))


@needs_gcc
def test_measure_gups_rows_and_bad_sizes():
    from simkit.bench.cpu.gups import COLUMNS, measure_gups
    from simkit.errors import InputError

    df = measure_gups([64 << 10], ("4k",), updates=20_000, reps=2, progress=False)
    assert list(df.columns) == list(COLUMNS) and len(df) == 1
    r = df.iloc[0]
    assert r.table_bytes == 64 << 10 and r.page_kind == "4k" and r.thp_backed_bytes == 0
    # 64 KiB of words: L1/L2-resident updates take a few ns, never microseconds
    assert 0.05 < r.ns_per_update < 1000
    with pytest.raises(InputError, match="power of two"):
        measure_gups([3000], ("4k",), updates=10, reps=1)
    with pytest.raises(InputError, match="page_kinds"):
        measure_gups([4096], ("1g",), updates=10, reps=1)


def test_gups_stream_is_uniform_read_modify_writes_of_the_table():
    import numpy as np

    from simkit.experiments.core_validation import GUPS_BASE, gups_stream
    from simkit.trace.format import Op

    recs = gups_stream(1 << 20, 50_000, 12)
    off = recs["addr"].astype(np.int64) - GUPS_BASE
    assert (recs["op"] == Op.MODIFY).all() and (recs["icount"] == 12).all()
    assert off.min() >= 0 and off.max() < 1 << 20 and (off % 8 == 0).all()
    counts = np.bincount(off >> 16, minlength=16)          # 16 slices of 64 KiB
    assert counts.min() > 0.9 * 50_000 / 16
