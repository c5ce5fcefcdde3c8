"""Attention-kernel profiles, per-page-size VMM costs and vAttention's background mapping
(issue 15, item 2): the calibration's choices, and the engine's overlap worked by hand."""
import json

import pytest

from simkit.errors import InputError
from simkit.kvpaging.costmodel import Calibration, CostModel, default_calibration
from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.gpus import get_gpu
from simkit.kvpaging.kernels import PAGED_KERNELS
from simkit.kvpaging.models import ModelShape, get_model
from simkit.kvpaging.workload import Request, RequestSource

H100 = get_gpu("H100-80GB")
# 1 layer, 4 KiB K row: a 64 KiB page holds 16 tokens; a page-group is 2 pages (K and V)
VT = ModelShape("vt", layers=1, hidden=64, heads=1, kv_heads=1, head_dim=2048, ffn=64,
                vocab=16, max_context=64)


def test_shipped_files_name_the_vllm_2023_kernel():
    for gpu in ("H100-80GB", "A100-80GB", "A100-40GB"):
        cal = default_calibration(gpu)
        assert cal.paged_kernel == "vllm-2023"
        # PagedAttention Fig. 18a: 20-26% slower, midpoint; prefill on contiguous Q/K/V
        assert (cal.paged_decode_slowdown, cal.paged_prefill_slowdown) == (1.23, 1.0)
        assert set(cal.vmm_by_page) == {64 << 10, 128 << 10, 256 << 10, 2 << 20}
        assert "ASSUMPTION" in cal.sources["vmm_by_page"]


@pytest.mark.parametrize("name,decode,prefill", [("fa2-paged", 1.0, 1.37),
                                                 ("flashinfer-paged", 1.0, 1.42),
                                                 ("vllm-vs-fa2", 2.8, 1.0),
                                                 ("contiguous", 1.0, 1.0)])
def test_with_paged_kernel_sets_the_published_factors(name, decode, prefill):
    cal = default_calibration("A100-80GB").with_paged_kernel(name)
    assert (cal.paged_kernel, cal.paged_decode_slowdown, cal.paged_prefill_slowdown) == \
        (name, decode, prefill)
    assert cal.sources["paged_prefill_slowdown"].startswith(f"paged_kernel {name}")
    # the cost model charges them: 1000 prefill pairs and 1000 tokens of decode context
    m = get_model("Llama-3-8B")
    p, c = CostModel(m, cal, "paged"), CostModel(m, cal, "contiguous")
    extra = p.iteration_s(10, 2, 1000, 1000) - c.iteration_s(10, 2, 1000, 1000)
    want = (1000 * c.s_per_pair * (prefill - 1) + 1000 * c.s_per_ctx_token * (decode - 1))
    assert extra == pytest.approx(want, rel=1e-9, abs=1e-15)
    assert set(PAGED_KERNELS) >= {name}


def test_calibration_file_kernel_errors():
    d = default_calibration("A100-80GB").to_dict()
    d["paged_decode_slowdown"] = 1.5               # differs from the named vllm-2023's 1.23
    with pytest.raises(InputError, match="paged_decode_slowdown: 1.5 differs from "
                                         "paged_kernel 'vllm-2023'"):
        Calibration.from_dict(d)
    d["paged_kernel"] = "custom"                   # own factors: accepted as written
    assert Calibration.from_dict(d).paged_decode_slowdown == 1.5
    d["paged_kernel"] = "cudnn"
    with pytest.raises(InputError, match="field paged_kernel: unknown kernel 'cudnn'"):
        Calibration.from_dict(d)
    d = default_calibration("A100-80GB").to_dict()
    del d["paged_decode_slowdown"], d["paged_prefill_slowdown"]   # filled from the profile
    assert Calibration.from_dict(d).paged_decode_slowdown == 1.23
    with pytest.raises(ValueError, match="paged_kernel: unknown kernel 'x'"):
        default_calibration("A100-80GB").with_paged_kernel("x")


@pytest.mark.parametrize("bad,match", [
    ({"64KiB": {"map_us_per_call": -1, "unmap_us_per_call": 1}},
     r"vmm_by_page.64KiB.map_us_per_call: must be a number >= 0"),
    ({"64KiB": {"map_us_per_call": 1}}, r"vmm_by_page.64KiB: expected"),
    ({"big": {"map_us_per_call": 1, "unmap_us_per_call": 1}}, r"vmm_by_page.big: not a page"),
    ([1], r"vmm_by_page: expected an object")])
def test_vmm_by_page_errors(bad, match):
    d = default_calibration("A100-80GB").to_dict()
    d["vmm_by_page"] = bad
    with pytest.raises(InputError, match=match):
        Calibration.from_dict(d)


