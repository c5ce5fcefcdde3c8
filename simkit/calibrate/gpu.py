"""GPU measurements -> simulator inputs: the KV cost model's calibration and a GPU TLB preset.

- ``kv_calibration(tables, device, model)``: a ``simkit-kv-calibration`` document of kind
  ``"measured"`` that ``simkit.kvpaging.costmodel.load_calibration`` reads
  (``simkit kv run --calibration FILE``). Every field says where it comes from in ``sources``;
  a field no microbenchmark measured (``step_fixed_us`` always; others when their table is
  missing) is copied from the shipped published calibration and labelled ``NOT MEASURED``;
- ``gpu_tlb_preset(tlb_df)``: an ``MMUConfig`` whose L1/L2 TLBs have the measured reach;
- ``write_results(device, tables, outdir)``: everything ``simkit bench gpu --outdir`` writes:
  the measured tables, plots and JSON documents (``simkit.bench.gpu.measure.write_tables``),
  then the KV calibration and the TLB preset.
"""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np

from simkit.bench.gpu.measure import DEFAULT_MODEL, write_tables
from simkit.bench.gpu.rows import (COLUMNS, MiB, PAGE_2M, check_rows, device_name,
                                   driver_version, jsonable, latency_summary,
                                   paged_decode_slowdown, tlb_reach, variant_ratio, write_json)
from simkit.errors import InputError


def _published_for(gpu: str):
    from simkit.kvpaging.costmodel import default_calibration

    return default_calibration("A100-80GB" if "A100" in gpu.upper() else "H100-80GB")


def _fit_line(x, y) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y = a + b x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0, float(np.median(y / x)) if len(x) else 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def _clip_efficiency(v: float) -> float:
    return float(min(1.0, max(v, 1e-6)))


