"""simkit.kvpaging serving engine: scheduler, cost model, calibration files, metrics, CLI."""
import copy
import json

import numpy as np
import pytest

from simkit.errors import InputError
from simkit.kvpaging.costmodel import (Calibration, CostModel, default_calibration,
                                       load_calibration, prefill_pairs)
from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.gpus import GPUS, get_gpu, kv_capacity_bytes
from simkit.kvpaging.metrics import LatencyHistogram
from simkit.kvpaging.models import ModelShape, get_model
from simkit.kvpaging.scheduler import SchedulerConfig
from simkit.kvpaging.workload import (Request, RequestSource, load_trace, poisson_arrivals,
                                      synthetic_requests)

TINY = ModelShape("tiny", layers=1, hidden=32, heads=1, kv_heads=1, head_dim=32, ffn=32,
                  vocab=16, dtype_bytes=2, max_context=64)     # 128 B of KV per token
H100 = get_gpu("H100-80GB")
AZURE = "azure-conv"


def simple_calibration(**kw) -> Calibration:
    """Iteration time = 1 ms + 1 us per token (a measured-style dense curve), nothing else."""
    d = default_calibration("H100-80GB").to_dict()
    d.update(kind="measured", step_fixed_us=0.0, hbm_bandwidth_bytes_per_s=1e30,
             paged_kernel="custom",
             peak_fp16_flops=1e30, paged_decode_slowdown=1.0,
             models={"tiny": {"dense_us": [[0, 1000], [1000, 2000]]}})
    d.update(kw)
    return Calibration.from_dict(d)


def source(reqs, name="hand") -> RequestSource:
    items = [Request(i, a, p, o) for i, (a, p, o) in enumerate(reqs)]
    return RequestSource(name, lambda: iter(items), len(items))


def run(reqs, manager="paged-16", capacity=1 << 20, **kw):
    cfg = kw.pop("config", SchedulerConfig())
    sim = ServingSimulator(TINY, H100, manager, source(reqs), config=cfg,
                           calibration=kw.pop("calibration", simple_calibration()),
                           capacity_bytes=capacity, **kw)
    return sim, sim.run()


# ---- hand-computed run --------------------------------------------------------------------
def test_three_requests_by_hand():
    """A (t=0, P=10, O=3), B (t=0.5 ms, P=20, O=2), C (t=10 ms, P=5, O=1); iteration time
    1 ms + 1 us per token:
      it1 [0, 1.010]        A prefill 10                -> A tok1 (TTFT 1.010 ms)
      it2 [1.010, 2.031]    A decode, B prefill 20      -> A tok2, B tok1 (TTFT 1.531 ms)
      it3 [2.031, 3.033]    A decode, B decode          -> A tok3, B tok2: both finish
      idle until 10 ms
      it4 [10, 11.005]      C prefill 5                 -> C tok1: finishes (TTFT 1.005 ms)
    """
    finish = {}

    class Obs:
        def on_release(self, rid):
            finish[rid] = None

        def on_step(self, sim, t0, t1):
            for rid in list(finish):
                if finish[rid] is None:
                    finish[rid] = t1

    sim, st = run([(0.0, 10, 3), (0.0005, 20, 2), (0.010, 5, 1)], observers=[Obs()])
    assert st.iterations == 4
    assert st.requests_finished == 3 and st.output_tokens == 6
    assert st.prefill_tokens == 35
    assert finish[0] == pytest.approx(0.003033) and finish[1] == pytest.approx(0.003033)
    assert finish[2] == pytest.approx(0.011005)
    assert st.end_s == pytest.approx(0.011005) and st.start_s == 0.0
    assert st.busy_s == pytest.approx(0.001010 + 0.001021 + 0.001002 + 0.001005)
    assert sorted(st.ttft._vals) == pytest.approx([0.001005, 0.001010, 0.001531])
    assert st.ttft.percentile(50) == pytest.approx(0.001010)
    assert st.tbt.n == 3 and st.tbt.total == pytest.approx(0.001021 + 2 * 0.001002)
    assert st.batch_seqs_max == 2 and st.batch_seqs_sum == 1 + 2 + 2 + 1
    assert st.batch_tokens_sum == 10 + 21 + 2 + 5
    assert st.throughput_tokens_per_s == pytest.approx(6 / 0.011005)
    assert st.preemptions == 0
    # memory timeline: one sample per iteration; at it2 A holds 11 tokens, B 20 -> 1 + 2 blocks
    tl = sim.timeline.to_frame()
    assert list(tl["iteration"]) == [0, 1, 2, 3]
    assert tl["used_bytes"][1] == 31 * TINY.kv_bytes_per_token
    assert tl["internal_frag_bytes"][1] == (3 * 16 - 31) * TINY.kv_bytes_per_token


