"""simkit.kvpaging engine: runs are bit-identical to the engine before the decode fast path
(commit f586f45): per-request release times, every stats counter (float sums included), the
memory timeline and the manager's counters, pinned as SHA-256 digests computed with that
engine; and the same run with the decode ride switched off (the per-sequence path) agrees."""
import hashlib

import pytest

from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.gpus import get_gpu
from simkit.kvpaging.models import get_model
from simkit.kvpaging.scheduler import SchedulerConfig
from simkit.kvpaging.workload import load_trace, preset_requests

H100 = get_gpu("H100-80GB")
M = get_model("llama-3-8b")


class Releases:
    """Per request: every release (finish or preemption) with its simulated time."""

    def __init__(self):
        self.rows = []
        self.sim = None

    def on_release(self, rid):
        self.rows.append((rid, self.sim.env.now))


# name -> (source, manager, config, capacity in tokens or None, manager overrides)
CASES = {
    "sharegpt": lambda: (preset_requests("sharegpt", 1500, rate=20.0, max_tokens=8192, seed=0),
                         "paged-16", SchedulerConfig(), None, None),
    "recompute": lambda: (preset_requests("sharegpt", 600, rate=40.0, max_tokens=8192, seed=1),
                          "paged-16", SchedulerConfig(), 30_000, None),
    "swap": lambda: (preset_requests("sharegpt", 600, rate=40.0, max_tokens=8192, seed=2),
                     "paged-16", SchedulerConfig(preemption="swap"), 30_000, None),
    "chunked": lambda: (load_trace("azure-conv", limit=400), "paged-16",
                        SchedulerConfig(chunked_prefill=True, max_num_batched_tokens=512),
                        60_000, None),
    "prefix": lambda: (load_trace("mooncake-conv", limit=300), "paged-16",
                       SchedulerConfig(max_num_seqs=64), 50_000, None),
    "vattention": lambda: (load_trace("azure-conv", limit=300), "vattention-64KiB",
                           SchedulerConfig(), 40_000, None),
    "static": lambda: (load_trace("azure-conv", limit=300), "static", SchedulerConfig(),
                       60_000, None),
    "beam": lambda: (preset_requests("alpaca", 200, rate=20.0, max_tokens=2048, seed=3),
                     "paged-16", SchedulerConfig(beam_width=3), 20_000, None),
}

# computed with the engine of commit f586f45 (``digests`` below, ride=None)
PINNED = {
    'beam': {'plain': '15bc446d97574dbeea02e660', 'observed': '300f7e3acee714143642c01c', 'iterations': 1642, 'preemptions': 0},
    'chunked': {'plain': 'e9a7ee03ec5332daa44b5b2c', 'observed': 'f943e2457f1cacd40d2fc7f4', 'iterations': 12609, 'preemptions': 0},
    'prefix': {'plain': '0b78f893d8298eda03b5a3fc', 'observed': 'ad8d4ca4c61b453ba31b1f3b', 'iterations': 11330, 'preemptions': 0},
    'recompute': {'plain': 'f5ff069f27c4c26e7bb7e790', 'observed': '7bf7efd7492b8253a904e742', 'iterations': 4255, 'preemptions': 608},
    'sharegpt': {'plain': 'fba98cf8573ce0fb929bc909', 'observed': 'f4219319d8f73acc49f994e9', 'iterations': 9577, 'preemptions': 0},
    'static': {'plain': 'ece7d87750ffac4d2abf602a', 'observed': '8199f98121c18b9a709e8ef9', 'iterations': 9792, 'preemptions': 0},
    'swap': {'plain': '65b1eb6772c0b4d05b2afac8', 'observed': 'a10310bf7652c859d5f22b67', 'iterations': 4779, 'preemptions': 763},
    'vattention': {'plain': '21e884e1ba28514c2f6ef1fe', 'observed': '27970a287f1d2c3ccd06a606', 'iterations': 9002, 'preemptions': 7},
}


def digests(case: str, ride: bool | None = None) -> dict:
    src, spec, cfg, cap, over = CASES[case]()
    m = get_model("llama-3-8b")
    kw = {} if cap is None else {"capacity_bytes": cap * m.kv_bytes_per_token}
    out = {}
    for observed in (False, True):
        rel = Releases()
        sim = ServingSimulator(m, H100, spec, src, config=cfg, manager_overrides=over,
                               observers=[rel] if observed else (), progress=False, **kw)
        rel.sim = sim
        if ride is not None:
            sim.sched.ride = ride
        st = sim.run()
        parts = [repr(sorted(st.to_dict().items(), key=lambda kv: kv[0])),
                 repr(sim.timeline.rows),
                 repr(sorted(getattr(sim.manager, "counters", dict)().items()))]
        for h in (st.ttft, st.tbt, st.e2e, st.norm_latency):
            parts.append(repr((h.n, h.total, h.maximum, h.counts.tolist(), h._vals, h._cnts)))
        if observed:
            parts.append(repr(rel.rows))
        key = "observed" if observed else "plain"
        out[key] = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    out["iterations"] = st.iterations
    out["preemptions"] = st.preemptions
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_runs_equal_the_pinned_engine(case):
    got = digests(case)
    assert got == PINNED[case]


@pytest.mark.parametrize("case", ["sharegpt", "recompute", "swap", "prefix"])
def test_ride_off_equals_ride_on(case):
    assert digests(case, ride=False) == digests(case, ride=True)


if __name__ == "__main__":          # print the pins (run with the engine to pin)
    for c in sorted(CASES):
        print(f"    {c!r}: {digests(c)!r},")
