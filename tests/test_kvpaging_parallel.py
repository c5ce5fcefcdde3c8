"""Tensor parallelism and replicas behind a router (issue 15, item 3)."""
import pytest

from simkit.errors import InputError
from simkit.kvpaging.cluster import ServingCluster, merge_stats
from simkit.kvpaging.costmodel import Calibration, CostModel, default_calibration
from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.gpus import get_gpu, kv_capacity_bytes
from simkit.kvpaging.models import ModelShape, get_model, tp_shard
from simkit.kvpaging.scheduler import SchedulerConfig
from simkit.kvpaging.workload import Request, RequestSource, preset_requests

A100 = get_gpu("A100-80GB")


def test_tp_shard_by_hand():
    s = tp_shard(get_model("Llama-3-70B"), 8)            # 64 heads, 8 KV heads, ffn 28672
    assert (s.heads, s.kv_heads, s.ffn, s.vocab) == (8, 1, 3584, 16032)
    assert s.kv_bytes_per_token == 80 * 2 * 1 * 128 * 2            # 1/8 of 320 KiB
    yi = tp_shard(get_model("Yi-34B"), 2)
    assert yi.kv_bytes_per_token == 120 * 1024     # REFERENCE 2.2: 240 KB per token, halved
    opt = tp_shard(get_model("OPT-175B"), 8)
    assert (opt.heads, opt.kv_heads, opt.ffn) == (12, 12, 6144)
    assert tp_shard(get_model("Yi-6B"), 8).kv_heads == 1            # 4 KV heads replicated
    assert tp_shard(get_model("Yi-6B"), 1) is get_model("Yi-6B")
    with pytest.raises(ValueError, match="tensor_parallel: 3 does not divide"):
        tp_shard(get_model("Llama-3-8B"), 3)


def test_allreduce_term_by_hand():
    cal = default_calibration("A100-80GB")
    assert cal.interconnect_bandwidth_bytes_per_s == 300e9 and cal.allreduce_latency_us == 10
    s = tp_shard(get_model("Yi-34B"), 2)
    one = CostModel(s, cal, "paged")
    two = CostModel(s, cal, "paged", tensor_parallel=2)
    extra = two.iteration_s(100, 4, 0, 1000) - one.iteration_s(100, 4, 0, 1000)
    # 2 all-reduces per layer, 60 layers; ring: 2 (tp-1)/tp of 100 tokens x 7168 x 2 bytes
    want = 2 * 60 * (10e-6 + 2 * (1 / 2) * 100 * 7168 * 2 / 300e9)
    assert extra == pytest.approx(want, rel=1e-12)
    d = cal.to_dict()
    d["interconnect_bandwidth_bytes_per_s"] = 0
    with pytest.raises(InputError, match="no interconnect_bandwidth_bytes_per_s"):
        CostModel(s, Calibration.from_dict(d), "paged", tensor_parallel=2)
    d["allreduce_latency_us"] = -1
    with pytest.raises(InputError, match="field allreduce_latency_us: must be a number >= 0"):
        Calibration.from_dict(d)


def test_tp_engine_serves_a_shard():
    m = get_model("OPT-66B")                               # PagedAttention: 4 A100s
    src = preset_requests("sharegpt", 40, rate=4.0, max_tokens=m.max_context, seed=0)
    sim = ServingSimulator(m, A100, "paged-16", src, tensor_parallel=4, progress=False)
    st = sim.run()
    shard = tp_shard(m, 4)
    assert sim.model == shard and st.params["tensor_parallel"] == 4
    assert st.params["model"] == "OPT-66B"
    assert sim.capacity_bytes == kv_capacity_bytes(
        A100, shard, max_num_batched_tokens=2048, max_num_seqs=256)
    assert st.requests_finished == 40
    with pytest.raises(InputError, match="no interconnect"):
        d = default_calibration("A100-80GB").to_dict()
        d["interconnect_bandwidth_bytes_per_s"] = 0
        ServingSimulator(m, A100, "paged-16", src, tensor_parallel=4,
                         calibration=Calibration.from_dict(d))


TINY = ModelShape("tiny", layers=1, hidden=32, heads=1, kv_heads=1, head_dim=32, ffn=32,
                  vocab=16, dtype_bytes=2, max_context=256)


def _cal():
    d = default_calibration("H100-80GB").to_dict()
    d.update(kind="measured", paged_kernel="custom", step_fixed_us=0.0,
             hbm_bandwidth_bytes_per_s=1e30, peak_fp16_flops=1e30, paged_decode_slowdown=1.0,
             models={"tiny": {"dense_us": [[0, 1000], [1000, 2000]]}})
    return Calibration.from_dict(d)


