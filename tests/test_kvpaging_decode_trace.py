"""simkit.kvpaging: model shapes, request traces, and the decode address trace (both KV layouts)."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from simkit.cli import main
from simkit.kvpaging import (MODELS, DecodeTrace, DecodeTraceConfig, ModelShape, address_map,
                             get_model, load_requests, write_decode_trace)
from simkit.kvpaging.decode_trace import ALIGN, BASE
from simkit.trace.catalog import find_trace, load_catalog, traces_dir
from simkit.trace.format import Op, open_trace
from test_trace_cli import one_line_error

M = ALIGN                        # 2 MiB
REQ_CSV = traces_dir() / "llm-serving" / "AzureLLMInferenceTrace_conv_first1000.csv"
CODE_CSV = traces_dir() / "llm-serving" / "AzureLLMInferenceTrace_code_first1000.csv"
# one layer, one 64-byte K row per token, vocab 1 (the token id is always 0)
TINY = ModelShape("tiny", layers=1, hidden=32, heads=1, kv_heads=1, head_dim=32, ffn=32,
                  vocab=1, dtype_bytes=2, max_context=8)
SMALL = ModelShape("small", layers=2, hidden=192, heads=3, kv_heads=3, head_dim=64, ffn=256,
                   vocab=1000, max_context=4096)        # K row 384 B: 16-token blocks of 6 KiB


def records(model, requests, **kw):
    gen = DecodeTrace(model, requests, DecodeTraceConfig(**kw))
    parts = list(gen.chunks())
    return np.concatenate(parts), gen


# ---- models ------------------------------------------------------------------------------

def test_kv_bytes_per_token_match_vattention():
    # REFERENCE.md 2.2 (vAttention, ASPLOS 2025): KV per token 64 / 128 / 240 KB
    assert get_model("Yi-6B").kv_bytes_per_token == 64 * 1024
    assert get_model("llama-3-8b").kv_bytes_per_token == 128 * 1024
    assert get_model("YI-34B").kv_bytes_per_token == 240 * 1024
    assert get_model("Llama-2-7B").kv_bytes_per_token == 512 * 1024     # no GQA
    assert get_model("SmolLM2-135M").kv_bytes_per_token == 30 * 2 * 3 * 64 * 2


def test_parameter_counts_are_the_published_sizes():
    p = {m.name: m.params for m in MODELS.values()}
    assert p["Llama-3-8B"] == 8_030_261_248            # "8.03B"
    assert p["Llama-2-7B"] == 6_738_415_616            # "6.74B"
    assert p["Yi-6B"] == 6_061_035_520
    assert p["Yi-34B"] == 34_388_917_248
    assert p["SmolLM2-135M"] == 134_515_008            # tied lm_head
    assert get_model("SmolLM2-135M").weight_bytes == 2 * 134_515_008
    assert TINY.layer_weight_bytes == 2 * (32 + 32 * 3 * 32 + 32 * 32 + 32 + 3 * 32 * 32)


@pytest.mark.parametrize("field,value", [("layers", 0), ("hidden", -1), ("kv_heads", 5),
                                         ("dtype_bytes", 1.5), ("name", "")])
def test_model_shape_validation_names_the_field(field, value):
    kw = dict(name="m", layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=128,
              vocab=10)
    kw[field] = value
    with pytest.raises(ValueError, match=f"^{field}: "):
        ModelShape(**kw)
    with pytest.raises(ValueError, match="model: unknown model 'gpt-9'"):
        get_model("gpt-9")


def test_load_requests_reads_the_shipped_azure_subset():
    r = load_requests(REQ_CSV)
    assert r.shape == (1000, 2)
    assert r[:4].tolist() == [[374, 44], [396, 109], [879, 55], [91, 16]]
    assert load_requests(CODE_CSV, limit=2).tolist() == [[4808, 10], [3180, 8]]


# ---- the hand-computed tiny case ---------------------------------------------------------

def test_tiny_paged_addresses_by_hand():
    """1 layer, batch 2, 2-token blocks of 128 B, a pool of 4 blocks taken in id order.
    Requests (prompt, output): r0 (3, 2), r1 (1, 1), r2 (1, 1)."""
    rec, gen = records(TINY, [(3, 2), (1, 1), (1, 1)], layout="paged", batch=2, steps=3,
                       block_tokens=2, pool_blocks=4, shuffle_free_list=False,
                       weight_stride_bytes=M, kv_stride_bytes=64)
    emb, lm, w, bt, kv = BASE, BASE + M, BASE + 2 * M, BASE + 3 * M, BASE + 4 * M
    wb = w + 2 * (32 + 32 * 3 * 32)        # O/MLP weights follow norm + Q, K, V
    v = 4 * 128                            # V blocks follow the 4 K blocks
    L, S = Op.LOAD, Op.STORE
    step0 = [  # r0 in slot 0 has blocks [0, 1], r1 in slot 1 has [2]
        (emb, L, 64), (emb, L, 64), (w, L, 64),
        (kv + 192, S, 64), (kv + v + 192, S, 64),      # r0 token 3: block 1, offset 64
        (kv + 320, S, 64), (kv + v + 320, S, 64),      # r1 token 1: block 2, offset 64
        (bt, L, 8), *[(kv + o, L, 64) for o in (0, 64, 128, 192)],
        *[(kv + v + o, L, 64) for o in (0, 64, 128, 192)],
        (bt + 16, L, 4), (kv + 256, L, 64), (kv + 320, L, 64),
        (kv + v + 256, L, 64), (kv + v + 320, L, 64),
        (wb, L, 64), (lm, L, 64)]
    step1 = [  # r1 finished, freed block 2; r2 takes block 3, r0 grows into block 2 (reused)
        (emb, L, 64), (emb, L, 64), (w, L, 64),
        (kv + 256, S, 64), (kv + v + 256, S, 64),      # r0 token 4: block 2, offset 0
        (kv + 448, S, 64), (kv + v + 448, S, 64),      # r2 token 1: block 3, offset 64
        (bt, L, 12), *[(kv + o, L, 64) for o in (0, 64, 128, 192, 256)],
        *[(kv + v + o, L, 64) for o in (0, 64, 128, 192, 256)],
        (bt + 16, L, 4), (kv + 384, L, 64), (kv + 448, L, 64),
        (kv + v + 384, L, 64), (kv + v + 448, L, 64),
        (wb, L, 64), (lm, L, 64)]
    want = step0 + step1
    got = list(zip(rec["addr"].tolist(), rec["op"].tolist(), rec["size"].tolist()))
    assert got == want
    assert (rec["icount"] == 1).all()
    st = gen.stats
    assert (st.steps_run, st.requests_admitted, st.requests_finished) == (2, 3, 3)
    assert (st.blocks_allocated, st.blocks_freed, st.blocks_reused) == (5, 5, 1)
    assert st.records == 23 + 25 and st.stores == 8 and st.tokens_generated == 4
    assert st.kv_read_bytes == 2 * 64 * (4 + 2 + 5 + 2)
    assert st.kv_write_bytes == 2 * 64 * 4


def test_tiny_contiguous_addresses_by_hand():
    """The same requests with one 2 MiB slot per request (S = 8 tokens x 64 B, rounded)."""
    rec, gen = records(TINY, [(3, 2), (1, 1), (1, 1)], layout="contiguous", batch=2, steps=3,
                       block_tokens=2, weight_stride_bytes=M, kv_stride_bytes=64)
    kv, v = BASE + 4 * M, 2 * M            # V buffer after the K buffer of 2 slots
    kvrec = [(a - kv, o) for a, o in zip(rec["addr"].tolist(), rec["op"].tolist()) if a >= kv]
    L, S = Op.LOAD, Op.STORE
    step0 = [(192, S), (v + 192, S), (M + 64, S), (v + M + 64, S),
             (0, L), (64, L), (128, L), (192, L), (v, L), (v + 64, L), (v + 128, L),
             (v + 192, L), (M, L), (M + 64, L), (v + M, L), (v + M + 64, L)]
    step1 = [(256, S), (v + 256, S), (M + 64, S), (v + M + 64, S),   # r2 reuses slot 1
             (0, L), (64, L), (128, L), (192, L), (256, L),
             (v, L), (v + 64, L), (v + 128, L), (v + 192, L), (v + 256, L),
             (M, L), (M + 64, L), (v + M, L), (v + M + 64, L)]
    assert kvrec == step0 + step1
    assert gen.stats.blocks_allocated == 0 and gen.stats.kv_reserved_bytes == 4 * M
    assert address_map(TINY, gen.cfg).slot_bytes == M


# ---- layouts compared --------------------------------------------------------------------

def kv_loads(rec, gen):
    mp = gen.map
    sel = (rec["addr"] >= mp.kv) & (rec["addr"] < mp.end) & (rec["op"] == Op.LOAD)
    return rec[sel]


def test_paged_and_contiguous_read_the_same_kv_bytes():
    req = load_requests(REQ_CSV, limit=12)
    got = {}
    for layout in ("contiguous", "paged"):
        rec, gen = records(SMALL, req, layout=layout, batch=4, steps=12, seed=3)
        kvl = kv_loads(rec, gen)
        assert gen.stats.requests_skipped == 0
        got[layout] = (len(kvl), int(kvl["size"].sum()), gen.stats.kv_read_bytes,
                       gen.stats.tokens_generated, gen.stats.requests_finished)
    assert got["contiguous"] == got["paged"]
    n, size_sum, kv_bytes, tokens, _ = got["paged"]
    assert size_sum == kv_bytes == 64 * n            # one 64-byte line per record
    # by hand: 12 steps x 2 layers x K+V x 384 B x the contexts of the requests in the batch
    ctx = 0
    slots, nxt = [None] * 4, 0
    for _ in range(12):
        for i in range(4):
            if slots[i] is None and nxt < len(req):
                slots[i] = [int(req[nxt][0]), int(req[nxt][1]), 0]
                nxt += 1
        for s in slots:
            if s is not None:
                ctx += s[0] + s[2] + 1
                s[2] += 1
        slots = [None if s is not None and s[2] == s[1] else s for s in slots]
    assert kv_bytes == 2 * 2 * 384 * ctx
    assert tokens == 48


def test_scattered_blocks_touch_more_pages_than_contiguous_slots():
    """One step, four real requests: contiguous pages are ceil(ctx x 384 / 4096) per (layer,
    K/V, request); paged pages come from an independent walk over the block tables."""
    req = load_requests(REQ_CSV, limit=4)          # prompts 374, 396, 879, 91
    ctx = req[:, 0] + 1
    rec_c, gen_c = records(SMALL, req, layout="contiguous", batch=4, steps=1,
                           kv_stride_bytes=4096)
    rec_p, gen_p = records(SMALL, req, layout="paged", batch=4, steps=1, kv_stride_bytes=4096,
                           seed=7)
    want_c = 2 * 2 * sum(-(-int(c) * 384 // 4096) for c in ctx)
    assert want_c == 2 * 2 * (36 + 38 + 83 + 9)
    assert gen_c.stats.kv_pages_4k == want_c
    # oracle: the seeded free list, blocks taken in slot order (ceil(prompt / 16) each)
    mp = gen_p.map
    order = np.random.default_rng(7).permutation(gen_p.pool_blocks).tolist()
    tables = [[order.pop(0) for _ in range(-(-int(p) // 16))] for p in req[:, 0]]
    for p, table in zip(req[:, 0], tables):        # then each grows to hold token p
        if int(p) // 16 == len(table):
            table.append(order.pop(0))
    pages = set()
    for p, blocks in zip(req[:, 0], tables):
        c = int(p) + 1
        for layer in range(2):
            for half in (0, mp.v_offset):
                for j, b in enumerate(blocks):
                    start = mp.kv_base(layer) + half + b * mp.block_bytes
                    n = min(16, c - 16 * j) * 384
                    pages.update(range(start >> 12, (start + n - 1 >> 12) + 1))
    assert gen_p.stats.kv_pages_4k == len(pages)
    assert (gen_p.stats.kv_pages_4k, gen_c.stats.kv_pages_4k) == (856, 664)   # +29 %
    # 2 MiB regions: one per (layer, K/V, request) for contiguous slots; the paged pool
    # (4 x 256 blocks of 6 KiB per K and V half: 12 MiB per layer) is compact, all 6 touched
    assert gen_c.stats.kv_regions_2m == 2 * 2 * 4
    assert gen_p.stats.kv_regions_2m == 2 * 6
    # the same KV bytes, each touched page accessed once per extent
    assert gen_p.stats.kv_read_bytes == gen_c.stats.kv_read_bytes
    assert len(kv_loads(rec_c, gen_c)) == want_c


def test_finished_requests_free_blocks_for_reuse():
    """Short real code requests finish; their blocks go back to the tail of the free list and
    are handed out again once the pool's never-used blocks run out."""
    req = load_requests(CODE_CSV, limit=40)
    req = req[req.sum(axis=1) <= 2048]
    kw = dict(layout="paged", batch=4, steps=40, max_context=2048, kv_stride_bytes=4096,
              weight_stride_bytes=M)
    _, big = records(SMALL, req, pool_blocks=512, **kw)     # 512 = 4 x 2048 / 16: never wraps
    _, gen = records(SMALL, req, pool_blocks=300, **kw)
    for g in (big, gen):
        st = g.stats
        assert (st.requests_admitted, st.requests_finished) == (12, 8)
        assert (st.blocks_allocated, st.blocks_freed) == (431, 253)
    assert big.stats.blocks_reused == 0           # freed blocks wait at the free list's tail
    assert gen.stats.blocks_reused == 431 - 300   # every allocation after the first 300
    with pytest.raises(ValueError, match="pool_blocks: the pool of 250 blocks is exhausted"):
        records(SMALL, req, pool_blocks=250, **kw)


