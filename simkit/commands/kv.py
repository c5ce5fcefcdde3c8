"""`simkit kv`: KV-cache paging workloads.

    simkit kv decode-trace --model M --requests CSV --layout contiguous|paged
                           [--block-tokens 16] [--batch 8] [--steps 64] [--weight-stride 4096]
                           [--kv-stride 64] [--max-context N] [--pool-blocks N] [--seed 0]
                           --out FILE.skt[.xz|.gz]
    simkit kv run --trace T --model M --gpu G --manager paged-16|vattention-64KiB|static|...
                  [--calibration FILE.json] [--paged-kernel NAME] [--max-requests N]
                  [--rate REQ_PER_S] [--seed S]
                  [--time-scale FACTOR]
                  [--chunked-prefill] [--max-num-seqs N] [--max-num-batched-tokens N]
                  [--preemption recompute|swap] [--capacity BYTES]
                  [--parallel-samples N | --beam-width K]
                  [--cpu-cache BYTES] [--tensor-parallel TP] [--replicas N]
                  [--router round-robin|least-loaded]
                  [--out FILE] [--plot FILE.png] [--timeline FILE.csv]
                  [--export-kv-trace FILE.skt] [--export-alloc-trace FILE.skt]
                  [--export-steps N] [--export-from-iteration N]
    simkit kv prefix-curve TRACE [--block 512] [--cache-blocks N,N,...|all] [--max-requests N]
                           [--out FILE]
    simkit kv models
"""
from __future__ import annotations

import dataclasses

import argparse
import math
import sys
import shlex
from pathlib import Path

