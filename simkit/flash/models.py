"""Model shapes for flash-offloaded inference: which weights stay in DRAM, which are loaded
per FFN neuron.

A ``FlashModel`` is a decoder-only transformer. Its FFN has ``ffn`` neurons per layer; neuron
``i`` owns column ``i`` of each input projection (``up``, and ``gate`` for gated MLPs) and row
``i`` of the down projection, ``ffn_matrices`` vectors of ``d_model`` weights in all::

    neuron_bytes = ffn_matrices * d_model * dtype_bytes     one neuron, all its matrices
    chunk_bytes  = d_model * dtype_bytes                     one row/column (unbundled read)
                 = neuron_bytes                              bundled (row-column bundling)

Attention, embeddings, norms and biases stay resident in DRAM once a policy is hybrid
("LLM in a flash", REFERENCE.md 3.3); the FFN is what is read from flash per token.

Presets are the published ``config.json`` shapes (REFERENCE.md 3.4; [U: recheck] for the
three 7B rows there): OPT-6.7B and Phi-2 have 2 FFN matrices (ReLU / GELU), Llama-2-7B and
SmolLM2-135M are gated (SwiGLU, 3 matrices), Falcon-7B is 2 matrices, relufied, run in fp32
by the paper (its bundled chunk is 35.5 KiB).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class FlashModel:
    name: str
    layers: int
    d_model: int
    ffn: int                 # FFN neurons per layer
    ffn_matrices: int        # 2 (up, down) or 3 (gate, up, down)
    heads: int
    kv_heads: int
    vocab: int
    dtype_bytes: int = 2
    tied_embeddings: bool = False
    position_embeddings: int = 0     # learned absolute positions (OPT: 2050 rows)
    ffn_bias: bool = False           # OPT/Phi-2/Falcon-style biases (small; resident)
    activation: str = "relu"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: must be a non-empty string, got {self.name!r}")
        for f in fields(self):
            if f.name in ("name", "tied_embeddings", "ffn_bias", "activation"):
                continue
            if f.name == "dtype_bytes" and self.dtype_bytes == 0.5:      # 4-bit weights
                continue
            v = getattr(self, f.name)
            lo = 0 if f.name == "position_embeddings" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{f.name}: must be an integer >= {lo}, got {v!r}")
        if self.ffn_matrices not in (2, 3):
            raise ValueError(f"ffn_matrices: must be 2 or 3, got {self.ffn_matrices!r}")
        if self.heads % self.kv_heads:
            raise ValueError(f"kv_heads: must divide heads ({self.heads}), got {self.kv_heads}")

    # ---- parameters ----------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def ffn_params_per_layer(self) -> int:
        return self.ffn_matrices * self.d_model * self.ffn

    @property
    def ffn_params(self) -> int:
        return self.layers * self.ffn_params_per_layer

    @property
    def attention_params_per_layer(self) -> int:
        """Q, O (d x d) and K, V (d x kv_heads*head_dim), plus two norms."""
        kv = self.kv_heads * self.head_dim
        return 2 * self.d_model * self.d_model + 2 * self.d_model * kv + 4 * self.d_model

    @property
    def embedding_params(self) -> int:
        emb = self.vocab * self.d_model * (1 if self.tied_embeddings else 2)
        return emb + self.position_embeddings * self.d_model

    @property
    def resident_params(self) -> int:
        """Everything but the FFN matrices: attention, norms, embeddings, FFN biases."""
        bias = self.layers * (self.ffn + self.d_model) if self.ffn_bias else 0
        return self.layers * self.attention_params_per_layer + self.embedding_params + bias

    @property
    def total_params(self) -> int:
        return self.resident_params + self.ffn_params

    # ---- bytes ---------------------------------------------------------------------------
    def _bytes(self, weights: int) -> int:
        return int(math.ceil(weights * self.dtype_bytes))

    @property
    def neuron_bytes(self) -> int:
        """All matrices of one FFN neuron (one bundled chunk)."""
        return self._bytes(self.ffn_matrices * self.d_model)

    @property
    def vector_bytes(self) -> int:
        """One row or column of one FFN matrix (one unbundled chunk)."""
        return self._bytes(self.d_model)

    @property
    def ffn_bytes(self) -> int:
        return self._bytes(self.ffn_params)

    @property
    def resident_bytes(self) -> int:
        return self._bytes(self.resident_params)

    @property
    def total_bytes(self) -> int:
        return self._bytes(self.total_params)

    def kv_bytes(self, context_tokens: int, kv_dtype_bytes: int = 2) -> int:
        """K and V of ``context_tokens`` tokens, all layers (fp16 by default, whatever the
        weights' precision)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * context_tokens * kv_dtype_bytes

    @property
    def ffn_share(self) -> float:
        return self.ffn_params / self.total_params


MODELS: dict[str, FlashModel] = {
    # facebook/opt-6.7b: 32 x 4096, FFN 16384, 32 heads, vocab 50272, learned positions 2048+2,
    # untied lm_head is tied in OPT (word_embed_proj_dim = hidden): tied
    "opt-6.7b": FlashModel("opt-6.7b", 32, 4096, 16384, 2, 32, 32, 50272, 2, True, 2050, True,
                           "relu"),
    # tiiuae/falcon-7b: multi-query attention (71 heads, 1 KV head of 64), fp32 in the paper
    "falcon-7b": FlashModel("falcon-7b", 32, 4544, 18176, 2, 71, 1, 65024, 4, True, 0, False,
                            "gelu (relufied)"),
    # meta-llama/Llama-2-7b-hf
    "llama-2-7b": FlashModel("llama-2-7b", 32, 4096, 11008, 3, 32, 32, 32000, 2, False, 0,
                             False, "swiglu"),
    # microsoft/phi-2: 32 x 2560, FFN 10240, 32 heads, vocab 51200 (untied lm_head)
    "phi-2": FlashModel("phi-2", 32, 2560, 10240, 2, 32, 32, 51200, 2, False, 0, True, "gelu"),
    # HuggingFaceTB/SmolLM2-135M (the shipped GGUF's metadata agrees: 30 x 576, FFN 1536)
    "smollm2-135m": FlashModel("smollm2-135m", 30, 576, 1536, 3, 9, 3, 49152, 2, True, 0, False,
                               "swiglu"),
}


def quantized(model: str | FlashModel, bits: int) -> FlashModel:
    """The model with ``bits``-bit weights (4, 8 or 16; 32 is fp32): every byte count scales,
    chunks included (OPT-6.7B at 4 bits: a bundled neuron is 4 KiB). Group scales and zero
    points (about 0.5 bit per weight for 32-weight groups) are not counted."""
    m = get_model(model)
    if bits not in (4, 8, 16, 32):
        raise ValueError(f"bits: must be 4, 8, 16 or 32, got {bits!r}")
    return replace(m, name=f"{m.name}-{bits}bit" if 8 * m.dtype_bytes != bits else m.name,
                   dtype_bytes=0.5 if bits == 4 else bits // 8)


def get_model(name: str | FlashModel) -> FlashModel:
    if isinstance(name, FlashModel):
        return name
    key = str(name).lower()
    if key not in MODELS:
        raise ValueError(f"model: unknown {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[key]