def kv_calibration(tables: dict, device: dict, model: str = "Llama-2-7B") -> dict:
    """A ``simkit-kv-calibration`` document of kind ``"measured"`` from the measured tables
    (``{"bandwidth": df, "gemm": df, "attention": df, "vmm": df, "h2d": df}``; any may be
    missing). ``InputError`` when neither bandwidth nor attention rows are there.

    Fields: ``hbm_bandwidth_bytes_per_s`` = best device copy rate; ``peak_fp16_flops`` = the
    square bf16 matmul rate (so ``flops_efficiency`` is what the model's largest token count
    reaches of it); ``weight_bandwidth_efficiency`` = one decoder layer's weight bytes over its
    time at the fewest tokens, over the copy rate; ``attention_bandwidth_efficiency`` = the KV
    bytes per token over the slope of sdpa-contiguous decode time vs batch x context, over the
    copy rate; ``paged_decode_slowdown`` from ``paged_decode_slowdown``; map = cuMemMap +
    cuMemSetAccess, unmap = cuMemUnmap (means); ``pcie_bandwidth_bytes_per_s`` = best pinned
    host-to-device rate. ``models[model]``: ``dense_us`` = layers x layer time + lm_head time per
    token count, ``decode_attention_us`` = layers x median sdpa-contiguous time per total context
    (batch x context tokens). Efficiencies are clipped to (0, 1].
    """
    from simkit.kvpaging.models import get_model

    shape = get_model(model)
    bw, gemm, att = tables.get("bandwidth"), tables.get("gemm"), tables.get("attention")
    vmm, h2d = tables.get("vmm"), tables.get("h2d")
    for name, df in tables.items():
        if df is not None and name in COLUMNS:
            check_rows(name, df)
    if bw is None or att is None:
        raise InputError("kv calibration: needs the bandwidth and attention tables "
                         f"(have: {', '.join(k for k, v in tables.items() if v is not None)})")
    gpu = device_name(device)
    pub = _published_for(gpu)
    vals, src = {}, {}

    def published(fld: str, why: str) -> None:
        vals[fld] = getattr(pub, fld)
        src[fld] = (f"NOT MEASURED ({why}): published value from {Path(pub.path).name}: "
                    f"{pub.sources.get(fld, 'see that file')}")

    hbm = float(bw.bytes_per_s.max())
    vals["hbm_bandwidth_bytes_per_s"] = hbm
    src["hbm_bandwidth_bytes_per_s"] = (f"measured: best device-to-device copy rate (bytes read "
                                        f"+ written) over {len(bw)} sizes")

    if gemm is not None and (gemm.kind == "square").any():
        peak = float(gemm[gemm.kind == "square"].flops_per_s.max())
        vals["peak_fp16_flops"] = peak
        src["peak_fp16_flops"] = "measured: square 8192^3 bf16 matmul rate on random data"
        layer = gemm[(gemm.kind == "layer")].sort_values("tokens")
        if len(layer):
            first, last = layer.iloc[0], layer.iloc[-1]
            vals["weight_bandwidth_efficiency"] = _clip_efficiency(
                first.weight_bytes / (first.median_us * 1e-6) / hbm)
            src["weight_bandwidth_efficiency"] = (
                f"measured: one {shape.name} decoder layer's weight bytes / its time at "
                f"{int(first.tokens)} token(s), over the copy rate")
            vals["flops_efficiency"] = _clip_efficiency(
                last.flops / (last.median_us * 1e-6) / peak)
            src["flops_efficiency"] = (f"measured: {shape.name} layer GEMMs at "
                                       f"{int(last.tokens)} tokens over the square matmul rate")
        else:
            published("weight_bandwidth_efficiency", "no layer GEMM rows")
            published("flops_efficiency", "no layer GEMM rows")
    else:
        for f in ("peak_fp16_flops", "weight_bandwidth_efficiency", "flops_efficiency"):
            published(f, "no GEMM table")

    dec = att[(att.phase == "decode") & (att.variant == "sdpa-contiguous")].copy()
    if not len(dec):
        raise InputError("kv calibration: the attention table has no decode sdpa-contiguous rows")
    dec["ctx_total"] = dec.batch * dec.context_tokens
    per_token_layer = shape.kv_bytes_per_token_layer
    _, slope_us = _fit_line(dec.ctx_total, dec.median_us)
    if slope_us > 0:
        vals["attention_bandwidth_efficiency"] = _clip_efficiency(
            per_token_layer / (slope_us * 1e-6) / hbm)
        src["attention_bandwidth_efficiency"] = (
            f"measured: {per_token_layer} KV bytes per token and layer over the slope of "
            f"sdpa-contiguous decode time vs batch x context ({slope_us * 1e3:.4g} ns per "
            f"token), over the copy rate")
    else:
        published("attention_bandwidth_efficiency", "decode time does not grow with context")

    pd_ = paged_decode_slowdown(att)
    if pd_ is not None:
        vals["paged_decode_slowdown"] = pd_["value"]
        src["paged_decode_slowdown"] = "measured: " + pd_["how"]
    else:
        published("paged_decode_slowdown", "no paged decode rows")
    vals["paged_prefill_slowdown"] = 1.0
    src["paged_prefill_slowdown"] = (
        "convention, as in the published files: prefill attention runs on the new tokens' "
        "contiguous Q/K/V; the measured paged-gather prefill ratio is in gpu-attention.json "
        "(summary.gather_prefill_ratio = "
        f"{variant_ratio(att, 'prefill', 'paged-gather', 'sdpa-contiguous')})")
    vals["vattention_decode_slowdown"] = 1.0
    src["vattention_decode_slowdown"] = ("by definition: vAttention's KV is virtually contiguous, "
                                         "so it runs the contiguous kernel measured as "
                                         "sdpa-contiguous")

    if vmm is not None and {"cuMemMap", "cuMemSetAccess", "cuMemUnmap"} <= set(vmm.call):
        m = vmm.set_index("call").mean_us
        vals["map_us_per_call"] = float(m["cuMemMap"] + m["cuMemSetAccess"])
        vals["unmap_us_per_call"] = float(m["cuMemUnmap"])
        n = int(vmm.set_index("call").calls["cuMemMap"])
        src["map_us_per_call"] = (f"measured: mean cuMemMap {m['cuMemMap']:.3g} us + mean "
                                  f"cuMemSetAccess {m['cuMemSetAccess']:.3g} us over {n} 2 MiB "
                                  f"pages")
        src["unmap_us_per_call"] = f"measured: mean cuMemUnmap over {n} 2 MiB pages"
    else:
        published("map_us_per_call", "no VMM table")
        published("unmap_us_per_call", "no VMM table")

    pinned = None if h2d is None else h2d[(h2d.direction == "h2d")
                                          & (h2d.host_memory == "pinned")]
    if pinned is not None and len(pinned):
        vals["pcie_bandwidth_bytes_per_s"] = float(pinned.bytes_per_s.max())
        src["pcie_bandwidth_bytes_per_s"] = "measured: best pinned host-to-device copy rate"
    else:
        published("pcie_bandwidth_bytes_per_s", "no host-to-device table")
    published("step_fixed_us", "no microbenchmark measures a serving engine's per-step "
                               "scheduling cost")

    curves = {}
    if gemm is not None:
        layer = gemm[gemm.kind == "layer"].groupby("tokens").median_us.median()
        head = gemm[gemm.kind == "lm_head"].groupby("tokens").median_us.median()
        pts = [[float(t), float(shape.layers * us + head.get(t, 0.0))] for t, us in layer.items()]
        if pts:
            curves["dense_us"] = pts
            src[f"models.{shape.name}.dense_us"] = (
                "measured: layers x one decoder layer's GEMMs + lm_head (over all tokens) per "
                "token count" + ("" if len(head) else "; no lm_head rows"))
    dcurve = dec.groupby("ctx_total").median_us.median().sort_index()
    curves["decode_attention_us"] = [[float(c), float(shape.layers * us)]
                                     for c, us in dcurve.items()]
    src[f"models.{shape.name}.decode_attention_us"] = (
        "measured: layers x median sdpa-contiguous one-layer decode time per total context "
        "(batch x context tokens; the median where several batches give the same total)")

    date = (device or {}).get("date") or _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds")
    doc = {"format": "simkit-kv-calibration", "version": 1, "kind": "measured", "gpu": gpu,
           "description": (f"MEASURED on {gpu} (driver {driver_version(device)}, {date}) by "
                           f"simkit bench gpu; fields not measured are labelled NOT MEASURED "
                           f"in sources"),
           "device": gpu, "driver": driver_version(device), "date": date,
           "machine": device or {}}
    doc.update(vals)
    doc["models"] = {shape.name: curves}
    doc["sources"] = src
    return jsonable(doc)