def test_cost_model_terms():
    m = get_model("llama-3-8b")
    cal = default_calibration("H100-80GB")
    assert cal.kind == "published" and "PUBLISHED" in cal.description
    paged, contig = CostModel(m, cal, "paged"), CostModel(m, cal, "contiguous")
    w = m.weight_bytes / (3.35e12 * cal.weight_bandwidth_efficiency)
    kv = 1000 * m.kv_bytes_per_token / (3.35e12 * cal.attention_bandwidth_efficiency)
    assert contig.iteration_s(1, 1, 0, 1000) == pytest.approx(1e-3 + w + kv)
    assert paged.iteration_s(1, 1, 0, 1000) == pytest.approx(1e-3 + w + 1.23 * kv)
    assert prefill_pairs(0, 4) == 10 and prefill_pairs(4, 2) == 5 + 6   # positions 4, 5 see 5 and 6 keys
    # a big prefill is FLOP bound: dense term grows with tokens
    assert paged.dense_s(8192, 1) > paged.dense_s(16, 16) == pytest.approx(w)
    assert contig.map_s(120) == pytest.approx(120 * 40e-6)   # Yi-34B growth: ~5 ms (2.2)


def test_gpu_capacity():
    m = get_model("llama-3-8b")
    for g in GPUS.values():
        cap = kv_capacity_bytes(g, m)
        assert 0 < cap < g.memory_bytes * 0.9 - m.weight_bytes
    with pytest.raises(ValueError, match="gpu"):
        get_gpu("V100")
    with pytest.raises(ValueError, match="leaves no KV memory"):
        kv_capacity_bytes(H100, get_model("yi-34b"), gpu_memory_utilization=0.5)


# ---- calibration files -----------------------------------------------------------------------
@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("map_us_per_call"), "map_us_per_call: missing"),
    (lambda d: d.update(kind="guessed"), "field kind"),
    (lambda d: d.update(flops_efficiency=1.5), "field flops_efficiency: must be"),
    (lambda d: d.update(step_fixed_us="1ms"), "field step_fixed_us: expected a number"),
    (lambda d: d.update(format="other"), "field format"),
    (lambda d: d.update(models={"tiny": {"dense_us": [[2, 1], [1, 2]]}}),
     "field models.tiny.dense_us: x values"),
    (lambda d: d.update(models={"tiny": {"prefill": [[1, 1]]}}), "unknown curve"),
])
def test_calibration_errors(tmp_path, edit, field):
    d = default_calibration("A100-80GB").to_dict()
    edit(d)
    p = tmp_path / "cal.json"
    p.write_text(json.dumps(d))
    with pytest.raises(InputError) as e:
        load_calibration(p)
    assert str(p) in str(e.value) and field in str(e.value) and "\n" not in str(e.value)


