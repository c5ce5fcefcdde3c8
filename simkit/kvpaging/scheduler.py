"""vLLM-style continuous batching over a KV manager: which tokens run in the next iteration.

Queues (vLLM v0/v1 ``scheduler.py``)::

    waiting  deque, FCFS; requests arrive at the tail, recompute-preempted ones return to the
             head (v1 ``prepend_request``)
    running  list in admission order (the newest last)
    swapped  deque of swap-preempted sequences, oldest first

One ``schedule()`` builds one iteration, under a token budget (``max_num_batched_tokens``) and
a sequence limit (``max_num_seqs``):

1. Running sequences, oldest first. A sequence still in prefill gets its remaining prompt (or,
   with chunked prefill, as much as the budget allows; without it, a prompt runs whole — the
   first prefill of an iteration may exceed the budget, as vLLM requires
   max_num_batched_tokens >= max_model_len). A decoding sequence gets one token, for which
   ``grow(seq, 1)`` must find room; when it returns None, the newest running sequence is
   preempted (all-or-nothing) and grow retried — possibly preempting the sequence itself.
2. If nothing was preempted in this iteration: swapped sequences come back (``swap_in``),
   oldest first, each decoding in this iteration.
3. If nothing is swapped out and nothing was preempted: waiting requests are admitted in FCFS
   order (``admit`` with the prompt — prompt + tokens generated so far after a recompute —
   and ``max_tokens`` = prompt + output), until admission fails (head-of-line blocking), the
   budget or the sequence limit is reached.

Preemption (REFERENCE.md 2.1): "recompute" (v1) frees the KV and requeues the request at the
front of ``waiting`` to re-prefill prompt + generated tokens; "swap" (v0) copies the KV to the
host, and no request is admitted while anything is swapped out.

Token accounting. A prefill of P tokens writes P tokens of KV and emits the first output token
at the end of its iteration; each decode iteration writes the KV of the last emitted token
(``grow(seq, 1)``) and emits the next, so a request with output O holds P + O - 1 tokens of KV
when it finishes (vLLM never writes the last token's KV). Prefix-cache hits skip prefill work
(at least one token is always computed, for its logits).

Parallel sampling and beam search (``parallel_samples`` = n or ``beam_width`` = k > 1: every
request is a sequence group of that width, as vLLM's ``SamplingParams(n=...)`` /
``use_beam_search``). The prompt is prefilled once as one sequence; its prefill emits the
group's first token of every member, and before the group's first decode the manager
``fork``s the other members from it (PagedAttention: they share the prompt's blocks; the
first to append to the shared partial last block copies it). Each decode iteration grows
every member by one token (the group counts ``width`` tokens against the budget). Beam search
then reselects the beams after every decode step: each new beam continues a parent beam drawn
uniformly at random (``seed``; no logits exist in a trace), i.e. it is ``fork``ed from that
parent and the old beams are freed, so beams coalesce onto shared prefixes as real beams do.
A group is preempted whole (recompute only: it re-prefills prompt + generated once, then
forks again). Groups need a manager whose ``fork`` never fails (PagedAttention: sharing needs
no memory); the engine refuses others.

Decode ride (the fast path; plain decoding with a manager that has ``ride_step``, no
``on_alloc`` observers). When every running sequence decoded in the previous iteration and
decodes again, the iteration is one ride step: the manager grows all of them in one call that
touches only those whose last block is full (``PagedManager.ride_step``), and ``complete``
advances a shared step counter instead of each sequence: a rider's ``generated`` is its value
when it joined plus the steps since (its ``last_s`` the last step's end), its finish is found
in a table keyed by the step it finishes at (output - generated steps after joining), and the
decode context of the batch is kept as a running sum. Riders are a prefix of ``running`` (the
newest sequences join at the next plan once they decode); anything else — a sequence still in
prefill, a budget below the batch, a block the free list cannot give, an observer — ends the
ride (``settle``: every rider's state written back) and the iteration runs the per-sequence
path, so both paths do the same grows, finishes, frees and histogram adds in the same order.

Requests the engine can never serve are counted, not run: a prompt of max_context tokens or
more is rejected (an output that would pass max_context is cut: ``requests_truncated``); a
request that cannot be admitted into an empty engine is rejected; a sequence that must preempt
itself with nothing else running is aborted (it can never grow).
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from simkit.kvpaging.metrics import ServingStats

PREEMPTION_MODES = ("recompute", "swap")


def _first(x):
    return x[0]


@dataclass(frozen=True)
class SchedulerConfig:
    """vLLM's scheduler limits. ``max_num_batched_tokens`` 0: ``CHUNKED_DEFAULT_TOKENS``
    with chunked prefill, else max(max_context, 2048) (vLLM's defaults)."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 0
    chunked_prefill: bool = False
    preemption: str = "recompute"
    parallel_samples: int = 1
    beam_width: int = 1
    seed: int = 0

    def __post_init__(self):
        for name, lo in (("max_num_seqs", 1), ("max_num_batched_tokens", 0),
                         ("parallel_samples", 1), ("beam_width", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
        if not isinstance(self.chunked_prefill, bool):
            raise ValueError(f"chunked_prefill: expected true/false, got {self.chunked_prefill!r}")
        if self.preemption not in PREEMPTION_MODES:
            raise ValueError(f"preemption: must be one of {', '.join(PREEMPTION_MODES)}, got "
                             f"{self.preemption!r}")
        if self.parallel_samples > 1 and self.beam_width > 1:
            raise ValueError(f"beam_width: parallel_samples ({self.parallel_samples}) and "
                             f"beam_width ({self.beam_width}) exclude each other")
        if self.width > 1 and self.preemption != "recompute":
            raise ValueError(f"preemption: sequence groups (width {self.width}) are preempted "
                             f"by recompute only, got {self.preemption!r}")

    @property
    def width(self) -> int:
        """Sequences per request (1: plain decoding)."""
        return max(self.parallel_samples, self.beam_width)

    def token_budget(self, max_context: int) -> int:
        if self.max_num_batched_tokens:
            return self.max_num_batched_tokens
        return CHUNKED_DEFAULT_TOKENS if self.chunked_prefill else max(max_context, 2048)


CHUNKED_DEFAULT_TOKENS = 2048


class Seq:
    """One request's serving state."""

    __slots__ = ("rid", "arrival", "prompt", "output", "hashes", "generated", "computed",
                 "target", "prefilling", "first_s", "last_s", "admitted", "width", "members",
                 "tick0", "jn")

    def __init__(self, rid, arrival, prompt, output, hashes=(), width=1):
        self.rid = rid
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.hashes = hashes
        self.generated = 0          # tokens emitted
        self.computed = 0           # prefill tokens done in the current prefill
        self.target = prompt        # prefill tokens of the current prefill
        self.prefilling = True
        self.first_s = None
        self.last_s = 0.0
        self.admitted = False
        self.width = width          # sequences in the group
        self.members = [rid]        # the manager's ids of the group's live sequences
        self.tick0 = 0              # decode ride: the step it joined at (module docstring)
        self.jn = 0                 # decode ride: join order


class Scheduler:
    """Queues and the per-iteration plan (module docstring). ``observers``: objects with
    optional ``on_alloc(rid)`` (after an admit / grow / swap-in gave the sequence memory) and
    ``on_release(rid)`` (before free / preempt takes it)."""

    def __init__(self, manager, config: SchedulerConfig, max_context: int, stats: ServingStats,
                 observers=()):
        self.mgr = manager
        self.cfg = config
        self.max_context = max_context
        self.budget = config.token_budget(max_context)
        self.stats = stats
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []
        self.swapped: deque[Seq] = deque()
        self.prefills: list = []        # (seq, tokens) of this iteration
        self.decodes: list[Seq] = []
        self.map_ops = 0
        self.swap_bytes = 0
        self.obs_alloc = [o.on_alloc for o in observers if hasattr(o, "on_alloc")]
        self.obs_release = [o.on_release for o in observers if hasattr(o, "on_release")]
        self.slo = stats.slo
        self.width = config.width
        self.max_groups = max(1, config.max_num_seqs // config.width)   # max_num_seqs counts
        self.beam = config.beam_width > 1
        self.rng = random.Random(config.seed)
        self._next_id = -1          # member ids of forked sequences: negative, never a rid
        # the manager's one-call decode growth, where plain decoding allows it
        self._grow_each = getattr(manager, "grow_each", None) if self.width == 1 else None
        # decode ride (module docstring); ``ride`` False: the per-sequence path only
        self.ride = self.width == 1 and hasattr(manager, "ride_step")
        self._riding = 0            # riders: running[:_riding]
        self._rtick = 0             # ride steps completed
        self._rt1 = 0.0             # end of the last ride step
        self._rfin: dict[int, list] = {}    # step -> [(join order, seq)] finishing then
        self._rctx = 0              # sum of prompt + generated over the riders
        self._rjoins = 0
        self._rode = 0              # riders decoding in the current plan (0: not a ride step)
        self.decode_ctx = 0         # sum of prompt + generated over ``decodes`` (one member)

    # ---- arrivals ------------------------------------------------------------------------
    def add(self, req) -> None:
        st = self.stats
        st.requests_arrived += 1
        p, o = req.prompt, req.output
        if p >= self.max_context or p <= 0 or o <= 0:
            st.requests_rejected += 1
            if p >= self.max_context:
                st.requests_over_context += 1
            return
        if p + o > self.max_context:
            o = self.max_context - p
            st.requests_truncated += 1
        self.waiting.append(Seq(req.rid, req.arrival_s, p, o, req.prefix_hashes, self.width))

    @property
    def idle(self) -> bool:
        return not (self.waiting or self.running or self.swapped)

    # ---- one iteration -------------------------------------------------------------------
    def _preempt(self, s: Seq) -> None:
        st, mgr = self.stats, self.mgr
        for f in self.obs_release:
            f(s.rid)
        if self.cfg.preemption == "recompute":
            if s.width > 1:
                for m in s.members:
                    mgr.preempt(m, "recompute")
                s.members = [s.rid]
            else:
                mgr.preempt(s.rid, "recompute")
            st.preemptions_recompute += 1
            s.prefilling = True
            s.target = s.prompt + s.generated
            s.computed = 0
            self.waiting.appendleft(s)
        else:
            b = mgr.preempt(s.rid, "swap")
            st.preemptions_swap += 1
            st.swap_out_bytes += b
            self.swap_bytes += b
            self.swapped.append(s)

    def _abort(self, s: Seq) -> None:
        """``s`` preempted itself with nothing else running: it can never grow; drop it."""
        if self.cfg.preemption == "recompute":
            self.waiting.remove(s)
        else:
            self.swapped.remove(s)
            self.mgr.free(s.rid)
        self.stats.requests_aborted += 1

    def _prefill_chunk(self, s: Seq, budget: int) -> int:
        left = s.target - s.computed
        if left <= budget or (not self.cfg.chunked_prefill and not self.prefills):
            n = left
        else:
            n = budget if self.cfg.chunked_prefill else 0
        if n > 0:
            self.prefills.append((s, n))
        return n

    # ---- decode ride (module docstring) ---------------------------------------------------
    def _ride_plan(self, running: list, budget: int, now: float) -> int:
        """Join the running sequences that can, then one ride step for all. Returns the
        riders decoding in it, or 0 (the ride ended; the per-sequence path plans)."""
        n = len(running)
        if n > budget:
            self.settle()
            return 0
        r = self._riding
        if r < n:
            mgr, fin = self.mgr, self._rfin
            tick = self._rtick
            for s in running[r:]:
                if s.prefilling or s.last_s != now:
                    self.settle()
                    return 0
            for s in running[r:]:
                if not mgr.ride_join(s.rid):
                    self.settle()
                    return 0
                s.tick0 = tick
                s.jn = j = self._rjoins
                self._rjoins = j + 1
                fin.setdefault(tick + s.output - s.generated, []).append((j, s))
                self._rctx += s.prompt + s.generated
                self._riding += 1
        ops = self.mgr.ride_step(n)
        if ops is None:
            self.settle()
            return 0
        self.map_ops = ops
        self._rode = n
        return n

    def settle(self) -> None:
        """End the decode ride: every rider's ``generated`` and ``last_s`` written back (and
        the manager's token counts). Plans already made keep their work; the iteration
        completes on the per-sequence path."""
        self._rode = 0
        if not self._riding:
            return
        tick, t1 = self._rtick, self._rt1
        for s in self.running[:self._riding]:
            d = tick - s.tick0
            if d:
                s.generated += d
                s.last_s = t1
        self._riding = 0
        self._rfin.clear()
        self._rctx = 0
        self.mgr.ride_end()

    def schedule(self, now: float | None = None) -> None:
        """Fill ``prefills``, ``decodes``, ``decode_ctx``, ``map_ops`` and ``swap_bytes`` for
        one iteration starting at ``now`` (None: no decode ride)."""
        mgr, st, cfg = self.mgr, self.stats, self.cfg
        running = self.running
        self.prefills = []
        decodes = self.decodes = []
        self.swap_bytes = 0
        ops = 0
        budget = self.budget
        preempted = False
        obs_alloc = self.obs_alloc
        grow = mgr.grow
        i = 0
        grow_each = self._grow_each
        rode = 0
        if self.ride and now is not None and running and not obs_alloc:
            rode = self._ride_plan(running, budget, now)
            if rode:
                ops = self.map_ops
                decodes.extend(running)
                budget -= rode
                i = rode
        elif self._riding:
            self.settle()
        if not rode and grow_each is not None and not obs_alloc and running \
                and not running[0].prefilling:
            # fast path: the leading decoding sequences grow in one manager call (the same
            # grows, in the same order, as the loop below; a failure is left to the loop)
            ids = [s.rid for s in running if not s.prefilling]
            if len(ids) == len(running):            # all decoding (else: the loop below)
                if budget < len(ids):
                    del ids[budget:]
                k, ops = grow_each(ids)
                decodes.extend(running[:k])
                budget -= k
                i = k
        while i < len(running):
            s = running[i]
            if s.prefilling:
                budget -= self._prefill_chunk(s, budget)
                i += 1
                continue
            if budget <= 0:
                break
            if s.width > 1:
                r, p = self._grow_group(s, running)
                preempted = preempted or p
                if r is None:
                    break
                ops += r
                decodes.append(s)
                budget -= s.width
                i += 1
                continue
            r, p = self._grow_preempting(s, s.rid, running)
            preempted = preempted or p
            if r is None:
                break
            if r and obs_alloc:
                for f in obs_alloc:
                    f(s.rid)
            ops += r
            decodes.append(s)
            budget -= 1
            i += 1
        if self.swapped and not preempted:
            while self.swapped and len(running) < self.max_groups and budget > 0:
                s = self.swapped[0]
                b = mgr.swap_in(s.rid)
                if b is None:
                    break
                self.swapped.popleft()
                st.swap_in_bytes += b
                self.swap_bytes += b
                running.append(s)
                for f in obs_alloc:
                    f(s.rid)
                if s.prefilling:
                    budget -= self._prefill_chunk(s, budget)
                    continue
                r = grow(s.rid, 1)
                if r is None:                       # no room for its token: back out
                    running.pop()
                    self._preempt(s)
                    break
                ops += r
                decodes.append(s)
                budget -= 1
        if not self.swapped and not preempted:
            waiting = self.waiting
            while waiting and len(running) < self.max_groups and budget > 0:
                s = waiting[0]
                adm = mgr.admit(s.rid, s.target, s.prompt + s.output, s.hashes)
                if adm is None:
                    if running or self.swapped:
                        break
                    waiting.popleft()               # cannot fit even into an empty engine
                    st.requests_rejected += 1
                    continue
                waiting.popleft()
                cached = adm.cached_tokens
                if adm.loaded_bytes:                 # prefix blocks copied from the host tier
                    self.swap_bytes += adm.loaded_bytes
                    st.host_load_bytes += adm.loaded_bytes
                if not s.admitted:
                    s.admitted = True
                    st.requests_admitted += 1
                    st.prompt_tokens += s.prompt
                    if s.hashes:
                        st.prompt_tokens_hashed += s.prompt
                        st.cached_prompt_tokens += cached
                else:
                    st.cached_recompute_tokens += cached
                s.computed = min(cached, s.target - 1)
                ops += adm.map_ops
                running.append(s)
                for f in obs_alloc:
                    f(s.rid)
                n = self._prefill_chunk(s, budget)
                budget -= n
                if n < s.target - s.computed and not cfg.chunked_prefill:
                    break
        self.map_ops = ops
        ctx = self._rctx if rode else 0
        for s in decodes[rode:]:
            ctx += s.prompt + s.generated
        self.decode_ctx = ctx

    def _grow_preempting(self, s: Seq, sid: int, running: list) -> tuple[int | None, bool]:
        """``grow(sid, 1)`` for ``s`` (or one of its members); while memory is short the newest
        running sequence (group) is preempted and the grow retried. Returns (map operations,
        or None when ``s`` itself was preempted — aborted if nothing else ran —, whether
        anything was preempted)."""
        grow = self.mgr.grow
        preempted = False
        while True:
            r = grow(sid, 1)
            if r is not None:
                return r, preempted
            v = running.pop()
            self._preempt(v)
            preempted = True
            if v is s:
                if not running:
                    self._abort(s)
                return None, True

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id -= 1
        return i

    def _grow_group(self, s: Seq, running: list) -> tuple[int | None, bool]:
        """Fork the members a group still lacks, then one token for each member. A member
        that cannot grow preempts the newest running group and the growth resumes where it
        stopped. Returns (map operations, or None when ``s`` itself was preempted — aborted
        if nothing else ran —, whether anything was preempted)."""
        mgr = self.mgr
        if len(s.members) < s.width:
            for _ in range(s.width - len(s.members)):
                c = self._new_id()
                if not mgr.fork(s.members[0], c):
                    raise RuntimeError("serving engine: fork failed; sequence groups need a "
                                       "manager that shares blocks (PagedAttention)")
                s.members.append(c)
        ops = 0
        preempted = False
        members = s.members
        for j in range(len(members)):
            r, p = self._grow_preempting(s, members[j], running)
            preempted = preempted or p
            if r is None:
                return None, True
            ops += r
        for f in self.obs_alloc:
            f(s.rid)
        return ops, preempted

    def _reselect_beams(self, s: Seq) -> None:
        """Beam search: each of the k new beams continues a parent drawn uniformly among the
        k old ones (forked from it); the old beams are freed."""
        mgr, rng, old = self.mgr, self.rng, s.members
        k = len(old)
        new = []
        for _ in range(k):
            c = self._new_id()
            mgr.fork(old[int(rng.random() * k)], c)
            new.append(c)
        for m in old:
            mgr.free(m)
        s.members = new

    def complete(self, t0: float, t1: float) -> int:
        """The iteration [t0, t1] ended: emit tokens, finish requests. Returns the number
        finished."""
        st = self.stats
        finished = 0
        for s, n in self.prefills:
            s.computed += n
            st.prefill_tokens += n
            if s.computed >= s.target:
                s.prefilling = False
                st.output_tokens += s.width
                finished += self._emit(s, t1)
        same = 0
        tbt = st.tbt
        decodes = self.decodes
        rode = self._rode
        if rode:                        # a ride step: the riders are decodes[:rode]
            self._rode = 0
            self._rtick = tick = self._rtick + 1
            self._rt1 = t1
            self._rctx += rode
            same = rode
            due = self._rfin.pop(tick, None)
            if due:
                if len(due) > 1:
                    due.sort(key=_first)        # join order = running order
                for _, s in due:
                    s.generated = s.output
                    s.last_s = t1
                    self._riding -= 1
                    self._rctx -= s.prompt + s.output
                    finished += self._finish(s, t1)
            decodes = decodes[rode:]
        for s in decodes:
            if s.last_s == t0:
                same += 1
                s.generated += 1
                s.last_s = t1
                if s.generated >= s.output:
                    finished += self._finish(s, t1)
            else:
                finished += self._emit(s, t1)
        if same:
            tbt.add(t1 - t0, same)
        if self.width > 1:
            st.output_tokens += self.width * len(self.decodes)
            if self.beam:
                for s in self.decodes:
                    if s.generated < s.output:
                        self._reselect_beams(s)
        else:
            st.output_tokens += len(self.decodes)
        if finished:
            self.running = [s for s in self.running if s.generated < s.output]
        return finished

    def _emit(self, s: Seq, t: float) -> int:
        st = self.stats
        if s.first_s is None:
            s.first_s = t
            st.ttft.add(t - s.arrival)
        else:
            st.tbt.add(t - s.last_s)
        s.generated += 1
        s.last_s = t
        if s.generated >= s.output:
            return self._finish(s, t)
        return 0

    def _finish(self, s: Seq, t: float) -> int:
        for f in self.obs_release:
            f(s.rid)
        if s.width > 1:
            for m in s.members:
                self.mgr.free(m)
        else:
            self.mgr.free(s.rid)
        st = self.stats
        st.requests_finished += 1
        e2e = t - s.arrival
        st.e2e.add(e2e)
        st.norm_latency.add(e2e / s.output)
        if self.slo is not None and self.slo.met(
                s.first_s - s.arrival, (t - s.first_s) / (s.output - 1) if s.output > 1 else 0.0,
                e2e / s.output):
            st.requests_slo_met += 1
        return 1
