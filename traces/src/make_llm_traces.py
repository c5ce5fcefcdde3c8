"""Regenerate the two LLM decode traces and their entries in traces/catalog.toml.

    python traces/src/make_llm_traces.py [--steps 32] [--out DIR]

Both traces are SmolLM2-135M decode steps over the same real requests (the first requests of the
Azure 2023 conversation trace, traces/llm-serving/), batch 8, same seed; they differ only in the
KV layout: ``contiguous`` (vAttention: one virtual reservation per request slot per layer) and
``paged`` (vLLM: one block pool per layer, 16-token blocks from a shuffled free list, block
tables). Each is made by the command line (``simkit kv decode-trace``) from the repository root,
so the trace's own header records the exact command. Strides are one access per 4 KiB of K/V and
of weights: every 4 KiB page a step touches is accessed once per tensor extent, so distinct page
counts are exact and the trace stays near 3M records (about 3 steps at 64-byte granularity would
fill that). The generator is deterministic: a rerun gives the same records (the files differ
only in the header's creation time).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sys
import tomllib
from pathlib import Path

SRC = Path(__file__).resolve().parent
TRACES = SRC.parent
ROOT = TRACES.parent
sys.path.insert(0, str(SRC))

from make_traces import write_catalog  # noqa: E402

from simkit.cli import main as simkit_main  # noqa: E402
from simkit.trace.format import open_trace  # noqa: E402

MODEL = "SmolLM2-135M"
REQUESTS = "traces/llm-serving/AzureLLMInferenceTrace_conv_first1000.csv"
OPTIONS = {"--batch": "8", "--block-tokens": "16", "--weight-stride": "4096",
           "--kv-stride": "4096", "--seed": "0"}
LICENCE = ("MIT (simkit project: our generator); request lengths from the Azure LLM inference "
           "trace 2023 (Azure Public Dataset, CC-BY-4.0; cite Splitwise, ISCA 2024), see "
           "traces/llm-serving/README.md")
DESCRIPTIONS = {
    "contiguous": "LLM decode addresses, SmolLM2-135M, batch 8, contiguous KV (vAttention: one "
                  "virtual reservation per request slot, per layer, for K and for V)",
    "paged": "LLM decode addresses, SmolLM2-135M, batch 8, paged KV (vLLM: per-layer pool of "
             "16-token blocks from a shuffled free list, block-table reads)",
}


def make(layout: str, out_dir: Path, steps: int) -> dict:
    dst = out_dir / f"llm-decode-{layout}.skt.xz"
    shown = dst.relative_to(ROOT) if dst.is_relative_to(ROOT) else dst
    argv = ["kv", "decode-trace", "--model", MODEL, "--requests", REQUESTS, "--layout", layout,
            "--steps", str(steps)]
    for k, v in OPTIONS.items():
        argv += [k, v]
    argv += ["--out", str(shown)]
    if simkit_main(argv) != 0:
        raise SystemExit(f"simkit {' '.join(argv)} failed")
    meta = open_trace(dst).meta
    x = meta.extra
    return {
        "file": dst.name,
        "description": DESCRIPTIONS[layout],
        "source": "traces/src/make_llm_traces.py (simkit.kvpaging.decode_trace)",
        "command": meta.command,
        "requests_file": REQUESTS,
        "model": MODEL,
        "layout": layout,
        "batch": x["batch"],
        "steps": x["stats"]["steps_run"],
        "block_tokens": x["block_tokens"],
        "weight_stride_bytes": x["weight_stride_bytes"],
        "kv_stride_bytes": x["kv_stride_bytes"],
        "seed": x["seed"],
        "requests_admitted": x["stats"]["requests_admitted"],
        "date": dt.date.today().isoformat(),
        "records": meta.records,
        "instructions": meta.instructions,
        "ops": meta.ops,
        "pages_4k": x["stats"]["pages_4k"],
        "regions_2m": x["stats"]["regions_2m"],
        "kv_pages_4k": x["stats"]["kv_pages_4k"],
        "kv_regions_2m": x["stats"]["kv_regions_2m"],
        "bytes": dst.stat().st_size,
        "sha256": hashlib.sha256(dst.read_bytes()).hexdigest(),
        "icount": "1 per record (MPKI = misses per 1000 accesses)",
        "licence": LICENCE,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--out", type=Path, default=TRACES, help="output directory")
    args = parser.parse_args(argv)
    os.chdir(ROOT)                   # the request path in the recorded command is repo-relative
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    catalog_path = out / "catalog.toml"
    entries = tomllib.loads(catalog_path.read_text()) if catalog_path.is_file() else {}
    for layout in ("contiguous", "paged"):
        entries[f"llm-decode-{layout}"] = make(layout, out, args.steps)
    write_catalog(entries, catalog_path)
    print(f"wrote {catalog_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