def test_calibration_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_calibration(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(InputError, match="bad.json: not JSON"):
        load_calibration(tmp_path / "bad.json")
    d = default_calibration("H100-80GB").to_dict()
    (tmp_path / "ok.json").write_text(json.dumps(d))
    assert load_calibration(tmp_path / "ok.json").path.endswith("ok.json")
    for f in ("hbm_bandwidth_bytes_per_s", "map_us_per_call", "paged_decode_slowdown"):
        assert f in d["sources"]


# ---- invariants on real traces ----------------------------------------------------------------
def checker(model):
    seen = {"steps": 0}

    def hook(sim):
        u = sim.manager.usage()
        assert min(u.used_bytes, u.internal_frag_bytes, u.reserved_bytes, u.cached_bytes,
                   u.free_bytes) >= 0
        assert u.used_bytes + u.internal_frag_bytes + u.reserved_bytes <= u.capacity_bytes
        held = sum(sim.manager.tokens(s.rid) for s in sim.sched.running)
        assert u.used_bytes == held * model.kv_bytes_per_token
        tokens = sum(n for _, n in sim.sched.prefills) + len(sim.sched.decodes)
        assert len(sim.sched.running) <= sim.cfg.max_num_seqs
        if sim.cfg.chunked_prefill:
            assert tokens <= sim.sched.budget
        if hasattr(sim.manager, "check"):
            sim.manager.check()
        seen["steps"] += 1
    return hook, seen


@pytest.mark.parametrize("spec", ["static", "paged-16", "vattention-64KiB", "vattention-2MiB"])
def test_every_admitted_request_finishes(spec):
    m = get_model("llama-3-8b")
    src = load_trace(AZURE, limit=150)
    hook, seen = checker(m)
    # 40,000 tokens of KV keeps the managers' full consistency checks (every step) cheap
    sim = ServingSimulator(m, H100, spec, src, step_hook=hook,
                           capacity_bytes=40_000 * m.kv_bytes_per_token)
    st = sim.run()
    assert seen["steps"] == st.iterations > 0
    assert st.requests_arrived == 150
    assert st.requests_finished == st.requests_admitted == 150 - st.requests_rejected
    outs = sum(min(r.output, m.max_context - r.prompt) for r in src if r.prompt < m.max_context)
    assert st.output_tokens == outs
    # no prefix hashes: prefill = prompts, plus prompts and outputs recomputed after preemption
    assert (st.prefill_tokens == st.prompt_tokens) == (st.preemptions == 0)
    assert sim.manager.usage().used_bytes == 0


def test_determinism_with_seed():
    frames = []
    for _ in range(2):
        src = synthetic_requests(300, rate=50.0, prompt_mean=300, output_mean=50, seed=7)
        sim = ServingSimulator(get_model("llama-3-8b"), H100, "paged-16", src)
        frames.append((sim.run().to_frame(), sim.timeline.to_frame()))
    assert frames[0][0].equals(frames[1][0]) and frames[0][1].equals(frames[1][1])
    other = ServingSimulator(get_model("llama-3-8b"), H100, "paged-16",
                             synthetic_requests(300, rate=50.0, prompt_mean=300,
                                                output_mean=50, seed=8)).run()
    assert other.to_dict() != frames[0][0].iloc[0].to_dict()
    a, b = poisson_arrivals(10, 2.0, seed=3), poisson_arrivals(10, 2.0, seed=3)
    assert np.array_equal(a, b) and a[0] == 0.0


def test_chunked_prefill():
    m = get_model("llama-3-8b")
    src = load_trace(AZURE, limit=100)
    hook, _ = checker(m)
    cfg = SchedulerConfig(chunked_prefill=True, max_num_batched_tokens=512)
    st = ServingSimulator(m, H100, "paged-16", src, config=cfg, step_hook=hook,
                          capacity_bytes=40_000 * m.kv_bytes_per_token).run()
    plain = ServingSimulator(m, H100, "paged-16", src).run()
    assert st.requests_finished == plain.requests_finished == 100
    assert st.prefill_tokens == plain.prefill_tokens == st.prompt_tokens
    assert st.output_tokens == plain.output_tokens
    assert st.iterations > plain.iterations            # long prompts take several chunks
    assert st.batch_tokens_sum <= 512 * st.iterations


# vAttention needs a KV row big enough that a 64 KiB page holds few tokens: 4 KiB rows
VT = ModelShape("vt", layers=1, hidden=64, heads=1, kv_heads=1, head_dim=2048, ffn=64,
                vocab=16, max_context=64)       # 8 KiB per token; a page-group = 16 tokens


@pytest.mark.parametrize("mode", ["recompute", "swap"])
@pytest.mark.parametrize("spec", ["paged-16", "static", "vattention-64KiB"])
def test_preemption_conserves_totals(mode, spec):
    # 40 requests of 20-token prompts and 40-token outputs at once into 1,024 tokens of KV:
    # the batch outgrows memory and the newest sequences are preempted (static reserves all
    # 60 slots at admission, so it admits fewer and never preempts)
    model = VT if spec.startswith("vattention") else TINY
    reqs = [(0.0, 20, 40)] * 40
    hook, _ = checker(model)
    cal = simple_calibration(models={model.name: {"dense_us": [[0, 1000], [1000, 2000]]}})
    sim = ServingSimulator(model, H100, spec, source(reqs), calibration=cal,
                           config=SchedulerConfig(preemption=mode),
                           capacity_bytes=1024 * model.kv_bytes_per_token, step_hook=hook)
    st = sim.run()
    assert st.requests_finished == 40 and st.output_tokens == 40 * 40
    assert (st.preemptions == 0) == (spec == "static")
    assert getattr(st, f"preemptions_{mode}") == st.preemptions
    if mode == "recompute":
        assert st.prefill_tokens > 40 * 20 or spec == "static"   # prompts + outputs again
        assert st.swap_out_bytes == 0
    else:
        assert st.prefill_tokens == 40 * 20
        assert st.swap_out_bytes == st.swap_in_bytes
        assert (st.swap_out_bytes > 0) == (st.preemptions > 0)
    assert sim.manager.usage().used_bytes == 0


def test_rejects_and_aborts():
    # a prompt at max_context is rejected; an output past it is truncated; a request that
    # outgrows all memory alone is aborted (one preemption of itself)
    sim, st = run([(0.0, 64, 5), (0.0, 60, 10), (1.0, 10, 50)], "paged-16",
                  capacity=48 * TINY.kv_bytes_per_token)
    assert st.requests_rejected == 2        # 64 >= max_context; 60 prompt > 48 tokens of KV
    assert st.requests_truncated == 1
    assert st.requests_aborted == 1 and st.requests_finished == 0


def test_prefix_hits_mooncake_style():
    # two requests sharing two 512-token prefix blocks: the second hits 1024 tokens
    items = [Request(0, 0.0, 1100, 2, (1, 2, 3)), Request(1, 1.0, 1100, 2, (1, 2, 4))]
    src = RequestSource("pfx", lambda: iter(items), 2, hash_block_tokens=512)
    m = get_model("llama-3-8b")
    st = ServingSimulator(m, H100, "paged-16", src).run()
    assert st.cached_prompt_tokens == 1024 and st.prompt_tokens_hashed == 2200
    assert st.prefix_hit_rate == pytest.approx(1024 / 2200)
    assert st.prefill_tokens == 2200 - 1024


def test_histogram_exact_then_binned():
    h = LatencyHistogram()
    for v in (0.003, 0.001, 0.002):
        h.add(v)
    h.add(0.004, 2)
    assert h.percentile(50) == 0.003 and h.percentile(100) == 0.004 and h.n == 5
    h._vals, h.exact = [], False
    assert h.percentile(50) == pytest.approx(0.003, rel=0.012)
    d = h - LatencyHistogram()
    assert d.n == 5


def test_stats_subtraction():
    src = load_trace(AZURE, limit=60)
    sim = ServingSimulator(get_model("llama-3-8b"), H100, "paged-16", src)
    snap = {}

    def hook(s):
        if s.iteration == 500:
            snap["st"] = s.stats.copy()
    sim.step_hook = hook
    st = sim.run()
    roi = st - snap["st"]
    assert roi.iterations == st.iterations - snap["st"].iterations
    assert roi.output_tokens + snap["st"].output_tokens == st.output_tokens
    assert roi.tbt.n + snap["st"].tbt.n == st.tbt.n
    assert roi.duration_s < st.duration_s


def test_synthetic_is_lazy():
    src = synthetic_requests(10_000_000, rate=10.0)
    it = iter(src)
    first = [next(it) for _ in range(3)]
    assert first[0].arrival_s == 0.0 and first[1].rid == 1
    assert all(1 <= r.prompt and 1 <= r.output and r.prompt + r.output <= 4096 for r in first)


def test_trace_loaders(tmp_path):
    src = load_trace(AZURE, limit=5)
    r = list(src)
    assert r[0].arrival_s == 0.0 and (r[0].prompt, r[0].output) == (374, 44)
    assert r[1].arrival_s == pytest.approx(50.9951690 - 46.6805900)
    v = tmp_path / "v.csv"
    v.write_text("num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n"
                 "10,5,15,2\n20,4,24,5\n")
    with pytest.raises(InputError, match="--rate"):
        load_trace(v)
    vs = list(load_trace(v, rate=2.0, seed=1))
    assert [(x.prompt, x.output) for x in vs] == [(10, 5), (20, 4)]
    mc = tmp_path / "m.jsonl"
    mc.write_text('{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [0, 1]}\n'
                  '{"timestamp": 1500, "input_length": 10, "output_length": 2, "hash_ids": [2]}\n')
    ms = load_trace(mc)
    assert ms.hash_block_tokens == 512
    assert [(x.arrival_s, x.prefix_hashes) for x in ms] == [(0.0, (0, 1)), (1.5, (2,))]
    mc.write_text('{"timestamp": 0, "input_length": -1, "output_length": 3}\n')
    with pytest.raises(InputError, match="m.jsonl: line 1: input_length"):
        load_trace(mc)
    with pytest.raises(InputError, match="no such file"):
        load_trace(tmp_path / "none.csv")
    bad = tmp_path / "b.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n")
    with pytest.raises(InputError, match="b.csv: line 2: TIMESTAMP"):
        load_trace(bad)


