"""`simkit kv`: KV-cache paging workloads.

    simkit kv decode-trace --model M --requests CSV --layout contiguous|paged
                           [--block-tokens 16] [--batch 8] [--steps 64] [--weight-stride 4096]
                           [--kv-stride 64] [--max-context N] [--pool-blocks N] [--seed 0]
                           --out FILE.skt[.xz|.gz]
    simkit kv models
"""
from __future__ import annotations

import shlex
from pathlib import Path

from simkit.errors import InputError
from simkit.units import format_bytes, parse_size

TRACE_SUFFIXES = (".skt", ".skt.xz", ".skt.gz")
FLAGS = {"layout": "--layout", "batch": "--batch", "steps": "--steps",
         "block_tokens": "--block-tokens", "weight_stride_bytes": "--weight-stride",
         "kv_stride_bytes": "--kv-stride", "max_context": "--max-context",
         "pool_blocks": "--pool-blocks", "seed": "--seed", "model": "--model"}


def register(sub) -> None:
    p = sub.add_parser("kv", help="KV-cache paging workloads (LLM decode address traces)",
                       description="KV-cache paging for LLM serving.")
    ks = p.add_subparsers(dest="kv_command", metavar="COMMAND")
    ks.required = True

    q = ks.add_parser("decode-trace", help="write the address trace of batched decode steps",
                      description="Replay real requests (prompt, output lengths) through "
                                  "continuously batched decode steps and write their virtual "
                                  "addresses (weights, embedding rows, block tables, K/V "
                                  "reads and stores) as a simkit trace.")
    q.add_argument("--model", required=True, help="model preset (see `simkit kv models`)")
    q.add_argument("--requests", required=True, type=Path, metavar="CSV",
                   help="request trace: ContextTokens,GeneratedTokens columns (Azure) or "
                        "num_prefill_tokens,num_decode_tokens (Vidur)")
    q.add_argument("--layout", required=True, choices=("contiguous", "paged"))
    q.add_argument("--block-tokens", default="16", metavar="N", help="tokens per paged block")
    q.add_argument("--batch", default="8", metavar="N", help="batch slots")
    q.add_argument("--steps", default="64", metavar="N", help="decode steps")
    q.add_argument("--weight-stride", default="4096", metavar="BYTES",
                   help="one access per this many bytes of weights (power of two)")
    q.add_argument("--kv-stride", default="64", metavar="BYTES",
                   help="one access per this many bytes of K/V (power of two; 64 = every line)")
    q.add_argument("--max-context", default="0", metavar="N",
                   help="tokens reserved per request (default: the model's max context)")
    q.add_argument("--pool-blocks", default="0", metavar="N",
                   help="paged pool size (default: batch x max_context / block_tokens)")
    q.add_argument("--max-requests", default=None, metavar="N",
                   help="read at most N requests from the CSV")
    q.add_argument("--seed", default="0", metavar="S")
    q.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="output trace .skt, .skt.xz or .skt.gz")
    q.set_defaults(func=cmd_decode_trace)

    q = ks.add_parser("models", help="list the model presets")
    q.set_defaults(func=cmd_models)


def _int(text: str, flag: str, size: bool = False) -> int:
    try:
        return parse_size(text, flag) if size else int(text, 10)
    except ValueError:
        raise InputError(f"{flag}: bad value {text!r}") from None