def test_requests_too_long_or_without_output_are_skipped():
    _, gen = records(TINY, [(7, 2), (0, 0), (2, 1)], layout="paged", batch=1, steps=5,
                     block_tokens=2)
    st = gen.stats
    assert (st.requests_skipped, st.requests_admitted, st.steps_run) == (2, 1, 1)


def test_same_seed_same_trace_other_seed_other_blocks():
    req = load_requests(REQ_CSV, limit=6)
    kw = dict(batch=3, steps=3, kv_stride_bytes=4096)
    a, _ = records(SMALL, req, layout="paged", seed=1, **kw)
    b, _ = records(SMALL, req, layout="paged", seed=1, **kw)
    c, gen = records(SMALL, req, layout="paged", seed=2, **kw)
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a["addr"], c["addr"])
    # contiguous KV addresses do not depend on the seed (only the token ids do)
    x, gx = records(SMALL, req, layout="contiguous", seed=1, **kw)
    y, gy = records(SMALL, req, layout="contiguous", seed=2, **kw)
    assert np.array_equal(kv_loads(x, gx), kv_loads(y, gy))


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="^layout: "):
        DecodeTraceConfig(layout="ragged")
    with pytest.raises(ValueError, match="^weight_stride_bytes: must be a power of two"):
        DecodeTraceConfig(weight_stride_bytes=3000)
    with pytest.raises(ValueError, match="^batch: "):
        DecodeTraceConfig(batch=0)
    with pytest.raises(ValueError, match="^requests: "):
        DecodeTrace(TINY, [1, 2, 3])


