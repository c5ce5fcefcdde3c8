"""A host-memory tier for prefix-cached and swapped KV blocks (issue 15, item 4)."""
import pytest

from simkit.kvpaging.costmodel import Calibration, default_calibration
from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.gpus import get_gpu
from simkit.kvpaging.managers import make_manager
from simkit.kvpaging.managers.base import Admission
from simkit.kvpaging.models import ModelShape
from simkit.kvpaging.workload import Request, RequestSource

TINY = ModelShape("tiny", layers=1, hidden=32, heads=1, kv_heads=1, head_dim=32, ffn=32,
                  vocab=16, dtype_bytes=2, max_context=64)     # 128 B of KV per token
BLOCK = 4 * 128                                                  # paged-4: 512 B blocks


def test_host_tier_by_hand():
    # GPU: 3 blocks; host tier: 2 blocks. r0 [a b] takes blocks 0, 1 and frees them (queue:
    # 2, 1(b), 0(a)). r1 [c d] pops 2 and 1: b leaves the GPU for the host. r2 (9 tokens,
    # [a b]) finds a on the GPU (block 0, free but cached) and b on the host: 8 cached
    # tokens, one block (512 B) loaded, 2 new blocks (b's and the partial one), which evict
    # d and c to the host; the tier keeps its 2 most recent: d, c
    m = make_manager("paged-4", TINY, 3 * BLOCK, cpu_cache_bytes=2 * BLOCK)
    for rid, (p, hs) in enumerate([(8, ["a", "b"]), (8, ["c", "d"])]):
        assert m.admit(rid, p, p + 1, hs).cached_tokens == 0
        m.free(rid)
    adm = m.admit(2, 9, 10, ["a", "b"])
    assert (adm.cached_tokens, adm.map_ops, adm.loaded_bytes) == (8, 2, BLOCK)
    c = m.counters()
    assert c["host_hit_tokens"] == 4 and c["host_offload_blocks"] == 3
    assert c["host_evictions"] == 1 and list(m._host) == ["d", "c"]
    m.check()
    # without the tier only a is found
    m = make_manager("paged-4", TINY, 3 * BLOCK)
    for rid, (p, hs) in enumerate([(8, ["a", "b"]), (8, ["c", "d"])]):
        m.admit(rid, p, p + 1, hs)
        m.free(rid)
    assert m.admit(2, 9, 10, ["a", "b"]) == Admission(4, 2, 0)


def test_swapped_sequences_take_the_tier_first():
    m = make_manager("paged-4", TINY, 3 * BLOCK, cpu_cache_bytes=2 * BLOCK)
    m.admit(0, 8, 9, ["a", "b"])
    m.free(0)
    m.admit(1, 8, 9, ["c", "d"])             # evicts b to the host (a stays cached on GPU)
    assert list(m._host) == ["b"]
    m.free(1)
    m.admit(2, 8, 9, ["e", "f"])             # evicts a and d: host a, d (b dropped, LRU)
    assert m.preempt(2, "swap") == 2 * BLOCK  # 2 swapped blocks fill the 2-block tier
    assert list(m._host) == [] and m.counters()["host_evictions"] == 3
    m.check()


def _cal():
    d = default_calibration("H100-80GB").to_dict()
    d.update(kind="measured", paged_kernel="custom", step_fixed_us=0.0,
             hbm_bandwidth_bytes_per_s=1e30, peak_fp16_flops=1e30, paged_decode_slowdown=1.0,
             pcie_bandwidth_bytes_per_s=512e3,            # 1 ms per 512 B block
             models={"tiny": {"dense_us": [[0, 1000], [1000, 2000]]}})
    return Calibration.from_dict(d)


def test_engine_charges_the_load_over_pcie():
    # the same three requests, one after another; r2's prefill computes 1 token (8 cached)
    # and its iteration carries one block over PCIe: 1 ms + 1 us + 1 ms
    items = [Request(0, 0.0, 8, 1, ("a", "b")), Request(1, 1.0, 8, 1, ("c", "d")),
             Request(2, 2.0, 9, 1, ("a", "b"))]
    src = RequestSource("hand", lambda: iter(items), 3, hash_block_tokens=4)
    sim = ServingSimulator(TINY, get_gpu("H100-80GB"), "paged-4", src, calibration=_cal(),
                           capacity_bytes=3 * BLOCK, progress=False,
                           manager_overrides={"cpu_cache_bytes": 2 * BLOCK})
    st = sim.run()
    assert st.host_load_bytes == BLOCK and st.cached_prompt_tokens == 8
    assert st.prefill_tokens == 8 + 8 + 1
    assert st.busy_s == pytest.approx(1.008e-3 + 1.008e-3 + 1.001e-3 + 1e-3)
    assert st.prefix_hit_rate == pytest.approx(8 / 25)


def test_mooncake_hits_follow_the_lru_curve_of_gpu_plus_host():
    """Mooncake conversation trace (first 400 requests): with a host tier the engine's prefix
    hit rate follows the LRU reuse curve (``prefix_hit_curve``, computed without the engine)
    at the GPU's plus the host's capacity, where the GPU alone stays near the curve at its own
    size. (The engine keeps the running requests' blocks too, so it is close, not equal.)"""
    from simkit.kvpaging.prefix import load_hash_trace, prefix_hit_curve
    from simkit.kvpaging.workload import load_trace, resolve_trace

    n = 400
    model = ModelShape("t", layers=1, hidden=32, heads=1, kv_heads=1, head_dim=32, ffn=32,
                       vocab=16, dtype_bytes=2, max_context=131072)
    blk = 512 * model.kv_bytes_per_token
    gpu_blocks, host_blocks = 600, 7400
    curve = prefix_hit_curve(load_hash_trace(resolve_trace("mooncake-conv"))[:n],
                             [gpu_blocks, gpu_blocks + host_blocks])
    rates = []
    for host in (0, host_blocks):
        st = ServingSimulator(model, get_gpu("H100-80GB"), "paged-512",
                              load_trace("mooncake-conv", limit=n), calibration=_cal(),
                              capacity_bytes=gpu_blocks * blk, progress=False,
                              manager_overrides={"cpu_cache_bytes": host * blk}).run()
        rates.append(st.prefix_hit_rate)
    assert rates[1] > rates[0] + 0.05
    assert rates[0] == pytest.approx(curve.token_hit_rate[0], abs=0.03)
    assert rates[1] == pytest.approx(curve.token_hit_rate[1], abs=0.03)
