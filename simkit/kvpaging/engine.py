"""The serving engine: a discrete-event simulation (simpy) of one model replica on one GPU
serving a request trace with continuous batching.

    sim = ServingSimulator(model, gpu, "paged-16", requests)        # requests: RequestSource
    stats = sim.run()                                              # ServingStats
    stats.to_frame(); sim.timeline.to_frame()

Time. One simpy process runs the engine loop; one iteration is one timeout event whose length
is the cost model's iteration time (``costmodel.py``) plus, for vAttention, VMM latency:
page-groups mapped synchronously (``grow``/``admit`` return them) cost ``map_calls_per_op``
cuMemMap + cuMemSetAccess calls each, all on the critical path; groups the manager mapped in
the background during the iteration (``counters()["background_map_groups"]``: overlap,
eager allocation) and the unmaps done for them (``background_unmap_calls``: reclamation
feeding a background map) run on vAttention's background thread, hidden behind compute:
only what the thread cannot finish in time is added: with ``lookahead_tokens`` = k it may
run up to k - 1 iterations behind (a backlog carried from step to step, each step draining
its own length; the work beyond k steps' worth stalls the step), so with k = 1 everything
longer than the iteration is added. The other unmap calls are charged in full.
Call costs are per page size (``Calibration.vmm_us``: the calibration's ``vmm_by_page``).
Arrivals are pulled by the loop itself before each
iteration (every request with arrival <= now joins ``waiting`` in trace order), and an idle
engine sleeps until the next arrival, so ties are deterministic: a request arriving exactly at
an iteration's end is seen by the next iteration. Requests are pulled lazily from the source;
nothing per request is kept after it finishes, so memory is bounded by the requests in flight
(plus the bounded timeline and fixed histograms of ``metrics.py``).

Tensor parallelism (``tensor_parallel`` = tp > 1): the engine simulates one GPU's shard of the
model (``models.tp_shard``: heads, KV heads, MLP and vocabulary split tp ways), whose KV
capacity, manager and cost model are per GPU; the tp GPUs run in lockstep, so one shard's
timeline is the replica's, and the cost model adds the all-reduces (``costmodel.py``).
Replicas behind a router: ``cluster.py``. Parallel sampling and beam search
(``SchedulerConfig.parallel_samples`` / ``beam_width``): ``scheduler.py``; they need a manager
that shares blocks (PagedAttention), and the stats' ``sharing_saving_fraction`` compares the
memory held with what the block tables would take unshared (``PagedManager.logical_bytes``).

KV capacity: ``gpus.kv_capacity_bytes`` (GPU memory x 0.9 - weights - activation reserve)
unless ``capacity_bytes`` is given. The cost model's kernel follows the manager: static ->
contiguous, PagedAttention -> paged (slowdown factors), vAttention -> vattention.

Memory accounting: ``manager.usage()`` is sampled when the timeline is due (every
``timeline_every`` iterations, thinned as the run grows); the time integrals in the stats
weight each sample by the busy time since the previous one (exact with ``timeline_every=1``).

Latency SLO: ``slo`` (``metrics.SLO``) makes the stats count the finished requests within its
bounds (``goodput_requests_per_s``); normalized latency is always kept.

Hooks: ``step_hook(sim)`` is called after every iteration is scheduled (before its time
passes) — tests assert invariants there. With a hook or ``on_plan`` / ``on_step`` observers
the scheduler's decode ride (``scheduler.py``) is settled before them, so they see every
sequence's exact state. ``observers`` get ``on_alloc(rid)`` /
``on_release(rid)`` from the scheduler, ``on_plan(sim)`` when an iteration is scheduled
(memory for its tokens allocated, ``sim.sched.decodes`` / ``prefills`` its work) and
``on_step(sim, t0, t1)`` after it ran: the exporters of ``export.py`` are observers.
"""
from __future__ import annotations

import sys
from collections import deque
from dataclasses import asdict

import simpy

from simkit.errors import InputError
from simkit.kvpaging.costmodel import Calibration, CostModel, default_calibration, prefill_pairs
from simkit.kvpaging.gpus import GPU_MEMORY_UTILIZATION, GPUSpec, kv_capacity_bytes
from simkit.kvpaging.metrics import SLO, MemoryTimeline, ServingStats
from simkit.kvpaging.models import ModelShape, tp_shard
from simkit.kvpaging.scheduler import Scheduler, SchedulerConfig

