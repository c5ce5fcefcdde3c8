"""Iteration time of one serving step, from a calibration file.

One engine iteration runs one forward pass over a batch that mixes prefill tokens (whole
prompts, or chunks of them) and decode tokens (one per running sequence)::

    t = step_fixed                                    scheduling, launches, sampling
      + dense(tokens, seqs)                           linear layers and lm_head
      + prefill_attention(pairs) * prefill_slowdown   causal attention over new tokens
      + decode_attention(ctx)    * decode_slowdown    reading every decode sequence's KV
      + swap bytes / PCIe bandwidth                   (swap preemption, when any)
      + allreduce(tokens)                             tensor parallelism of degree tp > 1
      [+ map calls * map_us_per_call, by the engine, for vAttention's synchronous mapping]

    dense            = max(weight_bytes / (hbm_bw * weight_bandwidth_efficiency),
                           2 * (layers * layer_params * tokens + vocab * hidden * seqs)
                             / (peak_flops * flops_efficiency))     roofline: decode steps are
                                                                     weight-streaming bound,
                                                                     big prefills FLOP bound
    prefill_attention = 4 * layers * heads * head_dim * pairs / (peak_flops * flops_efficiency)
                        pairs = sum over prefill chunks of c*s + c*(c+1)/2 (chunk of c tokens
                        at position s attends causally)
    decode_attention = ctx * kv_bytes_per_token / (hbm_bw * attention_bandwidth_efficiency)
                        ctx = tokens of KV read, summed over the decode sequences
    allreduce = 2 * layers * (allreduce_latency + 2 (tp - 1) / tp * tokens * hidden * dtype_bytes
                              / interconnect_bandwidth)
                        Megatron-LM's two all-reduces per layer (after attention, after the
                        MLP), ring algorithm: each GPU sends and receives 2 (tp-1)/tp of the
                        activations. With tp > 1 the model is one GPU's shard
                        (``models.tp_shard``): its weights, FLOPs and KV are 1/tp of the whole

``decode_slowdown``/``prefill_slowdown`` are 1 for contiguous KV (static reservation, and
vAttention's ``vattention_decode_slowdown``: 64 KiB pages do not slow the kernels [P]) and the
paged-kernel factors for PagedAttention (REFERENCE.md 2.1: 20-26% slower; 2.3).

Calibration file (JSON; ``published-<gpu>.json`` ship with simkit and say ``"kind":
"published"``; the GPU microbenchmark writes ``"kind": "measured"`` files of the same format)::

    {"format": "simkit-kv-calibration", "version": 1, "kind": "published" | "measured",
     "gpu": "H100-80GB", "description": "...", "machine": {...},
     "hbm_bandwidth_bytes_per_s": ..., "peak_fp16_flops": ..., "pcie_bandwidth_bytes_per_s": ...,
     "weight_bandwidth_efficiency": 0..1, "attention_bandwidth_efficiency": 0..1,
     "flops_efficiency": 0..1, "step_fixed_us": >= 0,
     "paged_decode_slowdown": > 0, "paged_prefill_slowdown": > 0,
     "vattention_decode_slowdown": > 0,
     "paged_kernel": "vllm-2023",  optional: a profile of ``kernels.py`` (then the two paged
                                   factors may be left out, and must equal it when given);
                                   "custom" (the default) takes the factors as written
     "map_us_per_call": >= 0,      one cuMemMap + cuMemSetAccess (one page, one K or V buffer)
     "unmap_us_per_call": >= 0,    one cuMemUnmap
     "interconnect_bandwidth_bytes_per_s": >= 0, optional (0: tensor parallelism refused):
                                   one GPU's NVLink bandwidth in one direction
     "allreduce_latency_us": >= 0, optional: the fixed cost of one all-reduce
     "vmm_by_page": {"64KiB": {"map_us_per_call": .., "unmap_us_per_call": ..}, ...}
                                   optional per-page-size costs (vAttention's 64-256 KiB pages
                                   go through its patched UVM driver, one ioctl per page);
                                   a page size not listed costs map_us_per_call/unmap_us_per_call
     "models": {"<model name>": {"dense_us": [[tokens, us], ...],
                                 "decode_attention_us": [[context_tokens, us], ...]}},  optional
     "sources": {"<field>": "where the number comes from"}}

``models`` holds measured curves for one model: where the run's model has one, it replaces the
roofline ``dense`` term (piecewise linear in tokens, extrapolated linearly) or the bandwidth
``decode_attention`` term (contiguous kernel; the slowdown factors still apply). A bad file is
an ``InputError`` naming the file and the field.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from simkit.errors import InputError
from simkit.kvpaging.kernels import CUSTOM, PAGED_KERNELS, kernel_profile
from simkit.kvpaging.models import ModelShape
from simkit.units import format_bytes, parse_size

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
FORMAT = "simkit-kv-calibration"
KINDS = ("published", "measured")
KERNELS = ("contiguous", "paged", "vattention")
# fields: (name, lower bound, upper bound or None, lower bound inclusive)
_NUMBERS = (("hbm_bandwidth_bytes_per_s", 0, None, False),
            ("peak_fp16_flops", 0, None, False),
            ("pcie_bandwidth_bytes_per_s", 0, None, False),
            ("weight_bandwidth_efficiency", 0, 1, False),
            ("attention_bandwidth_efficiency", 0, 1, False),
            ("flops_efficiency", 0, 1, False),
            ("step_fixed_us", 0, None, True),
            ("paged_decode_slowdown", 0, None, False),
            ("paged_prefill_slowdown", 0, None, False),
            ("vattention_decode_slowdown", 0, None, False),
            ("map_us_per_call", 0, None, True),
            ("unmap_us_per_call", 0, None, True))
_OPTIONAL = (("interconnect_bandwidth_bytes_per_s", 0.0), ("allreduce_latency_us", 0.0))
_CURVES = ("dense_us", "decode_attention_us")


@dataclass(frozen=True)
class Curve:
    """Piecewise-linear us(x) through measured points, extrapolated linearly past both ends."""

    x: tuple
    us: tuple

    def __call__(self, v: float) -> float:
        x, y = self.x, self.us
        if len(x) == 1:
            return y[0] * v / x[0] if x[0] else y[0]
        if v <= x[0]:
            i = 0
        elif v >= x[-1]:
            i = len(x) - 2
        else:
            return float(np.interp(v, x, y))
        return y[i] + (y[i + 1] - y[i]) * (v - x[i]) / (x[i + 1] - x[i])


@dataclass(frozen=True)
class Calibration:
    gpu: str
    kind: str
    hbm_bandwidth_bytes_per_s: float
    peak_fp16_flops: float
    pcie_bandwidth_bytes_per_s: float
    weight_bandwidth_efficiency: float
    attention_bandwidth_efficiency: float
    flops_efficiency: float
    step_fixed_us: float
    paged_decode_slowdown: float
    paged_prefill_slowdown: float
    vattention_decode_slowdown: float
    map_us_per_call: float
    unmap_us_per_call: float
    models: dict = field(default_factory=dict)     # model name (lower case) -> {curve: Curve}
    paged_kernel: str = CUSTOM
    interconnect_bandwidth_bytes_per_s: float = 0.0
    allreduce_latency_us: float = 0.0
    vmm_by_page: dict = field(default_factory=dict)  # page bytes -> (map us, unmap us) per call
    description: str = ""
    path: str = ""
    sources: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, where: str = "calibration") -> "Calibration":
        def bad(fld: str, why: str) -> InputError:
            return InputError(f"{where}: field {fld}: {why}")

        if not isinstance(d, dict):
            raise InputError(f"{where}: expected a JSON object")
        if d.get("format") != FORMAT:
            raise bad("format", f"expected {FORMAT!r}, got {d.get('format')!r}")
        if d.get("version") != 1:
            raise bad("version", f"expected 1, got {d.get('version')!r}")
        kind = d.get("kind")
        if kind not in KINDS:
            raise bad("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        gpu = d.get("gpu")
        if not isinstance(gpu, str) or not gpu:
            raise bad("gpu", f"expected a GPU name, got {gpu!r}")
        pk = d.get("paged_kernel", CUSTOM)
        if pk != CUSTOM and pk not in PAGED_KERNELS:
            raise bad("paged_kernel", f"unknown kernel {pk!r} (known: "
                                      f"{', '.join(PAGED_KERNELS)}, {CUSTOM})")
        prof = PAGED_KERNELS.get(pk)
        vals = {}
        for name, lo, hi, incl in _NUMBERS:
            if prof is not None and name in ("paged_decode_slowdown", "paged_prefill_slowdown"):
                want = getattr(prof, name.removeprefix("paged_"))
                if name in d and d[name] != want:
                    raise bad(name, f"{d[name]!r} differs from paged_kernel {pk!r} ({want}); "
                                    f"leave it out or set paged_kernel to {CUSTOM!r}")
                vals[name] = float(want)
                continue
            if name not in d:
                raise bad(name, "missing")
            v = d[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(name, f"expected a number, got {v!r}")
            if (v < lo if incl else v <= lo) or (hi is not None and v > hi):
                rng = (f">= {lo}" if incl else f"> {lo}") + ("" if hi is None else f" and <= {hi}")
                raise bad(name, f"must be {rng}, got {v!r}")
            vals[name] = float(v)
        for name, default in _OPTIONAL:
            v = d.get(name, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise bad(name, f"must be a number >= 0, got {v!r}")
            vals[name] = float(v)
        models = {}
        raw_models = d.get("models", {})
        if not isinstance(raw_models, dict):
            raise bad("models", "expected an object of model name -> curves")
        for mname, curves in raw_models.items():
            if not isinstance(curves, dict):
                raise bad(f"models.{mname}", "expected an object of curves")
            parsed = {}
            for cname, pts in curves.items():
                fld = f"models.{mname}.{cname}"
                if cname not in _CURVES:
                    raise bad(fld, f"unknown curve (known: {', '.join(_CURVES)})")
                if (not isinstance(pts, list) or not pts or not all(
                        isinstance(p, list) and len(p) == 2 and all(
                            isinstance(q, (int, float)) and not isinstance(q, bool)
                            and math.isfinite(q) and q >= 0 for q in p) for p in pts)):
                    raise bad(fld, "expected a non-empty list of [x, us] pairs of numbers >= 0")
                xs = [float(p[0]) for p in pts]
                if any(b <= a for a, b in zip(xs, xs[1:])):
                    raise bad(fld, "x values must be strictly increasing")
                parsed[cname] = Curve(tuple(xs), tuple(float(p[1]) for p in pts))
            models[mname.lower()] = parsed
        vmm = {}
        raw_vmm = d.get("vmm_by_page", {})
        if not isinstance(raw_vmm, dict):
            raise bad("vmm_by_page", "expected an object of page size -> call costs")
        for page, costs in raw_vmm.items():
            fld = f"vmm_by_page.{page}"
            try:
                pb = parse_size(page, fld)
            except ValueError:
                raise bad(fld, "not a page size (64KiB, 2MiB, ...)") from None
            if not isinstance(costs, dict) or set(costs) != {"map_us_per_call",
                                                              "unmap_us_per_call"}:
                raise bad(fld, "expected {\"map_us_per_call\": us, \"unmap_us_per_call\": us}")
            for k, v in costs.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) \
                        or not math.isfinite(v) or v < 0:
                    raise bad(f"{fld}.{k}", f"must be a number >= 0, got {v!r}")
            vmm[pb] = (float(costs["map_us_per_call"]), float(costs["unmap_us_per_call"]))
        sources = d.get("sources", {})
        if not isinstance(sources, dict):
            raise bad("sources", "expected an object of field -> source")
        desc = d.get("description", "")
        return cls(gpu=gpu, kind=kind, models=models, description=str(desc),
                   sources=dict(sources), paged_kernel=pk, vmm_by_page=vmm, **vals)

    def to_dict(self) -> dict:
        out = {"format": FORMAT, "version": 1, "kind": self.kind, "gpu": self.gpu,
               "description": self.description}
        for f in fields(self):
            if f.name not in ("gpu", "kind", "models", "description", "path", "sources",
                              "vmm_by_page"):
                out[f.name] = getattr(self, f.name)
        out["vmm_by_page"] = {format_bytes(p): {"map_us_per_call": m, "unmap_us_per_call": u}
                              for p, (m, u) in sorted(self.vmm_by_page.items())}
        out["models"] = {m: {c: [[x, y] for x, y in zip(cv.x, cv.us)] for c, cv in cs.items()}
                         for m, cs in self.models.items()}
        out["sources"] = dict(self.sources)
        return out

    def with_paged_kernel(self, name: str) -> "Calibration":
        """This calibration with the paged-kernel factors of profile ``name``
        (``kernels.PAGED_KERNELS``); ``ValueError`` for an unknown name."""
        import dataclasses

        prof = kernel_profile(name)
        src = dict(self.sources)
        src["paged_decode_slowdown"] = src["paged_prefill_slowdown"] = \
            f"paged_kernel {name}: {prof.source}"
        return dataclasses.replace(self, paged_kernel=name, sources=src,
                                   paged_decode_slowdown=prof.decode_slowdown,
                                   paged_prefill_slowdown=prof.prefill_slowdown)

    def vmm_us(self, page_bytes: int | None) -> tuple[float, float]:
        """(map, unmap) microseconds per call for pages of ``page_bytes``."""
        return self.vmm_by_page.get(page_bytes, (self.map_us_per_call, self.unmap_us_per_call))


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read a calibration file; ``InputError`` naming the file (and field) when it is bad."""
    path = Path(path)
    from simkit.atomic import check_input_kind
    check_input_kind(path)
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    cal = Calibration.from_dict(d, where=str(path))
    return Calibration(**{**{f.name: getattr(cal, f.name) for f in fields(cal)},
                          "path": str(path)})