from simkit.commands._output import add_out_argument, check_out_path
from simkit.errors import InputError
from simkit.units import format_bytes, parse_count, parse_size
from simkit.atomic import write_via

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

    q = ks.add_parser("run", help="serve a request trace (continuous batching) with a KV manager",
                      description="Replay a request trace through a vLLM-style continuous-batching "
                                  "engine on one GPU with a KV-cache manager; print throughput, "
                                  "latency percentiles, batch sizes, preemptions, prefix hits and "
                                  "the memory breakdown.")
    q.add_argument("--trace", required=True, metavar="T",
                   help="request trace: a file (Azure CSV, Mooncake JSONL, Vidur CSV) or a "
                        "shipped name: azure-conv, azure-code, mooncake-conv")
    q.add_argument("--model", required=True, help="model preset (see `simkit kv models`)")
    q.add_argument("--gpu", required=True, help="GPU preset: H100-80GB, A100-80GB, A100-40GB")
    q.add_argument("--manager", required=True,
                   help="static, static-max-context, orca-oracle, orca-pow2, orca-max, "
                        "paged-B (paged-16), vattention-64KiB, -128KiB, -256KiB, -2MiB")
    q.add_argument("--calibration", type=Path, metavar="FILE",
                   help="cost-model calibration JSON (default: the shipped published-<gpu>.json)")
    q.add_argument("--paged-kernel", metavar="NAME",
                   help="paged attention kernel profile replacing the calibration's paged "
                        "factors: vllm-2023 (the shipped default), vllm-vs-fa2, fa2-paged, "
                        "flashinfer-paged, contiguous (sources: simkit/kvpaging/kernels.py)")
    q.add_argument("--max-requests", metavar="N", help="serve only the first N requests")
    q.add_argument("--rate", metavar="REQ_PER_S",
                   help="Poisson arrival rate for traces without timestamps (Vidur); an error "
                        "for timestamped traces (use --time-scale)")
    q.add_argument("--time-scale", metavar="FACTOR",
                   help="multiply a timestamped trace's arrival times by FACTOR (Vidur's "
                        "time_scale_factor: 0.5 replays it at twice the rate)")
    q.add_argument("--seed", default="0", metavar="S", help="seed for synthesized arrivals")
    q.add_argument("--chunked-prefill", action="store_true", help="split prompts into chunks")
    q.add_argument("--max-num-seqs", default="256", metavar="N")
    q.add_argument("--max-num-batched-tokens", default="0", metavar="N",
                   help="token budget per iteration (0: vLLM's default)")
    q.add_argument("--preemption", default="recompute", choices=("recompute", "swap"))
    q.add_argument("--parallel-samples", default="1", metavar="N",
                   help="N samples per request sharing the prompt's blocks (PagedAttention only)")
    q.add_argument("--beam-width", default="1", metavar="K",
                   help="beam search with K beams sharing blocks (PagedAttention only)")
    q.add_argument("--cpu-cache", metavar="BYTES",
                   help="host-memory tier for prefix-cached (and swapped) blocks, paged "
                        "managers (e.g. 256GiB); hits are copied back over PCIe")
    q.add_argument("--tensor-parallel", default="1", metavar="TP",
                   help="GPUs per replica: heads, KV heads and weights split TP ways, two "
                        "all-reduces per layer over the calibration's interconnect bandwidth")
    q.add_argument("--replicas", default="1", metavar="N",
                   help="N replicas behind a router (each TP GPUs)")
    q.add_argument("--router", default="round-robin", choices=("round-robin", "least-loaded"),
                   help="how requests are spread over the replicas")
    q.add_argument("--capacity", metavar="BYTES",
                   help="KV memory (default: GPU memory x 0.9 - weights - activations)")
    q.add_argument("--max-context", metavar="N",
                   help="override the model's context length (e.g. 131072 to serve the long "
                        "Mooncake prompts)")
    add_out_argument(q)
    q.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="memory breakdown over time (stacked area)")
    q.add_argument("--timeline", type=Path, metavar="FILE.csv",
                   help="memory breakdown time series (one row per sample)")
    q.add_argument("--export-kv-trace", type=Path, metavar="FILE.skt",
                   help="write the KV read address stream of decode steps (for simkit tlb)")
    q.add_argument("--export-alloc-trace", type=Path, metavar="FILE.skt",
                   help="write the KV block alloc/free event stream (for the allocator "
                        "simulator)")
    q.add_argument("--export-steps", default="16", metavar="N",
                   help="decode steps in --export-kv-trace")
    q.add_argument("--export-from-iteration", default="0", metavar="N",
                   help="first iteration traced by --export-kv-trace")
    q.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal, for long traces)")
    q.set_defaults(func=cmd_run)

    q = ks.add_parser("prefix-curve", help="prefix-block reuse vs LRU cache size of a trace "
                                           "with block hashes (Mooncake)",
                      description="Replay a trace's chained prefix-block hashes (Mooncake "
                                  "hash_ids) in arrival order through LRU caches of each size "
                                  "and an unbounded one; print the share of prefix blocks and "
                                  "of prompt tokens found in the cache.")
    q.add_argument("trace", metavar="TRACE",
                   help="Mooncake-style JSON lines (input_length, hash_ids), .jsonl or "
                        ".jsonl.xz, or the shipped name mooncake-conv")
    q.add_argument("--block", default="512", metavar="TOKENS",
                   help="tokens one hash covers (Mooncake: 512); every request must have "
                        "ceil(input_length / TOKENS) hashes")
    q.add_argument("--cache-blocks", default=None, metavar="N,N,...",
                   help="LRU cache sizes in blocks (default 1000,...,200000); an unbounded "
                        "cache is always added")
    q.add_argument("--max-requests", metavar="N", help="replay only the first N requests")
    add_out_argument(q)
    q.set_defaults(func=cmd_prefix_curve)

    q = ks.add_parser("models", help="list the model presets")
    q.set_defaults(func=cmd_models)


def _int(text: str, flag: str, size: bool = False) -> int:
    try:
        return parse_size(text, flag) if size else parse_count(text, flag)
    except ValueError:
        raise InputError(f"{flag}: bad value {text!r}") from None


def _positive_float(text, flag: str, unit: str) -> float | None:
    """None, or a finite number > 0 from ``text``; one-line errors naming ``flag``."""
    if text is None:
        return None
    try:
        x = float(text)
    except ValueError:
        raise InputError(f"{flag}: bad value {text!r}") from None
    if not (x > 0 and math.isfinite(x)):
        raise InputError(f"{flag}: must be a finite number > 0 {unit}, got {text!r}")
    return x


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
    # every step reads the weights once: a lower bound on the records (16 bytes each) written
    from simkit.resources import check_fits
    per_step = model.params * model.dtype_bytes // max(cfg.weight_stride_bytes, 1)
    check_fits("--steps", need_disk=cfg.steps * per_step * 16, disk_at=args.out)
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