PROGRESS_EVERY = 4096        # iterations between progress-bar updates


def kernel_of(manager) -> str:
    """The attention kernel a manager's KV layout implies."""
    from simkit.kvpaging.managers.config import PagedConfig, StaticConfig

    cfg = getattr(manager, "config", None)
    if isinstance(cfg, StaticConfig):
        return "contiguous"
    if isinstance(cfg, PagedConfig):
        return "paged"
    return "vattention"


class ServingSimulator:
    """One serving run (module docstring)."""

    def __init__(self, model: ModelShape, gpu: GPUSpec, manager, requests, *,
                 config: SchedulerConfig | None = None, calibration: Calibration | None = None,
                 capacity_bytes: int | None = None,
                 gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
                 manager_overrides: dict | None = None, timeline_every: int = 1,
                 timeline_max_samples: int = 4096, observers=(), step_hook=None,
                 progress: bool | None = None, slo: SLO | None = None,
                 tensor_parallel: int = 1, env: simpy.Environment | None = None,
                 inbox: bool = False):
        if isinstance(tensor_parallel, bool) or not isinstance(tensor_parallel, int) \
                or tensor_parallel < 1:
            raise ValueError(f"tensor_parallel: must be an integer >= 1, got {tensor_parallel!r}")
        self.full_model, self.tensor_parallel = model, tensor_parallel
        model = tp_shard(model, tensor_parallel)
        self.model, self.gpu = model, gpu
        self.cfg = cfg = config if config is not None else SchedulerConfig()
        self.calibration = cal = (calibration if calibration is not None
                                  else default_calibration(gpu.name))
        self.requests = requests
        if capacity_bytes is None:
            capacity_bytes = kv_capacity_bytes(
                gpu, model, max_num_batched_tokens=cfg.token_budget(model.max_context),
                max_num_seqs=cfg.max_num_seqs, gpu_memory_utilization=gpu_memory_utilization)
        if capacity_bytes < model.kv_bytes_per_token:
            raise InputError(f"capacity_bytes: {capacity_bytes} bytes cannot hold one request "
                             f"(one token of {model.name} needs {model.kv_bytes_per_token} "
                             f"bytes of KV cache)")
        self.capacity_bytes = capacity_bytes
        if isinstance(manager, str):
            from simkit.kvpaging.managers import make_manager, parse_spec
            from simkit.kvpaging.managers.config import PagedConfig

            overrides = dict(manager_overrides or {})
            hb = getattr(requests, "hash_block_tokens", 0)
            if hb and isinstance(parse_spec(manager, model), PagedConfig):
                overrides.setdefault("hash_block_tokens", hb)
            self.manager_spec = manager
            manager = make_manager(manager, model, capacity_bytes, **overrides)
        else:
            self.manager_spec = getattr(manager, "name", type(manager).__name__)
        self.manager = manager
        self.kernel = kernel_of(manager)
        self.cost = CostModel(model, cal, self.kernel,
                              page_bytes=getattr(manager, "page_bytes", None),
                              tensor_parallel=tensor_parallel)
        self.map_calls_per_op = int(getattr(manager, "map_calls_per_op", 0))
        self.stats = ServingStats(capacity_bytes=capacity_bytes, params=self._params(), slo=slo)
        self.timeline = MemoryTimeline(timeline_every, timeline_max_samples)
        self.observers = list(observers)
        self._on_step = [o.on_step for o in self.observers if hasattr(o, "on_step")]
        self._on_plan = [o.on_plan for o in self.observers if hasattr(o, "on_plan")]
        self.sched = Scheduler(manager, cfg, model.max_context, self.stats, self.observers)
        self._logical_bytes = getattr(manager, "logical_bytes", None)
        if cfg.width > 1 and self.kernel != "paged":
            raise ValueError(f"manager: parallel sampling / beam search (width {cfg.width}) "
                             f"need PagedAttention's shared blocks; {self.manager_spec} "
                             f"would copy every sequence")
        self.step_hook = step_hook
        self.progress = progress
        self.env = env if env is not None else simpy.Environment()
        # cluster mode (``cluster.py``): a router appends requests to ``inbox`` at their
        # arrival and triggers ``wake``; ``routing_done`` says no more will come
        self.inbox = deque() if inbox else None
        self.wake = None
        self.routing_done = False
        self.iteration = 0
        self.last_iteration_s = 0.0

    def _params(self) -> dict:
        p = {"model": self.full_model.name, "gpu": self.gpu.name, "manager": self.manager_spec,
             "tensor_parallel": self.tensor_parallel,
             "trace": getattr(self.requests, "name", ""),
             "calibration": self.calibration.path or f"published-{self.gpu.name.lower()}",
             "calibration_kind": self.calibration.kind,
             "paged_kernel": self.calibration.paged_kernel}
        p.update(asdict(self.cfg))
        p["max_num_batched_tokens"] = self.cfg.token_budget(self.model.max_context)
        return p

    def add_observer(self, obs) -> None:
        """Attach an observer (module docstring) before ``run()``."""
        self.observers.append(obs)
        for name, lst in (("on_step", self._on_step), ("on_plan", self._on_plan),
                          ("on_alloc", self.sched.obs_alloc),
                          ("on_release", self.sched.obs_release)):
            if hasattr(obs, name):
                lst.append(getattr(obs, name))

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> ServingStats:
        """Serve every request of the source; returns the stats (also ``self.stats``)."""
        self.env.process(self._loop())
        self.env.run()
        return self.stats

    def _sample(self, dt_since: float) -> None:
        u = self.manager.usage()
        st, sc = self.stats, self.sched
        st.mem_used_byte_s += u.used_bytes * dt_since
        st.mem_internal_frag_byte_s += u.internal_frag_bytes * dt_since
        st.mem_reserved_byte_s += u.reserved_bytes * dt_since
        st.mem_cached_byte_s += u.cached_bytes * dt_since
        st.mem_free_byte_s += u.free_bytes * dt_since
        lb = self._logical_bytes
        st.mem_unshared_byte_s += (lb() if lb is not None else
                                   u.used_bytes + u.internal_frag_bytes + u.reserved_bytes
                                   ) * dt_since
        if u.used_bytes > st.mem_used_max_bytes:
            st.mem_used_max_bytes = u.used_bytes
        self.timeline.add((self.iteration, self.env.now, len(sc.running), len(sc.waiting),
                           len(sc.swapped), sum(n for _, n in sc.prefills) + len(sc.decodes),
                           u.used_bytes, u.internal_frag_bytes, u.reserved_bytes,
                           u.cached_bytes, u.free_bytes, u.virtual_bytes, u.swapped_bytes))

    def _loop(self):
        env, st, sc, cost = self.env, self.stats, self.sched, self.cost
        inbox = self.inbox
        it = iter(self.requests if inbox is None else ())
        nxt = next(it, None)
        if nxt is not None:
            st.start_s = st.end_s = nxt.arrival_s
            if nxt.arrival_s > 0:
                yield env.timeout(nxt.arrival_s)
        bar = self._bar()
        timeline, hook, on_step = self.timeline, self.step_hook, self._on_step
        on_plan = self._on_plan
        calls_per_op = self.map_calls_per_op
        map_s_per_call, unmap_s_per_call = cost.map_s_per_call, cost.unmap_s_per_call
        counters = getattr(self.manager, "counters", dict)
        c0 = counters() if calls_per_op else {}
        prev = {"bg": c0.get("background_map_groups", 0), "unmap": c0.get("unmap_calls", 0),
                "bg_unmap": c0.get("background_unmap_calls", 0)}
        busy_since_sample = 0.0
        backlog = 0.0
        width = sc.width
        cfg_m = getattr(self.manager, "config", None)
        bg_slack_steps = max(1, getattr(cfg_m, "lookahead_tokens", 1)) \
            if getattr(cfg_m, "overlap", False) else 1
        empty = 0
        try:
            while True:
                now = env.now
                if inbox is None:
                    while nxt is not None and nxt.arrival_s <= now:
                        sc.add(nxt)
                        nxt = next(it, None)
                else:
                    while inbox:
                        if not st.requests_arrived:
                            st.start_s = st.end_s = now
                        sc.add(inbox.popleft())
                if sc.idle:
                    if inbox is not None:
                        if self.routing_done:
                            break
                        self.wake = env.event()
                        yield self.wake
                        continue
                    if nxt is None:
                        break
                    yield env.timeout(nxt.arrival_s - now)
                    continue
                dropped = st.requests_rejected + st.requests_aborted
                sc.schedule(now)
                prefills, decodes = sc.prefills, sc.decodes
                if not prefills and not decodes:
                    # every running sequence was preempted, or requests that can never fit
                    # were rejected (progress: they left the queue); the next plan admits. A
                    # run of empty plans that drop nothing would be a bug
                    if st.requests_rejected + st.requests_aborted != dropped:
                        empty = 0
                        continue
                    empty += 1
                    if empty > 3:
                        raise RuntimeError(f"serving engine: no progress at t={now} (waiting "
                                           f"{len(sc.waiting)}, running {len(sc.running)}, "
                                           f"swapped {len(sc.swapped)})")
                    continue
                empty = 0
                tokens = len(decodes)
                ctx = sc.decode_ctx
                seqs = len(prefills) + len(decodes)
                if width > 1:                   # sequence groups: every member decodes
                    tokens *= width
                    ctx *= width
                    seqs += (width - 1) * len(decodes)
                pairs = 0
                for s, n in prefills:
                    tokens += n
                    pairs += prefill_pairs(s.computed, n)
                dt = cost.iteration_s(tokens, seqs, pairs, ctx, sc.swap_bytes)
                ops = sc.map_ops
                if calls_per_op:
                    c = counters()
                    bg = (c.get("background_map_groups", 0) - prev["bg"]) * calls_per_op
                    unmaps = c.get("unmap_calls", 0) - prev["unmap"]
                    bg_unmaps = c.get("background_unmap_calls", 0) - prev["bg_unmap"]
                    prev["bg"], prev["unmap"], prev["bg_unmap"] = (
                        c.get("background_map_groups", 0), c.get("unmap_calls", 0),
                        c.get("background_unmap_calls", 0))
                    calls = ops * calls_per_op
                    sync_s = calls * map_s_per_call + (unmaps - bg_unmaps) * unmap_s_per_call
                    bg_s = bg * map_s_per_call + bg_unmaps * unmap_s_per_call
                    # the background thread works through its backlog during this iteration;
                    # what it cannot finish within the lookahead's slack stalls the step
                    work = backlog + bg_s
                    exposed_bg = max(0.0, work - dt * bg_slack_steps)
                    backlog = max(0.0, work - dt) - exposed_bg
                    exposed = sync_s + exposed_bg
                    st.map_calls += calls + bg
                    st.unmap_calls += unmaps
                    st.map_s += sync_s + bg_s
                    st.map_exposed_s += exposed
                    dt += exposed
                st.map_ops += ops
                st.iterations += 1
                st.batch_seqs_sum += seqs
                if seqs > st.batch_seqs_max:
                    st.batch_seqs_max = seqs
                st.batch_tokens_sum += tokens
                busy_since_sample += dt
                if timeline.due(self.iteration):
                    self._sample(busy_since_sample)
                    busy_since_sample = 0.0
                if hook is not None or on_plan or on_step:
                    sc.settle()             # they see every sequence's state (no decode ride)
                if hook is not None:
                    hook(self)
                for f in on_plan:
                    f(self)
                self.last_iteration_s = dt
                yield env.timeout(dt)
                t1 = env.now
                st.busy_s += dt
                sc.complete(now, t1)
                st.end_s = t1
                for f in on_step:
                    f(self, now, t1)
                self.iteration += 1
                if bar is not None and self.iteration % PROGRESS_EVERY == 0:
                    bar.n = st.requests_finished + st.requests_rejected + st.requests_aborted
                    bar.refresh()
        finally:
            sc.settle()                     # a run that stops early leaves exact state
            if bar is not None:
                bar.close()
        if busy_since_sample and st.busy_s:
            self._sample(busy_since_sample)

    def _bar(self):
        total = getattr(self.requests, "count", None)
        progress = self.progress
        if progress is None:
            progress = (total or 0) >= 5000 and sys.stderr.isatty()
        if not progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit="req", desc=f"serve {self.manager_spec}", leave=False)


__all__ = ["ServingSimulator", "kernel_of"]
