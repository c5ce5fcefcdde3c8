"""The CUDA driver API through ctypes, and the pointer-chase kernel it loads.

Nothing here imports torch. Loading ``libcuda.so.1`` is the only requirement at run time, so the
GPU latency/TLB benchmarks and the virtual-memory benchmark work wherever the NVIDIA driver is
installed, whatever else is (no nvcc, host compiler, ninja or cuda-python needed).

Why PTX through the driver, and not ``torch.utils.cpp_extension.load_inline``, cupy, numba or
Triton: ``load_inline`` needs nvcc, a host compiler and ninja on the GPU machine, takes 30-90 s
to build and needs the toolkit's major version to match torch's; cupy and numba-cuda are not
dependencies of torch; Triton hides the per-load ``clock64`` and cache-operator control the
fine-grained chase needs. Every NVIDIA driver JIT-compiles PTX (``cuModuleLoadData``), so the
kernel ships as PTX (``_ptx.CHASE_PTX``), generated from ``CHASE_SOURCE`` below by NVRTC
(``python -m simkit.bench.gpu._cuda --regen``) and checked with ptxas for sm_90 when it was
generated. Its header says PTX ISA 7.8 / sm_75, so drivers from CUDA 11.8 on load it and any
GPU from Turing to Hopper JIT-compiles it. If the driver rejects it, the source is compiled at
run time with NVRTC when ``libnvrtc`` can be found (torch's wheels ship it).

The kernel (Mei & Chu, TPDS 2017; REFERENCE.md 5.3): one thread walks ``j = buf[j]``; each
load sits between two ``clock64`` reads and its value is stored to shared memory before the
second read, so the timer waits for the load. ``chase_ca`` loads with ``ld.global.ca`` (cached
in L1), ``chase_cg`` with ``ld.global.cg`` (L2 only, ``__ldcg``). Inline PTX keeps the
compiler from turning the loads into read-only (``.nc``) loads.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
from pathlib import Path

SAMPLES = 2048          # per-load timings kept in shared memory per launch (2 x 16 KiB)

CHASE_SOURCE = r"""
#define SAMPLES %(samples)d
#define CHASE(NAME, OP)                                                                      \
extern "C" __global__ void NAME(unsigned long long *buf, unsigned long long start,           \
                                unsigned int warm, unsigned int samples,                     \
                                long long *cycles, unsigned long long *sink)                 \
{                                                                                            \
    __shared__ long long s_t[SAMPLES];                                                       \
    __shared__ unsigned long long s_j[SAMPLES];                                              \
    unsigned long long j = start;                                                            \
    for (unsigned int i = 0; i < warm; i++) {                                                \
        asm volatile("ld.global." OP ".u64 %%0, [%%1];" : "=l"(j) : "l"(buf + j) : "memory");\
    }                                                                                        \
    for (unsigned int i = 0; i < samples; i++) {                                             \
        long long t0 = clock64();                                                            \
        asm volatile("ld.global." OP ".u64 %%0, [%%1];" : "=l"(j) : "l"(buf + j) : "memory");\
        s_j[i] = j;                                                                          \
        long long t1 = clock64();                                                            \
        s_t[i] = t1 - t0;                                                                    \
    }                                                                                        \
    for (unsigned int i = 0; i < samples; i++) cycles[i] = s_t[i];                           \
    sink[0] = j + s_j[samples > 0 ? samples - 1 : 0];                                        \
}
CHASE(chase_ca, "ca")
CHASE(chase_cg, "cg")
""" % {"samples": SAMPLES}

KERNELS = ("chase_ca", "chase_cg")
PTX_VERSION = "7.8"     # CUDA 11.8 and later drivers
PTX_TARGET = "sm_75"    # oldest target NVRTC 13 emits; JIT-compiled for the device at load


class CudaError(RuntimeError):
    """A CUDA driver or NVRTC call failed; the message names the call and the error."""


# ----------------------------------------------------------------------------------------------
# Libraries

def _candidates(pattern: str) -> list[str]:
    """``pattern`` (e.g. 'libnvrtc.so*') in the pip-installed NVIDIA packages, torch's lib
    folder and the usual CUDA folders."""
    roots = []
    for p in sys.path:
        if p and os.path.isdir(p):
            roots += [os.path.join(p, "nvidia"), os.path.join(p, "torch", "lib")]
    roots += sorted(glob.glob("/usr/local/cuda*/lib64")) + ["/usr/lib/x86_64-linux-gnu",
                                                              "/usr/local/nvidia/lib64"]
    found = []
    for r in roots:
        if os.path.isdir(r):
            found += sorted(glob.glob(os.path.join(r, "**", pattern), recursive=True))
    return found


def load_libcuda():
    """The driver library, or ``CudaError`` saying why not."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise CudaError("libcuda.so.1 not found (no NVIDIA driver)")


