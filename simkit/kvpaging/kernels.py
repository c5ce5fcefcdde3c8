"""Attention-kernel profiles: how much slower a paged KV layout makes attention than the
contiguous kernel of the same family. A calibration names one (``"paged_kernel"``) or gives
its own factors (``"custom"``); ``kv run --paged-kernel NAME`` and the sweep key
``paged_kernel`` switch it. Every factor is a published figure (REFERENCE.md 2.1-2.3), not a
measurement; ``simkit bench gpu`` measures the paged decode factor where a GPU is present.

    name               decode  prefill  source
    contiguous         1.00    1.00     no paged layout (upper bound: vAttention's claim that
                                        a contiguous kernel needs no block tables)
    vllm-2023          1.23    1.00     PagedAttention (SOSP 2023) Fig. 18a: vLLM's paged decode
                                        kernel 20-26% slower than FasterTransformer's (midpoint);
                                        prefill ran a contiguous kernel over the new tokens
    vllm-vs-fa2        2.80    1.00     vAttention (ASPLOS 2025) Table 7: vLLM's paged decode
                                        kernel up to 2.8x slower than FlashAttention-2's decode
                                        (the upper end: long contexts)
    fa2-paged          1.00    1.37     vAttention Fig. 2: FlashAttention-2's paged prefill up to
                                        37% slower; its paged decode on par with the contiguous one
    flashinfer-paged   1.00    1.42     vAttention Fig. 2: FlashInfer's paged prefill up to 42%
                                        slower; decode on par

"up to" figures are the papers' worst case (long contexts); the profile applies them to every
attention call, so a run with short prompts overstates the slowdown: say so beside a result.
vAttention runs the contiguous kernel of the same family (``vattention_decode_slowdown``, 1:
64 KiB pages do not slow the kernels [P]).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelProfile:
    name: str
    decode_slowdown: float
    prefill_slowdown: float
    source: str


PAGED_KERNELS = {k.name: k for k in (
    KernelProfile("contiguous", 1.0, 1.0,
                  "no paged layout: the contiguous kernel (vAttention's premise)"),
    KernelProfile("vllm-2023", 1.23, 1.0,
                  "PagedAttention (SOSP 2023) Fig. 18a: paged decode kernel 20-26% slower than "
                  "FasterTransformer's, midpoint 1.23; prefill on contiguous Q/K/V "
                  "(REFERENCE.md 2.1)"),
    KernelProfile("vllm-vs-fa2", 2.8, 1.0,
                  "vAttention (ASPLOS 2025) Table 7: vLLM paged decode up to 2.8x slower than "
                  "FlashAttention-2 decode (REFERENCE.md 2.3)"),
    KernelProfile("fa2-paged", 1.0, 1.37,
                  "vAttention (ASPLOS 2025) Fig. 2: FlashAttention-2 paged prefill up to 37% "
                  "slower; paged decode on par (REFERENCE.md 2.2, 2.3)"),
    KernelProfile("flashinfer-paged", 1.0, 1.42,
                  "vAttention (ASPLOS 2025) Fig. 2: FlashInfer paged prefill up to 42% slower; "
                  "paged decode on par (REFERENCE.md 2.2, 2.3)"),
)}
CUSTOM = "custom"


def kernel_profile(name: str) -> KernelProfile:
    """The profile called ``name``; ``ValueError`` naming the known ones."""
    try:
        return PAGED_KERNELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"paged_kernel: unknown kernel {name!r} (known: "
                         f"{', '.join(PAGED_KERNELS)}, or {CUSTOM} with your own "
                         f"factors)") from None


__all__ = ["CUSTOM", "KernelProfile", "PAGED_KERNELS", "kernel_profile"]
