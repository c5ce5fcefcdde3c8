"""capture(): a tiny real C program under valgrind lackey, streamed through the importer."""
import shutil
import subprocess

import numpy as np
import pytest

from simkit.errors import InputError
from simkit.trace import capture as capture_mod
from simkit.trace.capture import capture, symbol_address
from simkit.trace.format import Op, open_trace

PROGRAM = r"""
#include <stdio.h>
int a[256];
__attribute__((noinline)) void kernel(volatile int *p) { for (int i = 0; i < 256; i++) p[i] = i; }
int main(int argc, char **argv) {
    kernel(a);
    printf("sum %d\n", a[255] + a[1]);
    return argc > 1 ? 3 : 0;
}
"""
needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind not on PATH (apt-get install -y valgrind)")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not on PATH")


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    d = tmp_path_factory.mktemp("prog")
    (d / "p.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O2", "-fno-pie", "-no-pie", "-o", str(d / "p"), str(d / "p.c")],
                   check=True)
    return d / "p"


def test_missing_valgrind_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(capture_mod.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match=r"apt-get install -y valgrind"):
        capture(["true"], tmp_path / "x.skt")
    assert not (tmp_path / "x.skt").exists()


@pytest.mark.valgrind
@needs_valgrind
@needs_gcc
def test_capture_from_kernel_sees_its_256_stores_in_order(program, tmp_path):
    dst = capture([str(program)], tmp_path / "p.skt", start_at="kernel")
    t = open_trace(dst)
    r = np.asarray(t.read())
    m = t.meta
    kernel = symbol_address(program, "kernel")
    nm = subprocess.run(["nm", "-P", str(program)], capture_output=True, text=True).stdout
    base = next(int(f[2], 16) for f in map(str.split, nm.splitlines()) if f[:2] == ["a", "B"])
    assert (int(r["addr"][0]), int(r["op"][0])) == (kernel, Op.IFETCH)
    mine = r[(r["op"] == Op.STORE) & (r["addr"] >= base) & (r["addr"] < base + 1024)]
    assert mine["addr"].tolist() == list(range(base, base + 1024, 4))
    assert set(mine["size"].tolist()) == {4}
    assert m.producer == "lackey" and m.extra["exit_status"] == 0
    assert m.extra["stdout_tail"] == "sum 256"
    assert m.command.startswith("valgrind --tool=lackey --trace-mem=yes --log-fd=")
    # every instruction valgrind ran is either skipped before `kernel` or in the trace
    assert m.extra["skipped_instructions"] + m.instructions \
        == m.extra["valgrind_guest_instructions"]
    assert int(r["icount"].sum()) == m.instructions == m.ops["ifetch"]


@pytest.mark.valgrind
@needs_valgrind
@needs_gcc
def test_max_records_stops_the_child(program, tmp_path):
    m = open_trace(capture([str(program)], tmp_path / "p.skt.gz", max_records=1000,
                           include_ifetch=False, skip_instructions=5000)).meta
    assert m.records == 1000 and m.extra["stopped_at_max_records"] is True
    assert m.extra["skipped_instructions"] == 5000 and m.ops["ifetch"] == 0
    assert m.extra["exit_status"] is None


@pytest.mark.valgrind
@needs_valgrind
@needs_gcc
def test_failing_program_is_an_input_error_and_leaves_nothing(program, tmp_path):
    with pytest.raises(InputError, match=r"exited with status 3 under valgrind$"):
        capture([str(program), "fail"], tmp_path / "f.skt")
    with pytest.raises(InputError, match=r"status 127 under valgrind: .*No such file"):
        capture([str(tmp_path / "nope")], tmp_path / "f.skt")
    with pytest.raises(InputError, match="no function symbol 'nokernel'"):
        capture([str(program)], tmp_path / "f.skt", start_at="nokernel")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
