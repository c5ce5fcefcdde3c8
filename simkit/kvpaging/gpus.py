"""GPU presets and the KV-cache capacity of one model replica on one GPU.

Numbers are from NVIDIA's datasheets (dense FP16/BF16 Tensor Core peak: the datasheets print the
2:4-sparsity figure, twice the dense one, with a footnote)::

    H100-80GB (SXM5)  NVIDIA H100 Tensor Core GPU datasheet (2023): 80 GB HBM3, 3.35 TB/s,
                      FP16 Tensor Core 1,979 TFLOPS with sparsity -> 989.4 dense,
                      PCIe Gen5 128 GB/s (both directions together)
    A100-80GB (SXM4)  NVIDIA A100 Tensor Core GPU datasheet (2021): 80 GB HBM2e, 2,039 GB/s,
                      FP16 Tensor Core 624 TFLOPS with sparsity -> 312 dense,
                      PCIe Gen4 64 GB/s (both directions together)
    A100-40GB (SXM4)  same datasheet, A100 40GB SXM column: 40 GB HBM2, 1,555 GB/s, FP16 312
                      dense, PCIe Gen4 — the GPU of PagedAttention's OPT-13B runs (REFERENCE 2.1)

``memory_bytes`` is the total the driver reports for the "80 GB" parts (``cudaMemGetInfo`` /
nvidia-smi: 81,559 MiB on H100 SXM5, 81,920 MiB on A100-SXM4-80GB) — the figure vLLM multiplies
by ``gpu_memory_utilization``; the A100-40GB's 40,960 MiB is its nominal 40 GiB. These driver
totals are recollections, not datasheet numbers ([U] in REFERENCE.md's terms); the GPU microbenchmark writes the measured total (NVML) into its
calibration file.

KV capacity (vLLM's ``determine_num_available_blocks``, simplified)::

    kv_capacity = memory_bytes * gpu_memory_utilization      (vLLM default 0.9, REFERENCE 2.1)
                  - model.weight_bytes
                  - activation_reserve(model, max_num_batched_tokens, max_num_seqs)

vLLM measures the activation peak with a profiling forward pass of ``max_num_batched_tokens``
tokens; simkit estimates it (documented assumption, not a measurement) as the live tensors of one
layer for that many tokens plus the fp32 logits of one token per sequence plus a fixed 1 GiB of
non-PyTorch memory (CUDA context, cuBLAS workspace, CUDA graphs)::

    per token: residual + attention output (2 * hidden) + Q/K/V ((heads + 2 * kv_heads) * head_dim)
               + MLP intermediates (mlp_matrices * ffn: gate, up, activation; OPT: fc1, activation),
               each dtype_bytes
    activation_reserve = max_num_batched_tokens * per_token + max_num_seqs * vocab * 4 + 1 GiB
"""
from __future__ import annotations

from dataclasses import dataclass

from simkit.kvpaging.models import ModelShape

MiB = 1 << 20
GiB = 1 << 30
GPU_MEMORY_UTILIZATION = 0.9          # vLLM default (REFERENCE.md 2.1)
NON_TORCH_RESERVE_BYTES = 1 * GiB     # assumption (see the module docstring)


@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_bytes: int
    hbm_bandwidth_bytes_per_s: float
    peak_fp16_flops: float            # dense
    pcie_bandwidth_bytes_per_s: float  # one direction (host <-> device copies for swap)
    source: str = ""

    def __post_init__(self):
        for f in ("memory_bytes", "hbm_bandwidth_bytes_per_s", "peak_fp16_flops",
                  "pcie_bandwidth_bytes_per_s"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"{f}: must be a positive number, got {v!r}")


GPUS: dict[str, GPUSpec] = {g.name.lower(): g for g in (
    GPUSpec("H100-80GB", memory_bytes=81559 * MiB, hbm_bandwidth_bytes_per_s=3.35e12,
            peak_fp16_flops=989.4e12, pcie_bandwidth_bytes_per_s=64e9,
            source="NVIDIA H100 Tensor Core GPU datasheet (SXM5): 80 GB HBM3, 3.35 TB/s, "
                   "1,979 TFLOPS FP16 with sparsity (989.4 dense), PCIe Gen5 128 GB/s"),
    GPUSpec("A100-80GB", memory_bytes=81920 * MiB, hbm_bandwidth_bytes_per_s=2.039e12,
            peak_fp16_flops=312e12, pcie_bandwidth_bytes_per_s=32e9,
            source="NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): 80 GB HBM2e, "
                   "2,039 GB/s, 624 TFLOPS FP16 with sparsity (312 dense), PCIe Gen4 64 GB/s"),
    GPUSpec("A100-40GB", memory_bytes=40960 * MiB, hbm_bandwidth_bytes_per_s=1.555e12,
            peak_fp16_flops=312e12, pcie_bandwidth_bytes_per_s=32e9,
            source="NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB): 40 GB HBM2, "
                   "1,555 GB/s, 624 TFLOPS FP16 with sparsity (312 dense), PCIe Gen4 64 GB/s"),
)}


def get_gpu(name: str) -> GPUSpec:
    """A preset by name, case-insensitively ("h100-80gb", "A100-80GB"; "H100"/"A100" too)."""
    key = name.lower()
    if key in ("h100", "a100"):
        key += "-80gb"
    try:
        return GPUS[key]
    except KeyError:
        raise ValueError(f"gpu: unknown GPU {name!r}; presets: "
                         f"{', '.join(g.name for g in GPUS.values())}") from None


def activation_reserve_bytes(model: ModelShape, max_num_batched_tokens: int,
                             max_num_seqs: int) -> int:
    """The estimate of the module docstring."""
    per_token = (2 * model.hidden + (model.heads + 2 * model.kv_heads) * model.head_dim
                 + model.mlp_matrices * model.ffn) * model.dtype_bytes
    return (max_num_batched_tokens * per_token + max_num_seqs * model.vocab * 4
            + NON_TORCH_RESERVE_BYTES)


def kv_capacity_bytes(gpu: GPUSpec, model: ModelShape, *, max_num_batched_tokens: int = 8192,
                      max_num_seqs: int = 256,
                      gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION) -> int:
    """Device bytes left for the KV cache (module docstring). ``ValueError`` when the model does
    not fit."""
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization: must be in (0, 1], got "
                         f"{gpu_memory_utilization!r}")
    cap = (int(gpu.memory_bytes * gpu_memory_utilization) - model.weight_bytes
           - activation_reserve_bytes(model, max_num_batched_tokens, max_num_seqs))
    if cap < model.kv_bytes_per_token:
        raise ValueError(f"gpu: {model.name} ({model.weight_bytes / GiB:.1f} GiB of weights) "
                         f"leaves no KV memory on {gpu.name}")
    return cap


__all__ = ["GPUS", "GPUSpec", "GPU_MEMORY_UTILIZATION", "activation_reserve_bytes", "get_gpu",
           "kv_capacity_bytes"]
