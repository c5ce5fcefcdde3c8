"""`simkit flash`: LLM inference with FFN weights on flash ("LLM in a flash").

    simkit flash run --model M [--bits 4|8|16|32] --policy P[+P...] --activations A
                     [--sparsity 0.9] [--selection magnitude|gate]
                     [--predictor trace|oracle] [--window K] [--tokens N]
                     [--storage published-m1max|m2ultra-assumed|rtx4090-linux-derived|
                                generic-nvme-assumed|host|pcie-rtx4090|pcie:FILE|FILE.json]
                     [--threads 32] [--io-bursts layer|token]
                     [--memory-management preallocated|reallocate] [--seed S]
                     [--compute paper-m1max-cpu|paper-rtx4090-gpu|host] [--context N]
                     [--fn-rate R --fp-rate R [--error-stay S]] [--stay-on S] [--skew S]
                     [--out FILE] [--per-token FILE.csv]
    simkit flash models
    simkit flash policies

``--activations``: a shipped real trace (``smollm2-135m``, at ``--sparsity``; its predicted
sets come from the low-rank predictor trained on real text), an activation trace file, or
``synthetic`` (the Markov generator: OPT-style Table 6 fractions scaled to ``--sparsity``'s
mean for other models, persistence ``--stay-on``). ``--fn-rate``/``--fp-rate`` replace the
predicted sets by the configurable error model's.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from simkit.commands._output import add_out_argument, check_out_path, emit, write_frame
from simkit.errors import InputError
from simkit.units import count_type, finite_type

TABLE = ("param_model", "param_policy", "param_window_tokens", "trace", "tokens",
         "needed_fraction", "loaded_fraction", "cached_fraction", "flash_bytes_per_token",
         "reads_per_token", "chunk_bytes", "io_ms_per_token", "mem_ms_per_token",
         "compute_ms_per_token", "time_ms_per_token", "dram_bytes_mean")
DEFAULT_STAY_ON = 0.6


def register(sub) -> None:
    p = sub.add_parser("flash", help="LLM inference with weights on flash (LLM in a flash)",
                       description="Simulate loading FFN neurons from flash per token.")
    fs = p.add_subparsers(dest="flash_command", metavar="COMMAND")
    fs.required = True
    r = fs.add_parser("run", help="simulate a policy on an activation trace",
                      description="Per token: bytes and reads from flash, I/O and "
                                  "memory-management time, DRAM footprint.")
    r.add_argument("--model", required=True, help="model preset (see `simkit flash models`)")
    r.add_argument("--bits", type=int, choices=(4, 8, 16, 32), default=None,
                   help="weight precision (default: the preset's; 4 = 4-bit, scales not "
                        "counted)")
    r.add_argument("--policy", required=True,
                   help="preset (naive, hybrid, predictor-only, windowing, bundling: every "
                        "technique) or components joined by '+': hybrid, predictor, windowing, "
                        "bundling; 'all' runs every preset, one row each")
    r.add_argument("--activations", required=True,
                   help="shipped trace name (smollm2-135m), trace file, or 'synthetic'")
    r.add_argument("--sparsity", type=finite_type(0.0, 1.0), default=None,
                   help="shipped trace: which sparsity (default 0.9); synthetic: mean "
                        "inactive share (default: the paper's 0.967 for OPT's Table 6)")
    r.add_argument("--selection", choices=("magnitude", "gate"), default="magnitude",
                   help="shipped trace: which neurons count as active, |SiLU(gate)*up| "
                        "(magnitude, default) or |SiLU(gate)| (gate, same per-layer density; "
                        "no predictor sets: use --predictor oracle or --fn-rate/--fp-rate)")
    r.add_argument("--predictor", choices=("trace", "oracle"), default="trace",
                   help="trace: the trace's predicted sets (low-rank or error model); oracle: "
                        "the true active sets")
    r.add_argument("--window", type=count_type(0), default=5, help="windowing: tokens kept (default 5)")
    r.add_argument("--tokens", type=count_type(1), default=None, help="simulate the first N tokens "
                   "(synthetic: generate N; default 256)")
    r.add_argument("--storage", default="published-m1max",
                   help="storage calibration: published-m1max, m2ultra-assumed, "
                        "rtx4090-linux-derived, generic-nvme-assumed, host (measured by "
                        "`simkit bench storage --calibration host`), pcie-rtx4090 or "
                        "pcie:KV-CALIBRATION.json (GPU variant: neurons in host memory over "
                        "PCIe), or a JSON file from `simkit bench storage`")
    r.add_argument("--threads", type=count_type(1), default=32, help="parallel reads (default 32)")
    r.add_argument("--io-bursts", choices=("layer", "token"), default="layer",
                   help="reads issued per layer, after its predictor (default), or per token")
    r.add_argument("--memory-management", choices=("preallocated", "reallocate"),
                   default="preallocated")
    r.add_argument("--compute", default="paper-m1max-cpu",
                   choices=("paper-m1max-cpu", "paper-rtx4090-gpu", "host"),
                   help="compute and copy rates of the latency model: derived from the paper's "
                        "Table 3 (CPU or GPU), or measured on this machine (host)")
    r.add_argument("--context", type=count_type(0), default=256,
                   help="tokens of KV cache read per generated token (default 256)")
    r.add_argument("--fn-rate", type=finite_type(0.0, 1.0), help="error-model predictor: false-negative rate")
    r.add_argument("--fp-rate", type=finite_type(0.0, 1.0), help="error-model predictor: false-positive rate")
    r.add_argument("--error-stay", type=finite_type(0.0, 1.0), default=None,
                   help="error model: persistence of errors (default: --stay-on if given, "
                        "else the trace's pooled persistence)")
    r.add_argument("--stay-on", type=finite_type(0.0, 1.0), default=None,
                   help="synthetic: each neuron's P(active at t+1 | active at t) (default: the "
                        "value whose pooled persistence equals the shipped SmolLM2 trace's at "
                        "the nearest sparsity)")
    r.add_argument("--skew", type=finite_type(0.0), default=1.53,
                   help="synthetic: log-normal spread of per-neuron rates (default 1.53: 26%% "
                        "of neurons carry 80%% of activations, PowerInfer)")
    r.add_argument("--seed", type=count_type(0), default=0)
    add_out_argument(r)
    r.add_argument("--per-token", type=Path, metavar="FILE.csv",
                   help="also write one row per token")
    r.set_defaults(func=run)
    m = fs.add_parser("models", help="list model presets")
    m.set_defaults(func=models)
    q = fs.add_parser("policies", help="list policy presets")
    q.set_defaults(func=policies)


def models(args) -> int:
    import pandas as pd

    from simkit.commands._output import print_frame
    from simkit.flash import MODELS
    rows = [{"model": m.name, "layers": m.layers, "d_model": m.d_model, "ffn": m.ffn,
             "ffn_matrices": m.ffn_matrices, "dtype_bytes": m.dtype_bytes,
             "total_gb": m.total_bytes / 1e9, "ffn_share": m.ffn_share,
             "neuron_bytes": m.neuron_bytes, "activation": m.activation}
            for m in MODELS.values()]
    print_frame(pd.DataFrame(rows))
    return 0


def policies(args) -> int:
    from simkit.flash import PRESETS
    for name, p in PRESETS.items():
        print(f"{name:16s} {p.name}")
    return 0


def build_trace(args, model):
    """The activation trace the arguments ask for (with predicted sets when needed)."""
    from simkit.flash import activations as A

    n = args.tokens
    if n is not None and n < 1:
        raise InputError(f"--tokens: must be >= 1, got {n}")
    if args.activations == "synthetic":
        sp = args.sparsity
        fr = A.opt_layer_fractions(model.layers)
        if sp is not None:
            if not 0.0 < sp < 1.0:
                raise InputError(f"--sparsity: must be in (0, 1), got {sp}")
            fr = fr * (1.0 - sp) / fr.mean()
        if args.stay_on is not None:
            stay = args.stay_on
        else:
            from simkit.flash.paper import stay_for_persistence
            stay = stay_for_persistence(measured_stay_on(1 - fr.mean()), args.skew,
                                        model.layers, model.ffn, args.seed, fr)
        from simkit.resources import check_fits
        # the synthetic sets (bool per token, layer and neuron) and the predictor's beside them
        check_fits("--tokens", need_memory=3 * (n or 256) * model.layers * model.ffn)
        tr = A.synthetic_trace(model.layers, model.ffn, n or 256, fr, stay, args.skew,
                               args.seed, name="synthetic")
        if args.fn_rate is None and args.fp_rate is None:
            args.fn_rate, args.fp_rate = 0.05, 0.07           # the paper's predictor (3.3)
    else:
        tr = A.load_activations(args.activations, 0.9 if args.sparsity is None
                                else args.sparsity, selection=args.selection)
        if n is not None:
            if n > tr.tokens:
                raise InputError(f"--tokens: {n} is more than the {tr.tokens} tokens of "
                                 f"--activations {args.activations}")
            tr = tr.head(n)
    if args.fn_rate is not None or args.fp_rate is not None:
        es = args.error_stay
        if es is None:
            es = args.stay_on if args.stay_on is not None else tr.persistence()
            if not 0.0 <= es < 1.0:
                raise InputError(f"--error-stay: must be in [0, 1), got {es}")
        tr = A.with_error_model(tr, args.fn_rate or 0.0, args.fp_rate or 0.0, es, args.seed + 1)
    return tr


def measured_stay_on(sparsity: float) -> float:
    """Persistence of the shipped SmolLM2 trace at the nearest stored sparsity, or the default
    when the trace is not there."""
    from simkit.flash import activations as A
    cat = A.list_activations()
    if "smollm2-135m" not in cat:
        return DEFAULT_STAY_ON
    have = [float(s) for s in cat["smollm2-135m"].get("sparsities", [])]
    if not have:
        return DEFAULT_STAY_ON
    s = min(have, key=lambda v: abs(v - sparsity))
    return A.load_activations("smollm2-135m", s, predictor="none").persistence()


def run(args: argparse.Namespace) -> int:
    check_out_path(args.out)
    check_out_path(args.per_token, "--per-token", (".csv", ".parquet", ".json"))
    from simkit.flash import FlashConfig, FlashSimulator, get_model

    model = get_model(args.model)
    if args.bits is not None:
        from simkit.flash.models import quantized
        model = quantized(model, args.bits)
    cfgs = [FlashConfig(model=model, policy=p, window_tokens=args.window,
                        predictor=args.predictor, storage=args.storage, threads=args.threads,
                        memory_management=args.memory_management, compute=args.compute,
                        context_tokens=args.context, io_bursts=args.io_bursts)
            for p in policies(args.policy)]
    cfg = cfgs[-1]                              # the most complete policy asked for
    from simkit.flash.storage import load_calibration
    counts = load_calibration(args.storage).thread_counts()
    if not counts[0] <= args.threads <= counts[-1]:
        raise InputError(f"--threads: {args.threads} is outside the queue depths of storage "
                         f"calibration {args.storage!r} ({', '.join(map(str, counts))}; depths "
                         "between them are interpolated); measure others with "
                         "`simkit bench storage`")
    for name in ("fn_rate", "fp_rate", "stay_on"):
        v = getattr(args, name)
        if v is not None and not 0.0 <= v < 1.0:
            raise InputError(f"--{name.replace('_', '-')}: must be in [0, 1), got {v}")
    if args.window < 0:
        raise InputError(f"--window: must be >= 0, got {args.window}")
    tr = build_trace(args, model)
    if (tr.layers, tr.neurons) != (model.layers, model.ffn):
        raise InputError(f"--activations {args.activations}: {tr.layers} layers x "
                         f"{tr.neurons} neurons, but {model.name} has {model.layers} x "
                         f"{model.ffn}")
    if cfg.predictor == "trace" and cfg.policy_obj.predictor and tr.predicted is None:
        raise InputError(f"--activations {args.activations}: no predicted sets; use "
                         f"--predictor oracle or --fn-rate/--fp-rate")
    import pandas as pd

    runs = [(c.policy_obj.name, FlashSimulator(c).run(tr)) for c in cfgs]
    emit(pd.concat([st.to_frame() for _, st in runs], ignore_index=True), args, columns=TABLE)
    if args.per_token is not None:
        write_frame(pd.concat([st.per_token().assign(policy=name) for name, st in runs],
                              ignore_index=True), args.per_token)
        print(f"wrote {args.per_token}")
    return 0


def policies(text: str) -> list[str]:
    """``--policy``: one policy, or ``all``: every preset of the paper's ladder (Table 2, top to
    bottom: naive .. every technique combined), one row each."""
    from simkit.flash.policies import LADDER

    if text.strip().lower() == "all":
        return [p if p != "all" else "bundling" for p in LADDER]
    return [text]