def write_kv_calibration(doc: dict, path) -> Path:
    """Write ``doc`` after checking that ``load_calibration`` accepts it (``InputError`` if
    not; nothing is written then)."""
    from simkit.kvpaging.costmodel import Calibration

    Calibration.from_dict(jsonable(doc), where=str(path))
    return write_json(doc, path)


# ----------------------------------------------------------------------------------------------
# The GPU TLB preset

def _tlb_geometry(entries: int, max_ways: int = 16) -> tuple[int, int]:
    """(entries, ways) near ``entries`` with a power-of-two number of sets: fully associative
    up to 64 entries, else sets = a power of two giving max_ways..2*max_ways ways."""
    entries = max(1, int(entries))
    if entries <= 64:
        return entries, entries
    sets = 1 << int(math.floor(math.log2(entries / max_ways)))
    ways = max(1, round(entries / sets))
    return ways * sets, ways


def _pow2_cache(name: str, size_bytes: int, latency: int, line: int = 64, ways: int = 16):
    from simkit.cache import CacheConfig

    sets = max(1, 1 << int(math.floor(math.log2(max(size_bytes // (ways * line), 1)))))
    return CacheConfig(name, sets * ways * line, ways, line, "lru", latency_cycles=int(latency))


def gpu_tlb_preset(tlb_df, latency_df=None, *, l2_cache_bytes: int | None = None):
    """An ``MMUConfig`` for the measured GPU: L1 TLB and L2 TLB entries from the measured reach
    (2 MiB pages: entries = reach / 2 MiB), every page 2 MiB (``huge_page_fraction=1``);
    L2 TLB hit = the first step's height, and the data caches (L1, L2 of ``l2_cache_bytes``,
    HBM) from the latency ladder's plateaus (cache_op ca) where given.

    Assumptions, not measurements: the associativity (``_tlb_geometry``), LRU, a 4-level radix
    walk through the data caches, no page-walk-cache geometry (Victima's default), 64 B lines.
    ``ValueError`` when the chase shows fewer than one TLB step (no reach to build from).
    """
    from simkit.cache import HierarchyConfig
    from simkit.tlb import MMUConfig, TLBConfig

    reach = tlb_reach(tlb_df)
    levels = reach["levels"]
    if not levels:
        raise ValueError("tlb: no step in the measured latency up to "
                         f"{reach['max_span_bytes'] // MiB} MiB: no TLB reach to build from")
    l1_entries, l1_ways = _tlb_geometry(levels[0]["entries_at_2MiB"])
    if len(levels) > 1:
        l2_entries, l2_ways = _tlb_geometry(levels[1]["entries_at_2MiB"])
    else:   # the L2 TLB's reach lies beyond the largest span measured
        l2_entries, l2_ways = _tlb_geometry(max(reach["max_span_bytes"] // PAGE_2M, 2 * l1_entries))
    l2_lat = max(1, round(levels[0]["step_cycles"]))
    cfg = {}
    if latency_df is not None and len(latency_df):
        lat = latency_summary(latency_df)
        plats = (lat.get("ca") or next(iter(lat.values())))["plateaus"]
        if len(plats) >= 3:
            l1 = _pow2_cache("L1", plats[0]["to_bytes"], plats[0]["cycles"])
            l2 = _pow2_cache("L2", l2_cache_bytes or plats[-2]["to_bytes"], plats[-2]["cycles"])
            cfg["caches"] = HierarchyConfig(levels=(l1, l2),
                                            memory_latency_cycles=round(plats[-1]["cycles"]))
    return MMUConfig(l1d=TLBConfig("GPU-L1-TLB", l1_entries, l1_ways, 0),
                     l1i=TLBConfig("L1I-TLB", 16, 16, 0),
                     l2=TLBConfig("GPU-L2-TLB", l2_entries, l2_ways, l2_lat),
                     huge_page_fraction=1.0, **cfg)


def write_results(device_desc: dict, tables: dict, outdir, *, model: str = DEFAULT_MODEL
                  ) -> list[Path]:
    """Write every table (CSV), plot (PNG) and JSON document under ``outdir``, the KV
    calibration (when the bandwidth and attention tables are there) and the GPU TLB preset
    (when the TLB chase shows a step). Returns the paths written."""
    outdir = Path(outdir)
    written = write_tables(device_desc, tables, outdir)
    if "bandwidth" in tables and "attention" in tables:
        doc = kv_calibration(tables, device_desc, model)
        written.append(write_kv_calibration(doc, outdir / "kv-calibration-measured.json"))
    if "tlb" in tables:
        l2 = ((device_desc or {}).get("torch") or {}).get("l2_cache_bytes")
        try:
            cfg = gpu_tlb_preset(tables["tlb"], tables.get("latency"), l2_cache_bytes=l2)
        except ValueError:
            cfg = None
        if cfg is not None:
            written.append(write_json(
                {"format": "simkit.tlb.MMUConfig", "label": "measured reach; geometry "
                 "assumptions in simkit.calibrate.gpu.gpu_tlb_preset",
                 "gpu": device_name(device_desc), "date": device_desc.get("date"),
                 "reach": tlb_reach(tables["tlb"]), "config": cfg.to_dict()},
                outdir / "gpu-tlb-preset.json"))
    return written


__all__ = ["gpu_tlb_preset", "kv_calibration", "write_kv_calibration", "write_results"]
