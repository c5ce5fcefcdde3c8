"""simkit bench gpu: everything that runs without a GPU, on SYNTHETIC rows.

The rows below are made up to have known plateaus, steps and ratios; they are not measurements
of any GPU and must never be read as such. Tests marked ``gpu`` need a CUDA device and skip with
the reason (``simkit.bench.gpu.measure.probe``) elsewhere.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from simkit.bench.gpu import _cuda
from simkit.bench.gpu import measure as gpu
from simkit.bench.gpu import rows as gpu_fit
from simkit.calibrate import gpu as gcal
from simkit.cli import main
from simkit.errors import InputError
from simkit.kvpaging.costmodel import CostModel, load_calibration
from simkit.kvpaging.models import get_model

MiB, GiB = 1 << 20, 1 << 30
MODEL = get_model("Llama-2-7B")
DEVICE = {"nvml": {"name": "SYNTHETIC-GPU", "driver_version": "0.0-test"},
          "torch": {"name": "SYNTHETIC-GPU", "l2_cache_bytes": 32 * MiB},
          "date": "2000-01-01T00:00:00+00:00"}


# ----------------------------------------------------------------------------------------------
# Synthetic rows with known answers

def _chase_cols(cycles, mhz=1000.0):
    return {"cycles_median": cycles, "cycles_mean": cycles, "cycles_p10": cycles * 0.98,
            "cycles_p90": cycles * 1.02, "sm_clock_mhz": mhz, "ns_median": cycles / mhz * 1e3}


def latency_rows():
    rows = []
    for op, levels in (("ca", ((256 * 1024, 30.0), (32 * MiB, 250.0), (None, 600.0))),
                       ("cg", ((32 * MiB, 250.0), (None, 600.0)))):
        for k in range(12, 31):
            ws = 1 << k
            cyc = next(c for lim, c in levels if lim is None or ws <= lim)
            rows.append({"cache_op": op, "working_set_bytes": ws, "stride_bytes": 128,
                         "nodes": ws // 128, "samples": 2048, **_chase_cols(cyc)})
    return pd.DataFrame(rows, columns=gpu_fit.COLUMNS["latency"])


def tlb_rows(l1_reach=8 * MiB, l2_reach=256 * MiB, max_span=1 * GiB):
    rows = []
    for span in gpu.tlb_spans(max_span, 2):
        cyc = 250.0 if span <= l1_reach else 330.0 if span <= l2_reach else 520.0
        rows.append({"cache_op": "cg", "span_bytes": span, "page_stride_bytes": 2 * MiB,
                     "pages": span // (2 * MiB), "samples": 2048, **_chase_cols(cyc)})
    return pd.DataFrame(rows, columns=gpu_fit.COLUMNS["tlb"])


HBM = 2.0e12            # synthetic copy rate, bytes/s
KV_NS_PER_TOKEN = 0.4   # synthetic sdpa decode slope per (batch x context) token and layer
PAGED = 1.25            # synthetic triton-paged / triton-contiguous


def tables():
    bw = pd.DataFrame([{"size_bytes": s, "bytes_moved": 2 * s, "reps": 20,
                        "median_ms": 2 * s / r * 1e3, "min_ms": 2 * s / r * 1e3,
                        "bytes_per_s": r} for s, r in ((64 * MiB, 1.5e12), (GiB, HBM))],
                      columns=gpu_fit.COLUMNS["bandwidth"])
    lp = (MODEL.layer_params - MODEL.hidden * 2)        # the four GEMMs' weights, no norms
    gemm = []
    for t in (1, 8, 64, 512):
        us = 100.0 + 0.5 * t
        gemm.append({"kind": "layer", "model": MODEL.name, "tokens": t, "flops": 2 * t * lp,
                     "weight_bytes": 2 * lp, "reps": 20, "median_us": us,
                     "flops_per_s": 2 * t * lp / (us * 1e-6)})
        gemm.append({"kind": "lm_head", "model": MODEL.name, "tokens": t,
                     "flops": 2 * t * MODEL.hidden * MODEL.vocab,
                     "weight_bytes": 2 * MODEL.hidden * MODEL.vocab, "reps": 20,
                     "median_us": 80.0 + 0.1 * t, "flops_per_s": 1.0})
    gemm.append({"kind": "square", "model": "", "tokens": 8192, "flops": 2 * 8192 ** 3,
                 "weight_bytes": 2 * 8192 ** 2, "reps": 10, "median_us": 2000.0,
                 "flops_per_s": 2 * 8192 ** 3 / 2e-3})
    gemm = pd.DataFrame(gemm, columns=gpu_fit.COLUMNS["gemm"])
    att = []
    for b in (1, 8):
        for ctx in (512, 2048, 8192):
            base = 10.0 + KV_NS_PER_TOKEN * 1e-3 * b * ctx
            for variant, bs, us in (("sdpa-contiguous", 0, base), ("paged-gather", 16, 3 * base),
                                    ("triton-contiguous", 16, base),
                                    ("triton-paged", 16, PAGED * base)):
                att.append({"phase": "decode", "variant": variant, "model": MODEL.name,
                            "batch": b, "context_tokens": ctx, "block_size": bs, "heads": 32,
                            "kv_heads": 32, "head_dim": 128,
                            "kv_bytes": b * ctx * MODEL.kv_bytes_per_token_layer, "pairs": 0,
                            "reps": 20, "median_us": us, "min_us": us, "max_rel_err": 1e-3})
    for c in (512, 2048):
        for variant, bs, us in (("sdpa-contiguous", 0, 50.0), ("paged-gather", 16, 80.0)):
            att.append({"phase": "prefill", "variant": variant, "model": MODEL.name, "batch": 1,
                        "context_tokens": c, "block_size": bs, "heads": 32, "kv_heads": 32,
                        "head_dim": 128, "kv_bytes": c * MODEL.kv_bytes_per_token_layer,
                        "pairs": c * (c + 1) // 2, "reps": 20, "median_us": us * c / 512,
                        "min_us": us, "max_rel_err": 1e-3})
    att = pd.DataFrame(att, columns=gpu_fit.COLUMNS["attention"])
    vmm = pd.DataFrame([{"call": c, "page_bytes": 2 * MiB, "calls": 64, "mean_us": us,
                         "p50_us": us, "p99_us": 2 * us, "min_us": us / 2, "max_us": 3 * us}
                        for c, us in (("cuMemAddressReserve", 20.0), ("cuMemCreate", 100.0),
                                      ("cuMemMap", 2.0), ("cuMemSetAccess", 30.0),
                                      ("cuMemUnmap", 20.0), ("cuMemRelease", 40.0),
                                      ("cuMemAddressFree", 10.0))],
                       columns=gpu_fit.COLUMNS["vmm"])
    h2d = pd.DataFrame([{"direction": d, "host_memory": m, "size_bytes": s, "reps": 20,
                         "median_us": s / r * 1e6, "bytes_per_s": r}
                        for d in ("h2d", "d2h") for m, r in (("pinned", 5e10), ("pageable", 1e10))
                        for s in (1 * MiB, 256 * MiB)], columns=gpu_fit.COLUMNS["h2d"])
    return {"latency": latency_rows(), "tlb": tlb_rows(), "bandwidth": bw, "gemm": gemm,
            "attention": att, "vmm": vmm, "h2d": h2d}


# ----------------------------------------------------------------------------------------------
# No GPU: the skip path and the CLI

def _no_torch(monkeypatch):
    real = gpu.importlib.util.find_spec
    monkeypatch.setattr(gpu.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))


def test_skip_line_without_torch(monkeypatch, capsys):
    _no_torch(monkeypatch)
    assert gpu.probe() == "no CUDA device (torch not installed)"
    assert main(["bench", "gpu"]) == 0
    assert capsys.readouterr().out == \
        "simkit: bench gpu: skipped: no CUDA device (torch not installed)\n"
    assert main(["bench", "gpu", "--quick", "--require-gpu"]) == 3
    for measure in (lambda: gpu.measure_latency([4096]), lambda: gpu.measure_tlb(8 * MiB),
                    lambda: gpu.measure_bandwidth([MiB]), lambda: gpu.measure_gemm([1]),
                    lambda: gpu.measure_attention(), lambda: gpu.measure_vmm(4),
                    lambda: gpu.measure_h2d([MiB]), lambda: gpu.describe_gpu()):
        with pytest.raises(gpu.Skip, match="torch not installed"):
            measure()
    with pytest.raises(gpu.Skip):
        gpu.run(("bandwidth",))


def test_skip_line_without_a_device(capsys):
    reason = gpu.probe()
    if reason is None:
        pytest.skip("a CUDA device is present")
    assert reason.startswith("no CUDA device (") and "\n" not in reason
    assert main(["bench", "gpu", "--only", "latency,vmm"]) == 0
    assert capsys.readouterr().out == f"simkit: bench gpu: skipped: {reason}\n"


def test_importing_gpu_modules_imports_no_torch():
    code = ("import sys, simkit.bench.gpu.measure, simkit.bench.gpu.rows, simkit.bench.gpu._cuda, "
            "simkit.calibrate.gpu, "
            "simkit.experiments.gpu_validation, simkit.cli; simkit.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'pynvml', 'triton') if sys.modules.get(m)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv, message", [
    (["--only", "latency,nope"], "--only: unknown benchmark nope"),
    (["--only", ","], "--only: unknown benchmark"),
    (["--model", "gpt-17"], "model: unknown model 'gpt-17'"),
    (["--device", "-1"], "--device: must be >= 0"),
    (["--outdir", "/nonexistent-simkit/out"], "directory /nonexistent-simkit does not exist"),
    (["--from-rows", "/nonexistent-simkit"], "not a directory"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(["bench", "gpu", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simkit: error: ") and message in err and err.count("\n") == 1


def test_from_rows_rejects_bad_tables(tmp_path, capsys):
    assert main(["bench", "gpu", "--from-rows", str(tmp_path)]) == 2
    assert "no gpu-<bench>.csv tables" in capsys.readouterr().err
    tables()["vmm"].drop(columns=["mean_us"]).to_csv(tmp_path / "gpu-vmm.csv", index=False)
    assert main(["bench", "gpu", "--from-rows", str(tmp_path)]) == 2
    assert "gpu-vmm.csv: vmm table: missing columns mean_us" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Chase layouts (what the kernel walks, and what the TLB simulator replays)

def _walk(positions, values, start, steps):
    buf = dict(zip(positions.tolist(), values.tolist()))
    out, j = [], int(start)
    for _ in range(steps):
        j = buf[j]
        out.append(j)
    return out


@pytest.mark.parametrize("ws, stride", [(4096, 128), (64 * 1024, 64), (128, 128)])
def test_latency_chain_is_one_cycle_over_the_working_set(ws, stride):
    order, n = gpu_fit.latency_chase_words(ws, stride, seed=3)
    assert n == ws // stride and len(order) == n
    assert sorted(order.tolist()) == list(range(0, ws // 8, stride // 8))
    pos, val = gpu_fit.chain_values(order)
    visited = _walk(pos, val, order[0], n)
    assert visited[-1] == order[0] and sorted(visited) == sorted(order.tolist())
    assert visited == np.roll(order, -1).tolist()        # the kernel loads in visiting order


def test_tlb_chain_one_node_per_2mib_page_on_distinct_lines():
    pages = 300
    words = gpu_fit.tlb_node_words(pages)
    byte = words * np.uint64(8)
    np.testing.assert_array_equal(byte // np.uint64(2 * MiB), np.arange(pages))
    lines = (byte % np.uint64(2 * MiB)) // np.uint64(128)
    assert len(set(lines.tolist())) == pages            # no two nodes share a line offset
    assert lines[1] == 17 and lines[2] == 34
    addrs = gpu_fit.tlb_chase_addresses(pages, laps=2, seed=1, base=1 << 40)
    assert len(addrs) == 2 * pages and (addrs[:pages] == addrs[pages:]).all()
    assert sorted(((addrs[:pages] - np.uint64(1 << 40)) // np.uint64(8)).tolist()) == \
        sorted(words.tolist())
    with pytest.raises(ValueError, match="laps"):
        gpu_fit.tlb_chase_addresses(4, laps=0)


def test_tlb_spans_are_2mib_multiples():
    s = gpu.tlb_spans(64 * MiB, 2)
    assert s == [4 * MiB, 6 * MiB, 8 * MiB, 12 * MiB, 16 * MiB, 22 * MiB, 32 * MiB, 46 * MiB,
                 64 * MiB]
    assert all(x % (2 * MiB) == 0 for x in gpu.tlb_spans(64 * GiB, 4))


# ----------------------------------------------------------------------------------------------
# The kernel source and its shipped PTX

def test_shipped_ptx_is_portable_and_has_both_kernels():
    from simkit.bench.gpu._ptx import CHASE_PTX

    assert ".version 7.8" in CHASE_PTX and ".target sm_75" in CHASE_PTX
    for k in _cuda.KERNELS:
        assert f".visible .entry {k}(" in CHASE_PTX
    assert "ld.global.ca.u64" in CHASE_PTX and "ld.global.cg.u64" in CHASE_PTX
    assert CHASE_PTX.count("%clock64") >= 4 and "ld.global.nc" not in CHASE_PTX


def test_shipped_ptx_matches_the_source():
    try:
        fresh = _cuda.portable_ptx(_cuda.compile_ptx())
    except _cuda.CudaError as exc:
        pytest.skip(f"NVRTC not available: {exc}")
    from simkit.bench.gpu._ptx import CHASE_PTX

    def body(p):
        return [ln for ln in p.splitlines() if not ln.startswith("//")]
    assert body(fresh) == body(CHASE_PTX)


def test_driver_missing_is_a_cuda_error():
    try:
        _cuda.load_libcuda()
    except _cuda.CudaError as exc:
        assert "libcuda.so.1 not found" in str(exc)
    else:
        pytest.skip("the NVIDIA driver is installed here")


def test_event_reasons_decode():
    assert gpu.decode_event_reasons(None) is None
    assert gpu.decode_event_reasons(0) == []
    assert gpu.decode_event_reasons(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap",
                                                          "hw_thermal_slowdown"]
    assert gpu.decode_event_reasons(0x1000) == ["0x1000"]


# ----------------------------------------------------------------------------------------------
# Summaries, reach, the TLB preset

def test_latency_summary_finds_the_synthetic_levels():
    s = gpu_fit.latency_summary(latency_rows())
    ca = s["ca"]
    assert [(k["before"], k["after"]) for k in ca["knees"]] == [(256 * 1024, 512 * 1024),
                                                               (32 * MiB, 64 * MiB)]
    assert [p["cycles"] for p in ca["plateaus"]] == [30.0, 250.0, 600.0]
    assert [p["ns"] for p in ca["plateaus"]] == [30.0, 250.0, 600.0]     # at 1000 MHz
    assert [p["cycles"] for p in s["cg"]["plateaus"]] == [250.0, 600.0]


def test_tlb_reach_and_preset_from_synthetic_steps():
    df = tlb_rows(l1_reach=32 * MiB, l2_reach=4 * GiB, max_span=16 * GiB)
    r = gpu_fit.tlb_reach(df)
    assert r["base_cycles"] == 250.0
    assert [(lv["reach_bytes"], lv["entries_at_2MiB"], lv["step_cycles"]) for lv in
            r["levels"]] == [(32 * MiB, 16, 80.0), (4 * GiB, 2048, 190.0)]
    cfg = gcal.gpu_tlb_preset(df, latency_rows(), l2_cache_bytes=50 * MiB)
    assert (cfg.l1d.entries, cfg.l1d.ways) == (16, 16)              # fully associative
    assert (cfg.l2.entries, cfg.l2.ways, cfg.l2.latency_cycles) == (2048, 16, 80)
    assert cfg.huge_page_fraction == 1.0
    l1, l2 = cfg.caches.levels
    assert (l1.latency_cycles, l2.latency_cycles, cfg.caches.memory_latency_cycles) == \
        (30, 250, 600)
    assert l1.size_bytes == 256 * 1024 and l2.size_bytes == 32 * MiB   # 50 MiB -> 2^k sets
    flat = tlb_rows(l1_reach=64 * GiB, l2_reach=64 * GiB, max_span=64 * MiB)
    with pytest.raises(ValueError, match="no step"):
        gcal.gpu_tlb_preset(flat)


@pytest.mark.parametrize("entries", [1, 16, 24, 64, 65, 100, 2048, 3000, 65536])
def test_tlb_geometry_has_power_of_two_sets(entries):
    from simkit.tlb import TLBConfig

    e, w = gcal._tlb_geometry(entries)
    TLBConfig("x", e, w, 1)                          # valid geometry
    assert abs(e - entries) / entries < 0.05 or entries <= 64 and e == entries


# ----------------------------------------------------------------------------------------------
# The KV calibration: written, read back by the cost model, labelled

def test_kv_calibration_round_trip(tmp_path):
    t = tables()
    doc = gcal.kv_calibration(t, DEVICE, "Llama-2-7B")
    path = gcal.write_kv_calibration(doc, tmp_path / "kv.json")
    cal = load_calibration(path)
    assert cal.kind == "measured" and cal.gpu == "SYNTHETIC-GPU"
    raw = json.loads(path.read_text())
    assert raw["device"] == "SYNTHETIC-GPU" and raw["driver"] == "0.0-test"
    assert raw["date"] == DEVICE["date"]
    assert cal.hbm_bandwidth_bytes_per_s == HBM
    assert cal.peak_fp16_flops == pytest.approx(2 * 8192 ** 3 / 2e-3)
    # KV bytes per token and layer over the synthetic slope, over the copy rate
    eff = MODEL.kv_bytes_per_token_layer / (KV_NS_PER_TOKEN * 1e-9) / HBM
    assert cal.attention_bandwidth_efficiency == pytest.approx(min(eff, 1.0))
    assert cal.paged_decode_slowdown == pytest.approx(PAGED)
    assert cal.map_us_per_call == 32.0 and cal.unmap_us_per_call == 20.0
    assert cal.pcie_bandwidth_bytes_per_s == 5e10
    assert cal.sources["step_fixed_us"].startswith("NOT MEASURED")
    assert cal.sources["map_us_per_call"].startswith("measured:")
    curves = cal.models["llama-2-7b"]
    assert curves["dense_us"].x == (1.0, 8.0, 64.0, 512.0)
    assert curves["dense_us"].us[0] == pytest.approx(32 * 100.5 + 80.1)
    assert curves["decode_attention_us"].x[0] == 512.0
    cm = CostModel(MODEL, cal, "paged")
    base = cm.iteration_s(8, 8)
    with_attn = cm.iteration_s(8, 8, decode_ctx_tokens=8 * 2048)
    assert (with_attn - base) * 1e6 == pytest.approx(
        PAGED * 32 * (10.0 + KV_NS_PER_TOKEN * 1e-3 * 8 * 2048))


def test_kv_calibration_labels_what_was_not_measured(tmp_path):
    t = tables()
    del t["vmm"], t["h2d"], t["gemm"]
    cal_doc = gcal.kv_calibration(t, DEVICE)
    src = cal_doc["sources"]
    for f in ("map_us_per_call", "unmap_us_per_call", "pcie_bandwidth_bytes_per_s",
              "peak_fp16_flops", "flops_efficiency", "step_fixed_us"):
        assert src[f].startswith("NOT MEASURED") and "published-h100-80gb.json" in src[f]
    assert "dense_us" not in cal_doc["models"]["Llama-2-7B"]
    load = gcal.write_kv_calibration(cal_doc, tmp_path / "k.json")
    assert load_calibration(load).kind == "measured"
    no_gather = tables()["attention"]
    no_gather = no_gather[~no_gather.variant.str.startswith("triton")]
    s = gpu_fit.paged_decode_slowdown(no_gather)
    assert s["value"] == pytest.approx(3.0) and s["how"].startswith("UPPER BOUND")


def test_kv_calibration_needs_bandwidth_and_attention(tmp_path):
    t = tables()
    del t["attention"]
    with pytest.raises(InputError, match="needs the bandwidth and attention tables"):
        gcal.kv_calibration(t, DEVICE)
    doc = gcal.kv_calibration(tables(), DEVICE)
    doc["attention_bandwidth_efficiency"] = float("nan")
    with pytest.raises(InputError, match="attention_bandwidth_efficiency"):
        gcal.write_kv_calibration(doc, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


# ----------------------------------------------------------------------------------------------
# Tables, documents, plots; --from-rows end to end; the validation skeleton

def test_documents_and_plots_for_every_bench(tmp_path):
    for b, df in tables().items():
        doc = gpu_fit.bench_document(b, df, DEVICE, {"quick": True})
        assert doc["label"] == "measured" and doc["gpu"] == "SYNTHETIC-GPU"
        assert doc["device"]["nvml"]["name"] == "SYNTHETIC-GPU" and len(doc["rows"]) == len(df)
        json.dumps(doc, allow_nan=False)
        gpu_fit.plot(b, df, tmp_path / f"{b}.png")
        assert (tmp_path / f"{b}.png").stat().st_size > 1000


def test_from_rows_writes_calibration_preset_and_validation(tmp_path, capsys):
    rows = tmp_path / "rows"
    rows.mkdir()
    t = tables()
    for b, df in t.items():
        df.to_csv(rows / f"gpu-{b}.csv", index=False)
    gpu_fit.write_json(gpu_fit.bench_document("info", None, DEVICE), rows / "gpu-info.json")
    out = tmp_path / "out"
    assert main(["bench", "gpu", "--from-rows", str(rows), "--outdir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "L1 TLB: reach 8MiB (~4 entries of 2 MiB), then +80 cycles" in text
    assert "paged decode slowdown: 1.250" in text
    cal = load_calibration(out / "kv-calibration-measured.json")
    assert cal.kind == "measured" and cal.paged_decode_slowdown == pytest.approx(PAGED)
    # the serving simulator runs on it
    assert main(["kv", "run", "--trace", "azure-conv", "--model", "Llama-2-7B", "--gpu",
                 "H100-80GB", "--manager", "paged-16", "--max-requests", "20", "--calibration",
                 str(out / "kv-calibration-measured.json")]) == 0
    assert "measured: " in capsys.readouterr().out
    preset = json.loads((out / "gpu-tlb-preset.json").read_text())
    assert preset["config"]["l1d"]["entries"] == 4 and preset["config"]["l2"]["entries"] == 128
    for name in ("tlb", "kv"):
        assert (out / f"gpu-validation-{name}.png").stat().st_size > 1000
    kv = pd.read_csv(out / "gpu-validation-kv.csv")
    # a measured calibration reproduces its own contiguous decode and dense curves
    own = kv[kv.variant.isin(["sdpa-contiguous/0", "layers+lm_head"])]
    np.testing.assert_allclose(own.ratio_sim_over_measured, 1.0, rtol=1e-9)
    paged = kv[kv.variant == "triton-paged/16"]
    np.testing.assert_allclose(paged.ratio_sim_over_measured, 1.0, rtol=1e-9)
    assert set(kv.component) == {"dense", "decode_attention", "decode_iteration",
                                 "prefill_attention"}
    tv = pd.read_csv(out / "gpu-validation-tlb.csv")
    small, mid, big = tv[tv.span_bytes <= 8 * MiB], tv[(tv.span_bytes > 8 * MiB)
                                                         & (tv.span_bytes <= 256 * MiB)], \
        tv[tv.span_bytes > 256 * MiB]
    # the simulated steps fall where the measured ones do
    assert (small.sim_l1_tlb_miss_rate < 0.05).all() and (small.sim_walks_per_load < 0.05).all()
    assert (mid.sim_l1_tlb_miss_rate > 0.4).all() and (mid.sim_walks_per_load < 0.05).all()
    assert (big.sim_walks_per_load > 0.4).all()
    assert (small.sim_cycles == 250.0).all()
    # and --only narrows what is rebuilt
    out2 = tmp_path / "out2"
    assert main(["bench", "gpu", "--from-rows", str(rows), "--outdir", str(out2),
                 "--only", "vmm"]) == 0
    assert sorted(p.name for p in out2.iterdir()) == ["gpu-info.csv", "gpu-info.json",
                                                      "gpu-vmm.csv", "gpu-vmm.json",
                                                      "gpu-vmm.png"]
    info = pd.read_csv(out2 / "gpu-info.csv")
    assert info[info.field == "name"].value.tolist() == ["SYNTHETIC-GPU", "SYNTHETIC-GPU"]


def test_kv_validation_against_the_published_calibration():
    from simkit.experiments import gpu_validation as experiments_gpu
    from simkit.kvpaging.costmodel import default_calibration

    df, fig = experiments_gpu.kv_validation(tables(), default_calibration("H100-80GB"))
    assert len(df) and (df.simulated_us > 0).all()
    s = experiments_gpu.summary(df)
    assert set(s) == {"dense", "decode_attention", "decode_iteration", "prefill_attention"}


# ----------------------------------------------------------------------------------------------
# On a GPU only

gpu_only = pytest.mark.skipif(gpu.probe() is not None, reason=str(gpu.probe()))


@pytest.mark.gpu
@gpu_only
def test_gpu_latency_ladder_rises():
    df = gpu.measure_latency([16 * 1024, 256 * MiB], ops=("ca",))
    small, big = df.cycles_median.tolist()
    assert 0 < small < big


@pytest.mark.gpu
@gpu_only
def test_gpu_vmm_and_attention_run():
    v = gpu.measure_vmm(8)
    assert set(v.call) >= {"cuMemMap", "cuMemSetAccess", "cuMemUnmap"} and (v.mean_us > 0).all()
    a = gpu.measure_attention(batches=(1,), contexts=(256,), prefill_chunks=(128,), reps=3,
                              warmup=1)
    assert (a.max_rel_err < 2e-2).all()


def test_nvml_description_with_a_fake_pynvml(monkeypatch):
    """_Nvml reads every field through pynvml's names; a field NVML refuses is left None with
    the error recorded. The fake module stands in for the library (no GPU here)."""
    import types

    class NotSupported(Exception):
        pass

    def refuse(*a):
        raise NotSupported("Not Supported")

    fake = types.SimpleNamespace(
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_CLOCK_GRAPHICS=0,
        nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetUUID=lambda h: {"h0": "GPU-aaa", "h1": "GPU-bbb"}[h],
        nvmlDeviceGetName=lambda h: b"FAKE-GPU",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=80, free=70, used=10),
        nvmlDeviceGetClockInfo=lambda h, c: {1: 1000, 2: 2000, 0: 1000}[c],
        nvmlDeviceGetMaxClockInfo=lambda h, c: {1: 1500, 2: 2600, 0: 1500}[c],
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0x1,
        nvmlDeviceGetCurrentClocksThrottleReasons=refuse,
        nvmlDeviceGetMigMode=refuse,
        nvmlDeviceGetCudaComputeCapability=lambda h: (9, 0),
        nvmlDeviceGetPciInfo=lambda h: types.SimpleNamespace(busId=b"00000000:01:00.0"),
        nvmlDeviceGetPowerManagementLimit=lambda h: 700000,
        nvmlDeviceGetTemperature=lambda h, s: 30, nvmlDeviceGetPersistenceMode=lambda h: 1,
        nvmlSystemGetDriverVersion=lambda: "999.1", nvmlSystemGetCudaDriverVersion=lambda: 13000,
        nvmlSystemGetNVMLVersion=lambda: "13.999")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    nv = gpu._Nvml(0, uuid="bbb")
    assert nv.handle == "h1"                           # matched by UUID, not by index
    d = nv.describe()
    assert d["name"] == "FAKE-GPU" and d["pci_bus_id"] == "00000000:01:00.0"
    assert (d["sm_clock_mhz"], d["sm_max_clock_mhz"], d["memory_max_clock_mhz"]) == \
        (1000, 1500, 2600)
    assert d["clock_event_reasons"] == ["gpu_idle"] and d["compute_capability"] == "9.0"
    assert d["mig_mode_current"] is None and "NotSupported" in d["errors"]["mig_mode"]
    assert d["power_limit_w"] == 700.0 and d["cuda_driver_version"] == "13.0"
    assert d["driver_version"] == "999.1" and nv.sm_clock_mhz() == 1000
    json.dumps(d)


def test_measuring_path_with_stand_in_measurements(monkeypatch, tmp_path, capsys):
    """The CLI's measuring path (run -> report -> write) with the device and every measurement
    replaced by the synthetic rows; one benchmark fails and the others are still written."""
    t = tables()

    def fake_measure(bench, settings, **kw):
        assert settings is gpu.QUICK and kw["model"] == "Llama-2-7B"
        if bench == "vmm":
            raise RuntimeError("boom")
        return t[bench].copy()

    monkeypatch.setattr(gpu, "probe", lambda device=0: None)
    monkeypatch.setattr(gpu, "_need_gpu", lambda device: None)
    monkeypatch.setattr(gpu, "describe_gpu", lambda device=0: dict(DEVICE))
    monkeypatch.setattr(gpu, "_warm_clocks", lambda device: None)
    monkeypatch.setattr(gpu, "measure", fake_measure)
    out = tmp_path / "out"
    assert main(["bench", "gpu", "--quick", "--outdir", str(out),
                 "--only", "info,bandwidth,attention,vmm,tlb"]) == 1
    text = capsys.readouterr().out
    assert "simkit: bench gpu vmm: failed: RuntimeError: boom" in text
    assert "device: SYNTHETIC-GPU, driver 0.0-test" in text
    cal = load_calibration(out / "kv-calibration-measured.json")
    assert cal.sources["map_us_per_call"].startswith("NOT MEASURED (no VMM table)")
    assert not (out / "gpu-vmm.csv").exists() and (out / "gpu-tlb.png").exists()
    info = json.loads((out / "gpu-info.json").read_text())
    assert info["device"]["quick"] is True and info["device"]["settings"]["vmm_pages"] == 256