def load_libnvrtc():
    """NVRTC, or ``CudaError``. Its builtins library is loaded first (RTLD_GLOBAL) from the same
    folder, so NVRTC finds it without LD_LIBRARY_PATH."""
    tried = []
    for name in ("libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            tried.append(name)
    for path in _candidates("libnvrtc.so*"):
        if "alt" in os.path.basename(path) or "builtins" in path:
            continue
        for b in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*"))):
            if "alt" not in os.path.basename(b):
                try:
                    ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
        try:
            return ctypes.CDLL(path)
        except OSError:
            tried.append(path)
    raise CudaError("libnvrtc not found (pip install nvidia-cuda-nvrtc)")


# ----------------------------------------------------------------------------------------------
# NVRTC

def compile_ptx(source: str = CHASE_SOURCE, arch: str = "compute_75",
                name: str = "chase.cu") -> str:
    """PTX of ``source`` by NVRTC (``CudaError`` with the compile log on failure)."""
    nv = load_libnvrtc()
    prog = ctypes.c_void_p()

    def check(rc, what):
        if rc != 0:
            nv.nvrtcGetErrorString.restype = ctypes.c_char_p
            raise CudaError(f"{what}: {nv.nvrtcGetErrorString(rc).decode()}")

    check(nv.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None,
                                None), "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"-lineinfo"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = nv.nvrtcCompileProgram(prog, len(opts), arr)
        if rc != 0:
            size = ctypes.c_size_t()
            nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nv.nvrtcGetProgramLog(prog, log)
            raise CudaError(f"nvrtcCompileProgram: {log.value.decode(errors='replace')}")
        size = ctypes.c_size_t()
        check(nv.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
        buf = ctypes.create_string_buffer(size.value)
        check(nv.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return buf.value.decode()
    finally:
        nv.nvrtcDestroyProgram(ctypes.byref(prog))


def portable_ptx(ptx: str) -> str:
    """NVRTC's PTX with the header lowered to ``.version 7.8`` / ``.target sm_75`` (the kernel
    uses only instructions older than both), so older drivers accept it."""
    out = []
    for line in ptx.splitlines():
        s = line.strip()
        if s.startswith(".version "):
            line = f".version {PTX_VERSION}"
        elif s.startswith(".target "):
            line = f".target {PTX_TARGET}"
        elif s.startswith("//") and ("Compiler Build ID" in s or "Based on" in s):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# Driver API

CU_MEM_ALLOCATION_TYPE_PINNED = 1
CU_MEM_LOCATION_TYPE_DEVICE = 1
CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3
CU_MEM_ALLOC_GRANULARITY_MINIMUM = 0


class CUmemLocation(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class _AllocFlags(ctypes.Structure):
    _fields_ = [("compressionType", ctypes.c_ubyte), ("gpuDirectRDMACapable", ctypes.c_ubyte),
                ("usage", ctypes.c_ushort), ("reserved", ctypes.c_ubyte * 4)]


class CUmemAllocationProp(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("requestedHandleTypes", ctypes.c_int),
                ("location", CUmemLocation), ("win32HandleMetaData", ctypes.c_void_p),
                ("allocFlags", _AllocFlags)]


class CUmemAccessDesc(ctypes.Structure):
    _fields_ = [("location", CUmemLocation), ("flags", ctypes.c_int)]


class Driver:
    """The driver calls the benchmarks use, on device ``ordinal``'s primary context (the one
    torch uses), made current on this thread. Every call checks its ``CUresult``."""

    def __init__(self, ordinal: int = 0):
        self.lib = load_libcuda()
        self.ordinal = ordinal
        self.call("cuInit", ctypes.c_uint(0))
        self.dev = ctypes.c_int()
        self.call("cuDeviceGet", ctypes.byref(self.dev), ctypes.c_int(ordinal))
        self.ctx = ctypes.c_void_p()
        self.call("cuDevicePrimaryCtxRetain", ctypes.byref(self.ctx), self.dev)
        self.make_current()

    def make_current(self) -> None:
        self.call("cuCtxSetCurrent", self.ctx)

    def error(self, rc: int) -> str:
        name, text = ctypes.c_char_p(), ctypes.c_char_p()
        self.lib.cuGetErrorName(rc, ctypes.byref(name))
        self.lib.cuGetErrorString(rc, ctypes.byref(text))
        return f"{(name.value or b'?').decode()} ({(text.value or b'').decode()})"

    def call(self, fn: str, *args) -> None:
        rc = getattr(self.lib, fn)(*args)
        if rc != 0:
            raise CudaError(f"{fn}: error {rc} {self.error(rc)}")

    def compute_capability(self) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.call("cuDeviceGetAttribute", ctypes.byref(major), 75, self.dev)   # CC major
        self.call("cuDeviceGetAttribute", ctypes.byref(minor), 76, self.dev)   # CC minor
        return major.value, minor.value

    def driver_version(self) -> int:
        v = ctypes.c_int()
        self.call("cuDriverGetVersion", ctypes.byref(v))
        return v.value

    # ---- modules and launches ------------------------------------------------------------
    def load_module(self, ptx: str):
        """A module from PTX (JIT-compiled by the driver); ``CudaError`` with the JIT log."""
        mod = ctypes.c_void_p()
        log = ctypes.create_string_buffer(8192)
        opts = (ctypes.c_int * 2)(5, 6)      # CU_JIT_ERROR_LOG_BUFFER, ..._SIZE_BYTES
        vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p).value, 8192)
        data = ctypes.create_string_buffer(ptx.encode())
        rc = self.lib.cuModuleLoadDataEx(ctypes.byref(mod), data, 2, opts, vals)
        if rc != 0:
            raise CudaError(f"cuModuleLoadDataEx: error {rc} {self.error(rc)}: "
                            f"{log.value.decode(errors='replace').strip()}")
        return mod

    def function(self, module, name: str):
        f = ctypes.c_void_p()
        self.call("cuModuleGetFunction", ctypes.byref(f), module, name.encode())
        return f

    def launch(self, func, args: list, grid=(1, 1, 1), block=(1, 1, 1), stream: int = 0) -> None:
        """Launch ``func`` with ``args`` (ctypes scalars, in the kernel's parameter order)."""
        params = (ctypes.c_void_p * len(args))(
            *[ctypes.cast(ctypes.pointer(a), ctypes.c_void_p) for a in args])
        self.call("cuLaunchKernel", func, *[ctypes.c_uint(g) for g in grid],
                  *[ctypes.c_uint(b) for b in block], ctypes.c_uint(0),
                  ctypes.c_void_p(stream), params, None)

    def synchronize(self) -> None:
        self.call("cuCtxSynchronize")

    # ---- virtual memory management -------------------------------------------------------
    def alloc_prop(self) -> CUmemAllocationProp:
        prop = CUmemAllocationProp()
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE
        prop.location.id = self.dev.value
        return prop

    def granularity(self, prop: CUmemAllocationProp) -> int:
        g = ctypes.c_size_t()
        self.call("cuMemGetAllocationGranularity", ctypes.byref(g), ctypes.byref(prop),
                  CU_MEM_ALLOC_GRANULARITY_MINIMUM)
        return g.value

    def access_desc(self) -> CUmemAccessDesc:
        d = CUmemAccessDesc()
        d.location.type = CU_MEM_LOCATION_TYPE_DEVICE
        d.location.id = self.dev.value
        d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE
        return d


_MODULES: dict = {}


def chase_functions(driver: Driver) -> tuple[dict, str]:
    """``({"chase_ca": f, "chase_cg": f}, how)``: the shipped PTX, JIT-compiled by the driver;
    if the driver rejects it, the source compiled by NVRTC for this device."""
    key = (id(driver), driver.ordinal)
    if key in _MODULES:
        return _MODULES[key]
    from simkit.bench._ptx import CHASE_PTX

    try:
        mod, how = driver.load_module(CHASE_PTX), "shipped PTX, JIT by the driver"
    except CudaError as first:
        major, minor = driver.compute_capability()
        try:
            ptx = compile_ptx(CHASE_SOURCE, f"compute_{major}{minor}")
        except CudaError as exc:
            raise CudaError(f"{first}; and NVRTC: {exc}") from None
        mod, how = driver.load_module(ptx), f"NVRTC compute_{major}{minor} (shipped PTX: {first})"
    out = ({k: driver.function(mod, k) for k in KERNELS}, how)
    _MODULES[key] = out
    return out


def regenerate(path: Path | None = None) -> Path:
    """Write ``_ptx.py`` from ``CHASE_SOURCE`` by NVRTC (a development step)."""
    path = Path(path or Path(__file__).with_name("_ptx.py"))
    ptx = portable_ptx(compile_ptx(CHASE_SOURCE))
    path.write_text(
        '"""PTX of ``simkit.bench.gpu._cuda.CHASE_SOURCE``, generated by NVRTC; do not edit.\n\n'
        'Regenerate with ``python -m simkit.bench.gpu._cuda --regen`` (needs libnvrtc).\n"""\n'
        f"CHASE_PTX = r'''{ptx}'''\n")
    return path


if __name__ == "__main__":
    if sys.argv[1:] == ["--regen"]:
        print(f"wrote {regenerate()}")
    else:
        print(compile_ptx())
