"""GPU microbenchmarks: what the KV-paging and TLB simulators need to know about a real GPU.

    simkit bench gpu [--quick] [--only latency,tlb,...] [--outdir DIR] [--device N]
                     [--model NAME] [--from-rows DIR]

Without a CUDA device (or without torch) every benchmark is skipped with one line, e.g.
``simkit: bench gpu: skipped: no CUDA device (torch not installed)``, and the command exits 0
(``--require-gpu`` makes it exit 3 instead). torch and nvidia-ml-py are optional
(``pip install 'simkit[gpu]'``) and imported only inside the functions that measure.

**No measured GPU file exists yet**: simkit's developers have had no GPU. On a machine with one,
the whole measurement is one command (a few minutes on an H100/H200; it installs torch==2.13.0
and nvidia-ml-py only if they are missing, runs every microbenchmark with quick settings, and
writes the tables, plots, JSON files and the KV calibration under the given folder, ``$OUT`` by
default, plus one tarball of them)::

    bash benchmarks/gpu_check.sh [DIR]

Microbenchmarks (``BENCHES``; each gives a tidy table, a plot and a JSON document with the NVML
device description; columns in ``simkit.bench.gpu.rows.COLUMNS``, method text in
``rows.METHOD``; REFERENCE.md 5.3 for the method and the published numbers to compare with):

- ``info``: the device through NVML (pynvml): name, memory, SM/memory clocks and their maxima,
  clock-event (throttle) reasons, MIG mode, driver and CUDA driver version, PCI bus id, power
  limit, temperature; torch's device properties (SMs, L2 size, compute capability).
- ``latency``: memory latency ladder, one thread's fine-grained pointer chase (``clock64`` per
  load, Mei & Chu) over working sets from KiB to GiB: L1, L2 (near/far), HBM. The kernel is PTX
  loaded through the driver API with ctypes (``simkit.bench.gpu._cuda`` says why this, not
  ``load_inline``, cupy or Triton). Cycles are converted to ns with the NVML SM clock read
  around each launch; clocks are never locked.
- ``tlb``: GPU TLB reach: the chase with a 2 MiB stride over growing spans, data from L2
  (``ld.global.cg``); the steps give the L1 and L2 TLB reach (``rows.tlb_reach``), from which
  ``simkit.calibrate.gpu.gpu_tlb_preset`` builds an ``MMUConfig`` for ``simkit.tlb``.
- ``bandwidth``: device-to-device copy, bytes read + written per second.
- ``gemm``: the model's linear layers vs tokens, the lm_head, and a square bf16 matmul (the
  dense term of the KV cost model).
- ``attention``: one layer's decode and prefill attention, contiguous KV (torch SDPA) vs paged KV
  (a block-table gather before SDPA, and a Triton kernel reading through the block table, in
  order and shuffled), over batch sizes, context lengths and block sizes; CUDA events after
  warm-up, medians; each checked against SDPA.
- ``vmm``: CUDA virtual memory management latency per call for 2 MiB pages: cuMemAddressReserve,
  cuMemCreate, cuMemMap, cuMemSetAccess, cuMemUnmap, cuMemRelease, cuMemAddressFree (ctypes on
  libcuda.so).
- ``h2d``: pinned and pageable host <-> device copy bandwidth vs size (the storage-to-GPU path
  of the flash simulator, and the KV cost model's swap bandwidth).

Outputs in ``--outdir DIR``: ``gpu-<bench>.csv``, ``gpu-<bench>.png``, ``gpu-<bench>.json``
(``gpu-info.json`` and a field/value ``gpu-info.csv`` for the device),
``kv-calibration-measured.json`` (a ``kind: "measured"`` file for ``simkit kv run
--calibration FILE``, fitted by ``simkit.calibrate.gpu.kv_calibration``; fields no benchmark
measured are labelled ``NOT MEASURED`` in its ``sources``), ``gpu-tlb-preset.json`` (the
``MMUConfig``) and the validation plots (``simkit.experiments.gpu_validation``).
``--from-rows DIR`` rebuilds all of these from recorded tables on any machine.

Not measured by any of these: the serving engine's fixed per-step cost (``step_fixed_us``), and
whether the GPU's TLB associativity/replacement match the preset's assumptions
(``simkit.calibrate.gpu.gpu_tlb_preset``).
"""
from __future__ import annotations

import ctypes
import datetime as _dt
import importlib.util
import time
from pathlib import Path

import numpy as np

from simkit.bench.gpu import rows as R
from simkit.bench.gpu.rows import BENCHES, GiB, MiB, PAGE_2M

DEFAULT_MODEL = "Llama-2-7B"