def test_vmm_cost_per_page_size():
    d = default_calibration("A100-80GB").to_dict()
    d["vmm_by_page"] = {"64KiB": {"map_us_per_call": 3.0, "unmap_us_per_call": 2.0}}
    cal = Calibration.from_dict(d)
    m = get_model("Llama-3-8B")
    small = CostModel(m, cal, "vattention", page_bytes=64 << 10)
    big = CostModel(m, cal, "vattention", page_bytes=2 << 20)   # not listed: the scalars
    assert (small.map_s_per_call, small.unmap_s_per_call) == (3e-6, 2e-6)
    assert big.map_s_per_call == pytest.approx(37.45e-6)
    assert json.loads(json.dumps(cal.to_dict()))["vmm_by_page"] == d["vmm_by_page"]


def _calibration(map_us):
    """Iteration = 1 ms + 1 us per token (dense curve); VMM call = map_us for 64 KiB pages."""
    d = default_calibration("H100-80GB").to_dict()
    d.update(kind="measured", paged_kernel="custom", step_fixed_us=0.0,
             hbm_bandwidth_bytes_per_s=1e30, peak_fp16_flops=1e30,
             models={"vt": {"dense_us": [[0, 1000], [1000, 2000]]}},
             vmm_by_page={"64KiB": {"map_us_per_call": map_us, "unmap_us_per_call": 0.0}})
    return Calibration.from_dict(d)


@pytest.mark.parametrize("lookahead,exposed_ms", [
    # k = 1: admission maps the prompt's group and one lookahead group (4 calls, 4 ms) during
    # the 1.016 ms prefill: 2.984 ms stall; at 32 tokens (decode 16) one group (2 ms) in a
    # 1.001 ms step: 0.999 ms. Total 3.983 ms
    (1, 2.984 + 0.999),
    # k = 2: the thread may lag one step: prefill 4 ms - 2 x 1.016 = 1.968 ms stall, backlog
    # 1.016 ms drained by the next steps; the group at 31 tokens (2 ms) fits 2 x 1.001 ms
    (2, 4 - 2 * 1.016)])
def test_background_mapping_overlaps_compute_by_hand(lookahead, exposed_ms):
    items = [Request(0, 0.0, 16, 20)]
    src = RequestSource("hand", lambda: iter(items), 1)
    sim = ServingSimulator(VT, H100, "vattention-64KiB", src, calibration=_calibration(1000.0),
                           capacity_bytes=16 << 20, progress=False,
                           manager_overrides={"lookahead_tokens": lookahead})
    st = sim.run()
    assert sim.map_calls_per_op == 2
    assert st.map_calls == 6 and st.map_s == pytest.approx(6e-3)       # 3 groups, all behind
    assert st.map_exposed_s == pytest.approx(exposed_ms * 1e-3, abs=1e-12)
    # 20 iterations (prefill + 19 decodes) of 1 ms + tokens us, plus the stalls
    assert st.busy_s == pytest.approx(1.016e-3 + 19 * 1.001e-3 + exposed_ms * 1e-3, abs=1e-12)


def test_synchronous_mapping_is_all_on_the_critical_path():
    items = [Request(0, 0.0, 16, 20)]
    src = RequestSource("hand", lambda: iter(items), 1)
    sim = ServingSimulator(VT, H100, "vattention-64KiB", src, calibration=_calibration(1000.0),
                           capacity_bytes=16 << 20, progress=False,
                           manager_overrides={"overlap": False, "eager_alloc": False})
    st = sim.run()
    # groups at 16 (prefill) and 17, 33 tokens (decode growth): 3 groups x 2 calls x 1 ms
    assert st.map_calls == 6 and st.map_exposed_s == pytest.approx(6e-3, abs=1e-12)


def test_kv_vattention_experiment_quick(tmp_path):
    """The comparisons land where the published factors put them: prefill speed-up between 1
    and the kernel factor, growing with context; decode on par with fa2/flashinfer paged; 64
    KiB pages as fast as 2 MiB with background mapping, slower without."""
    import pandas as pd

    from simkit.experiments import kv_vattention as ex

    df, paths = ex.kv_vattention(quick=True, outdir=tmp_path)
    assert all(p.exists() for p in paths)
    assert (df.label == "PUBLISHED CALIBRATION").all()
    pre = df[df.comparison == "prefill fa2-paged"].sort_values("context_tokens")
    assert pre.ratio.is_monotonic_increasing and 1 < pre.ratio.iloc[-1] <= 1.37
    for k in ("fa2-paged", "flashinfer-paged"):
        assert df[df.comparison == f"decode {k}"].ratio.tolist() == pytest.approx([1.0] * 2)
    assert (df[df.comparison == "page 64KiB/2MiB overlap"].ratio <= 1.0 + 1e-12).all()
    assert (df[df.comparison == "page 64KiB/2MiB sync"].ratio > 1.0).all()
    s = pd.read_csv(tmp_path / "kv-vattention-summary.csv")
    assert s.holds.all(), s[~s.holds].to_string()