def default_calibration_path(gpu_name: str) -> Path:
    return CALIBRATION_DIR / f"published-{gpu_name.lower()}.json"


def default_calibration(gpu_name: str) -> Calibration:
    """The shipped calibration from published numbers for a GPU preset."""
    path = default_calibration_path(gpu_name)
    if not path.exists():
        have = sorted(p.stem.removeprefix("published-") for p in CALIBRATION_DIR.glob("*.json"))
        raise InputError(f"gpu: no shipped calibration for {gpu_name!r} (have: "
                         f"{', '.join(have)}); pass --calibration FILE")
    return load_calibration(path)


class CostModel:
    """Iteration times of ``model`` under a calibration (module docstring).

    ``kernel``: "contiguous" (static reservation), "paged" (PagedAttention) or "vattention".
    ``page_bytes``: vAttention's page size, which picks the VMM call costs
    (``Calibration.vmm_us``).
    """

    def __init__(self, model: ModelShape, calibration: Calibration, kernel: str = "paged",
                 page_bytes: int | None = None, tensor_parallel: int = 1):
        if kernel not in KERNELS:
            raise ValueError(f"kernel: must be one of {', '.join(KERNELS)}, got {kernel!r}")
        c = calibration
        self.model, self.cal, self.kernel = model, c, kernel
        self.fixed_s = c.step_fixed_us * 1e-6
        self.weight_s = model.weight_bytes / (c.hbm_bandwidth_bytes_per_s
                                              * c.weight_bandwidth_efficiency)
        eff_flops = c.peak_fp16_flops * c.flops_efficiency
        self.s_per_token_flops = 2 * model.layers * model.layer_params / eff_flops
        self.s_per_seq_flops = 2 * model.vocab * model.hidden / eff_flops
        self.s_per_pair = 4 * model.layers * model.heads * model.head_dim / eff_flops
        self.s_per_ctx_token = model.kv_bytes_per_token / (c.hbm_bandwidth_bytes_per_s
                                                           * c.attention_bandwidth_efficiency)
        self.decode_slowdown = {"contiguous": 1.0, "paged": c.paged_decode_slowdown,
                                "vattention": c.vattention_decode_slowdown}[kernel]
        self.prefill_slowdown = c.paged_prefill_slowdown if kernel == "paged" else 1.0
        self.s_per_swap_byte = 1.0 / c.pcie_bandwidth_bytes_per_s
        map_us, unmap_us = c.vmm_us(page_bytes)
        self.map_s_per_call = map_us * 1e-6
        self.unmap_s_per_call = unmap_us * 1e-6
        tp = tensor_parallel
        self.allreduce_fixed_s = self.allreduce_s_per_token = 0.0
        if tp > 1:
            bw = c.interconnect_bandwidth_bytes_per_s
            if bw <= 0:
                raise InputError(f"tensor_parallel: calibration {c.path or c.gpu} has no "
                                 f"interconnect_bandwidth_bytes_per_s for the all-reduces")
            self.allreduce_fixed_s = 2 * model.layers * c.allreduce_latency_us * 1e-6
            self.allreduce_s_per_token = (2 * model.layers * 2 * (tp - 1) / tp * model.hidden
                                          * model.dtype_bytes / bw)
        curves = c.models.get(model.name.lower(), {})
        self.dense_curve = curves.get("dense_us")
        self.decode_curve = curves.get("decode_attention_us")

    def dense_s(self, tokens: int, seqs: int) -> float:
        if self.dense_curve is not None:
            return self.dense_curve(tokens) * 1e-6
        return max(self.weight_s, tokens * self.s_per_token_flops + seqs * self.s_per_seq_flops)

    def iteration_s(self, tokens: int, seqs: int, prefill_pairs: int = 0,
                    decode_ctx_tokens: int = 0, swap_bytes: int = 0) -> float:
        """Seconds of one iteration computing ``tokens`` tokens (prefill + decode) of ``seqs``
        sequences; ``prefill_pairs`` causal (query, key) pairs of the prefill chunks;
        ``decode_ctx_tokens`` tokens of KV read by decode attention; ``swap_bytes`` copied
        between host and device."""
        if tokens <= 0:
            return 0.0
        t = self.fixed_s + self.dense_s(tokens, seqs)
        if prefill_pairs:
            t += prefill_pairs * self.s_per_pair * self.prefill_slowdown
        if decode_ctx_tokens:
            base = (self.decode_curve(decode_ctx_tokens) * 1e-6 if self.decode_curve is not None
                    else decode_ctx_tokens * self.s_per_ctx_token)
            t += base * self.decode_slowdown
        if swap_bytes:
            t += swap_bytes * self.s_per_swap_byte
        if self.allreduce_fixed_s or self.allreduce_s_per_token:
            t += self.allreduce_fixed_s + tokens * self.allreduce_s_per_token
        return t

    def map_s(self, calls: int) -> float:
        return calls * self.map_s_per_call

    def unmap_s(self, calls: int) -> float:
        return calls * self.unmap_s_per_call


def prefill_pairs(start: int, n: int) -> int:
    """Causal (query, key) pairs of a chunk of ``n`` tokens at positions start..start+n-1."""
    return n * start + n * (n + 1) // 2


__all__ = ["CALIBRATION_DIR", "Calibration", "CostModel", "Curve", "default_calibration",
           "default_calibration_path", "load_calibration", "prefill_pairs"]