# ---- export ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["paged-16", "static", "vattention-64KiB"])
def test_exports(tmp_path, spec):
    from simkit.kvpaging.export import ALLOC_BASE, AllocExporter, KVReadExporter
    from simkit.trace.format import Op, open_trace

    m = get_model("smollm2-135m")
    sim = ServingSimulator(m, H100, spec, load_trace(AZURE, limit=30),
                           capacity_bytes=20_000 * m.kv_bytes_per_token)
    kv = KVReadExporter(tmp_path / "kv.skt", sim, start_iteration=50, max_steps=1)
    al = AllocExporter(tmp_path / "al.skt", sim)
    sim.add_observer(kv)
    sim.add_observer(al)
    ctx = {}

    def hook(s):
        if s.iteration >= 50 and s.sched.decodes and "n" not in ctx:
            ctx["n"] = len(s.sched.decodes)
            ctx["tokens"] = sum(x.prompt + x.generated for x in s.sched.decodes)
    sim.step_hook = hook
    st = sim.run()
    kv.close()
    al.close()
    t = open_trace(tmp_path / "kv.skt")
    rec = t.read()
    # one step: each decoding sequence stores one K and one V row per layer, and reads its
    # whole context of K and V rows (64-byte records: a K row of SmolLM2 is 384 B = 6 lines)
    assert t.meta.ops["store"] == ctx["n"] * m.layers * 2 * 6
    kv_lo = int(t.meta.extra["kv_base"], 16)
    kv_loads = int(np.count_nonzero((rec["op"] == Op.LOAD) & (rec["addr"] >= kv_lo)))
    assert kv_loads == ctx["tokens"] * m.layers * 2 * 6
    a = open_trace(tmp_path / "al.skt").read()
    assert int(a["icount"].sum()) <= st.iterations
    allocs, frees = a[a["op"] == Op.STORE], a[a["op"] == Op.LOAD]
    # every unit allocated is freed once (requests all finished), in a valid order
    assert sorted(allocs["addr"].tolist()) == sorted(frees["addr"].tolist()) or spec == "static"
    assert int(allocs["size"].sum()) == int(frees["size"].sum())
    live = {}
    for r in a:
        key = int(r["addr"])
        if r["op"] == Op.STORE:
            assert key not in live
            live[key] = int(r["size"])
        else:
            assert live.pop(key) == int(r["size"])
    assert not live and int(a["addr"].min()) >= ALLOC_BASE


