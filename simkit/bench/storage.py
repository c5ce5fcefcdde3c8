"""Random-read throughput of this machine's storage vs chunk size and parallel reads
(docs/sources.md, "Flash").

Method:

- **File.** ``file_bytes`` of random bytes (incompressible, no holes), written once and
  fsynced; reused when it already has that size.
- **Direct I/O.** The file is opened with ``O_DIRECT``; offsets and lengths are multiples of the
  alignment (the device's ``logical_block_size`` from sysfs, at least 4 KiB) and buffers come
  from anonymous ``mmap`` (page aligned). Where ``O_DIRECT`` is refused (tmpfs, some overlay
  filesystems) the benchmark says so and reads through the page cache instead, dropping the
  file's pages with ``posix_fadvise(DONTNEED)`` before every point (after ``fsync``).
- **Reads.** Each of ``threads`` workers of a ``ThreadPoolExecutor`` calls ``os.preadv`` (the GIL
  is released while it waits) at uniformly random aligned offsets until the point's time is
  up; throughput is all bytes over the wall time; per-read latency median, p99 and mean are
  kept, and the calibration keeps p99 - median as ``latency_tail_s``: a burst waits for its
  slowest read, and on a shared virtual disk rare multi-millisecond stalls set it.
  A sequential 1 MiB single-thread pass gives the ceiling (``mode == "sequential"``).
- **Bursts.** Per thread count, bursts of 1, 4 and 16 waves of random reads of the smallest
  chunk, issued as the flash schedule issues them (split in order over the workers, waited
  for); the mean time of a burst minus its waves of per-request time of the long run at that
  point (``burst_excess``) is kept in the calibration (``burst_excess_s``, per thread count
  and waves; the cost model charges their mean, at least 0, per burst): the workers'
  wake-up, the wait for the last one to finish its run of reads and, on a virtual disk, the
  host's ramp-up. (An earlier version kept one wave's cost less
  the slowest read's p99 wait, ``burst_overhead_s``; under CPU contention the p99 of one
  read is set by descheduled threads and overstated what a burst waits for.)
- **A VM's virtual disk is not flash**: guest ``O_DIRECT`` does not bypass the host's cache. The
  machine description says whether a hypervisor is present and what the disk reports itself as.

The flash simulator's read schedule executed on a real file, against the cost model's
prediction, is ``simkit.calibrate.storage.validate_schedule``.
"""
from __future__ import annotations

import json
import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from simkit.atomic import commit, temp_for, write_via

CHUNKS_FULL = tuple(4096 << k for k in range(9))          # 4 KiB .. 1 MiB
THREADS_FULL = (1, 2, 4, 8, 16, 32)
CHUNKS_QUICK = (4096, 16384, 65536, 262144, 1 << 20)
THREADS_QUICK = (1, 4, 16, 32)
SEQ_CHUNK = 1 << 20


# ---- file and device --------------------------------------------------------------------------
def device_info(path: Path) -> dict:
    """What sysfs says about the block device holding ``path``."""
    st = os.stat(path)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    base = Path(f"/sys/dev/block/{major}:{minor}")
    info = {"device": f"{major}:{minor}", "logical_block_size": None, "rotational": None,
            "model": None, "name": None}
    if not base.exists():
        return info
    real = base.resolve()
    info["name"] = real.name
    q = real / "queue"
    if not q.exists() and (real.parent / "queue").exists():     # a partition
        q = real.parent / "queue"
    for key, f in (("logical_block_size", "logical_block_size"), ("rotational", "rotational")):
        try:
            info[key] = int((q / f).read_text())
        except (OSError, ValueError):
            pass
    for cand in (real / "device" / "model", real.parent / "device" / "model"):
        try:
            info["model"] = cand.read_text().strip()
            break
        except OSError:
            continue
    if info["name"] and info["name"].startswith("vd"):
        info["note"] = "virtio virtual disk: not flash; the host may cache reads"
    return info


def alignment(path: Path) -> int:
    lbs = device_info(path).get("logical_block_size") or 512
    return max(4096, int(lbs))