def _check_out(path: Path, requests: Path) -> None:
    if not path.name.lower().endswith(TRACE_SUFFIXES):
        raise InputError(f"--out {path}: output must end in {', '.join(TRACE_SUFFIXES)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"--out {path}: directory {parent} does not exist")
    if path.exists() and requests.exists() and path.resolve() == requests.resolve():
        raise InputError(f"--out {path}: output is the request trace")


def _flagged(exc: ValueError) -> InputError:
    """A config ValueError ("field: ...") as the command-line flag's error."""
    text = str(exc)
    field, _, rest = text.partition(":")
    return InputError(f"{FLAGS[field]}:{rest}" if field in FLAGS and rest else text)


def cmd_decode_trace(args) -> int:
    import pandas as pd

    from simkit.commands._output import print_frame
    from simkit.kvpaging import DecodeTraceConfig, get_model, load_requests, write_decode_trace

    _check_out(args.out, args.requests)
    try:
        model = get_model(args.model)
        cfg = DecodeTraceConfig(
            layout=args.layout, batch=_int(args.batch, "--batch"),
            steps=_int(args.steps, "--steps"), block_tokens=_int(args.block_tokens,
                                                                  "--block-tokens"),
            weight_stride_bytes=_int(args.weight_stride, "--weight-stride", size=True),
            kv_stride_bytes=_int(args.kv_stride, "--kv-stride", size=True),
            max_context=_int(args.max_context, "--max-context"),
            pool_blocks=_int(args.pool_blocks, "--pool-blocks"), seed=_int(args.seed, "--seed"))
    except InputError:
        raise
    except ValueError as exc:
        raise _flagged(exc) from None
    limit = None if args.max_requests is None else _int(args.max_requests, "--max-requests")
    requests = load_requests(args.requests, limit=limit)
    argv = ["--model", args.model, "--requests", str(args.requests), "--layout", args.layout,
            "--block-tokens", args.block_tokens, "--batch", args.batch, "--steps", args.steps,
            "--weight-stride", args.weight_stride, "--kv-stride", args.kv_stride]
    for flag, value, default in (("--max-context", args.max_context, "0"),
                                 ("--pool-blocks", args.pool_blocks, "0"),
                                 ("--max-requests", args.max_requests, None)):
        if value != default:
            argv += [flag, value]
    command = "simkit kv decode-trace " + shlex.join(argv + ["--seed", args.seed,
                                                             "--out", str(args.out)])
    try:
        st = write_decode_trace(args.out, model, requests, cfg,
                                requests_source=args.requests.name, command=command)
    except InputError:
        raise
    except ValueError as exc:
        raise _flagged(exc) from None
    rows = [("model", model.name), ("layout", cfg.layout), ("requests", str(args.requests)),
            ("requests admitted / finished / skipped",
             f"{st.requests_admitted} / {st.requests_finished} / {st.requests_skipped}"),
            ("steps run", st.steps_run), ("tokens generated", st.tokens_generated),
            ("records", st.records), ("loads / stores", f"{st.loads} / {st.stores}"),
            ("distinct 4 KiB pages", st.pages_4k), ("distinct 2 MiB regions", st.regions_2m),
            ("KV: distinct 4 KiB pages", st.kv_pages_4k),
            ("KV: distinct 2 MiB regions", st.kv_regions_2m),
            ("KV bytes per token", format_bytes(model.kv_bytes_per_token)),
            ("KV bytes read / written", f"{format_bytes(st.kv_read_bytes)} / "
                                        f"{format_bytes(st.kv_write_bytes)}"),
            ("KV virtual bytes reserved", format_bytes(st.kv_reserved_bytes)),
            ("weight bytes read", format_bytes(st.weight_read_bytes))]
    if cfg.layout == "paged":
        rows.append(("blocks allocated / freed / reused",
                     f"{st.blocks_allocated} / {st.blocks_freed} / {st.blocks_reused}"))
    print_frame(pd.DataFrame(rows, columns=["field", "value"]).astype(str))
    print(f"wrote {args.out}: {st.records} records")
    return 0


def cmd_models(args) -> int:
    import pandas as pd

    from simkit.commands._output import print_frame
    from simkit.kvpaging import MODELS

    rows = [{"model": m.name, "layers": m.layers, "hidden": m.hidden, "heads": m.heads,
             "kv_heads": m.kv_heads, "head_dim": m.head_dim, "ffn": m.ffn, "vocab": m.vocab,
             "max_context": m.max_context, "params": m.params,
             "kv_bytes_per_token": m.kv_bytes_per_token} for m in MODELS.values()]
    print_frame(pd.DataFrame(rows))
    return 0