def cmd_prefix_curve(args) -> int:
    from simkit.commands._output import emit
    from simkit.kvpaging.prefix import load_hash_trace, prefix_hit_curve
    from simkit.kvpaging.workload import resolve_trace

    check_out_path(args.out)
    block = _positive(args.block, "--block")
    limit = _positive(args.max_requests, "--max-requests")
    sizes = [1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000]
    if args.cache_blocks is not None:
        parts = [t.strip() for t in args.cache_blocks.split(",")]
        if not all(parts):
            raise InputError(f"--cache-blocks: empty size in {args.cache_blocks!r}")
        sizes = sorted({_positive(t, "--cache-blocks", zero=True) for t in parts})
    path = resolve_trace(args.trace)
    name = path.name.lower().removesuffix(".xz")
    if not name.endswith(".jsonl"):
        raise InputError(f"{path}: prefix-curve reads JSON lines with hash_ids (.jsonl or "
                         f".jsonl.xz), got {path.name}")
    try:
        reqs = load_hash_trace(path)
    except (EOFError, OSError, UnicodeDecodeError) as exc:       # lzma errors are OSError
        raise InputError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if limit is not None:
        reqs = reqs[:limit]
    for i, (length, ids) in enumerate(reqs, start=1):
        if length < 0 or len(ids) != -(-length // block):
            raise InputError(f"{path}: request {i}: {len(ids)} hashes for input_length "
                             f"{length}, not ceil({length} / --block {block}) = "
                             f"{-(-length // block)} (is --block the trace's hash size?)")
    df = prefix_hit_curve(reqs, [*sizes, None], block_tokens=block)
    df.insert(0, "trace", path.name)
    df.insert(1, "requests", len(reqs))
    emit(df, args)
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


def _check_file_out(path: Path | None, flag: str, suffixes: tuple[str, ...]) -> None:
    if path is None:
        return
    if not path.name.lower().endswith(suffixes):
        raise InputError(f"{flag} {path}: output must end in {', '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: directory {parent} does not exist")


def _positive(text: str | None, flag: str, *, zero: bool = False) -> int | None:
    if text is None:
        return None
    v = _int(text, flag)
    if v < 0 or (v == 0 and not zero):
        raise InputError(f"{flag}: must be {'>= 0' if zero else '> 0'}, got {text!r}")
    return v


def plot_memory(timeline, path: Path, title: str) -> None:
    """Stacked area of the memory breakdown over time; written atomically."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2))
    ax = fig.add_subplot()
    parts = [("used_bytes", "used by tokens"), ("internal_frag_bytes", "internal fragmentation"),
             ("reserved_bytes", "reserved"), ("cached_bytes", "prefix cache"),
             ("free_bytes", "free")]
    t = timeline["time_s"].to_numpy()
    ax.stackplot(t, *[timeline[c].to_numpy() / 2**30 for c, _ in parts],
                 labels=[lbl for _, lbl in parts],
                 colors=["#2b6cb0", "#e53e3e", "#dd6b20", "#38a169", "#e2e8f0"])
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("KV memory (GiB)")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    write_via(path, lambda tmp: fig.savefig(tmp, dpi=120), ".partial.png")


def cmd_run(args) -> int:
    import pandas as pd

    from simkit.commands._output import print_frame, write_frame
    from simkit.kvpaging import get_model
    from simkit.kvpaging.costmodel import default_calibration, load_calibration
    from simkit.kvpaging.engine import ServingSimulator
    from simkit.kvpaging.export import AllocExporter, KVReadExporter
    from simkit.kvpaging.gpus import get_gpu
    from simkit.kvpaging.scheduler import SchedulerConfig
    from simkit.kvpaging.workload import load_trace

    # everything that can be wrong with the command line fails here, before any work
    check_out_path(args.out)
    _check_file_out(args.plot, "--plot", (".png",))
    _check_file_out(args.timeline, "--timeline", (".csv",))
    _check_file_out(args.export_kv_trace, "--export-kv-trace", TRACE_SUFFIXES)
    _check_file_out(args.export_alloc_trace, "--export-alloc-trace", TRACE_SUFFIXES)
    outs = [p.resolve() for p in (args.out, args.plot, args.timeline, args.export_kv_trace,
                                  args.export_alloc_trace) if p is not None]
    if len(set(outs)) != len(outs):
        raise InputError("output files: the same path is given twice")
    limit = _positive(args.max_requests, "--max-requests")
    seed = _positive(args.seed, "--seed", zero=True)
    rate = _positive_float(args.rate, "--rate", "requests/s")
    time_scale = _positive_float(args.time_scale, "--time-scale", "(a factor)")
    try:
        model = get_model(args.model)
    except ValueError as exc:
        raise InputError(f"--model: {str(exc).partition(': ')[2]}") from None
    if args.max_context is not None:
        model = dataclasses.replace(model, max_context=_positive(args.max_context,
                                                                 "--max-context"))
    try:
        gpu = get_gpu(args.gpu)
    except ValueError as exc:
        raise InputError(f"--gpu: {str(exc).partition(': ')[2]}") from None
    try:
        cfg = SchedulerConfig(max_num_seqs=_positive(args.max_num_seqs, "--max-num-seqs"),
                              max_num_batched_tokens=_positive(args.max_num_batched_tokens,
                                                               "--max-num-batched-tokens",
                                                               zero=True),
                              chunked_prefill=args.chunked_prefill, preemption=args.preemption,
                              parallel_samples=_positive(args.parallel_samples,
                                                         "--parallel-samples"),
                              beam_width=_positive(args.beam_width, "--beam-width"))
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"--{str(exc).partition(':')[0].replace('_', '-')}:"
                         f"{str(exc).partition(':')[2]}") from None
    capacity = None if args.capacity is None else _int(args.capacity, "--capacity", size=True)
    steps = _positive(args.export_steps, "--export-steps")
    from_it = _positive(args.export_from_iteration, "--export-from-iteration", zero=True)
    if args.calibration is not None:
        cal = load_calibration(args.calibration)
    else:
        cal = default_calibration(gpu.name)
    if args.paged_kernel is not None:
        try:
            cal = cal.with_paged_kernel(args.paged_kernel)
        except ValueError as exc:
            raise InputError(f"--paged-kernel:{str(exc).partition(':')[2]}") from None
    tp = _positive(args.tensor_parallel, "--tensor-parallel")
    overrides = {}
    if args.cpu_cache is not None:
        from simkit.kvpaging.managers import parse_spec
        from simkit.kvpaging.managers.config import PagedConfig

        try:
            paged = isinstance(parse_spec(args.manager, model), PagedConfig)
        except ValueError as exc:
            raise InputError(f"--manager:{str(exc).partition(':')[2]}") from None
        if not paged:
            raise InputError(f"--cpu-cache: a host tier is modelled for paged managers, not "
                             f"{args.manager}")
        overrides["cpu_cache_bytes"] = _int(args.cpu_cache, "--cpu-cache", size=True)
    replicas = _positive(args.replicas, "--replicas")
    if replicas > 1:
        for flag, v in (("--timeline", args.timeline), ("--plot", args.plot),
                        ("--export-kv-trace", args.export_kv_trace),
                        ("--export-alloc-trace", args.export_alloc_trace)):
            if v is not None:
                raise InputError(f"{flag}: follows one engine; not with --replicas {replicas}")
    requests = load_trace(args.trace, limit=limit, rate=rate, seed=seed, time_scale=time_scale)
    try:
        if replicas > 1:
            from simkit.kvpaging.cluster import ServingCluster
            cluster = ServingCluster(model, gpu, args.manager, requests, replicas=replicas,
                                     router=args.router, config=cfg, calibration=cal,
                                     capacity_bytes=capacity, tensor_parallel=tp,
                                     manager_overrides=overrides or None)
            sim = cluster.sims[0]
        else:
            cluster = None
            sim = ServingSimulator(model, gpu, args.manager, requests, config=cfg,
                                   calibration=cal, capacity_bytes=capacity,
                                   progress=args.progress, tensor_parallel=tp,
                                   manager_overrides=overrides or None)
    except InputError:
        raise
    except ValueError as exc:
        text = str(exc)
        if text.startswith("manager:"):
            text = "--manager:" + text.partition(":")[2]
        elif text.startswith("gpu:"):
            text = "--gpu:" + text.partition(":")[2]
        elif text.startswith("tensor_parallel:"):
            text = "--tensor-parallel:" + text.partition(":")[2]
        raise InputError(text) from None
    argv = ["--trace", args.trace, "--model", args.model, "--gpu", args.gpu,
            "--manager", args.manager]
    command = "simkit kv run " + shlex.join(argv)
    exporters = []
    try:
        if args.export_kv_trace is not None:
            exporters.append(KVReadExporter(args.export_kv_trace, sim, max_steps=steps,
                                            start_iteration=from_it, seed=seed,
                                            command=command))
        if args.export_alloc_trace is not None:
            exporters.append(AllocExporter(args.export_alloc_trace, sim, command=command))
        for e in exporters:
            sim.add_observer(e)
        st = sim.run() if cluster is None else cluster.run()
    except BaseException:
        for e in exporters:
            e.abort()
        raise
    frame = st.to_frame()
    timeline = sim.timeline.to_frame()
    try:
        for e in exporters:
            e.close()
            exporters = exporters[1:]
        if args.out is not None:
            write_frame(frame, args.out)
        if args.timeline is not None:
            write_frame(timeline, args.timeline)
        if args.plot is not None:
            plot_memory(timeline, args.plot,
                        f"{model.name} on {gpu.name}, {args.manager}, {requests.name}")
    except BaseException:
        for e in exporters:
            e.abort()
        raise
    d = st.to_dict()
    if st.requests_over_context or st.requests_truncated:
        print(f"simkit: warning: {st.requests_over_context} of {st.requests_arrived} requests "
              f"have prompts of {model.max_context} tokens (the context of {model.name}) or "
              f"more and were rejected; {st.requests_truncated} outputs were cut to fit it "
              f"(--max-context N serves longer requests)", file=sys.stderr)
    gib = 2.0 ** 30

    def ms3(name):
        vals = [d[f"{name}_p{q}_s"] for q in (50, 90, 99)]
        return "n/a" if any(math.isnan(v) for v in vals) else " / ".join(
            f"{v * 1e3:.2f}" for v in vals)
    mean_mem = st.mean_memory_bytes()
    rows = [
        ("trace", f"{requests.name} ({requests.info.get('arrivals', '')})"),
        ("model / gpu / manager", f"{model.name} / {gpu.name} / {args.manager}"
                                  + (f" / TP {tp}" if tp > 1 else "")
                                  + (f" / {replicas} replicas ({args.router})"
                                     if replicas > 1 else "")),
        ("calibration", f"{cal.kind}: {cal.path or 'published-' + gpu.name.lower()}, paged "
                        f"kernel {cal.paged_kernel}"),
        ("KV capacity", f"{format_bytes(sim.capacity_bytes)} "
                        f"({sim.capacity_bytes // sim.model.kv_bytes_per_token} tokens)"
                        + (f" per GPU, {tp * replicas} GPUs" if tp * replicas > 1 else "")),
        ("requests arrived / finished / rejected / aborted",
         f"{st.requests_arrived} / {st.requests_finished} / {st.requests_rejected} / "
         f"{st.requests_aborted}"),
        ("requests over the context (rejected) / outputs cut",
         f"{st.requests_over_context} / {st.requests_truncated}"),
        ("simulated time (s)", f"{st.duration_s:.2f} (busy {st.busy_s:.2f})"),
        ("iterations", st.iterations),
        ("throughput (tokens/s, requests/s)",
         f"{st.throughput_tokens_per_s:.1f}, {st.throughput_requests_per_s:.3f}"),
        ("TTFT p50 / p90 / p99 (ms)", ms3("ttft")),
        ("TBT p50 / p90 / p99 (ms)", ms3("tbt")),
        ("normalized latency mean / p50 / p99 (ms/token)",
         "n/a" if not st.norm_latency.n else
         f"{st.normalized_latency_s * 1e3:.2f} / {st.norm_latency.percentile(50) * 1e3:.2f} / "
         f"{st.norm_latency.percentile(99) * 1e3:.2f}"),
        ("batch size mean / max", "n/a" if not st.iterations else
         f"{st.mean_batch_seqs:.2f} / {st.batch_seqs_max}"),
        ("preemptions (recompute / swap)",
         f"{st.preemptions} ({st.preemptions_recompute} / {st.preemptions_swap})"),
        ("prefix-cache hit rate", "n/a (no prefix hashes)" if not st.prompt_tokens_hashed
         else f"{st.prefix_hit_rate:.2%}"
         + (f" ({format_bytes(st.host_load_bytes)} loaded from the host tier)"
            if args.cpu_cache is not None else "")),
        ("mapping: ops / calls / time (s) / exposed (s)",
         f"{st.map_ops} / {st.map_calls} / {st.map_s:.3f} / {st.map_exposed_s:.3f}"),
        ("mean KV GiB used / frag / reserved / cached / free", "n/a" if not st.busy_s else
         " / ".join(f"{mean_mem[p] / gib:.2f}" for p in
                    ("used", "internal_frag", "reserved", "cached", "free"))),
        ("mean waste (frag + reserved) / allocated", "n/a" if math.isnan(st.mean_waste_fraction)
         else f"{st.mean_waste_fraction:.2%}"),
    ]
    if cfg.width > 1:
        rows.append(("memory saved by sharing (parallel sampling / beam search)",
                     f"{st.sharing_saving_fraction:.2%}"))
    print_frame(pd.DataFrame(rows, columns=["metric", "value"]).astype(str))
    for flag, path in (("--out", args.out), ("--timeline", args.timeline),
                       ("--plot", args.plot), ("--export-kv-trace", args.export_kv_trace),
                       ("--export-alloc-trace", args.export_alloc_trace)):
        if path is not None:
            print(f"wrote {path}")
    return 0
