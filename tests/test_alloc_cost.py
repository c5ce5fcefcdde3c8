"""The allocator cost model (issue 17, item 3): operation counts on tiny crafted traces, computed
by hand from the allocators' rules; the leave-one-trace-out procedure (the held-out trace never
reaches the fit); Spearman's rho; the microbenchmark's output."""
import shutil

import numpy as np
import pandas as pd
import pytest

from simkit.allocators import AllocatorModel, SlabConfig
from simkit.allocators.cost import COST_NS, OPERATIONS, harness_operations, predict_ns
from simkit.calibrate import malloc_cost as mc
from simkit.trace.alloc import AllocOp, empty

PAGE = 4096


def trace(*events):
    """(op, id, size[, old_id]) tuples -> records."""
    r = empty(len(events))
    for i, e in enumerate(events):
        r["op"][i], r["id"][i], r["size"][i] = e[0], e[1], e[2]
        if len(e) > 3:
            r["old_id"][i] = e[3]
    return r


def test_lowest_slot_bitmap_words_are_slots_over_64():
    """One 16 B class, 256 slots per 4 KiB slab, lowest free slot first: the j-th allocation
    (j = 0..199) scans j full slots, so it tests j // 64 + 1 words: 200 + 64*1 + 64*2 + 8*3 =
    416 words. Freeing slot 5 and allocating again finds it in the first word: 417."""
    cfg = SlabConfig(name="t", size_classes=(16,), slab_bytes=4096, slot_policy="lowest",
                     empty_slabs_kept=1)
    ev = [(AllocOp.MALLOC, i, 16) for i in range(200)]
    ev += [(AllocOp.FREE, 5, 0), (AllocOp.MALLOC, 200, 16)]
    s = AllocatorModel(cfg).run(trace(*ev))
    assert s.counters["bitmap_words"] == 417
    assert s.counters["list_steps"] == sum(range(200)) + 5       # slots, not words
    assert s.counters["page_faults"] == 1                         # 201 x 16 B < one page
    ops = s.operations
    assert ops["bitmap_word"] == 417 and ops["call"] == 202 and ops["fault"] == 1
    assert ops["mmap"] == ops["munmap"] == ops["madvise"] == ops["mprotect"] == 0


def test_a_purged_slab_is_one_madvise_and_its_resident_pages():
    """Nothing kept: the slab's last free purges it (one MADV_DONTNEED), releasing the one page
    the 100 B block touched; its next use faults it in again."""
    cfg = SlabConfig(name="t", size_classes=(128,), slab_bytes=4096, empty_slabs_kept=0)
    s = AllocatorModel(cfg).run(trace((AllocOp.MALLOC, 0, 100), (AllocOp.FREE, 0, 0),
                                      (AllocOp.MALLOC, 1, 100)))
    c = s.counters
    assert (c["madvise_calls"], c["slabs_purged"], c["pages_released"]) == (1, 1, 1)
    assert c["page_faults"] == 2


def test_hardened_large_mapping_and_slab_syscalls():
    """Guard slabs (interval 1): the slab region is PROT_NONE, each fresh slab one mprotect.
    A 1 MiB block (above the last class) is mapped with guard pages: mmap + mprotect, 256
    pages faulted in; its free gives the 256 pages back (munmap) and maps PROT_NONE over the
    region (hardened_malloc's region quarantine: one more mmap)."""
    cfg = SlabConfig(name="t", size_classes=(16, 32), slab_bytes=4096, guard_slab_interval=1,
                     large_guard_pages=1)
    s = AllocatorModel(cfg).run(trace((AllocOp.MALLOC, 0, 16), (AllocOp.MALLOC, 1, 32),
                                      (AllocOp.MALLOC, 2, 1 << 20), (AllocOp.FREE, 2, 0)))
    c = s.counters
    assert c["slabs_created"] == 2 and c["mprotect_calls"] == 2 + 1
    assert (c["mmap_calls"], c["munmap_calls"], c["remap_calls"]) == (1, 1, 1)
    assert c["page_faults"] == 2 + 256 and c["pages_released"] == 256
    ops = s.operations
    assert (ops["mmap"], ops["munmap"], ops["mprotect"]) == (2, 1, 3)
    assert ops["release_page"] == 256


