"""Parallel sampling and beam search in the serving engine (issue 15, item 5): groups share
blocks through the manager's fork and copy-on-write; the memory saved, by hand and beside the
PagedAttention paper's Figs. 15/17 (REFERENCE.md 2.1)."""
import pytest

from simkit.kvpaging.costmodel import Calibration, default_calibration
from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.gpus import get_gpu
from simkit.kvpaging.models import ModelShape, get_model
from simkit.kvpaging.scheduler import SchedulerConfig
from simkit.kvpaging.workload import Request, RequestSource, preset_requests

TINY = ModelShape("tiny", layers=1, hidden=32, heads=1, kv_heads=1, head_dim=32, ffn=32,
                  vocab=16, dtype_bytes=2, max_context=64)     # 128 B of KV per token
H100 = get_gpu("H100-80GB")


def _cal() -> Calibration:
    """Iteration = 1 ms + 1 us per token, nothing else."""
    d = default_calibration("H100-80GB").to_dict()
    d.update(kind="measured", paged_kernel="custom", step_fixed_us=0.0,
             hbm_bandwidth_bytes_per_s=1e30, peak_fp16_flops=1e30, paged_decode_slowdown=1.0,
             models={"tiny": {"dense_us": [[0, 1000], [1000, 2000]]}})
    return Calibration.from_dict(d)


def _run(reqs, **cfg):
    items = [Request(i, 0.0, p, o) for i, (p, o) in enumerate(reqs)]
    src = RequestSource("hand", lambda: iter(items), len(items))
    sim = ServingSimulator(TINY, H100, "paged-4", src, config=SchedulerConfig(**cfg),
                           calibration=_cal(), capacity_bytes=1 << 20, progress=False,
                           step_hook=lambda s: s.manager.check())
    return sim, sim.run()


def test_parallel_sampling_by_hand():
    # prompt 6 tokens in blocks of 4: [A(4) B(2)]. Prefill (6 tokens, 1.006 ms): 2 blocks,
    # nothing shared yet. Decode 1 (2 tokens, 1.002 ms): the sample is forked (tables
    # [A B], [A B]); the first to append copies B (copy-on-write): 3 blocks held, 4 in the
    # tables. Decode 2: both append in place: 3 vs 4. Output 3 = prefill's token + 2 decodes.
    sim, st = _run([(6, 3)], parallel_samples=2)
    assert st.requests_finished == 1 and st.output_tokens == 2 * 3
    assert sim.manager.counters()["cow_copies"] == 1
    block = 4 * TINY.kv_bytes_per_token
    held = 2 * 1.006e-3 + 3 * 1.002e-3 * 2
    tables = 2 * 1.006e-3 + 4 * 1.002e-3 * 2
    assert st.mem_unshared_byte_s == pytest.approx(tables * block)
    assert st.sharing_saving_fraction == pytest.approx(1 - held / tables)
    assert st.busy_s == pytest.approx(1.006e-3 + 2 * 1.002e-3)
    assert sim.manager.usage().used_bytes == 0 and sim.manager.logical_bytes() == 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_search_by_hand(seed):
    # prompt 4 = one full block A. Prefill: 1 block. Decode 1: beam 2 forked, both append a
    # block each: [A C], [A D]: 3 held, 4 in tables. Reselection: two parents drawn; same
    # parent -> [A C] twice (D freed), distinct -> unchanged. Decode 2: same parent -> the
    # first append copies C; distinct -> in place: 3 held, 4 in tables either way.
    sim, st = _run([(4, 3)], beam_width=2, seed=seed)
    assert st.requests_finished == 1 and st.output_tokens == 6
    held = 1 * 1.004e-3 + 3 * 1.002e-3 + 3 * 1.002e-3
    tables = 1 * 1.004e-3 + 4 * 1.002e-3 * 2
    assert st.sharing_saving_fraction == pytest.approx(1 - held / tables)
    assert sim.manager.logical_bytes() == 0


def test_plain_decoding_shares_nothing():
    _, st = _run([(6, 3), (9, 5)])
    assert st.sharing_saving_fraction == pytest.approx(0.0, abs=1e-12)


def test_groups_under_memory_pressure_stay_consistent():
    """Beam groups preempted and recomputed in a memory too small for all: the manager's
    tables stay consistent every step, every request finishes, outputs count every beam."""
    m = get_model("OPT-13B")
    src = preset_requests("alpaca", 60, rate=50.0, max_tokens=m.max_context, seed=1)
    sim = ServingSimulator(m, get_gpu("A100-40GB"), "paged-16", src,
                           config=SchedulerConfig(beam_width=4),
                           capacity_bytes=3000 * m.kv_bytes_per_token, progress=False,
                           step_hook=lambda s: s.manager.check())
    st = sim.run()
    assert st.requests_finished == 60 and st.preemptions > 0
    assert st.output_tokens == 4 * sum(r.output for r in src)
    assert sim.manager.logical_bytes() == 0 and sim.manager.usage().used_bytes == 0


@pytest.mark.parametrize("cfg,match", [
    ({"parallel_samples": 2, "beam_width": 2}, "exclude each other"),
    ({"beam_width": 2, "preemption": "swap"}, "recompute only"),
    ({"parallel_samples": 0}, "parallel_samples: must be an integer >= 1")])
def test_group_config_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        SchedulerConfig(**cfg)


def test_groups_need_paged_manager():
    src = RequestSource("hand", lambda: iter([Request(0, 0.0, 6, 3)]), 1)
    with pytest.raises(ValueError, match="need PagedAttention's shared blocks; static"):
        ServingSimulator(TINY, H100, "static", src, config=SchedulerConfig(parallel_samples=2),
                         calibration=_cal(), capacity_bytes=1 << 20)


# REFERENCE.md 2.1 [S]: memory saved by sharing ~6-10% for parallel sampling and ~38-55% for
# beam search on Alpaca (PagedAttention Figs. 15, 17: 6.1-9.8% and 37.6-55.2%), widths 2-6
PAPER = {"parallel_samples": (0.061, 0.098), "beam_width": (0.376, 0.552)}


@pytest.mark.parametrize("kind", ["parallel_samples", "beam_width"])
def test_sharing_savings_beside_the_paper(kind):
    """OPT-13B on an A100-40GB, Alpaca-like lengths: the saving grows with the width, and the
    widths 2 and 6 land within 1.5x of the paper's band (ours run a little higher: every
    sample has the trace's one output length, so no sample finishes early and gives back its
    private blocks while the others still share the prompt)."""
    m = get_model("OPT-13B")
    lo, hi = PAPER[kind]
    got = []
    for w in (2, 6):
        src = preset_requests("alpaca", 200, rate=0.5, max_tokens=m.max_context, seed=0)
        st = ServingSimulator(m, get_gpu("A100-40GB"), "paged-16", src,
                              config=SchedulerConfig(**{kind: w}), progress=False).run()
        got.append(st.sharing_saving_fraction)
    assert got[0] < got[1]
    assert lo / 1.5 <= got[0] <= hi * 1.5 and lo / 1.5 <= got[1] <= hi * 1.5, got
