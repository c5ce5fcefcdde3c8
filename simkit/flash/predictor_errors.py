"""A predictor error model measured on a real predictor ("LLM in a flash" 3.3: 5% false
negatives, 7% false positives).

A real predictor's mistakes are not spread evenly over the neurons: some neurons sit near the
threshold and are marked wrongly again and again, so their rows are reused from the window
cache. ``ErrorProfile.measure(trace)`` reads, off a trace with true and predicted sets (the
shipped SmolLM2 trace and its low-rank predictor), per layer and neuron

    fp[l, i] = P(predicted | inactive)     false-positive propensity
    fn[l, i] = P(not predicted | active)   false-negative propensity

and, pooled over layers, the persistence of each kind of error, P(error at t+1 | error at t).
``apply_errors(trace, profile)`` gives a trace of the same shape predicted sets: per neuron an
FP chain and an FN chain (the two-state Markov chains of ``_kernels.markov_sets``) with those
stationary rates, whose common per-chain persistence is the one at which the pooled persistence
equals the measured one (hot neurons alone already persist: a chain of rate q has
P(on at t+1 | on at t) >= q)::

    predicted = (active - FN) | (FP - active)

``profile.transfer(rates, fp_rate, fn_rate)`` carries the profile to another model's shape
(OPT-6.7B's 32 x 16384): target layer l takes the source layer at the same relative depth; its
neurons, ranked by their activation rate, take the propensities of the source neurons of the
same rank (the measured joint of activation rate and error propensity is kept, noise
included), scaled to the target mean rates (the paper's 7% / 5%). ``even_profile`` is the
evenly spread model (every neuron the same rate) kept for comparison.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simkit.flash import _kernels as K

CLIP = 0.95


@dataclass(frozen=True)
class ErrorProfile:
    fp: np.ndarray               # (layers, neurons) P(predicted | inactive)
    fn: np.ndarray               # (layers, neurons) P(not predicted | active)
    fp_stay: float               # pooled P(FP at t+1 | FP at t)
    fn_stay: float
    active_rate: np.ndarray      # (layers, neurons) share of tokens the neuron is active
    source: str = ""

    @property
    def shape(self) -> tuple:
        return self.fp.shape

    @classmethod
    def measure(cls, trace) -> "ErrorProfile":
        """Propensities and error persistence of ``trace``'s predicted sets against its active
        sets."""
        from simkit.flash.activations import csr_to_masks
        T, L, N = trace.tokens, trace.layers, trace.neurons
        a = csr_to_masks(trace.sets("active"), N).reshape(T, L, N)
        p = csr_to_masks(trace.sets("predicted"), N).reshape(T, L, N)
        fp_m, fn_m = p & ~a, a & ~p
        act = a.sum(0)
        fp = fp_m.sum(0) / np.maximum(T - act, 1)
        fn = fn_m.sum(0) / np.maximum(act, 1)

        def stay(e):
            prev = e[:-1].sum()
            return float((e[1:] & e[:-1]).sum() / prev) if prev else 0.0
        return cls(fp, fn, stay(fp_m), stay(fn_m), act / T,
                   f"measured on {trace.name} ({trace.meta.get('predictor', 'predicted')})")

    def rates(self) -> dict:
        return {"fp_rate": float(self.fp.mean()), "fn_rate": float(self.fn.mean()),
                "fp_stay": self.fp_stay, "fn_stay": self.fn_stay}

    def transfer(self, active_rate: np.ndarray, fp_rate: float | None = None,
                 fn_rate: float | None = None, seed: int = 0) -> "ErrorProfile":
        """The profile on another shape whose neurons have ``active_rate`` (layers, neurons):
        rank-matched by activation rate within the layer at the same relative depth, scaled
        to mean rates ``fp_rate`` / ``fn_rate`` (default: keep the measured means)."""
        rng = np.random.default_rng(seed)
        L2, N2 = active_rate.shape
        L, N = self.shape
        fp2 = np.empty((L2, N2))
        fn2 = np.empty((L2, N2))
        for l2 in range(L2):
            l = int(round(l2 * (L - 1) / max(L2 - 1, 1)))
            src = np.lexsort((rng.random(N), self.active_rate[l]))       # ties at random
            dst = np.lexsort((rng.random(N2), active_rate[l2]))
            pick = src[(np.arange(N2) * N) // N2]
            for out, m in ((fp2, self.fp), (fn2, self.fn)):
                v = m[l, pick]
                mu = m[l].mean()
                out[l2, dst] = v / mu if mu > 0 else 1.0
        a = np.asarray(active_rate, float)
        fp2 = _scale(fp2, self.fp.mean() if fp_rate is None else fp_rate, 1.0 - a)
        fn2 = _scale(fn2, self.fn.mean() if fn_rate is None else fn_rate, a)
        return ErrorProfile(fp2, fn2, self.fp_stay, self.fn_stay, np.asarray(active_rate, float),
                            f"{self.source}, transferred by activation-rate rank")

    def with_stay(self, fp_stay: float | None = None, fn_stay: float | None = None):
        return replace(self, fp_stay=self.fp_stay if fp_stay is None else fp_stay,
                       fn_stay=self.fn_stay if fn_stay is None else fn_stay)


def even_profile(layers: int, neurons: int, fp_rate: float, fn_rate: float,
                 error_stay: float) -> ErrorProfile:
    """Every neuron the same error rates (the evenly spread model)."""
    return ErrorProfile(np.full((layers, neurons), fp_rate), np.full((layers, neurons), fn_rate),
                        error_stay, error_stay, np.zeros((layers, neurons)), "even")


def _scale(m: np.ndarray, mean: float, weight=None) -> np.ndarray:
    """``m`` scaled so that its mean weighted by ``weight`` is ``mean`` (a false-positive
    rate is of inactive neurons: weight 1 - active rate), every entry at most CLIP (the mass
    clipping takes is put back on the others)."""
    if not 0.0 <= mean < CLIP:
        raise ValueError(f"rate: must be in [0, {CLIP}), got {mean!r}")
    w = np.ones_like(m) if weight is None else np.asarray(weight, float)

    def wmean(q):
        return float((q * w).sum() / w.sum()) if w.sum() > 0 else float(q.mean())
    q = m * (mean / wmean(m)) if wmean(m) > 0 else np.full_like(m, mean)
    for _ in range(30):
        q = np.minimum(q, CLIP)
        if wmean(q) >= mean * (1 - 1e-9) or wmean(q) == 0:
            break
        q = q * (mean / wmean(q))
    return q


def chain_stay(p: np.ndarray, target: float) -> float:
    """The per-chain persistence s at which chains of stationary rates ``p`` (their persistence
    max(s, p)) have pooled persistence sum(p max(s, p)) / sum(p) = ``target``; 0 when the rates'
    spread alone exceeds it."""
    p = np.asarray(p, float).ravel()
    tot = p.sum()
    if tot <= 0:
        return 0.0

    def pooled(s):
        return float((p * np.maximum(s, p)).sum() / tot)
    if pooled(0.0) >= target:
        return 0.0
    lo, hi = 0.0, 0.999
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pooled(mid) < target else (lo, mid)
    return (lo + hi) / 2


def apply_errors(trace, profile: ErrorProfile, seed: int = 1):
    """``trace`` with predicted sets drawn from ``profile`` (same layers x neurons)."""
    L, N, T = trace.layers, trace.neurons, trace.tokens
    if profile.shape != (L, N):
        raise ValueError(f"profile: shape {profile.shape} is not the trace's ({L}, {N}); "
                         "use profile.transfer")

    def chains(q, target, s):
        q = np.minimum(np.asarray(q, float), CLIP)
        if q.max() <= 0:
            return np.zeros(T * L + 1, np.int64), np.zeros(0, np.int32)
        st = chain_stay(q, target)
        return K.markov_sets(q, np.maximum(np.full_like(q, st), q), T, int(s))
    fn = chains(profile.fn, profile.fn_stay, seed)
    fp = chains(profile.fp, profile.fp_stay, seed + 7919)
    pred = K.combine_predicted(trace.active[0], trace.active[1], fn[0], fn[1], fp[0], fp[1], N)
    meta = dict(trace.meta, predictor="error-model", error_profile=profile.source,
                fn_rate=float(profile.fn.mean()), fp_rate=float(profile.fp.mean()),
                fp_stay=profile.fp_stay, fn_stay=profile.fn_stay)
    return replace(trace, predicted=pred, meta=meta)