# ---- CLI --------------------------------------------------------------------------------------
def cli(capsys, *argv):
    from simkit.cli import main

    rc = main(["kv", "run", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


BASE_ARGS = ("--trace", AZURE, "--model", "llama-3-8b", "--gpu", "H100-80GB",
             "--manager", "paged-16", "--max-requests", "40")


def test_cli_run(tmp_path, capsys):
    rc, out, err = cli(capsys, *BASE_ARGS, "--out", str(tmp_path / "o.csv"),
                       "--timeline", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "m.png"),
                       "--export-alloc-trace", str(tmp_path / "a.skt"), "--chunked-prefill")
    assert rc == 0, err
    assert "TTFT p50" in out and "requests arrived" in out
    import pandas as pd
    df = pd.read_csv(tmp_path / "o.csv")
    assert df["requests_finished"][0] == 40 and df["param_chunked_prefill"][0]
    assert len(pd.read_csv(tmp_path / "t.csv")) == df["iterations"][0]     # one per iteration
    assert (tmp_path / "m.png").stat().st_size > 1000 and (tmp_path / "a.skt").exists()


def test_cli_max_context_serves_long_mooncake_prompts(tmp_path, capsys):
    """Mooncake prompts reach 126K tokens: with Llama-3-8B's 8K context most are rejected;
    --max-context 131072 serves them all (and its prefix hashes hit the paged cache)."""
    args = ("--trace", "mooncake-conv", "--model", "llama-3-8b", "--gpu", "H100-80GB",
            "--manager", "paged-16", "--max-requests", "60", "--out")
    rc, out, err = cli(capsys, *args, str(tmp_path / "a.csv"))
    assert rc == 0, err
    rc, out, err = cli(capsys, *args, str(tmp_path / "b.csv"), "--max-context", "131072")
    assert rc == 0, err
    import pandas as pd
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert a.requests_rejected[0] > 0 and b.requests_rejected[0] == 0
    assert b.requests_finished[0] == 60 and b.prefix_hit_rate[0] > 0


@pytest.mark.parametrize("extra, message", [
    (("--calibration", "{d}/none.json"), "none.json: no such file"),
    (("--calibration", "{d}/bad.json"), "bad.json: field map_us_per_call: missing"),
    (("--out", "{d}/o.txt"), "--out"),
    (("--plot", "{d}/m.pdf"), "--plot"),
    (("--export-kv-trace", "{d}/nodir/k.skt"), "does not exist"),
    (("--max-requests", "0"), "--max-requests: must be > 0"),
    (("--max-num-seqs", "x"), "--max-num-seqs: bad value"),
    (("--manager", "paged-0"), "--manager: unknown manager"),
    (("--gpu", "V100"), "--gpu: unknown GPU"),
    (("--model", "gpt-5"), "--model: unknown model"),
    (("--trace", "{d}/none.csv"), "no such file"),
    (("--trace", "{d}/vidur.csv"), "--rate"),
    (("--rate", "-1"), "--rate: must be a finite number > 0"),
    (("--max-context", "0"), "--max-context: must be > 0"),
])
def test_cli_errors(tmp_path, capsys, extra, message):
    d = default_calibration("H100-80GB").to_dict()
    del d["map_us_per_call"]
    (tmp_path / "bad.json").write_text(json.dumps(d))
    (tmp_path / "vidur.csv").write_text("num_prefill_tokens,num_decode_tokens\n5,5\n")
    extra = tuple(x.format(d=tmp_path) for x in extra)
    args = list(BASE_ARGS)
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = cli(capsys, *args, "--out", str(tmp_path / "r.csv")) if "--out" not in extra \
        else cli(capsys, *args)
    assert rc == 2
    assert err.startswith("simkit: error:") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing half-written


def test_shipped_mooncake_and_vidur_names():
    ms = load_trace("mooncake-conv", limit=20)
    r = list(ms)
    assert ms.hash_block_tokens == 512 and len(r) == 20
    assert all(len(x.prefix_hashes) == -(-x.prompt // 512) for x in r)    # REFERENCE 2.5
    v = list(load_trace("vidur-arxiv", limit=3, rate=1.0))
    assert v[0].arrival_s == 0.0 and v[0].prompt == 3772 and v[0].output == 54
