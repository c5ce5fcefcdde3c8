"""The physical frames behind a table touched in order (``/proc/self/pagemap``): measured
here, so the checks are bounds any placement must meet."""
from __future__ import annotations

import pytest

from simkit.bench.cpu.physmem import physical_regions


def test_a_table_spans_at_least_its_own_size_in_2mib_regions():
    got = physical_regions(16 << 20)
    if got is None:
        pytest.skip("page frame numbers are not readable here (needs CAP_SYS_ADMIN)")
    assert got["pages"] == 4096
    # 16 MiB can't fit in fewer than 8 regions of 2 MiB; a run of L consecutive frames crosses
    # at most L/512 + 2 regions, so all runs at most 2 * runs + pages/512
    assert 8 <= got["regions"] <= min(got["pages"], 2 * got["runs"] + 8)
    assert 1 <= got["runs"] <= got["pages"]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="nbytes"):
        physical_regions(1000)
