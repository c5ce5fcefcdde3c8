"""N model replicas behind a request router: ``ServingCluster``.

    cl = ServingCluster(model, gpu, "paged-16", requests, replicas=4, router="least-loaded",
                        tensor_parallel=2)             # 4 replicas of 2 GPUs each
    total = cl.run()                                  # ServingStats of the whole cluster
    cl.replica_stats                                  # one ServingStats per replica

Every replica is a ``ServingSimulator`` (its own KV manager, scheduler and cost model) on one
shared simpy clock. A router process walks the trace in arrival order and, at each request's
arrival time, hands it to a replica:

    round-robin     request i goes to replica i mod N (vLLM's / Vidur's simplest global
                    scheduler; blind to load)
    least-loaded    the replica with the fewest requests in flight (waiting + running +
                    swapped + handed over but not yet seen), the lowest index on ties
                    (Vidur's ``lor`` global scheduler: least outstanding requests)

A replica sees a request at its next iteration boundary (or at once when idle), as a single
engine sees its own arrivals. The cluster's stats add the replicas' counters, time integrals
and latency histograms; its duration runs from the first arrival to the last iteration end of
any replica; its memory figures (capacity, time integrals) add one GPU of each replica (with
tensor parallelism every GPU of a replica holds the same share). ``tensor_parallel`` and every
other keyword go to each replica's engine.
"""
from __future__ import annotations

import simpy

from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.metrics import ServingStats

ROUTERS = ("round-robin", "least-loaded")
_MAX_FIELDS = {"batch_seqs_max", "mem_used_max_bytes"}


class ServingCluster:
    """Replicas behind a router (module docstring)."""

    def __init__(self, model, gpu, manager, requests, *, replicas: int = 2,
                 router: str = "round-robin", **engine_kw):
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas: must be an integer >= 1, got {replicas!r}")
        if router not in ROUTERS:
            raise ValueError(f"router: must be one of {', '.join(ROUTERS)}, got {router!r}")
        engine_kw.setdefault("progress", False)
        self.env = simpy.Environment()
        self.requests, self.router = requests, router
        self.sims = [ServingSimulator(model, gpu, manager, requests, env=self.env, inbox=True,
                                      **engine_kw) for _ in range(replicas)]
        self.routed = [0] * replicas
        self.stats: ServingStats | None = None

    @property
    def replica_stats(self) -> list[ServingStats]:
        return [s.stats for s in self.sims]

    def _load(self, i: int) -> int:
        sim = self.sims[i]
        sc = sim.sched
        return len(sc.waiting) + len(sc.running) + len(sc.swapped) + len(sim.inbox)

    def _route(self):
        env, sims = self.env, self.sims
        n = len(sims)
        for k, req in enumerate(self.requests):
            if req.arrival_s > env.now:
                yield env.timeout(req.arrival_s - env.now)
            if self.router == "round-robin":
                i = k % n
            else:
                i = min(range(n), key=self._load)
            sim = sims[i]
            sim.inbox.append(req)
            self.routed[i] += 1
            if sim.wake is not None and not sim.wake.triggered:
                sim.wake.succeed()
        for sim in sims:
            sim.routing_done = True
            if sim.wake is not None and not sim.wake.triggered:
                sim.wake.succeed()

    def run(self) -> ServingStats:
        """Serve the trace; returns the cluster's stats (also ``self.stats``)."""
        for sim in self.sims:
            self.env.process(sim._loop())
        self.env.process(self._route())
        self.env.run()
        self.stats = merge_stats([s.stats for s in self.sims], params={
            **self.sims[0].stats.params, "replicas": len(self.sims), "router": self.router})
        return self.stats


def merge_stats(parts: list[ServingStats], params: dict | None = None) -> ServingStats:
    """The stats of several engines serving side by side: counters, time integrals and
    histograms added, maxima kept, the span from the first start to the last end (replicas
    that saw no request are left out of the span)."""
    from dataclasses import fields

    out = ServingStats(params=dict(params or {}), slo=parts[0].slo if parts else None)
    seen = [p for p in parts if p.requests_arrived]
    for f in fields(ServingStats):
        name = f.name
        if name in ("params", "slo", "start_s", "end_s"):
            continue
        vals = [getattr(p, name) for p in parts]
        if name in _MAX_FIELDS:
            setattr(out, name, max(vals, default=0))
        elif name in ("ttft", "tbt", "e2e", "norm_latency"):
            h = getattr(out, name)
            for v in vals:
                _add_hist(h, v)
        else:
            setattr(out, name, sum(vals))
    if seen:
        out.start_s = min(p.start_s for p in seen)
        out.end_s = max(p.end_s for p in seen)
    return out


def _add_hist(h, other) -> None:
    h.counts = h.counts + other.counts
    h.n += other.n
    h.total += other.total
    h.maximum = max(h.maximum, other.maximum)
    h.exact = h.exact and other.exact
    if h.exact:
        h._vals = h._vals + other._vals
        h._cnts = h._cnts + other._cnts
        if len(h._vals) > (1 << 16):
            h.exact, h._vals, h._cnts = False, [], []


__all__ = ["ROUTERS", "ServingCluster", "merge_stats"]
