"""LLM shapes: the numbers that size weights and the KV cache.

A ``ModelShape`` is a decoder-only transformer of the Llama family (pre-norm RMSNorm, grouped-query
attention with ``kv_heads`` K/V heads, gated SwiGLU MLP of three ``hidden x ffn`` matrices, no
biases), which all the presets are. Per token and layer the KV cache holds one K and one V row of
``kv_heads * head_dim`` elements::

    kv_bytes_per_token = layers * 2 * kv_heads * head_dim * dtype_bytes

Presets are the published ``config.json`` values (Hugging Face Hub) of each model;
``max_context`` is its ``max_position_embeddings``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ModelShape:
    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    dtype_bytes: int = 2            # fp16 / bf16
    max_context: int = 4096         # max_position_embeddings
    tied_embeddings: bool = False   # lm_head shares the embedding matrix

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: must be a non-empty string, got {self.name!r}")
        for f in fields(self):
            if f.name in ("name", "tied_embeddings"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{f.name}: must be a positive integer, got {v!r}")
        if self.heads % self.kv_heads:
            raise ValueError(f"kv_heads: must divide heads ({self.heads}), got {self.kv_heads}")
        if not isinstance(self.tied_embeddings, bool):
            raise ValueError(f"tied_embeddings: must be a bool, got {self.tied_embeddings!r}")

    # ---- KV cache ----------------------------------------------------------------------
    @property
    def kv_row_bytes(self) -> int:
        """One K (or one V) row: one token in one layer."""
        return self.kv_heads * self.head_dim * self.dtype_bytes

    @property
    def kv_bytes_per_token_layer(self) -> int:
        """K + V of one token in one layer."""
        return 2 * self.kv_row_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K + V of one token over all layers."""
        return self.layers * self.kv_bytes_per_token_layer

    # ---- weights -----------------------------------------------------------------------
    @property
    def attn_in_params(self) -> int:
        """Input RMSNorm and the Q, K, V projections of one layer (read before attention)."""
        return self.hidden + self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim

    @property
    def attn_out_mlp_params(self) -> int:
        """O projection, post-attention RMSNorm and the gated MLP (read after attention)."""
        return self.heads * self.head_dim * self.hidden + self.hidden + 3 * self.hidden * self.ffn

    @property
    def layer_params(self) -> int:
        return self.attn_in_params + self.attn_out_mlp_params

    @property
    def layer_weight_bytes(self) -> int:
        return self.layer_params * self.dtype_bytes

    @property
    def embedding_bytes(self) -> int:
        return self.vocab * self.hidden * self.dtype_bytes

    @property
    def params(self) -> int:
        """All parameters: layers, embedding, final norm, and lm_head unless tied."""
        head = 0 if self.tied_embeddings else self.vocab * self.hidden
        return self.layers * self.layer_params + self.vocab * self.hidden + self.hidden + head

    @property
    def weight_bytes(self) -> int:
        return self.params * self.dtype_bytes


MODELS: dict[str, ModelShape] = {m.name.lower(): m for m in (
    ModelShape("Llama-3-8B", layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128,
               ffn=14336, vocab=128256, max_context=8192),
    ModelShape("Llama-2-7B", layers=32, hidden=4096, heads=32, kv_heads=32, head_dim=128,
               ffn=11008, vocab=32000, max_context=4096),
    ModelShape("Yi-6B", layers=32, hidden=4096, heads=32, kv_heads=4, head_dim=128,
               ffn=11008, vocab=64000, max_context=4096),
    ModelShape("Yi-34B", layers=60, hidden=7168, heads=56, kv_heads=8, head_dim=128,
               ffn=20480, vocab=64000, max_context=4096),
    ModelShape("SmolLM2-135M", layers=30, hidden=576, heads=9, kv_heads=3, head_dim=64,
               ffn=1536, vocab=49152, max_context=8192, tied_embeddings=True),
)}


def get_model(name: str) -> ModelShape:
    """A preset by name, case-insensitively ("llama-3-8b", "Yi-6B")."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"model: unknown model {name!r}; presets: "
                         f"{', '.join(m.name for m in MODELS.values())}") from None
