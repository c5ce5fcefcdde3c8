"""LLM inference allocation workload for the trace `llm-numpy-decode`: a SmolLM2-135M-shaped
decoder (d_model 576, 9 query / 3 KV heads of 64, SwiGLU FFN 1536, RMSNorm, RoPE) in numpy,
4 layers instead of 30 and a 8,192-token vocabulary instead of 49,152 (random weights, seed 0:
the allocation pattern, not the text, is the point), prefilling a 32-token prompt and decoding
48 tokens greedily with a KV cache grown by np.concatenate each step, as naive numpy
implementations do. Prints a checksum of the generated ids."""
import numpy as np

D, H, KVH, HD, FF, L, V = 576, 9, 3, 64, 1536, 4, 8192
rng = np.random.default_rng(0)


def w(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)


emb = w(V, D)
layers = [dict(q=w(D, H * HD), k=w(D, KVH * HD), v=w(D, KVH * HD), o=w(H * HD, D),
               g=w(D, FF), u=w(D, FF), d=w(FF, D), n1=np.ones(D, np.float32),
               n2=np.ones(D, np.float32)) for _ in range(L)]
norm = np.ones(D, np.float32)


def rms(x, g):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * g


def rope(x, pos):
    half = HD // 2
    freq = 1.0 / (10000 ** (np.arange(half, dtype=np.float32) / half))
    ang = pos[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1)


def forward(ids, start, cache):
    x = emb[ids]
    pos = np.arange(start, start + len(ids), dtype=np.float32)
    for li, p in enumerate(layers):
        h = rms(x, p["n1"])
        q = rope((h @ p["q"]).reshape(-1, H, HD), pos)
        k = rope((h @ p["k"]).reshape(-1, KVH, HD), pos)
        v = (h @ p["v"]).reshape(-1, KVH, HD)
        if cache[li] is None:
            cache[li] = (k, v)
        else:
            cache[li] = (np.concatenate([cache[li][0], k]), np.concatenate([cache[li][1], v]))
        K, Vv = cache[li]
        K = np.repeat(K, H // KVH, axis=1)
        Vv = np.repeat(Vv, H // KVH, axis=1)
        att = np.einsum("qhd,khd->hqk", q, K) / np.sqrt(HD)
        t = K.shape[0]
        mask = np.triu(np.ones((len(ids), t), bool), k=t - len(ids) + 1)
        att = np.where(mask[None], -1e9, att)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", att, Vv).reshape(len(ids), H * HD)
        x = x + o @ p["o"]
        h = rms(x, p["n2"])
        g = h @ p["g"]
        x = x + ((g / (1 + np.exp(-g))) * (h @ p["u"])) @ p["d"]
    return rms(x, norm) @ emb.T


cache = [None] * L
prompt = rng.integers(0, V, 32)
logits = forward(prompt, 0, cache)
out = [int(logits[-1].argmax())]
for step in range(47):
    logits = forward(np.array(out[-1:]), 32 + step, cache)
    out.append(int(logits[-1].argmax()))
print("decode checksum", sum((i + 1) * t for i, t in enumerate(out)) % 1000003)
