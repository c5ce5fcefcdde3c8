"""Issue 16 item 5: storage presets (the paper's machines, a generic NVMe, this host, the GPU
variant over PCIe), each labelled with what it is; expectations by hand."""
import json
import math

import pytest

from simkit.cli import main
from simkit.errors import InputError
from simkit.flash.simulate import FlashConfig, FlashSimulator
from simkit.flash.storage import load_calibration, pcie_calibration

US = 1e-6


def test_shipped_presets_say_what_they_are():
    m1 = load_calibration("published-m1max")
    m2 = load_calibration("m2ultra-assumed")
    assert m2.kind == "assumed" and "ASSUMES" in m2.description
    assert m2.throughput(16384, 32) == m1.throughput(16384, 32) == pytest.approx(2.25e9)
    gpu = load_calibration("rtx4090-linux-derived")
    assert gpu.kind == "derived" and gpu.throughput(16384, 32) == pytest.approx(6.1e9)
    # the implied 0.206 GB / 30 ms is printed in its source
    assert "6.87 GB/s" in gpu.sources["16384"]
    nv = load_calibration("generic-nvme-assumed")
    assert nv.kind == "assumed"
    assert nv.throughput(4096, 1) == pytest.approx(22e3 * 4096)
    assert nv.throughput(4096, 512) == pytest.approx(1e6 * 4096)
    # depth 32: per-request time geometric (in log2 depth) between 4096/90.1 MB/s = 45.5 us
    # at depth 1 and 512 x 4096 / 4.096 GB/s = 512 us at depth 512
    f = 5 / 9
    t = (4096 / (22e3 * 4096)) ** (1 - f) * (512 / 1e6) ** f
    assert nv.throughput(4096, 32) == pytest.approx(32 * 4096 / t)


def test_pcie_gpu_variant():
    st = load_calibration("pcie-rtx4090")
    assert st.kind == "published" and st.sequential_bytes_per_s == 31.5e9
    # one 16 KiB row copy of 32 in flight: 5 us (assumed) + 32 x 16 KiB / 31.5 GB/s
    assert st.throughput(16384, 32) == pytest.approx(32 * 16384 / (5 * US + 32 * 16384 / 31.5e9))
    assert st.throughput(8 << 20, 32) == pytest.approx(31.5e9, rel=0.01)


def test_pcie_from_a_measured_gpu_calibration(tmp_path):
    p = tmp_path / "kv.json"
    p.write_text(json.dumps({"format": "simkit-kv-calibration", "pcie_bandwidth_bytes_per_s":
                             2.0e10, "sources": {"pcie_bandwidth_bytes_per_s":
                                                 "measured: best pinned host-to-device rate"}}))
    st = load_calibration(f"pcie:{p}")
    assert st.kind == "measured" and st.sequential_bytes_per_s == 2.0e10
    p.write_text(json.dumps({"pcie_bandwidth_bytes_per_s": "fast"}))
    with pytest.raises(InputError, match="pcie_bandwidth_bytes_per_s"):
        load_calibration(f"pcie:{p}")
    # the GPU variant in the simulator: OPT-6.7B "All" reads its ~2.4% over PCIe in per-layer
    # bursts far faster than from the M1 Max's SSD
    from simkit.flash import paper
    tr = paper.opt_trace(8, 0.5, 0.5, seed=1)
    io = {s: FlashSimulator(FlashConfig(model="opt-6.7b", policy="all", storage=s,
                                        compute="paper-rtx4090-gpu")).run(tr).summary()[
        "io_ms_per_token"] for s in ("pcie-rtx4090", "published-m1max")}
    assert io["pcie-rtx4090"] < io["published-m1max"] / 5


def test_host_preset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(InputError, match=r"simkit bench storage --calibration host"):
        load_calibration("host")
    assert main(["bench", "storage", "--file", str(tmp_path / "f.bin"), "--size", "4MiB",
                 "--chunks", "4k,64k", "--threads", "1,4", "--seconds", "0.02",
                 "--calibration", "host"]) == 0
    st = load_calibration("host")
    assert st.kind == "measured" and st.thread_counts() == [1, 4]
    assert set(st.burst_excess_s) == {1, 4}
    assert all(set(e) == {1, 4, 16} for e in st.burst_excess_s.values())
    capsys.readouterr()
    assert main(["flash", "run", "--model", "smollm2-135m", "--policy", "all",
                 "--activations", "smollm2-135m", "--tokens", "4", "--threads", "4",
                 "--storage", "host"]) == 0