def test_zero_on_free_and_write_after_free_check_bytes_are_the_slots():
    """hardened_malloc zeroes the whole slot up to its canary at free and checks it is still
    zero when it is reused: a 48 B class with an 8 B canary -> 40 bytes each time."""
    cfg = SlabConfig(name="t", size_classes=(16, 48), canary_bytes=8, zero_on_free=True,
                     write_after_free_check=True)
    s = AllocatorModel(cfg).run(trace((AllocOp.MALLOC, 0, 20), (AllocOp.MALLOC, 1, 30),
                                      (AllocOp.FREE, 0, 0), (AllocOp.FREE, 1, 0)))
    assert s.counters["zeroed_bytes"] == 2 * 40
    assert s.counters["checked_bytes"] == 2 * 40
    assert s.operations["memset_line"] == 160 // 64


def test_ptmalloc_mmap_mremap_munmap_counts():
    """glibc: malloc(1 MiB) is above the mmap threshold: one mmap of request2size + 8 rounded
    to pages = 1,048,592 + 8 -> 257 pages. Its realloc to 2 MiB is an mremap to 513 pages
    (256 more faulted in); the free munmaps 513 resident pages. The first malloc set up the
    tcache (a 0x290 chunk from a 132 KiB sbrk): one brk and one heap page."""
    s = AllocatorModel("ptmalloc").run(trace((AllocOp.MALLOC, 0, 1 << 20),
                                             (AllocOp.REALLOC, 1, 2 << 20, 0),
                                             (AllocOp.FREE, 1, 0)))
    c = s.counters
    assert (c["mmap_calls"], c["mremap_calls"], c["munmap_calls"]) == (1, 1, 1)
    assert c["sbrk_calls"] == 1 and c["trims"] == 0
    assert c["page_faults"] == 1 + 257 + 256
    assert c["pages_released"] == 513
    ops = s.operations
    assert (ops["brk"], ops["mmap"], ops["mremap"], ops["munmap"]) == (1, 1, 1, 1)


def test_cost_is_counts_times_costs_and_the_harness_work():
    s = AllocatorModel("ptmalloc").run(trace((AllocOp.MALLOC, 0, 1 << 20), (AllocOp.FREE, 0, 0)))
    ops = s.operations
    assert s.cost_estimate_ns == pytest.approx(sum(COST_NS[k] * ops[k] for k in OPERATIONS))
    cost = dict.fromkeys(OPERATIONS, 0.0)
    cost["fault"] = 1000.0
    assert predict_ns(ops, cost) == 1000.0 * (1 + 257)
    # the replayer memsets min(size, 256) bytes of each block: 100 B -> 2 lines, 1 MiB -> 4
    h = harness_operations(trace((AllocOp.MALLOC, 0, 100), (AllocOp.MALLOC, 1, 1 << 20),
                                 (AllocOp.FREE, 0, 0)))
    assert h["memset_line"] == 2 + 4 and h["fault"] == 0


def test_fit_call_ns_closed_form():
    assert mc.fit_call_ns([0, 0], [10, 20], [50, 100]) == pytest.approx(5.0)
    # fixed part over the measured time: the call cost clamps at 0
    assert mc.fit_call_ns([200, 300], [10, 20], [50, 100]) == 0.0


def _frames(measured_scale):
    """Three traces, two allocators; counted part 0, measured = 10 ns x calls except trace
    't3', whose measured times are scaled."""
    rows, meas = [], []
    for t, calls in (("t1", 100), ("t2", 200), ("t3", 400)):
        for m, real in (("ptmalloc", "glibc"), ("hardened", "hardened_malloc")):
            k = 1 if m == "ptmalloc" else 3
            row = {"trace": t, "model": m, "real": real, "events": calls,
                   "peak_footprint_bytes": 0}
            for op in OPERATIONS:
                row[f"n_{op}"] = 0
            row["n_call"] = calls
            row["n_fault"] = k                    # faults differ by design
            rows.append(row)
            y = 10.0 * calls + 1000.0 * k
            meas.append({"trace": t, "allocator": real,
                         "cpu_ns": y * (measured_scale if t == "t3" else 1)})
    return pd.DataFrame(rows), pd.DataFrame(meas)