# ---- writing, the command line, the shipped traces ---------------------------------------

def test_write_decode_trace_metadata(tmp_path):
    req = load_requests(REQ_CSV, limit=4)
    p = tmp_path / "t.skt"
    st = write_decode_trace(p, SMALL, req, DecodeTraceConfig(layout="paged", batch=2, steps=2),
                            requests_source=REQ_CSV.name)
    t = open_trace(p)
    assert len(t) == st.records and t.meta.instructions == st.records
    x = t.meta.extra
    assert (x["model"], x["layout"], x["batch"], x["steps"], x["seed"]) == \
        ("small", "paged", 2, 2, 0)
    assert (x["weight_stride_bytes"], x["kv_stride_bytes"], x["block_tokens"]) == (4096, 64, 16)
    assert x["requests_source"] == REQ_CSV.name and x["stats"]["records"] == st.records
    # steps x sequences x layers x (K, V) x 6 lines of a 384-byte row
    assert t.meta.ops["store"] == st.stores == 2 * 2 * 2 * 2 * 6
    assert not list(tmp_path.glob("*.partial"))


def test_cli_decode_trace(capsys, tmp_path):
    out = tmp_path / "d.skt.gz"
    assert main(["kv", "decode-trace", "--model", "smollm2-135m", "--requests", str(REQ_CSV),
                 "--layout", "contiguous", "--batch", "2", "--steps", "2", "--kv-stride", "4k",
                 "--weight-stride", "64KiB", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    t = open_trace(out)
    st = t.meta.extra["stats"]
    assert f"wrote {out}: {len(t)} records" in text
    assert "distinct 4 KiB pages" in text and str(st["pages_4k"]) in text
    assert t.meta.extra["weight_stride_bytes"] == 65536 and t.meta.extra["kv_stride_bytes"] == 4096
    assert (st["requests_admitted"], st["tokens_generated"]) == (2, 4)
    assert t.meta.command.startswith("simkit kv decode-trace --model smollm2-135m")


@pytest.mark.parametrize("change,fragments", [
    ({"--requests": "missing.csv"}, ["missing.csv: no such file"]),
    ({"--requests": "bad.csv"}, ["bad.csv: no request-length columns", "ContextTokens"]),
    ({"--requests": "badrow.csv"}, ["badrow.csv: line 3: GeneratedTokens 'x'"]),
    ({"--model": "gpt-9"}, ["--model: unknown model 'gpt-9'", "Llama-3-8B"]),
    ({"--weight-stride": "3000"}, ["--weight-stride: must be a power of two"]),
    ({"--batch": "two"}, ["--batch: bad value 'two'"]),
    ({"--pool-blocks": "3"}, ["--pool-blocks: the pool of 3 blocks is exhausted"]),
    ({"--out": "o.csv"}, ["output must end in .skt"]),
    ({"--out": "nodir/o.skt"}, ["does not exist"]),
])
def test_cli_errors_are_one_line_and_leave_no_file(capsys, tmp_path, change, fragments):
    (tmp_path / "bad.csv").write_text("TIMESTAMP,Prompt,Output\nx,1,2\n")
    (tmp_path / "badrow.csv").write_text("ContextTokens,GeneratedTokens\n5,2\n6,x\n")
    args = {"--model": "SmolLM2-135M", "--requests": str(REQ_CSV), "--layout": "paged",
            "--steps": "2", "--out": "o.skt"}
    args.update(change)
    for k in ("--requests", "--out"):
        if not Path(args[k]).is_absolute():
            args[k] = str(tmp_path / args[k])
    argv = ["kv", "decode-trace"] + [x for kv in args.items() for x in kv]
    one_line_error(capsys, argv, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "badrow.csv"]


SHIPPED = {"llm-decode-contiguous": (2_878_079, 25_920, 480),
           "llm-decode-paged": (3_148_196, 37_140, 720)}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_llm_traces_are_what_the_generator_makes(name):
    entry = load_catalog()[name]
    path = find_trace(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert path.stat().st_size < 3_000_000
    t = open_trace(path)
    x = t.meta.extra
    records_, kv_pages, kv_regions = SHIPPED[name]
    assert len(t) == entry["records"] == records_
    assert (x["stats"]["kv_pages_4k"], x["stats"]["kv_regions_2m"]) == (kv_pages, kv_regions)
    assert entry["kv_pages_4k"] == kv_pages and "CC-BY-4.0" in entry["licence"]
    cfg = DecodeTraceConfig(layout=x["layout"], batch=x["batch"], steps=x["steps"],
                            block_tokens=x["block_tokens"], seed=x["seed"],
                            weight_stride_bytes=x["weight_stride_bytes"],
                            kv_stride_bytes=x["kv_stride_bytes"])
    again = np.concatenate(list(DecodeTrace(get_model(x["model"]),
                                            load_requests(traces_dir().parent
                                                          / entry["requests_file"]),
                                            cfg).chunks()))
    assert np.array_equal(again, t.read())
