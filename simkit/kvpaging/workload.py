"""Request streams for the serving engine: real traces with arrival times, and a lazy synthetic
generator.

A request is (arrival_s, prompt_tokens, output_tokens, prefix_hashes). ``RequestSource`` yields
them in arrival order (ties keep file order); the engine pulls them lazily, so a synthetic
source of a million requests is never held in memory.

Formats (``load_trace``):

    Azure LLM inference CSV   TIMESTAMP, ContextTokens, GeneratedTokens. TIMESTAMP
                              ("2023-11-16 18:15:46.6805900") -> seconds from the first row.
    Mooncake JSONL            {"timestamp": ms, "input_length", "output_length", "hash_ids"}.
                              hash_ids are 512-token prefix-block hashes (REFERENCE.md 2.4);
                              the source says so in ``hash_block_tokens`` = 512.
    Vidur CSV                 num_prefill_tokens, num_decode_tokens, no times: Poisson arrivals
                              at ``rate`` requests/s from ``numpy.random.default_rng(seed)``.
    Vidur trace-replay CSV    Time (s), PromptTokenCount, CompletionTokenCount (vidur
                              ``trace_replay_request_generator.py``; its Date filter is not
                              applied: every row is served).

Token counts are non-negative integers; integral floats (``7564.0``, as pandas writes integer
columns that held a NaN) are accepted, other fractions are refused. Timestamped traces keep
their arrival times: ``rate`` is refused for them (it applies only to traces without times);
``time_scale`` multiplies their arrival times as Vidur's ``time_scale_factor`` does (0.5 =
twice the arrival rate), and is refused for traces without times.

Length presets (``LENGTH_PRESETS``, ``preset_requests``): ShareGPT- and Alpaca-like requests as in
PagedAttention's evaluation (section 6.1, Fig. 11: mean input / output tokens about 161 / 338 and
19 / 58, REFERENCE.md 2.1 [S]) with Poisson arrivals. Only the means are the paper's; the shape
(geometric, as ``synthetic_requests``) is simkit's assumption.

Files may be ``.xz`` or ``.gz`` compressed. Traces without hashes give requests with none.
Shipped names (``SHIPPED``: azure-conv, azure-code, mooncake-conv, vidur-arxiv) resolve to files
in ``traces/llm-serving/``; a full-size copy of the Azure trace there is preferred to the
1,000-row subset.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from simkit.errors import InputError

MOONCAKE_BLOCK_TOKENS = 512

#: shipped trace name -> candidate files in traces/llm-serving/, first found wins
SHIPPED = {
    "azure-conv": ("AzureLLMInferenceTrace_conv.csv", "AzureLLMInferenceTrace_conv.csv.xz",
                   "AzureLLMInferenceTrace_conv_first1000.csv"),
    "azure-code": ("AzureLLMInferenceTrace_code.csv", "AzureLLMInferenceTrace_code.csv.xz",
                   "AzureLLMInferenceTrace_code_first1000.csv"),
    "mooncake-conv": ("mooncake_conversation_trace.jsonl", "mooncake_conversation_trace.jsonl.xz"),
    "vidur-arxiv": ("vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
                    "vidur_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv.xz"),
}


@dataclass(frozen=True)
class Request:
    rid: int
    arrival_s: float
    prompt: int
    output: int
    prefix_hashes: tuple = ()


class RequestSource:
    """A re-iterable stream of requests in arrival order.

    ``factory()`` returns a fresh iterator; ``count`` is the number of requests when known
    (None for unbounded streams); ``hash_block_tokens`` the tokens one prefix hash covers
    (0: no hashes)."""

    def __init__(self, name: str, factory: Callable[[], Iterator[Request]], count: int | None,
                 hash_block_tokens: int = 0, info: dict | None = None):
        self.name = name
        self._factory = factory
        self.count = count
        self.hash_block_tokens = hash_block_tokens
        self.info = dict(info or {})

    def __iter__(self) -> Iterator[Request]:
        return self._factory()

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("unbounded request source")
        return self.count


def _from_arrays(name, arrival, prompt, output, hashes=None, hash_block_tokens=0, info=None):
    arrival = np.asarray(arrival, dtype=np.float64)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order] - (arrival.min() if len(arrival) else 0.0)
    prompt = np.asarray(prompt, dtype=np.int64)[order]
    output = np.asarray(output, dtype=np.int64)[order]
    if hashes is not None:
        hashes = [hashes[i] for i in order]

    def gen():
        a, p, o = arrival.tolist(), prompt.tolist(), output.tolist()
        for i in range(len(a)):
            yield Request(i, a[i], p[i], o[i], hashes[i] if hashes is not None else ())

    return RequestSource(name, gen, len(arrival), hash_block_tokens, info)


def poisson_arrivals(n: int, rate: float, seed: int = 0) -> np.ndarray:
    """``n`` arrival times (s) of a Poisson process of ``rate`` requests/s, the first at 0."""
    if not rate > 0:
        raise ValueError(f"rate: must be > 0 requests/s, got {rate!r}")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n)
    if n:
        gaps[0] = 0.0
    return np.cumsum(gaps)


def _open_text(path: Path):
    from simkit.atomic import check_input_kind
    check_input_kind(path)
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    name = path.name.lower()
    if name.endswith(".xz"):
        import lzma
        return lzma.open(path, "rt", newline="", encoding="utf-8")
    if name.endswith(".gz"):
        import gzip
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return open(path, newline="", encoding="utf-8")


def token_count(v) -> int | None:
    """A token count from text or a JSON number: a non-negative integer, or a float with no
    fractional part (``"7564.0"``); None for anything else."""
    if isinstance(v, str):
        v = v.strip()
        if v.isdigit():
            return int(v)
        try:
            v = float(v)
        except ValueError:
            return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not (v.is_integer() and v >= 0):
        return None
    return int(v) if v >= 0 else None


def _int_field(path, lineno, name, text) -> int:
    v = token_count(text)
    if v is None:
        raise InputError(f"{path}: line {lineno}: {name} {text.strip()!r} is not a non-negative "
                         f"integer")
    return v


def _load_csv(path: Path, limit, rate, seed) -> RequestSource:
    arrival, prompt, output = [], [], []
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = [h.strip() for h in (next(reader, None) or [])]
            if not header:
                raise InputError(f"{path}: empty file (expected a CSV header)")
            if "ContextTokens" in header and "GeneratedTokens" in header:
                cols = ("ContextTokens", "GeneratedTokens")
            elif "PromptTokenCount" in header and "CompletionTokenCount" in header:
                cols = ("PromptTokenCount", "CompletionTokenCount")
            elif "num_prefill_tokens" in header and "num_decode_tokens" in header:
                cols = ("num_prefill_tokens", "num_decode_tokens")
            else:
                raise InputError(f"{path}: no request-length columns: expected ContextTokens and "
                                 f"GeneratedTokens (Azure), num_prefill_tokens and "
                                 f"num_decode_tokens (Vidur) or PromptTokenCount and "
                                 f"CompletionTokenCount (Vidur trace replay) "
                                 f"(found: {', '.join(header)})")
            ip, io = header.index(cols[0]), header.index(cols[1])
            tcol = next((c for c in ("TIMESTAMP", "Time") if c in header), None)
            it = header.index(tcol) if tcol else None
            if it is None and rate is None:
                raise InputError(f"{path}: no TIMESTAMP column; give an arrival rate "
                                 f"(--rate REQ_PER_S) for Poisson arrivals")
            if it is not None and rate is not None:
                raise _timed_rate(path, tcol)
            for lineno, rec in enumerate(reader, start=2):
                if limit is not None and len(prompt) >= limit:
                    break
                if not rec or not any(x.strip() for x in rec):
                    continue
                if len(rec) < len(header):
                    raise InputError(f"{path}: line {lineno}: {len(rec)} fields, header has "
                                     f"{len(header)}")
                prompt.append(_int_field(path, lineno, cols[0], rec[ip]))
                output.append(_int_field(path, lineno, cols[1], rec[io]))
                if it is not None and tcol == "Time":
                    try:
                        t = float(rec[it])
                    except ValueError:
                        t = math.nan
                    if not (math.isfinite(t) and t >= 0):
                        raise InputError(f"{path}: line {lineno}: Time {rec[it]!r} is not a "
                                         f"number of seconds >= 0")
                    arrival.append(t)
                elif it is not None:
                    try:
                        t = _dt.datetime.fromisoformat(rec[it].strip())
                    except ValueError:
                        raise InputError(f"{path}: line {lineno}: TIMESTAMP {rec[it]!r} is not "
                                         f"a date-time") from None
                    arrival.append(t.timestamp() if t.tzinfo else
                                   t.replace(tzinfo=_dt.timezone.utc).timestamp())
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{path}: not a UTF-8 text CSV ({exc.__class__.__name__})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: bad CSV ({exc})") from None
    if not prompt:
        raise InputError(f"{path}: no requests")
    info = {"arrivals": f"trace {tcol}" if arrival else f"Poisson {rate} req/s seed {seed}"}
    if not arrival:
        arrival = poisson_arrivals(len(prompt), rate, seed)
    return _from_arrays(path.name, arrival, prompt, output, info=info)


def _load_mooncake(path: Path, limit) -> RequestSource:
    arrival, prompt, output, hashes = [], [], [], []
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                if limit is not None and len(prompt) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {lineno}: not JSON ({exc.msg})") from None
                for key in ("timestamp", "input_length", "output_length"):
                    v = d.get(key) if isinstance(d, dict) else None
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 \
                            or (key != "timestamp" and token_count(v) is None):
                        what = "number" if key == "timestamp" else "integer"
                        raise InputError(f"{path}: line {lineno}: {key} {v!r} is not a "
                                         f"non-negative {what}")
                h = d.get("hash_ids", [])
                if not isinstance(h, list) or not all(isinstance(x, int) for x in h):
                    raise InputError(f"{path}: line {lineno}: hash_ids must be a list of "
                                     f"integers")
                arrival.append(d["timestamp"] / 1000.0)
                prompt.append(int(d["input_length"]))
                output.append(int(d["output_length"]))
                hashes.append(tuple(h))
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{path}: not UTF-8 text ({exc.__class__.__name__})") from None
    if not prompt:
        raise InputError(f"{path}: no requests")
    return _from_arrays(path.name, arrival, prompt, output, hashes, MOONCAKE_BLOCK_TOKENS,
                        {"arrivals": "trace timestamp (ms)"})


def resolve_trace(spec: str | os.PathLike) -> Path:
    """A path, or a shipped trace name (``SHIPPED``) -> its file in traces/llm-serving/."""
    from simkit.trace.catalog import traces_dir

    text = str(spec)
    if text in SHIPPED:
        base = traces_dir() / "llm-serving"
        for cand in SHIPPED[text]:
            if (base / cand).is_file():
                return base / cand
        raise InputError(f"--trace {text}: shipped trace not found (looked for "
                         f"{', '.join(SHIPPED[text])} in {base})")
    path = Path(text)
    if not path.exists():
        raise InputError(f"--trace {text}: no such file (or shipped trace name: "
                         f"{', '.join(SHIPPED)})")
    return path


def _timed_rate(path, column) -> InputError:
    return InputError(f"--rate: {path.name} has arrival times ({column}); --rate applies only to "
                      f"traces without them; use --time-scale FACTOR to scale its arrival times "
                      f"(Vidur's time_scale_factor: 0.5 = twice the rate)")


def load_trace(spec: str | os.PathLike, *, limit: int | None = None, rate: float | None = None,
               seed: int = 0, time_scale: float | None = None) -> RequestSource:
    """Requests of a trace file or shipped trace name (module docstring)."""
    path = resolve_trace(spec)
    if limit is not None and limit <= 0:
        raise ValueError(f"limit: must be > 0, got {limit}")
    if time_scale is not None and not (math.isfinite(time_scale) and time_scale > 0):
        raise InputError(f"--time-scale: must be a finite number > 0, got {time_scale!r}")
    if path.name.lower().removesuffix(".xz").removesuffix(".gz").endswith((".jsonl", ".json")):
        if rate is not None:
            raise _timed_rate(path, "timestamp")
        src = _load_mooncake(path, limit)
    else:
        src = _load_csv(path, limit, rate, seed)
    if time_scale is not None:
        if src.info.get("arrivals", "").startswith("Poisson"):
            raise InputError(f"--time-scale: {path.name} has no arrival times to scale; give "
                             f"the Poisson rate with --rate")
        if time_scale != 1.0:
            factory = src._factory

            def scaled():
                for r in factory():
                    yield Request(r.rid, r.arrival_s * time_scale, r.prompt, r.output,
                                  r.prefix_hashes)
            src._factory = scaled
            src.info["arrivals"] += f" x {time_scale:g} (time scale)"
    src.info["path"] = str(path)
    return src


def synthetic_requests(n: int, *, rate: float = 10.0, prompt_mean: float = 1000.0,
                       output_mean: float = 200.0, max_tokens: int = 4096, seed: int = 0,
                       chunk: int = 4096) -> RequestSource:
    """``n`` requests made lazily in chunks (constant memory): Poisson arrivals at ``rate``,
    prompt and output lengths geometric with the given means, clipped so prompt + output <=
    ``max_tokens`` (both >= 1)."""
    for name, v in (("n", n), ("chunk", chunk), ("max_tokens", max_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    if not rate > 0:
        raise ValueError(f"rate: must be > 0, got {rate!r}")
    for name, v in (("prompt_mean", prompt_mean), ("output_mean", output_mean)):
        if not v >= 1:
            raise ValueError(f"{name}: must be >= 1, got {v!r}")

    def gen():
        rng = np.random.default_rng(seed)
        t = 0.0
        done = 0
        while done < n:
            k = min(chunk, n - done)
            gaps = rng.exponential(1.0 / rate, size=k)
            if done == 0:
                gaps[0] = 0.0
            times = (t + np.cumsum(gaps)).tolist()
            t = times[-1]
            p = np.minimum(rng.geometric(1.0 / prompt_mean, size=k), max_tokens - 1)
            o = np.minimum(rng.geometric(1.0 / output_mean, size=k), max_tokens - p)
            for i, (a, pp, oo) in enumerate(zip(times, p.tolist(), o.tolist())):
                yield Request(done + i, a, pp, oo)
            done += k

    return RequestSource(f"synthetic-{n}", gen, n, 0,
                         {"arrivals": f"Poisson {rate} req/s seed {seed}",
                          "lengths": f"geometric, means {prompt_mean}/{output_mean}"})


#: name -> (mean prompt tokens, mean output tokens): PagedAttention Fig. 11 (REFERENCE 2.1 [S])
LENGTH_PRESETS = {"sharegpt": (161.0, 338.0), "alpaca": (19.0, 58.0)}


def preset_requests(name: str, n: int, *, rate: float, max_tokens: int,
                    seed: int = 0) -> RequestSource:
    """``n`` requests with a ``LENGTH_PRESETS`` workload's mean lengths (geometric, clipped to
    ``max_tokens`` in all) at ``rate`` requests/s (Poisson)."""
    if name not in LENGTH_PRESETS:
        raise ValueError(f"workload: unknown length preset {name!r}; presets: "
                         f"{', '.join(LENGTH_PRESETS)}")
    p, o = LENGTH_PRESETS[name]
    src = synthetic_requests(n, rate=rate, prompt_mean=p, output_mean=o, max_tokens=max_tokens,
                             seed=seed)
    src.name = f"{name}-like-{n}"
    return src


__all__ = ["LENGTH_PRESETS", "MOONCAKE_BLOCK_TOKENS", "Request", "RequestSource", "SHIPPED",
           "load_trace", "poisson_arrivals", "preset_requests", "resolve_trace",
           "synthetic_requests", "token_count"]