def test_leave_one_out_never_fits_on_the_held_out_trace():
    cost = dict.fromkeys(OPERATIONS, 0.0)
    cost["fault"] = 1000.0
    ops, meas = _frames(1.0)
    a = mc.leave_one_trace_out(ops, meas, cost)
    assert np.allclose(a.call_ns, 10.0) and np.allclose(a.error, 0.0)
    ops, meas = _frames(100.0)                     # t3's measured times are wrong
    b = mc.leave_one_trace_out(ops, meas, cost)
    held = b[b.trace == "t3"]
    assert np.allclose(held.call_ns, 10.0)       # t3's own fold never saw t3
    assert set(held.fitted_on) == {"t1,t2"}
    assert (b[b.trace != "t3"].call_ns > 10.1).all()   # the other folds did see it
    assert np.allclose(held.predicted_ns, held.measured_ns / 100)


def test_spearman_and_the_verdict_line():
    assert mc.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert mc.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    ops, meas = _frames(1.0)
    cost = dict.fromkeys(OPERATIONS, 0.0)
    cost["fault"] = 1000.0
    ranks = mc.rank_table(mc.leave_one_trace_out(ops, meas, cost))
    assert len(ranks) == 4 and np.allclose(ranks.rho, 1.0)
    assert mc.verdict(ranks).startswith("the cost model ranks the real allocators (Spearman")
    ranks.loc[0, "rho"] = mc.spearman([1, 2, 3, 4], [1, 3, 2, 4])      # 0.8 in floating point
    assert "(Spearman rho" in mc.verdict(ranks) and " ranks " in mc.verdict(ranks)
    ranks.loc[0, "rho"] = 0.2
    assert "cannot rank" in mc.verdict(ranks)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not on PATH")
def test_microbenchmark_measures_every_operation():
    raw = mc._run_costs()
    for k in ("fault", "release_page", "mmap", "munmap", "mremap", "mprotect", "madvise",
              "brk", "memset_line", "bitmap_word", "line_16", "line_256", "line_4096"):
        assert raw[k] > 0, k
    # a page fault (kernel entry, zeroing 4 KiB) costs more than an L1-resident line
    assert raw["fault"] > 10 * raw["line_16"]
    fast = mc._run_costs(alloc=True)
    assert fast["alloc_pair_32"] > 0 and fast["alloc_batch_64"] > 0


def test_hardened_slot_pages_check_canary_and_zeroing():
    """hardened_malloc (h_malloc.c): a fresh slot is read whole by the write-after-free check
    (untouched pages map the shared zero page: a fault each, not resident), the canary is
    written at the slot's end, and a free zeroes the slot up to the canary. One 8 KiB slot
    (a one-slot 8 KiB slab), a 100 B block: read faults on both pages (2), the block's write
    and the canary's write fault them again, copy on write (2): 4 faults, 2 pages resident."""
    cfg = SlabConfig(name="t", size_classes=(16, 8192), canary_bytes=8,
                     write_after_free_check=True)
    s = AllocatorModel(cfg).run(trace((AllocOp.MALLOC, 0, 100)))
    assert s.counters["page_faults"] == 4 and s.final_footprint_bytes == 2 * PAGE
    cfg = SlabConfig(name="t", size_classes=(16, 8192), canary_bytes=8)
    s = AllocatorModel(cfg).run(trace((AllocOp.MALLOC, 0, 100)))
    assert s.counters["page_faults"] == 2 and s.final_footprint_bytes == 2 * PAGE
    # zero-on-free of a 16 KiB slot (no canary) holding 100 B writes its 3 untouched pages
    cfg = SlabConfig(name="t", size_classes=(16, 16384), zero_on_free=True, empty_slabs_kept=1)
    s = AllocatorModel(cfg).run(trace((AllocOp.MALLOC, 0, 100), (AllocOp.FREE, 0, 0)))
    assert s.counters["page_faults"] == 1 + 3 and s.final_footprint_bytes == 4 * PAGE