def make_file(path: Path, file_bytes: int, seed: int = 0) -> Path:
    """``file_bytes`` of random bytes at ``path`` (kept if it already has that size)."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == file_bytes:
        return path
    rng = np.random.default_rng(seed)
    block = 8 << 20
    tmp = temp_for(path)      # registered: an interrupt removes it (it can be gigabytes)
    with open(tmp, "wb") as f:
        left = file_bytes
        while left > 0:
            n = min(block, left)
            f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n
        f.flush()
        os.fsync(f.fileno())
    commit(tmp, path)
    return path


class Reader:
    """An open file for aligned reads: O_DIRECT when the filesystem allows it."""

    def __init__(self, path: Path, direct: bool = True):
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.align = alignment(self.path)
        self.direct = False
        self.note = ""
        fd = None
        if direct and hasattr(os, "O_DIRECT"):
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
                buf = mmap.mmap(-1, self.align)
                os.preadv(fd, [buf], 0)
                buf.close()
                self.direct = True
            except OSError as exc:
                if fd is not None:
                    os.close(fd)
                fd = None
                self.note = (f"O_DIRECT refused on {self.path} ({exc.strerror}); reading "
                             f"through the page cache, dropped with posix_fadvise(DONTNEED) "
                             f"before every point")
        elif direct:
            self.note = "O_DIRECT is not available on this OS; buffered reads"
        if fd is None:
            fd = os.open(self.path, os.O_RDONLY)
        self.fd = fd

    def drop_cache(self) -> None:
        if not self.direct and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_chunks(fd, offsets, chunk, deadline):
    """Read ``chunk`` bytes at each offset until the list or the time runs out."""
    buf = mmap.mmap(-1, chunk)
    lat = []
    n = 0
    try:
        for off in offsets:
            t = time.perf_counter()
            os.preadv(fd, [buf], int(off))
            e = time.perf_counter()
            lat.append(e - t)
            n += 1
            if deadline is not None and e >= deadline:
                break
    finally:
        buf.close()
    return n, lat


def _random_point(reader: Reader, chunk: int, threads: int, seconds: float,
                  rng: np.random.Generator, pool: ThreadPoolExecutor) -> dict:
    slots = (reader.size - chunk) // reader.align
    if slots < 1:
        raise ValueError(f"file_bytes: the file ({reader.size} B) is smaller than a chunk "
                         f"({chunk} B)")
    per_thread = max(64, int(200_000 // threads))
    offs = [rng.integers(0, slots + 1, per_thread) * reader.align for _ in range(threads)]
    reader.drop_cache()
    start = time.perf_counter()
    deadline = start + seconds
    futs = [pool.submit(read_chunks, reader.fd, o, chunk, deadline) for o in offs]
    res = [f.result() for f in futs]
    wall = time.perf_counter() - start
    reads = sum(r[0] for r in res)
    lat = np.concatenate([np.asarray(r[1]) for r in res]) if reads else np.zeros(1)
    return {"mode": "random", "chunk_bytes": chunk, "threads": threads, "reads": reads,
            "bytes": reads * chunk, "seconds": wall, "bytes_per_s": reads * chunk / wall,
            "iops": reads / wall, "lat_us_median": 1e6 * float(np.median(lat)),
            "lat_us_p99": 1e6 * float(np.quantile(lat, 0.99)),
            "lat_us_mean": 1e6 * float(np.mean(lat))}


def _sequential_point(reader: Reader, seconds: float) -> dict:
    reader.drop_cache()
    buf = mmap.mmap(-1, SEQ_CHUNK)
    lat = []
    off = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while off + SEQ_CHUNK <= reader.size:
            t = time.perf_counter()
            os.preadv(reader.fd, [buf], off)
            e = time.perf_counter()
            lat.append(e - t)
            off += SEQ_CHUNK
            if e >= deadline:
                break
    finally:
        buf.close()
    wall = time.perf_counter() - start
    n = len(lat)
    return {"mode": "sequential", "chunk_bytes": SEQ_CHUNK, "threads": 1, "reads": n,
            "bytes": n * SEQ_CHUNK, "seconds": wall, "bytes_per_s": n * SEQ_CHUNK / wall,
            "iops": n / wall, "lat_us_median": 1e6 * float(np.median(lat)) if n else np.nan,
            "lat_us_p99": 1e6 * float(np.quantile(lat, 0.99)) if n else np.nan}


def issue_burst(pool: ThreadPoolExecutor, fd, offsets, chunk: int, threads: int) -> None:
    """Reads at ``offsets`` issued together, split in order over at most ``threads`` workers
    (one task of consecutive offsets each); returns when all are done. The flash schedule's
    bursts (``simkit.calibrate.storage.validate_schedule``) and the calibration's burst
    measurement (``burst_excess``) both issue reads this way."""
    if not len(offsets):
        return
    parts = np.array_split(np.asarray(offsets), min(threads, len(offsets)))
    futs = [pool.submit(read_chunks, fd, p, chunk, None) for p in parts if len(p)]
    for f in futs:
        f.result()


BURST_WAVES = (1, 4, 16)


def burst_excess(reader: "Reader", pool: ThreadPoolExecutor, chunk: int, threads: int,
                 point: dict, rng: np.random.Generator, rounds: int = 48,
                 waves=BURST_WAVES) -> dict:
    """What a burst costs beyond its waves, per burst size: bursts of ``w * threads`` random
    reads of ``chunk`` for each ``w`` in ``waves``, issued as the flash schedule issues them
    (``issue_burst``: split in order over the workers, waited for), ``max(8, rounds / w)``
    times each; the mean burst time minus ``w`` per-request times of the long run at that
    point (``threads * chunk / bytes_per_s``). It holds the workers' wake-up, the wait for the
    last worker to finish its run of reads (each does ``w``) and, on a virtual disk, the
    host's ramp-up when an idle queue is filled again. Returns {w: seconds} (may be < 0
    where a burst runs faster than the long run's rate)."""
    slots = (reader.size - chunk) // reader.align
    steady = threads * chunk / point["bytes_per_s"]
    out = {}
    for w in waves:
        n, k, total = w * threads, max(8, rounds // w), 0.0
        for _ in range(k):
            offs = rng.integers(0, slots + 1, n) * reader.align
            start = time.perf_counter()
            issue_burst(pool, reader.fd, offs, chunk, threads)
            total += time.perf_counter() - start
        out[int(w)] = total / k - w * steady
    return out


def measure_storage(path: Path, file_bytes: int = 1 << 30, chunks=CHUNKS_QUICK,
                    threads=THREADS_QUICK, seconds: float = 0.5, direct: bool = True,
                    seed: int = 0, progress=None):
    """The sweep as a tidy DataFrame (``attrs``: machine, device, direct, note)."""
    import pandas as pd

    from simkit.bench.cpu.machine import describe_machine

    path = make_file(Path(path), int(file_bytes), seed)
    rng = np.random.default_rng(seed)
    rows = []
    with Reader(path, direct) as reader, ThreadPoolExecutor(max(threads)) as pool:
        for c in chunks:
            if c % reader.align:
                raise ValueError(f"chunks: {c} is not a multiple of the alignment "
                                 f"{reader.align}")
            for t in threads:
                rows.append(_random_point(reader, int(c), int(t), seconds, rng, pool))
                if progress:
                    progress(rows[-1])
        c0 = int(min(chunks))
        excess = {int(r["threads"]): burst_excess(reader, pool, c0, int(r["threads"]), r, rng)
                  for r in rows if r["chunk_bytes"] == c0}
        rows.append(_sequential_point(reader, max(seconds, 0.2)))
        if progress:
            progress(rows[-1])
        direct_used, note, align = reader.direct, reader.note, reader.align
    df = pd.DataFrame(rows)
    df.insert(0, "direct", direct_used)
    df["file_bytes"] = int(file_bytes)
    machine = describe_machine()
    dev = device_info(path)
    df.attrs.update({"machine": machine, "device": dev, "direct": direct_used, "note": note,
                     "alignment": align, "path": str(path),
                     "disk_note": _disk_note(machine, dev), "burst_excess_s": excess})
    return df


def _disk_note(machine: dict, dev: dict) -> str:
    if machine.get("hypervisor") or (dev.get("name") or "").startswith("vd"):
        return ("this disk is a virtual disk under a hypervisor, not flash: O_DIRECT in the "
                "guest does not bypass the host's cache; use the numbers for code paths and "
                "curve shape, not as an SSD's")
    return ""


def calibration(df) -> dict:
    """The measured sweep as a ``simkit-flash-storage`` calibration document."""
    from simkit.flash.storage import FORMAT
    rnd = df[df["mode"] == "random"]
    seq = df[df["mode"] == "sequential"]
    seq_bps = float(seq.bytes_per_s.iloc[0]) if len(seq) else float(rnd.bytes_per_s.max())
    machine = dict(df.attrs.get("machine") or {})
    machine["device"] = df.attrs.get("device")
    return {"format": FORMAT, "version": 1, "kind": "measured",
            "description": ("simkit bench storage: random preadv reads, "
                            + ("O_DIRECT" if df.attrs.get("direct") else "buffered, page cache "
                               "dropped per point") + f", file {int(df.file_bytes.iloc[0])} B. "
                            + df.attrs.get("disk_note", "")).strip(),
            "machine": machine,
            "sequential_bytes_per_s": seq_bps,
            "burst_excess_s": {str(q): {str(w): float(v) for w, v in e.items()}
                               for q, e in (df.attrs.get("burst_excess_s") or {}).items()},
            "points": [{"chunk_bytes": int(r.chunk_bytes), "threads": int(r.threads),
                        "bytes_per_s": float(r.bytes_per_s),
                        "latency_tail_s": 1e-6 * max(float(r.lat_us_p99 - r.lat_us_median),
                                                     0.0)}
                       for r in rnd.itertuples()],
            "sources": {"points": "measured by simkit bench storage on this machine",
                        "note": df.attrs.get("note", "")}}


def write_calibration(df, path) -> Path:
    path = Path(path)
    text = json.dumps(calibration(df), indent=1, default=str) + "\n"
    return write_via(path, lambda tmp: tmp.write_text(text))


def plot_storage(df, path=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rnd = df[df["mode"] == "random"]
    for t, d in rnd.groupby("threads"):
        d = d.sort_values("chunk_bytes")
        ax.plot(d.chunk_bytes / 1024, d.bytes_per_s / 1e9, "o-", ms=3, label=f"{t} threads")
    seq = df[df["mode"] == "sequential"]
    if len(seq):
        ax.axhline(seq.bytes_per_s.iloc[0] / 1e9, color="k", ls="--", lw=1,
                   label="sequential 1 MiB, 1 thread")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("chunk (KiB)")
    ax.set_ylabel("random-read throughput (GB/s)")
    title = "Random reads, " + ("O_DIRECT" if df.attrs.get("direct") else "buffered")
    if df.attrs.get("disk_note"):
        title += " (virtual disk, not flash)"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if path is not None:
        path = Path(path)
        write_via(path, lambda tmp: fig.savefig(tmp, dpi=120), ".partial" + path.suffix)
    return fig
