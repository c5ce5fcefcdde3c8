"""LLM shapes: the numbers that size weights and the KV cache.

A ``ModelShape`` is a decoder-only transformer of the Llama family (pre-norm RMSNorm, grouped-query
attention with ``kv_heads`` K/V heads, gated SwiGLU MLP of three ``hidden x ffn`` matrices, no
biases), or, with ``gated_mlp=False``, of the OPT family (multi-head attention, an MLP of two
``hidden x ffn`` matrices; OPT's biases, LayerNorm shifts and learned positions, ~0.1% of its
parameters, are left out). Per token and layer the KV cache holds one K and one V row of
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
    gated_mlp: bool = True          # SwiGLU (gate, up, down); False: OPT's fc1, fc2

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: must be a non-empty string, got {self.name!r}")
        for f in fields(self):
            if f.name in ("name", "tied_embeddings", "gated_mlp"):
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{f.name}: must be a positive integer, got {v!r}")
        if self.heads % self.kv_heads:
            raise ValueError(f"kv_heads: must divide heads ({self.heads}), got {self.kv_heads}")
        for name in ("tied_embeddings", "gated_mlp"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be a bool, got {getattr(self, name)!r}")

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

    @property
    def mlp_matrices(self) -> int:
        """``hidden x ffn`` matrices of one MLP: 3 gated (SwiGLU), 2 plain (OPT)."""
        return 3 if self.gated_mlp else 2

    # ---- weights -----------------------------------------------------------------------
    @property
    def attn_in_params(self) -> int:
        """Input RMSNorm and the Q, K, V projections of one layer (read before attention)."""
        return self.hidden + self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim

    @property
    def attn_out_mlp_params(self) -> int:
        """O projection, post-attention norm and the MLP (read after attention)."""
        return (self.heads * self.head_dim * self.hidden + self.hidden
                + self.mlp_matrices * self.hidden * self.ffn)

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
    ModelShape("Llama-3-70B", layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128,
               ffn=28672, vocab=128256, max_context=8192),
    ModelShape("Yi-34B", layers=60, hidden=7168, heads=56, kv_heads=8, head_dim=128,
               ffn=20480, vocab=64000, max_context=4096),
    ModelShape("SmolLM2-135M", layers=30, hidden=576, heads=9, kv_heads=3, head_dim=64,
               ffn=1536, vocab=49152, max_context=8192, tied_embeddings=True),
    # PagedAttention's evaluation models (facebook/opt-*/config.json: hidden_size,
    # num_attention_heads, num_hidden_layers, ffn_dim, vocab_size, max_position_embeddings
    # 2048; lm_head tied to the embedding). OPT-13B: 800 KB of KV per token (REFERENCE 2.1).
    ModelShape("OPT-13B", layers=40, hidden=5120, heads=40, kv_heads=40, head_dim=128,
               ffn=20480, vocab=50272, max_context=2048, tied_embeddings=True, gated_mlp=False),
    ModelShape("OPT-66B", layers=64, hidden=9216, heads=72, kv_heads=72, head_dim=128,
               ffn=36864, vocab=50272, max_context=2048, tied_embeddings=True, gated_mlp=False),
    ModelShape("OPT-175B", layers=96, hidden=12288, heads=96, kv_heads=96, head_dim=128,
               ffn=49152, vocab=50272, max_context=2048, tied_embeddings=True, gated_mlp=False),
)}


def tp_shard(model: ModelShape, tp: int) -> ModelShape:
    """One GPU's share of ``model`` under tensor parallelism of degree ``tp`` (Megatron-LM /
    vLLM): attention heads, KV heads and the MLP's ``ffn`` columns split ``tp`` ways, the
    vocabulary (embedding, lm_head) split ``tp`` ways (padded up); KV heads fewer than ``tp``
    are replicated (one per GPU, as vLLM does). Norms stay whole. ``tp`` = 1: ``model``."""
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ValueError(f"tensor_parallel: must be an integer >= 1, got {tp!r}")
    if tp == 1:
        return model
    if model.heads % tp or model.ffn % tp:
        raise ValueError(f"tensor_parallel: {tp} does not divide {model.name}'s {model.heads} "
                         f"heads and {model.ffn} ffn columns")
    if model.kv_heads % tp and tp % model.kv_heads:
        raise ValueError(f"tensor_parallel: {tp} neither divides nor is a multiple of "
                         f"{model.name}'s {model.kv_heads} KV heads")
    from dataclasses import replace

    return replace(model, name=f"{model.name}/tp{tp}", heads=model.heads // tp,
                   kv_heads=max(1, model.kv_heads // tp), ffn=model.ffn // tp,
                   vocab=-(-model.vocab // tp))


def get_model(name: str) -> ModelShape:
    """A preset by name, case-insensitively ("llama-3-8b", "Yi-6B")."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"model: unknown model {name!r}; presets: "
                         f"{', '.join(m.name for m in MODELS.values())}") from None
