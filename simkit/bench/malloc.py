"""Real allocators measured: replay an allocation trace through glibc, jemalloc, mimalloc,
tcmalloc and Scudo (``LD_PRELOAD``), and run the security probes against each.

Method (mimalloc-bench's, REFERENCE 4.5 and 4.7): a small C replayer (``csrc/malloc_replay.c``,
compiled with gcc at run time) reads the trace as flat arrays from an mmapped file, touches
every page of each block (memset <= 256 B, one byte per 4 KiB, the last byte), and reports the
elapsed time, the RSS before replaying and VmHWM after. Several runs per allocator; medians;
ratios to glibc. Debian 12 packages: libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4,
libclang-rt-14-dev (Scudo); ``make tools`` installs them.

The probes (``csrc/malloc_probe.c``) each run in a fresh process; the exit signal tells
"caught" (SIGABRT: the allocator detected it) from "crash" (SIGSEGV/SIGBUS) from "no".
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from simkit.errors import InputError

CSRC = Path(__file__).resolve().parent / "csrc"
LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
LIBRARIES = {
    "glibc": None,
    "jemalloc": ("libjemalloc.so.2",),
    "mimalloc": ("libmimalloc.so.2", "libmimalloc.so.2.0"),
    "tcmalloc": ("libtcmalloc_minimal.so.4",),
    "scudo": ("/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-x86_64.so",),
}
PACKAGES = {"jemalloc": "libjemalloc2", "mimalloc": "libmimalloc2.0",
            "tcmalloc": "libtcmalloc-minimal4", "scudo": "libclang-rt-14-dev"}
ALLOCATORS = tuple(LIBRARIES)


def library(name: str) -> str | None:
    """The shared library to preload for allocator ``name`` ("" for glibc), or None."""
    if name not in LIBRARIES:
        raise InputError(f"allocator: unknown {name!r}; choose from {', '.join(LIBRARIES)}")
    if LIBRARIES[name] is None:
        return ""
    for pat in LIBRARIES[name]:
        if pat.startswith("/"):
            hits = sorted(glob.glob(pat))
            if hits:
                return hits[-1]
            continue
        for d in LIBDIRS:
            p = Path(d) / pat
            if p.exists():
                return str(p)
    return None


def available() -> dict[str, str]:
    """Allocators present on this machine: name -> library ("" for glibc)."""
    out = {}
    for name in LIBRARIES:
        lib = library(name)
        if lib is not None:
            out[name] = lib
    return out


def missing_reason(name: str) -> str:
    return f"{name} not installed (apt-get install -y {PACKAGES.get(name, '')}; `make tools`)"


def _cache_dir() -> Path:
    d = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "simkit"
    try:
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:
        return Path(tempfile.gettempdir())


def build(name: str) -> Path:
    """Compile ``csrc/<name>.c`` (cached by source hash); returns the executable."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise InputError("gcc is not on PATH; install it with `apt-get install -y gcc`")
    src = CSRC / f"{name}.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    exe = _cache_dir() / f"{name}-{digest}"
    if not exe.exists():
        tmp = exe.with_name(exe.name + f".{os.getpid()}.tmp")
        flags = ["-O0"] if name == "malloc_probe" else ["-O2"]
        r = subprocess.run([gcc, *flags, "-fno-builtin", "-o", str(tmp), str(src), "-lm"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise InputError(f"compiling {src.name} failed: {r.stderr.strip()[-300:]}")
        os.replace(tmp, exe)
    return exe


def write_replay_input(records: np.ndarray, path: Path) -> Path:
    """The replayer's flat input: n, objects, size[n] u64, id[n] u32, old[n] u32,
    align[n] u32, op[n] u8."""
    n = len(records)
    nobj = int(records["id"].max()) + 1 if n else 0
    with open(path, "wb") as f:
        f.write(np.array([n, nobj], np.uint64).tobytes())
        for name, dt in (("size", np.uint64), ("id", np.uint32), ("old_id", np.uint32),
                         ("align", np.uint32), ("op", np.uint8)):
            f.write(np.ascontiguousarray(records[name]).astype(dt).tobytes())
    return path


def _env(lib: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def replay_once(exe: Path, data: Path, lib: str, timeout: float = 300) -> dict:
    r = subprocess.run([str(exe), str(data)], env=_env(lib), capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise InputError(f"replayer failed under {lib or 'glibc'} (status {r.returncode}): "
                         f"{r.stderr.strip()[-200:]}")
    ns, n, start, hwm, end = (int(x) for x in r.stdout.split())
    return {"elapsed_ns": ns, "events": n, "start_rss_kib": start, "hwm_kib": hwm,
            "end_rss_kib": end}


def bench_malloc(traces: dict, allocators=None, runs: int = 5, progress: bool = False):
    """Replay each trace (name -> ALLOC_DTYPE records) ``runs`` times under each allocator.
    Returns (per-run rows, medians with ratios to glibc) as DataFrames."""
    import pandas as pd

    have = available()
    names = list(allocators or ALLOCATORS)
    for a in names:
        if a not in LIBRARIES:
            raise InputError(f"allocator: unknown {a!r}; choose from {', '.join(LIBRARIES)}")
    exe = build("malloc_replay")
    rows = []
    with tempfile.TemporaryDirectory(prefix="simkit-bench-malloc-") as tmp:
        for tname, recs in traces.items():
            data = write_replay_input(recs, Path(tmp) / f"{tname}.bin")
            for run in range(runs):
                for a in names:                   # interleaved: drift hits all alike
                    if a not in have:
                        continue
                    m = replay_once(exe, data, have[a])
                    m.update(trace=tname, allocator=a, run=run)
                    rows.append(m)
                    if progress:
                        print(f"  {tname} {a} run {run}: {m['elapsed_ns'] / 1e6:.1f} ms, "
                              f"HWM {m['hwm_kib']} KiB", flush=True)
    runs_df = pd.DataFrame(rows)
    if runs_df.empty:
        return runs_df, runs_df
    runs_df["delta_hwm_kib"] = runs_df.hwm_kib - runs_df.start_rss_kib
    runs_df["ns_per_op"] = runs_df.elapsed_ns / runs_df.events
    med = (runs_df.groupby(["trace", "allocator"], sort=False)
           [["elapsed_ns", "ns_per_op", "hwm_kib", "delta_hwm_kib", "start_rss_kib"]]
           .median().reset_index())
    med["runs"] = runs
    base = med[med.allocator == "glibc"].set_index("trace")
    if len(base):
        med["time_ratio_to_glibc"] = med.elapsed_ns / med.trace.map(base.elapsed_ns)
        med["delta_hwm_ratio_to_glibc"] = med.delta_hwm_kib / med.trace.map(base.delta_hwm_kib)
    for a in names:
        if a not in have:
            med = pd.concat([med, pd.DataFrame([{"allocator": a, "trace": t,
                                                 "skipped": missing_reason(a)}
                                                for t in traces])], ignore_index=True)
    return runs_df, med


# ---- security probes -------------------------------------------------------------------------

PROBE_SIZES = (32, 4096, 262144)


def _probe(exe: Path, lib: str, *args) -> tuple[str, str]:
    r = subprocess.run([str(exe), *map(str, args)], env=_env(lib), capture_output=True,
                       text=True, timeout=60)
    if r.returncode < 0:
        sig = -r.returncode
        return ("caught" if sig == signal.SIGABRT else "crash"), r.stdout.strip()
    if r.returncode != 0:
        return "caught", r.stdout.strip()          # some allocators _exit(1) on detection
    return "no", r.stdout.strip()


def probe_real(name: str) -> dict:
    """The probe results for one installed allocator: one row of the security table."""
    lib = library(name)
    if lib is None:
        raise InputError(missing_reason(name))
    exe = build("malloc_probe")
    row = {"allocator": name, "kind": "real"}
    for n in PROBE_SIZES:
        row[f"double_free_{n}"] = _probe(exe, lib, "double_free", n)[0]
    row["invalid_free"] = _probe(exe, lib, "invalid_free")[0]
    for n in PROBE_SIZES:
        res, out = _probe(exe, lib, "reuse", n)
        row[f"reuse_{n}"] = "yes" if out == "1" else "no"
    res, out = _probe(exe, lib, "reuse_distance", 32)
    row["reuse_distance_32"] = int(out) if out.lstrip("-").isdigit() else -1
    res, out = _probe(exe, lib, "placement")
    row["placement_entropy_bits"] = float(out) if out else float("nan")
    zs = [float(_probe(exe, lib, "zero_on_free", n)[1] or 0) for n in (64, 4096)]
    row["zero_on_free"] = "yes" if min(zs) > 0.99 else "no"
    row["overflow_16_next_free"] = _probe(exe, lib, "overflow", 16)[0]
    return row


# ---- models vs measurements ------------------------------------------------------------------

# model preset -> the real allocator it models
COUNTERPARTS = {"ptmalloc": "glibc", "mimalloc": "mimalloc"}


def validate_models(traces: dict, medians, models=("ptmalloc", "mimalloc"),
                    tolerance: float = 0.10):
    """Each model's predicted peak footprint vs its real counterpart's measured peak RSS
    growth (VmHWM - RSS before replaying), per trace. ``within_tolerance`` is checked for
    ptmalloc vs glibc (the issue's 10%); the others are reported."""
    import pandas as pd

    from simkit.allocators import AllocatorModel

    rows = []
    for tname, recs in traces.items():
        for model in models:
            real = COUNTERPARTS.get(model)
            m = medians[(medians.trace == tname) & (medians.allocator == real)]
            if real is None or m.empty or "delta_hwm_kib" not in m or m.delta_hwm_kib.isna().all():
                continue
            s = AllocatorModel(model).run(recs, name=tname)
            measured = float(m.delta_hwm_kib.iloc[0]) * 1024
            err = s.peak_footprint_bytes / measured - 1
            rows.append({"trace": tname, "model": model, "real": real, "events": s.events,
                         "peak_live_bytes": s.peak_live_bytes,
                         "model_peak_footprint_bytes": s.peak_footprint_bytes,
                         "measured_delta_hwm_bytes": measured, "error": err,
                         "tolerance": tolerance if model == "ptmalloc" else float("nan"),
                         "within_tolerance": bool(abs(err) <= tolerance)
                         if model == "ptmalloc" else None})
    return pd.DataFrame(rows)


def fit_cost(traces: dict, medians, model: str = "ptmalloc") -> dict:
    """Calibrate the model's operation cost (``simkit.allocators.replay.COST_NS``) on measured
    medians of its real counterpart: non-negative least squares of elapsed ns over the model's
    counts (events, list steps, page faults, system calls) per trace. Returns the weights, the
    per-trace predicted vs measured ns/op, and the machine it was fitted on."""
    import pandas as pd

    from simkit.allocators import AllocatorModel
    from simkit.bench.machine import describe_machine

    real = COUNTERPARTS[model]
    X, y, names = [], [], []
    for tname, recs in traces.items():
        m = medians[(medians.trace == tname) & (medians.allocator == real)]
        if m.empty or "elapsed_ns" not in m or m.elapsed_ns.isna().all():
            continue
        s = AllocatorModel(model).run(recs, name=tname, timeline_points=0)
        X.append([s.events, s.counters.get("list_steps", 0), s.counters.get("page_faults", 0),
                  s.syscalls])
        y.append(float(m.elapsed_ns.iloc[0]))
        names.append((tname, s.events))
    if not X:
        raise InputError(f"fit_cost: no measured {real} medians to fit")
    X, y = np.asarray(X, float), np.asarray(y)
    keys = ("op", "step", "fault", "syscall")
    active = list(range(len(keys)))
    while True:                                   # NNLS by dropping negative weights
        w, *_ = np.linalg.lstsq(X[:, active], y, rcond=None)
        if (w >= 0).all() or len(active) == 1:
            break
        active.pop(int(np.argmin(w)))
    weights = dict.fromkeys(keys, 0.0)
    for k, v in zip(active, w):
        weights[keys[k]] = max(float(v), 0.0)
    pred = X @ np.array([weights[k] for k in keys])
    fit = pd.DataFrame({"trace": [n for n, _ in names], "events": [e for _, e in names],
                        "measured_ns_per_op": y / X[:, 0], "model_ns_per_op": pred / X[:, 0]})
    fit["error"] = fit.model_ns_per_op / fit.measured_ns_per_op - 1
    try:
        machine = describe_machine()
    except Exception:  # noqa: BLE001 (best effort description)
        machine = {}
    return {"model": model, "real": real, "cost_ns": weights, "fit": fit.to_dict("records"),
            "machine": machine,
            "method": "NNLS of median elapsed ns on (events, list steps, page faults, syscalls)"}


def replay_addresses(records: np.ndarray, allocator: str = "glibc") -> np.ndarray:
    """The address the real allocator returned for each event (0 for frees), replaying
    ``records`` once in a fresh process."""
    lib = library(allocator)
    if lib is None:
        raise InputError(missing_reason(allocator))
    exe = build("malloc_replay")
    with tempfile.TemporaryDirectory(prefix="simkit-addrs-") as tmp:
        data = write_replay_input(records, Path(tmp) / "t.bin")
        out = Path(tmp) / "addrs.bin"
        r = subprocess.run([str(exe), str(data), str(out)], env=_env(lib), capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise InputError(f"replayer failed (status {r.returncode}): {r.stderr.strip()[-200:]}")
        return np.fromfile(out, np.uint64)[:len(records)]


def placement_agreement(records: np.ndarray, model: str = "ptmalloc",
                        allocator: str = "glibc") -> dict:
    """How many of the model's block placements equal the real allocator's on the same events:
    blocks both put on the brk heap at the same offset from the heap start, and blocks both
    map separately (mmap)."""
    from simkit.allocators import AllocatorModel
    from simkit.allocators import _kernels as K
    from simkit.trace.alloc import AllocOp

    real = replay_addresses(records, allocator).astype(np.int64)
    addr = AllocatorModel(model).addresses(records)
    alloc = records["op"] != AllocOp.FREE
    heap_m = alloc & (addr > 0) & (addr < K.HEAP_BASE + (1 << 36))
    heap_r = alloc & (real > 0) & (real < 0x7000_0000_0000)
    both = np.flatnonzero(heap_m & heap_r)
    same = 0
    if len(both):
        base = real[both[0]] - (addr[both[0]] - K.HEAP_BASE)
        same = int(np.count_nonzero(real[both] - base == addr[both] - K.HEAP_BASE))
    return {"allocations": int(alloc.sum()), "heap_model": int(heap_m.sum()),
            "heap_real": int(heap_r.sum()), "heap_same_address": same,
            "mmapped_both": int(np.count_nonzero(alloc & ~heap_m & ~heap_r)),
            "placement_kind_differs": int(np.count_nonzero(alloc & (heap_m != heap_r)))}