def _src(reqs):
    items = [Request(i, a, p, o) for i, (a, p, o) in enumerate(reqs)]
    return RequestSource("hand", lambda: iter(items), len(items))


@pytest.mark.parametrize("router,routed", [("round-robin", [2, 1]), ("least-loaded", [1, 2])])
def test_routers_by_hand(router, routed):
    # r0 (t=0, 100 outputs) and r1 (t=0, 1 output) go to replicas 0 and 1 either way; r1
    # is done by t=1 ms, r0 runs until ~0.1 s. r2 arrives at 0.05 s: round-robin sends it to replica 0 (2 mod 2), the
    # least-loaded router to replica 1 (0 in flight vs 1)
    reqs = [(0.0, 10, 100), (0.0, 10, 1), (0.05, 10, 5)]
    cl = ServingCluster(TINY, get_gpu("H100-80GB"), "paged-16", _src(reqs), replicas=2,
                        router=router, calibration=_cal(), capacity_bytes=1 << 20)
    st = cl.run()
    assert cl.routed == routed
    assert st.requests_finished == 3 and st.output_tokens == 106
    assert [s.requests_finished for s in cl.replica_stats] == routed
    # replica 0 alone on r0: 1 prefill (10 tokens) + 99 decodes of 1 ms + 1 us per token
    # (round-robin adds r2's prefill and decodes to it; least-loaded keeps it alone)
    if router == "least-loaded":
        assert cl.replica_stats[0].busy_s == pytest.approx(1.010e-3 + 99 * 1.001e-3)
    assert st.start_s == 0.0 and st.end_s == max(s.end_s for s in cl.replica_stats)
    assert st.capacity_bytes == 2 << 20


def test_one_replica_cluster_equals_the_engine():
    m = get_model("Llama-3-8B")
    src = preset_requests("sharegpt", 200, rate=20.0, max_tokens=m.max_context, seed=3)
    a = ServingSimulator(m, A100, "paged-16", src, progress=False,
                         capacity_bytes=40_000 * m.kv_bytes_per_token).run().to_dict()
    b = ServingCluster(m, A100, "paged-16", src, replicas=1,
                       capacity_bytes=40_000 * m.kv_bytes_per_token).run().to_dict()
    assert a == pytest.approx(b, nan_ok=True)


def test_replicas_raise_the_knee():
    """Four replicas at 4x the rate keep the per-token latency of one at the base rate
    (within 25%), where one replica at 4x the rate is far past its knee."""
    m = get_model("OPT-13B")
    gpu = get_gpu("A100-40GB")

    def norm(rate, replicas):
        src = preset_requests("sharegpt", 200, rate=rate, max_tokens=m.max_context, seed=0)
        return ServingCluster(m, gpu, "paged-16", src, replicas=replicas,
                              router="least-loaded").run().normalized_latency_s

    base, four, one = norm(1.0, 1), norm(4.0, 4), norm(4.0, 1)
    assert four <= 1.25 * base and one > 4 * base


def test_cluster_errors():
    src = _src([(0.0, 10, 2)])
    with pytest.raises(ValueError, match="replicas: must be an integer >= 1"):
        ServingCluster(TINY, A100, "paged-16", src, replicas=0)
    with pytest.raises(ValueError, match="router: must be one of round-robin, least-loaded"):
        ServingCluster(TINY, A100, "paged-16", src, router="random")
    assert merge_stats([]).requests_finished == 0


def test_sweep_keys_tp_replicas(tmp_path):
    from simkit.sweep import Grid, load_results, run_sweep

    g = Grid.from_dict({"name": "tp", "simulator": "kv", "traces": ["azure-conv"],
                        "max_records": 20, "base": {"model": "Yi-34B", "gpu": "A100-80GB"},
                        "grid": {"tensor_parallel": [2], "replicas": [1, 2],
                                 "router": ["least-loaded"]}})
    r = run_sweep(g, tmp_path, workers=0, progress=False)
    assert (r.done, r.failed) == (2, 0), r.errors
    df = load_results(tmp_path).set_index("grid_replicas")
    assert (df.param_tensor_parallel == 2).all() and (df.requests_arrived == 20).all()
    assert df.loc["2", "param_replicas"] == 2 and df.loc["2", "param_router"] == "least-loaded"
    bad = Grid.from_dict({"name": "b", "simulator": "kv", "traces": ["azure-conv"],
                          "grid": {"tensor_parallel": [3]}})
    with pytest.raises(InputError, match="tensor_parallel: 3 does not divide"):
        bad.check()
