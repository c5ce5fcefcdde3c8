"""pytest-benchmark: simkit.cache beside pycachesim on the same traces (not part of CI).

    .venv/bin/pytest benchmarks/test_speed_cache.py --benchmark-enable --benchmark-group-by=group

Groups pair the two simulators on one workload, so the comparison is within one run.
"""
import numpy as np
import pytest

from simkit.cache import Hierarchy, single
from simkit.trace import synth
from simkit.trace.catalog import find_trace
from simkit.trace.format import Op, make_records, open_trace

from bench_cache_speed import pycachesim_1level, pycachesim_3level

cachesim = pytest.importorskip("cachesim")
N = 1 << 22


@pytest.fixture(scope="module")
def uniform():
    return synth.uniform(N, 64 << 20, seed=0)


def _run(h, recs):
    h.reset()
    h.run(recs)


@pytest.mark.benchmark(group="1-level 32KiB/8w LRU, uniform 64 MiB")
def test_simkit_l1(benchmark, uniform):
    h = Hierarchy(single("32KiB", 8))
    h.run(uniform[:1000])
    benchmark(_run, h, uniform)


@pytest.mark.benchmark(group="1-level 32KiB/8w LRU, uniform 64 MiB")
def test_pycachesim_l1(benchmark, uniform):
    benchmark(pycachesim_1level, uniform["addr"].tolist(), 8)


@pytest.mark.benchmark(group="3-level, uniform 64 MiB")
def test_simkit_3level(benchmark, uniform):
    h = Hierarchy("reference-3level")
    h.run(uniform[:1000])
    benchmark(_run, h, uniform)


@pytest.mark.benchmark(group="3-level, uniform 64 MiB")
def test_pycachesim_3level(benchmark, uniform):
    addrs = uniform["addr"].tolist()
    benchmark(pycachesim_3level, addrs, 8)


@pytest.mark.parametrize("name", ["gups", "bfs"])
def test_simkit_3level_real(benchmark, name):
    benchmark.group = f"3-level, {name}"
    recs = make_records(open_trace(find_trace(name)).read()["addr"] & np.uint64(0xFFFFFFFF),
                        op=Op.LOAD, size=1)
    h = Hierarchy("reference-3level")
    h.run(recs[:1000])
    benchmark(_run, h, recs)


@pytest.mark.parametrize("name", ["gups", "bfs"])
def test_pycachesim_3level_real(benchmark, name):
    benchmark.group = f"3-level, {name}"
    addrs = (open_trace(find_trace(name)).read()["addr"] & np.uint64(0xFFFFFFFF)).tolist()
    benchmark(pycachesim_3level, addrs, 1)