QUICK = {
    "latency_sizes": [1 << k for k in range(12, 31)],               # 4 KiB .. 1 GiB
    "latency_ops": ("ca", "cg"),
    "tlb_max_span": 32 * GiB,
    "tlb_points_per_doubling": 2,
    "bandwidth_sizes": [64 * MiB, 256 * MiB, 1 * GiB, 4 * GiB],
    "gemm_tokens": [1, 8, 32, 128, 512, 2048, 8192],
    "decode_batches": [1, 8, 32],
    "decode_contexts": [512, 2048, 8192],
    "block_sizes": [16],
    "prefill_chunks": [512, 2048],
    "max_kv_tokens": 1 << 18,
    "vmm_pages": 256,
    "h2d_sizes": [1 << k for k in (12, 16, 20, 24, 28)],
    "reps": 20, "warmup": 5,
}
FULL = {
    "latency_sizes": sorted({int(round(2 ** (k / 4))) // 128 * 128 for k in range(48, 129)}),
    "latency_ops": ("ca", "cg"),
    "tlb_max_span": 64 * GiB,
    "tlb_points_per_doubling": 4,
    "bandwidth_sizes": [1 << k for k in range(20, 34)],
    "gemm_tokens": [1 << k for k in range(0, 15)],
    "decode_batches": [1, 4, 16, 64],
    "decode_contexts": [256, 1024, 4096, 16384],
    "block_sizes": [8, 16, 32, 64, 128],
    "prefill_chunks": [256, 1024, 4096],
    "max_kv_tokens": 1 << 20,
    "vmm_pages": 4096,
    "h2d_sizes": [1 << k for k in range(12, 31, 2)],
    "reps": 50, "warmup": 10,
}


class Skip(Exception):
    """A benchmark cannot run here; the message is the one-line reason."""


# ----------------------------------------------------------------------------------------------
# Is there a GPU?

def probe(device: int = 0) -> str | None:
    """``None`` when torch sees CUDA device ``device``; else the one-line reason why not."""
    if importlib.util.find_spec("torch") is None:
        return "no CUDA device (torch not installed)"
    import torch

    if not torch.cuda.is_available():
        return (f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is "
                f"False)")
    n = torch.cuda.device_count()
    if not 0 <= device < n:
        return f"no CUDA device {device} ({n} present)"
    return None


def _need_gpu(device: int) -> None:
    reason = probe(device)
    if reason:
        raise Skip(reason)


# ----------------------------------------------------------------------------------------------
# The device description

_EVENT_REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
                  0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
                  0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
                  0x100: "display_clock_setting"}


def decode_event_reasons(mask: int | None) -> list[str] | None:
    """NVML clock-event (throttle) reason bits -> names."""
    if mask is None:
        return None
    names = [n for bit, n in _EVENT_REASONS.items() if mask & bit]
    rest = mask & ~sum(_EVENT_REASONS)
    return names + ([f"0x{rest:x}"] if rest else [])


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


class _Nvml:
    """NVML through pynvml (nvidia-ml-py) for one device; every read is optional."""

    def __init__(self, device: int = 0, uuid: str | None = None):
        import pynvml

        self.nv = pynvml
        pynvml.nvmlInit()
        self.handle = None
        if uuid:
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                if _s(pynvml.nvmlDeviceGetUUID(h)).removeprefix("GPU-") == uuid.removeprefix(
                        "GPU-"):
                    self.handle = h
        if self.handle is None:
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(device)
        self.errors: dict = {}

    def get(self, key: str, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:       # NVMLError_NotSupported and friends: leave it out
            self.errors[key] = f"{type(exc).__name__}: {exc}"
            return None

    def sm_clock_mhz(self) -> int | None:
        return self.get("sm_clock", self.nv.nvmlDeviceGetClockInfo, self.handle,
                        self.nv.NVML_CLOCK_SM)

    def describe(self) -> dict:
        nv, h = self.nv, self.handle
        mem = self.get("memory", nv.nvmlDeviceGetMemoryInfo, h)
        reasons_fn = (getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
                      or nv.nvmlDeviceGetCurrentClocksThrottleReasons)
        reasons = self.get("clock_event_reasons", reasons_fn, h)
        mig = self.get("mig_mode", nv.nvmlDeviceGetMigMode, h)
        cc = self.get("compute_capability", nv.nvmlDeviceGetCudaComputeCapability, h)
        pci = self.get("pci", nv.nvmlDeviceGetPciInfo, h)
        power = self.get("power_limit", nv.nvmlDeviceGetPowerManagementLimit, h)
        clocks = {}
        for name, c in (("sm", nv.NVML_CLOCK_SM), ("memory", nv.NVML_CLOCK_MEM),
                        ("graphics", nv.NVML_CLOCK_GRAPHICS)):
            clocks[f"{name}_clock_mhz"] = self.get(f"{name}_clock", nv.nvmlDeviceGetClockInfo,
                                                   h, c)
            clocks[f"{name}_max_clock_mhz"] = self.get(f"{name}_max_clock",
                                                       nv.nvmlDeviceGetMaxClockInfo, h, c)
        cuda_v = self.get("cuda_driver_version", nv.nvmlSystemGetCudaDriverVersion)
        return {
            "name": _s(self.get("name", nv.nvmlDeviceGetName, h)),
            "uuid": _s(self.get("uuid", nv.nvmlDeviceGetUUID, h)),
            "pci_bus_id": _s(pci.busId) if pci is not None else None,
            "memory_total_bytes": mem.total if mem else None,
            "memory_free_bytes": mem.free if mem else None,
            "memory_used_bytes": mem.used if mem else None,
            **clocks,
            "clock_event_reasons_mask": reasons,
            "clock_event_reasons": decode_event_reasons(reasons),
            "mig_mode_current": mig[0] if mig else None,
            "mig_mode_pending": mig[1] if mig else None,
            "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
            "power_limit_w": power / 1000 if power else None,
            "temperature_c": self.get("temperature", nv.nvmlDeviceGetTemperature, h, 0),
            "persistence_mode": self.get("persistence_mode", nv.nvmlDeviceGetPersistenceMode,
                                         h),
            "driver_version": _s(self.get("driver_version", nv.nvmlSystemGetDriverVersion)),
            "cuda_driver_version": (f"{cuda_v // 1000}.{cuda_v % 1000 // 10}"
                                    if cuda_v else None),
            "nvml_version": _s(self.get("nvml_version", nv.nvmlSystemGetNVMLVersion)),
            "errors": dict(self.errors),
        }


def _nvml(device: int):
    """An ``_Nvml`` for the device torch calls ``device``, or ``(None, why)``."""
    if importlib.util.find_spec("pynvml") is None:
        return None, "pynvml not installed (pip install nvidia-ml-py)"
    try:
        import torch
        uuid = str(getattr(torch.cuda.get_device_properties(device), "uuid", "") or "")
    except Exception:
        uuid = ""
    try:
        return _Nvml(device, uuid or None), None
    except Exception as exc:
        return None, f"NVML: {type(exc).__name__}: {exc}"


def describe_gpu(device: int = 0) -> dict:
    """The device description written into every GPU calibration file (JSON-ready): NVML's
    (``nvml``; ``None`` with ``nvml_missing`` saying why), torch's device properties, the
    host (``simkit.bench.cpu.machine.describe_machine``) and the UTC date."""
    from simkit.bench.cpu.machine import describe_machine

    _need_gpu(device)
    import torch

    p = torch.cuda.get_device_properties(device)
    th = {"name": p.name, "total_memory_bytes": int(p.total_memory),
          "multi_processor_count": int(p.multi_processor_count),
          "compute_capability": f"{p.major}.{p.minor}",
          "l2_cache_bytes": int(getattr(p, "L2_cache_size", 0)) or None,
          "torch_version": torch.__version__, "torch_cuda_version": torch.version.cuda,
          "cudnn_version": torch.backends.cudnn.version()}
    nv, why = _nvml(device)
    desc = {"nvml": nv.describe() if nv else None, "torch": th, "device_index": device,
            "host": describe_machine(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if nv is None:
        desc["nvml_missing"] = why
    try:
        from simkit.bench.gpu._cuda import Driver
        v = Driver(device).driver_version()
        desc["cuda_driver_version"] = f"{v // 1000}.{v % 1000 // 10}"
    except Exception as exc:
        desc["cuda_driver_version"] = None
        desc["cuda_driver_error"] = str(exc)
    return desc


# ----------------------------------------------------------------------------------------------
# Timing

def _dev(device):
    """A torch device: ``cuda:N`` for an index (a string such as "cpu" is passed through, for
    dry runs of the set-up code on the CPU)."""
    import torch

    return torch.device(device if isinstance(device, str) else f"cuda:{device}")


def _time_ms(fn, reps: int, warmup: int) -> list[float]:
    """Milliseconds of ``fn()`` per repetition, by CUDA events, after ``warmup`` calls."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
          for _ in range(reps)]
    for a, b in ev:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    return [a.elapsed_time(b) for a, b in ev]


def _warm_clocks(device: int, seconds: float = 1.0) -> None:
    """Bring the clocks out of idle with ~``seconds`` of bf16 matmuls (never locks them)."""
    import torch

    a = torch.randn(4096, 4096, device=f"cuda:{device}", dtype=torch.bfloat16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------
# The pointer chase (latency ladder and TLB reach)

def _chase(driver, func, buf, start: int, warm: int, samples: int, cycles, sink, nvml):
    """One launch of the chase kernel; (cycles per load as numpy, SM clock MHz or None)."""
    import torch

    from simkit.bench.gpu._cuda import SAMPLES

    if not 1 <= samples <= SAMPLES:
        raise ValueError(f"samples: must be in 1..{SAMPLES}, got {samples}")
    c0 = nvml.sm_clock_mhz() if nvml else None
    driver.make_current()
    driver.launch(func, [ctypes.c_uint64(buf.data_ptr()), ctypes.c_uint64(start),
                         ctypes.c_uint(warm), ctypes.c_uint(samples),
                         ctypes.c_uint64(cycles.data_ptr()), ctypes.c_uint64(sink.data_ptr())])
    driver.synchronize()
    c1 = nvml.sm_clock_mhz() if nvml else None
    torch.cuda.synchronize()
    clocks = [c for c in (c0, c1) if c]
    return cycles[:samples].cpu().numpy().astype(float), (float(np.mean(clocks)) if clocks
                                                          else None)


def _chase_row(c: np.ndarray, mhz: float | None) -> dict:
    med = float(np.median(c))
    return {"cycles_median": med, "cycles_mean": float(c.mean()),
            "cycles_p10": float(np.percentile(c, 10)), "cycles_p90": float(np.percentile(c, 90)),
            "sm_clock_mhz": mhz, "ns_median": med / mhz * 1e3 if mhz else float("nan")}


def _link(buf, order_words: np.ndarray) -> None:
    """Write the cycle through ``order_words`` into the int64 device tensor ``buf``."""
    import torch

    pos, val = R.chain_values(order_words)
    dev = buf.device
    buf[torch.from_numpy(pos.astype(np.int64)).to(dev)] = \
        torch.from_numpy(val.astype(np.int64)).to(dev)
    torch.cuda.synchronize()


def measure_latency(sizes, *, ops=("ca", "cg"), stride_bytes: int = 128, seed: int = 0,
                    device: int = 0, samples: int | None = None, warm_cap: int = 1 << 20,
                    progress=None):
    """The latency ladder (module docstring); one row per (cache_op, working set)."""
    _need_gpu(device)
    import pandas as pd
    import torch

    from simkit.bench.gpu._cuda import SAMPLES, Driver, chase_functions

    samples = samples or SAMPLES
    drv = Driver(device)
    funcs, how = chase_functions(drv)
    nvml, _ = _nvml(device)
    dev = torch.device(f"cuda:{device}")
    sizes = sorted(int(s) for s in sizes)
    buf = torch.zeros(max(sizes) // 8 + 16, dtype=torch.int64, device=dev)
    cycles = torch.zeros(samples, dtype=torch.int64, device=dev)
    sink = torch.zeros(1, dtype=torch.int64, device=dev)
    rows = []
    for ws in sizes:
        order, n = R.latency_chase_words(ws, stride_bytes, seed)
        _link(buf, order)
        for op in ops:
            c, mhz = _chase(drv, funcs[f"chase_{op}"], buf, int(order[0]), min(n, warm_cap),
                            samples, cycles, sink, nvml)
            rows.append({"cache_op": op, "working_set_bytes": ws, "stride_bytes": stride_bytes,
                         "nodes": n, "samples": samples, **_chase_row(c, mhz)})
        if progress:
            progress(f"latency {R._fmt_bytes(ws)}: " + ", ".join(
                f"{r['cache_op']} {r['cycles_median']:.0f} c" for r in rows[-len(ops):]))
    del buf
    torch.cuda.empty_cache()
    df = pd.DataFrame(rows, columns=R.COLUMNS["latency"])
    df.attrs["kernel"] = how
    return df


def tlb_spans(max_span: int, points_per_doubling: int = 2, lo: int = 4 * MiB) -> list[int]:
    """Spans (multiples of 2 MiB) from ``lo`` to ``max_span``, ``points_per_doubling`` each."""
    out, k = set(), 0
    while True:
        s = int(round(lo * 2 ** (k / points_per_doubling) / PAGE_2M)) * PAGE_2M
        if s > max_span:
            break
        out.add(s)
        k += 1
    return sorted(out)


def measure_tlb(max_span: int, *, points_per_doubling: int = 2, op: str = "cg", seed: int = 0,
                device: int = 0, samples: int | None = None, progress=None):
    """GPU TLB reach (module docstring); one row per span. The span is capped at half the free
    device memory."""
    _need_gpu(device)
    import pandas as pd
    import torch

    from simkit.bench.gpu._cuda import SAMPLES, Driver, chase_functions

    samples = samples or SAMPLES
    drv = Driver(device)
    funcs, how = chase_functions(drv)
    nvml, _ = _nvml(device)
    free, _total = torch.cuda.mem_get_info(device)
    cap = min(int(max_span), free // 2) // PAGE_2M * PAGE_2M
    spans = tlb_spans(cap, points_per_doubling)
    dev = torch.device(f"cuda:{device}")
    buf = torch.empty(cap // 8, dtype=torch.int64, device=dev)
    cycles = torch.zeros(samples, dtype=torch.int64, device=dev)
    sink = torch.zeros(1, dtype=torch.int64, device=dev)
    rows = []
    for span in spans:
        pages = span // PAGE_2M
        order = R.tlb_chase_words(pages, seed)
        _link(buf, order)
        c, mhz = _chase(drv, funcs[f"chase_{op}"], buf, int(order[0]), 2 * pages, samples,
                        cycles, sink, nvml)
        rows.append({"cache_op": op, "span_bytes": span, "page_stride_bytes": PAGE_2M,
                     "pages": pages, "samples": samples, **_chase_row(c, mhz)})
        if progress:
            progress(f"tlb {R._fmt_bytes(span)}: {rows[-1]['cycles_median']:.0f} c")
    del buf
    torch.cuda.empty_cache()
    df = pd.DataFrame(rows, columns=R.COLUMNS["tlb"])
    df.attrs["kernel"] = how
    return df


# ----------------------------------------------------------------------------------------------
# Bandwidth, GEMM, host copies

def measure_bandwidth(sizes, *, reps: int = 20, warmup: int = 5, device: int = 0,
                      progress=None):
    _need_gpu(device)
    import pandas as pd
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    rows = []
    for size in sorted(int(s) for s in sizes):
        if 2 * size > free * 0.8:
            continue
        src = torch.empty(size // 4, dtype=torch.float32, device=f"cuda:{device}").uniform_()
        dst = torch.empty_like(src)
        ms = _time_ms(lambda: dst.copy_(src), reps, warmup)
        med = float(np.median(ms))
        rows.append({"size_bytes": size, "bytes_moved": 2 * size, "reps": reps,
                     "median_ms": med, "min_ms": float(min(ms)),
                     "bytes_per_s": 2 * size / (med * 1e-3)})
        src = dst = None          # free the device memory now
        if progress:
            progress(f"bandwidth {R._fmt_bytes(size)}: "
                     f"{rows[-1]['bytes_per_s'] / 1e9:.0f} GB/s")
    torch.cuda.empty_cache()
    return pd.DataFrame(rows, columns=R.COLUMNS["bandwidth"])


def measure_gemm(tokens, *, model: str = DEFAULT_MODEL, reps: int = 20, warmup: int = 5,
                 device: int = 0, square: int = 8192, progress=None):
    """One decoder layer's linear layers (QKV, O, gate+up, down) and the lm_head of ``model``
    at each token count, and a ``square``^3 matmul, in bf16 on random data."""
    _need_gpu(device)
    import pandas as pd
    import torch

    from simkit.kvpaging.models import get_model

    m = get_model(model)
    dev, bf = _dev(device), torch.bfloat16

    def w(k, n):
        return torch.randn(k, n, device=dev, dtype=bf) * 0.02

    qd, kvd = m.heads * m.head_dim, m.kv_heads * m.head_dim
    w_qkv, w_o = w(m.hidden, qd + 2 * kvd), w(qd, m.hidden)
    w_gu, w_d = w(m.hidden, 2 * m.ffn), w(m.ffn, m.hidden)
    w_head = w(m.hidden, m.vocab)
    layer_params = w_qkv.numel() + w_o.numel() + w_gu.numel() + w_d.numel()
    rows = []
    for t in sorted(int(x) for x in tokens):
        x = torch.randn(t, m.hidden, device=dev, dtype=bf)

        def layer():
            a = x @ w_qkv
            o = a[:, :qd] @ w_o
            g = o @ w_gu
            return g[:, :m.ffn] @ w_d

        for kind, fn, params in (("layer", layer, layer_params),
                                 ("lm_head", lambda: x @ w_head, w_head.numel())):
            us = float(np.median(_time_ms(fn, reps, warmup))) * 1e3
            rows.append({"kind": kind, "model": m.name, "tokens": t, "flops": 2 * t * params,
                         "weight_bytes": 2 * params, "reps": reps, "median_us": us,
                         "flops_per_s": 2 * t * params / (us * 1e-6)})
        if progress:
            progress(f"gemm {t} tokens: layer {rows[-2]['median_us']:.1f} us, lm_head "
                     f"{rows[-1]['median_us']:.1f} us")
    w_qkv = w_o = w_gu = w_d = w_head = None          # free the device memory now
    a = torch.randn(square, square, device=dev, dtype=bf)
    b = torch.randn(square, square, device=dev, dtype=bf)
    us = float(np.median(_time_ms(lambda: a @ b, max(5, reps // 2), warmup))) * 1e3
    f = 2 * square ** 3
    rows.append({"kind": "square", "model": "", "tokens": square, "flops": f,
                 "weight_bytes": 2 * square * square, "reps": max(5, reps // 2),
                 "median_us": us, "flops_per_s": f / (us * 1e-6)})
    if progress:
        progress(f"gemm {square}^3: {rows[-1]['flops_per_s'] / 1e12:.0f} TFLOP/s")
    a = b = None          # free the device memory now
    torch.cuda.empty_cache()
    return pd.DataFrame(rows, columns=R.COLUMNS["gemm"])


def measure_h2d(sizes, *, reps: int = 20, warmup: int = 5, device: int = 0, progress=None):
    """Host <-> device copies from pinned and pageable host memory."""
    _need_gpu(device)
    import pandas as pd
    import torch

    rows = []
    for size in sorted(int(s) for s in sizes):
        d = torch.empty(size, dtype=torch.uint8, device=f"cuda:{device}")
        for mem in ("pinned", "pageable"):
            h = torch.empty(size, dtype=torch.uint8, pin_memory=(mem == "pinned"))
            h.random_(0, 255)
            nb = mem == "pinned"
            for direction, fn in (("h2d", lambda: d.copy_(h, non_blocking=nb)),
                                  ("d2h", lambda: h.copy_(d, non_blocking=nb))):
                us = float(np.median(_time_ms(fn, reps, warmup))) * 1e3
                rows.append({"direction": direction, "host_memory": mem, "size_bytes": size,
                             "reps": reps, "median_us": us, "bytes_per_s": size / (us * 1e-6)})
            h = None          # free the device memory now
        d = None          # free the device memory now
        if progress:
            progress(f"h2d {R._fmt_bytes(size)}: pinned "
                     f"{rows[-4]['bytes_per_s'] / 1e9:.1f} GB/s")
    torch.cuda.empty_cache()
    return pd.DataFrame(rows, columns=R.COLUMNS["h2d"])


# ----------------------------------------------------------------------------------------------
# Attention: contiguous vs paged KV

def _rel_err(out, ref) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30))


def measure_attention(*, model: str = DEFAULT_MODEL, batches=(1, 8, 32),
                      contexts=(512, 2048, 8192), block_sizes=(16,), prefill_chunks=(512, 2048),
                      max_kv_tokens: int = 1 << 18, reps: int = 20, warmup: int = 5,
                      seed: int = 0, device: int = 0, progress=None):
    """One layer of ``model``'s attention in bf16 (module docstring). Decode: one query token
    per sequence over ``context`` tokens of KV, for batch x context up to ``max_kv_tokens``.
    Prefill: a causal prompt of ``chunk`` tokens (batch 1). Variants: sdpa-contiguous,
    paged-gather (per block size), triton-contiguous and triton-paged (per block size, where
    Triton is installed)."""
    _need_gpu(device)
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from simkit.kvpaging.models import get_model

    m = get_model(model)
    H, Hkv, D = m.heads, m.kv_heads, m.head_dim
    gqa = H != Hkv
    dev, bf = _dev(device), torch.bfloat16
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    try:
        from simkit.bench.gpu._triton import paged_decode
        triton_why = None
    except Exception as exc:      # Triton missing or broken: the gather variant remains
        paged_decode, triton_why = None, f"{type(exc).__name__}: {exc}"
    rows = []

    def row(phase, variant, batch, ctx, bs, ms, err, pairs=0):
        rows.append({"phase": phase, "variant": variant, "model": m.name, "batch": batch,
                     "context_tokens": ctx, "block_size": bs, "heads": H, "kv_heads": Hkv,
                     "head_dim": D, "kv_bytes": batch * ctx * m.kv_bytes_per_token_layer,
                     "pairs": pairs, "reps": reps, "median_us": float(np.median(ms)) * 1e3,
                     "min_us": float(min(ms)) * 1e3, "max_rel_err": err})

    def sdpa(q, k, v, causal=False):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    for batch in batches:
        for ctx in contexts:
            if batch * ctx > max_kv_tokens:
                continue
            q = torch.randn(batch, H, 1, D, device=dev, dtype=bf, generator=gen)
            k = torch.randn(batch, Hkv, ctx, D, device=dev, dtype=bf, generator=gen)
            v = torch.randn(batch, Hkv, ctx, D, device=dev, dtype=bf, generator=gen)
            ref = sdpa(q, k, v)
            row("decode", "sdpa-contiguous", batch, ctx, 0,
                _time_ms(lambda: sdpa(q, k, v), reps, warmup), 0.0)
            for bs in block_sizes:
                nb = -(-ctx // bs)
                # the pools hold the same K/V as k, v; in-order and shuffled block tables
                kp = torch.zeros(batch * nb * bs, Hkv, D, device=dev, dtype=bf)
                vp = torch.zeros_like(kp)
                seq_rows = (torch.arange(batch, device=dev)[:, None] * (nb * bs)
                            + torch.arange(ctx, device=dev)[None, :]).reshape(-1)
                kp[seq_rows] = k.transpose(1, 2).reshape(-1, Hkv, D)
                vp[seq_rows] = v.transpose(1, 2).reshape(-1, Hkv, D)
                kp, vp = kp.view(batch * nb, bs, Hkv, D), vp.view(batch * nb, bs, Hkv, D)
                in_order = torch.arange(batch * nb, device=dev, dtype=torch.int32).view(batch, nb)
                perm = torch.randperm(batch * nb, device=dev, generator=gen)
                inv = torch.empty_like(perm)
                inv[perm] = torch.arange(batch * nb, device=dev)
                kps, vps = torch.empty_like(kp), torch.empty_like(vp)
                kps[inv], vps[inv] = kp, vp         # block j moves to slot inv[j]
                shuffled = inv.to(torch.int32).view(batch, nb)

                def gathered():
                    bt = shuffled.long()
                    kk = kps[bt].reshape(batch, nb * bs, Hkv, D)[:, :ctx].transpose(1, 2)
                    vv = vps[bt].reshape(batch, nb * bs, Hkv, D)[:, :ctx].transpose(1, 2)
                    return sdpa(q, kk, vv)

                row("decode", "paged-gather", batch, ctx, bs,
                    _time_ms(gathered, reps, warmup), _rel_err(gathered(), ref))
                if paged_decode is not None:
                    q3 = q[:, :, 0].contiguous()
                    out = torch.empty_like(q3)
                    for variant, (kk, vv, bt) in (("triton-contiguous", (kp, vp, in_order)),
                                                  ("triton-paged", (kps, vps, shuffled))):
                        def fn(kk=kk, vv=vv, bt=bt):
                            return paged_decode(q3, kk, vv, bt, ctx, out)
                        err = _rel_err(fn(), ref[:, :, 0])
                        row("decode", variant, batch, ctx, bs, _time_ms(fn, reps, warmup), err)
                kp = vp = kps = vps = None          # free the device memory now
            q = k = v = None          # free the device memory now
            if progress:
                progress(f"attention decode batch {batch} context {ctx}: " + ", ".join(
                    f"{r['variant']}{'/' + str(r['block_size']) if r['block_size'] else ''} "
                    f"{r['median_us']:.0f} us" for r in rows
                    if r["batch"] == batch and r["context_tokens"] == ctx
                    and r["phase"] == "decode"))
    for chunk in prefill_chunks:
        q = torch.randn(1, H, chunk, D, device=dev, dtype=bf, generator=gen)
        k = torch.randn(1, Hkv, chunk, D, device=dev, dtype=bf, generator=gen)
        v = torch.randn(1, Hkv, chunk, D, device=dev, dtype=bf, generator=gen)
        pairs = chunk * (chunk + 1) // 2
        ref = sdpa(q, k, v, causal=True)
        row("prefill", "sdpa-contiguous", 1, chunk, 0,
            _time_ms(lambda: sdpa(q, k, v, True), reps, warmup), 0.0, pairs)
        for bs in block_sizes:
            nb = -(-chunk // bs)
            perm = torch.randperm(nb, device=dev, generator=gen)
            kp = torch.zeros(nb * bs, Hkv, D, device=dev, dtype=bf)
            vp = torch.zeros_like(kp)
            kp[:chunk], vp[:chunk] = k[0].transpose(0, 1), v[0].transpose(0, 1)
            kp, vp = kp.view(nb, bs, Hkv, D)[perm], vp.view(nb, bs, Hkv, D)[perm]
            inv = torch.empty_like(perm)
            inv[perm] = torch.arange(nb, device=dev)

            def gathered():
                kk = kp[inv].reshape(1, nb * bs, Hkv, D)[:, :chunk].transpose(1, 2)
                vv = vp[inv].reshape(1, nb * bs, Hkv, D)[:, :chunk].transpose(1, 2)
                return sdpa(q, kk, vv, True)

            row("prefill", "paged-gather", 1, chunk, bs, _time_ms(gathered, reps, warmup),
                _rel_err(gathered(), ref), pairs)
        if progress:
            progress(f"attention prefill {chunk}: " + ", ".join(
                f"{r['variant']} {r['median_us']:.0f} us" for r in rows
                if r["phase"] == "prefill" and r["context_tokens"] == chunk))
        q = k = v = None          # free the device memory now
    torch.cuda.empty_cache()
    df = pd.DataFrame(rows, columns=R.COLUMNS["attention"])
    df.attrs["triton"] = triton_why or "used"
    return df


# ----------------------------------------------------------------------------------------------
# CUDA virtual memory management

def measure_vmm(pages: int = 256, *, device: int = 0, progress=None):
    """Latency per call of the VMM driver calls for ``pages`` pages of the allocation
    granularity (2 MiB on current GPUs): a host wall clock around each call."""
    _need_gpu(device)
    import pandas as pd
    import torch

    from simkit.bench.gpu._cuda import Driver

    torch.cuda.init()
    drv = Driver(device)
    prop = drv.alloc_prop()
    gran = drv.granularity(prop)
    page = -(-PAGE_2M // gran) * gran
    size = pages * page
    c = ctypes
    times: dict[str, list[float]] = {k: [] for k in (
        "cuMemAddressReserve", "cuMemCreate", "cuMemMap", "cuMemSetAccess", "cuMemUnmap",
        "cuMemRelease", "cuMemAddressFree")}

    def timed(name, *args):
        t0 = time.perf_counter_ns()
        drv.call(name, *args)
        times[name].append((time.perf_counter_ns() - t0) / 1e3)

    va = c.c_uint64()
    timed("cuMemAddressReserve", c.byref(va), c.c_size_t(size), c.c_size_t(page),
          c.c_uint64(0), c.c_uint64(0))
    desc = drv.access_desc()
    handles = []
    try:
        for i in range(pages):
            h = c.c_uint64()
            timed("cuMemCreate", c.byref(h), c.c_size_t(page), c.byref(prop), c.c_uint64(0))
            handles.append(h)
            ptr = c.c_uint64(va.value + i * page)
            timed("cuMemMap", ptr, c.c_size_t(page), c.c_size_t(0), h, c.c_uint64(0))
            timed("cuMemSetAccess", ptr, c.c_size_t(page), c.byref(desc), c.c_size_t(1))
        # the mapping works: write every byte of it once
        drv.call("cuMemsetD8_v2", c.c_uint64(va.value), c.c_ubyte(7), c.c_size_t(size))
        drv.synchronize()
        for i, h in enumerate(handles):
            timed("cuMemUnmap", c.c_uint64(va.value + i * page), c.c_size_t(page))
            timed("cuMemRelease", h)
        handles = []
    finally:
        for i, h in enumerate(handles):       # after a failure: give everything back
            drv.lib.cuMemUnmap(c.c_uint64(va.value + i * page), c.c_size_t(page))
            drv.lib.cuMemRelease(h)
        timed("cuMemAddressFree", c.c_uint64(va.value), c.c_size_t(size))
    rows = []
    for name, ts in times.items():
        a = np.asarray(ts)
        rows.append({"call": name, "page_bytes": page if name not in (
            "cuMemAddressReserve", "cuMemAddressFree") else size, "calls": len(a),
            "mean_us": float(a.mean()), "p50_us": float(np.percentile(a, 50)),
            "p99_us": float(np.percentile(a, 99)), "min_us": float(a.min()),
            "max_us": float(a.max())})
    if progress:
        progress("vmm: " + ", ".join(f"{r['call']} {r['mean_us']:.1f} us" for r in rows))
    df = pd.DataFrame(rows, columns=R.COLUMNS["vmm"])
    df.attrs["granularity_bytes"] = gran
    return df


# ----------------------------------------------------------------------------------------------
# All of them

def measure(bench: str, settings: dict, *, device: int = 0, model: str = DEFAULT_MODEL,
            seed: int = 0, progress=None):
    """Run one microbenchmark (not ``info``) with ``settings`` (``QUICK`` or ``FULL``)."""
    s = settings
    if bench == "latency":
        return measure_latency(s["latency_sizes"], ops=s["latency_ops"], seed=seed,
                               device=device, progress=progress)
    if bench == "tlb":
        return measure_tlb(s["tlb_max_span"], points_per_doubling=s["tlb_points_per_doubling"],
                           seed=seed, device=device, progress=progress)
    if bench == "bandwidth":
        return measure_bandwidth(s["bandwidth_sizes"], reps=s["reps"], warmup=s["warmup"],
                                 device=device, progress=progress)
    if bench == "gemm":
        return measure_gemm(s["gemm_tokens"], model=model, reps=s["reps"], warmup=s["warmup"],
                            device=device, progress=progress)
    if bench == "attention":
        return measure_attention(model=model, batches=s["decode_batches"],
                                 contexts=s["decode_contexts"], block_sizes=s["block_sizes"],
                                 prefill_chunks=s["prefill_chunks"],
                                 max_kv_tokens=s["max_kv_tokens"], reps=s["reps"],
                                 warmup=s["warmup"], seed=seed, device=device,
                                 progress=progress)
    if bench == "vmm":
        return measure_vmm(s["vmm_pages"], device=device, progress=progress)
    if bench == "h2d":
        return measure_h2d(s["h2d_sizes"], reps=s["reps"], warmup=s["warmup"], device=device,
                           progress=progress)
    raise ValueError(f"bench: unknown {bench!r}; choose from {', '.join(BENCHES)}")


def run(benches=BENCHES, *, quick: bool = True, device: int = 0, model: str = DEFAULT_MODEL,
        seed: int = 0, progress=None) -> tuple[dict, dict, dict]:
    """Measure ``benches``: ``(device description, {bench: DataFrame}, {bench: error line})``.
    A benchmark that fails is reported in the third dict and the others still run.
    ``Skip`` (one-line reason) when there is no CUDA device."""
    _need_gpu(device)
    settings = QUICK if quick else FULL
    desc = describe_gpu(device)
    _warm_clocks(device)
    tables, failures = {}, {}
    for b in benches:
        if b == "info":
            continue
        t0 = time.perf_counter()
        try:
            tables[b] = measure(b, settings, device=device, model=model, seed=seed,
                                progress=progress)
            tables[b].attrs["seconds"] = round(time.perf_counter() - t0, 2)
        except Skip as exc:
            failures[b] = f"skipped: {exc}"
        except Exception as exc:          # one failing benchmark must not lose the others
            failures[b] = f"failed: {type(exc).__name__}: {exc}"
    desc["settings"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    desc["quick"] = quick
    return desc, tables, failures


def write_tables(device_desc: dict, tables: dict, outdir) -> list[Path]:
    """Write every table (CSV), plot (PNG) and JSON document under ``outdir``. Returns the
    paths written. (``simkit.calibrate.gpu.write_results`` adds the KV calibration and the
    GPU TLB preset fitted from them.)"""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = [R.write_json(R.bench_document("info", None, device_desc),
                                  outdir / "gpu-info.json")]
    if device_desc:
        import pandas as pd

        flat = [{"source": src, "field": k, "value": v}
                for src in ("nvml", "torch") for k, v in ((device_desc.get(src) or {}).items())
                if not isinstance(v, (dict, list))]
        pd.DataFrame(flat, columns=["source", "field", "value"]).to_csv(
            outdir / "gpu-info.csv", index=False)
        written.append(outdir / "gpu-info.csv")
    title = f"({R.device_name(device_desc)})"
    for b, df in tables.items():
        csv = outdir / f"gpu-{b}.csv"
        df.to_csv(csv, index=False)
        settings = {k: v for k, v in df.attrs.items() if isinstance(v, (int, float, str))}
        written += [csv,
                    R.write_json(R.bench_document(b, df, device_desc, settings),
                                       outdir / f"gpu-{b}.json")]
        R.plot(b, df, outdir / f"gpu-{b}.png", title_device=title)
        written.append(outdir / f"gpu-{b}.png")
    return written


def read_results(indir) -> tuple[dict, dict]:
    """``(device description, {bench: DataFrame})`` from a folder ``write_results`` wrote (or
    recorded rows in the same layout); ``InputError`` naming the file when one is bad."""
    import json

    import pandas as pd

    from simkit.errors import InputError

    indir = Path(indir)
    if not indir.is_dir():
        raise InputError(f"--from-rows {indir}: not a directory")
    desc = {}
    info = indir / "gpu-info.json"
    if info.exists():
        try:
            desc = json.loads(info.read_text()).get("device") or {}
        except json.JSONDecodeError as exc:
            raise InputError(f"{info}: not JSON (line {exc.lineno}: {exc.msg})") from None
    tables = {}
    for b in BENCHES[1:]:
        p = indir / f"gpu-{b}.csv"
        if p.exists():
            try:
                df = pd.read_csv(p)
            except Exception as exc:
                raise InputError(f"{p}: not a readable CSV table ({exc})") from None
            try:
                R.check_rows(b, df)
            except InputError as exc:
                raise InputError(f"{p}: {exc}") from None
            tables[b] = df
    if not tables:
        raise InputError(f"--from-rows {indir}: no gpu-<bench>.csv tables "
                         f"({', '.join(BENCHES[1:])})")
    return desc, tables


__all__ = ["BENCHES", "FULL", "QUICK", "Skip", "describe_gpu", "measure", "measure_attention",
           "measure_bandwidth", "measure_gemm", "measure_h2d", "measure_latency", "measure_tlb",
           "measure_vmm", "probe", "read_results", "run", "tlb_spans", "write_tables"]
