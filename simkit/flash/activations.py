"""Activation traces: which FFN neurons are active (and which a predictor marks) per token and
layer, as CSR sets; the shipped real SmolLM2-135M trace; a synthetic generator; an error model.

``ActivationTrace`` holds ``active`` (the true sets) and optionally ``predicted`` (a
predictor's sets), each a CSR pair ``(indptr, indices)`` over rows ``token * layers + layer``.

**Shipped real trace** (``traces/activations/``, see its README): SmolLM2-135M greedy decoding on
real text, per token and layer the FFN neurons whose |SiLU(gate) * up| exceeds a per-layer
magnitude threshold set for each target sparsity, bit-packed; plus the sets of a low-rank
predictor trained on other tokens of real text. ``load_activations("smollm2-135m",
sparsity=0.9)``.

**Synthetic generator** (``synthetic_trace``): every neuron is a two-state Markov chain with a
stationary active probability ``p[l, i] = frac[l] * w_i`` (``w`` log-normal with spread
``skew_sigma``, mean 1: some neurons are hot) and persistence ``stay_on`` = P(active at t+1 |
active at t), the temporal-correlation parameter (measured on the real trace by
``persistence``).

**Error model** (``with_error_model``): predicted = (active minus FN) union (FP minus active),
where FN and FP are independent chains of their own with rates ``fn_rate`` (of active neurons)
and ``fp_rate`` (of inactive ones) and persistence ``error_stay``: predictor errors made on
the last token tend to be made again (its input, the hidden state, changes slowly).
"""
from __future__ import annotations

import io
import json
import lzma
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from simkit.errors import InputError
from simkit.flash import _kernels as K

ACTIVATIONS_SUBDIR = "activations"
CATALOG = "catalog.toml"

# "LLM in a flash" Table 6: active OPT-6.7B neurons, layers 1, 16, 32 and the mean [P]
OPT_TABLE6 = {1: 0.0156, 16: 0.0266, 32: 0.0536}
OPT_TABLE6_MEAN = 0.0330


@dataclass(frozen=True)
class ActivationTrace:
    name: str
    layers: int
    neurons: int
    tokens: int
    active: tuple                  # (indptr int64, indices int32)
    predicted: tuple | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what in ("active", "predicted"):
            s = getattr(self, what)
            if s is None:
                continue
            ptr, idx = s
            if len(ptr) != self.tokens * self.layers + 1:
                raise ValueError(f"{what}: indptr has {len(ptr)} entries, expected "
                                 f"tokens*layers+1 = {self.tokens * self.layers + 1}")
            if len(idx) and (idx.min() < 0 or idx.max() >= self.neurons):
                raise ValueError(f"{what}: neuron ids outside 0..{self.neurons - 1}")
            if len(ptr) and (ptr[0] != 0 or ptr[-1] != len(idx) or (np.diff(ptr) < 0).any()):
                raise ValueError(f"{what}: indptr must rise from 0 to the {len(idx)} indices")

    def sets(self, which: str = "active") -> tuple:
        if which == "active":
            return self.active
        if which == "predicted":
            if self.predicted is None:
                raise InputError(f"activations {self.name!r}: has no predicted sets (use an "
                                 "oracle or an error-model predictor)")
            return self.predicted
        raise ValueError(f"which: must be 'active' or 'predicted', got {which!r}")

    def head(self, tokens: int) -> "ActivationTrace":
        """The first ``tokens`` tokens."""
        tokens = min(tokens, self.tokens)
        cut = tokens * self.layers

        def sl(s):
            if s is None:
                return None
            ptr, idx = s
            return ptr[:cut + 1].copy(), idx[:ptr[cut]].copy()
        return replace(self, tokens=tokens, active=sl(self.active), predicted=sl(self.predicted))

    def hot_first(self, on: "ActivationTrace | None" = None,
                  which: str = "predicted") -> "ActivationTrace":
        """The same sets with each layer's neurons renumbered hottest first (PowerInfer's
        hot/cold split): id 0 is the neuron most often in ``which`` sets of ``on`` (default
        this trace; pass another, e.g. a calibration prefix, to keep the choice out of
        sample). With ``FlashConfig(static_ffn_fraction=f)`` the ``f`` hottest stay resident.
        Ties keep the original order."""
        ref = self if on is None else on
        if (ref.layers, ref.neurons) != (self.layers, self.neurons):
            raise ValueError(f"on: trace {ref.name!r} has {ref.layers} x {ref.neurons}; this "
                             f"one {self.layers} x {self.neurons}")
        rates = ref.rates(which if which != "predicted" or ref.predicted is not None
                          else "active")
        order = np.argsort(-rates, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(self.neurons)[None, :], axis=1)
        rank32 = rank.astype(np.int32)

        def relabel(s):
            if s is None:
                return None
            ptr, idx = s
            layer = np.repeat(np.tile(np.arange(self.layers), self.tokens), np.diff(ptr))
            new = rank32[layer, idx]
            row = np.repeat(np.arange(len(ptr) - 1, dtype=np.int64), np.diff(ptr))
            key = np.sort(row * self.neurons + new)             # each row kept sorted
            return ptr.copy(), (key - row * self.neurons).astype(np.int32)
        return replace(self, name=f"{self.name}:hot-first", active=relabel(self.active),
                       predicted=relabel(self.predicted))

    # ---- statistics --------------------------------------------------------------------
    def active_fraction_per_layer(self, which: str = "active") -> np.ndarray:
        ptr, _ = self.sets(which)
        counts = np.diff(ptr).reshape(self.tokens, self.layers)
        return counts.mean(axis=0) / self.neurons

    def active_fraction(self, which: str = "active") -> float:
        ptr, _ = self.sets(which)
        return float(ptr[-1]) / (self.tokens * self.layers * self.neurons)

    def persistence(self, which: str = "active") -> float:
        """P(active at t+1 | active at t), pooled over layers and tokens."""
        ptr, idx = self.sets(which)
        L = self.layers
        cut = (self.tokens - 1) * L
        now = (ptr[:cut + 1], idx[:ptr[cut]])
        nxt = (ptr[L:] - ptr[L], idx[ptr[L]:])
        tp, fp, fn = K.confusion(now[0], now[1], nxt[0], nxt[1])
        return tp / (tp + fn) if tp + fn else float("nan")

    def confusion(self) -> dict:
        """Predicted vs active: false-negative rate (of active), false-positive rate (of
        inactive), over-prediction (predicted / active)."""
        a = self.sets("active")
        p = self.sets("predicted")
        tp, fp, fn = K.confusion(a[0], a[1], p[0], p[1])
        total = self.tokens * self.layers * self.neurons
        act = tp + fn
        return {"fn_rate": fn / act if act else float("nan"),
                "fp_rate": fp / (total - act) if total > act else float("nan"),
                "over_prediction": (tp + fp) / act if act else float("nan"),
                "active_fraction": act / total, "predicted_fraction": (tp + fp) / total}

    def persistence_per_layer(self, which: str = "active") -> np.ndarray:
        """P(active at t+1 | active at t) per layer, pooled over tokens and neurons."""
        ptr, idx = self.sets(which)
        L, T = self.layers, self.tokens
        both = np.zeros(L)
        prev = np.zeros(L)
        for l in range(L):
            rows = np.arange(T) * L + l
            s = [idx[ptr[r]:ptr[r + 1]] for r in rows]
            for t in range(T - 1):
                prev[l] += len(s[t])
                both[l] += len(np.intersect1d(s[t], s[t + 1], assume_unique=True))
        return np.where(prev > 0, both / np.maximum(prev, 1), np.nan)

    def rates(self, which: str = "active") -> np.ndarray:
        """Per (layer, neuron) share of tokens in which the neuron is in the set."""
        ptr, idx = self.sets(which)
        layer = np.repeat(np.tile(np.arange(self.layers), self.tokens), np.diff(ptr))
        flat = np.bincount(layer * self.neurons + idx, minlength=self.layers * self.neurons)
        return flat.reshape(self.layers, self.neurons) / self.tokens


def hot_share(rates: np.ndarray, mass: float = 0.8) -> float:
    """Smallest share of neurons (per layer, averaged) carrying ``mass`` of the activations
    (PowerInfer's "26% of neurons carry 80% of activations")."""
    shares = []
    for r in np.atleast_2d(rates):
        s = np.sort(r)[::-1]
        tot = s.sum()
        if tot <= 0:
            continue
        k = int(np.searchsorted(np.cumsum(s), mass * tot) + 1)
        shares.append(k / len(s))
    return float(np.mean(shares)) if shares else float("nan")


# ---- CSR helpers ---------------------------------------------------------------------------
def masks_to_csr(masks: np.ndarray) -> tuple:
    """(rows, neurons) bool -> CSR (indptr int64, indices int32)."""
    rows, cols = np.nonzero(masks)
    ptr = np.zeros(masks.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=masks.shape[0]), out=ptr[1:])
    return ptr, cols.astype(np.int32)


def csr_to_masks(s: tuple, neurons: int) -> np.ndarray:
    ptr, idx = s
    m = np.zeros((len(ptr) - 1, neurons), bool)
    m[np.repeat(np.arange(len(ptr) - 1), np.diff(ptr)), idx] = True
    return m


# ---- synthetic generator -----------------------------------------------------------------
def opt_layer_fractions(layers: int = 32) -> np.ndarray:
    """Active fraction per layer for OPT-6.7B: piecewise linear through Table 6's layers 1, 16
    and 32 (1.56%, 2.66%, 5.36%) and one knot at layer 24 whose value makes the mean over the
    32 layers Table 6's 3.30% (about 4.8%: the rise is steeper late than early). Other layer
    counts sample the same curve at proportional depths."""
    x = 1.0 + np.arange(layers) * 31.0 / max(layers - 1, 1)
    xs = [1.0, 16.0, 24.0, 32.0]

    def curve(v):
        return np.interp(x, xs, [OPT_TABLE6[1], OPT_TABLE6[16], v, OPT_TABLE6[32]])
    lo, hi = curve(0.0).mean(), curve(1.0).mean()          # the mean is linear in v
    v = (OPT_TABLE6_MEAN - lo) / (hi - lo)
    return curve(v)


def neuron_weights(neurons: int, skew_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Per-neuron rate multipliers: log-normal with spread ``skew_sigma``, mean 1."""
    if skew_sigma <= 0:
        return np.ones(neurons)
    w = rng.lognormal(0.0, skew_sigma, neurons)
    return w / w.mean()


def _rates(fractions: np.ndarray, neurons: int, skew_sigma: float,
           rng: np.random.Generator) -> np.ndarray:
    p = np.empty((len(fractions), neurons))
    for l, f in enumerate(fractions):
        w = neuron_weights(neurons, skew_sigma, rng)
        q = np.minimum(f * w, 0.95)
        for _ in range(20):                      # restore the mean the clipping took away
            q = np.minimum(q * f / q.mean(), 0.95)
        p[l] = q
    return p


def synthetic_rates(layers: int, neurons: int, fractions, skew_sigma: float = 0.0,
                    seed: int = 0) -> np.ndarray:
    """The (layers, neurons) stationary active probabilities ``synthetic_trace`` draws with
    the same arguments."""
    fr = np.broadcast_to(np.asarray(fractions, float), (layers,)).copy()
    if not ((fr > 0) & (fr < 1)).all():
        raise ValueError(f"fractions: must be in (0, 1), got {fr.min()!r}..{fr.max()!r}")
    return _rates(fr, neurons, skew_sigma, np.random.default_rng(seed))


def synthetic_trace(layers: int, neurons: int, tokens: int, fractions, stay_on,
                    skew_sigma: float = 0.0, seed: int = 0,
                    name: str = "synthetic") -> ActivationTrace:
    """Markov-chain activations: ``fractions`` (one per layer, or one for all) active on
    average, persistence ``stay_on`` (one for all layers, or one per layer), neuron spread
    ``skew_sigma``."""
    p = synthetic_rates(layers, neurons, fractions, skew_sigma, seed)
    so = np.broadcast_to(np.asarray(stay_on, float), (layers,)).copy()
    if not ((so >= 0.0) & (so < 1.0)).all():
        raise ValueError(f"stay_on: must be in [0, 1), got {stay_on!r}")
    stay = np.maximum(so[:, None], p)                   # never below independence
    ptr, idx = K.markov_sets(p, stay, int(tokens), int(seed))
    fr_mean = float(np.broadcast_to(np.asarray(fractions, float), (layers,)).mean())
    meta = {"generator": "markov", "fractions_mean": fr_mean,
            "stay_on": float(so.mean()) if np.ptp(so) == 0 else so.tolist(),
            "skew_sigma": skew_sigma, "seed": seed}
    return ActivationTrace(name, layers, neurons, int(tokens), (ptr, idx), None, meta)


def with_error_model(trace: ActivationTrace, fn_rate: float, fp_rate: float,
                     error_stay: float = 0.0, seed: int = 1) -> ActivationTrace:
    """The trace with ``predicted`` sets from the configurable error model (module docstring)."""
    for nm, v in (("fn_rate", fn_rate), ("fp_rate", fp_rate)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{nm}: must be in [0, 1), got {v!r}")
    if not 0.0 <= error_stay < 1.0:
        raise ValueError(f"error_stay: must be in [0, 1), got {error_stay!r}")
    L, N, T = trace.layers, trace.neurons, trace.tokens

    def chains(rate, s):
        if rate <= 0:
            return np.zeros(T * L + 1, np.int64), np.zeros(0, np.int32)
        p = np.full((L, N), rate)
        return K.markov_sets(p, np.maximum(np.full((L, N), error_stay), p), T, int(s))
    fn = chains(fn_rate, seed)
    fp = chains(fp_rate, seed + 7919)
    pred = K.combine_predicted(trace.active[0], trace.active[1], fn[0], fn[1], fp[0], fp[1], N)
    meta = dict(trace.meta, predictor="error-model", fn_rate=fn_rate, fp_rate=fp_rate,
                error_stay=error_stay)
    return replace(trace, predicted=pred, meta=meta)


# ---- the shipped real trace ------------------------------------------------------------------
def activations_dir() -> Path:
    from simkit.trace.catalog import traces_dir
    return traces_dir() / ACTIVATIONS_SUBDIR


def list_activations() -> dict:
    import tomllib
    path = activations_dir() / CATALOG
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f)


_DECODED: dict = {}      # (path, size, mtime) -> the decompressed .npz bytes of the last file


def _file_bytes(path: Path) -> bytes:
    """The file's bytes, xz-decompressed; the last file's are kept (a run loads the shipped
    trace many times, at ~0.35 s of CPU per decompression), keyed by path, size and mtime."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DECODED:
        raw = path.read_bytes()
        if path.name.endswith(".xz"):
            raw = lzma.decompress(raw)
        _DECODED.clear()
        _DECODED[key] = raw
    return _DECODED[key]


def read_trace_file(path: str | Path) -> dict:
    """The arrays and metadata of a ``.npz.xz`` activation trace file (fresh arrays and
    metadata every call)."""
    path = Path(path)
    try:
        raw = _file_bytes(path)
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(f"{path}: not a readable activation trace ({exc})") from None
    except (ValueError, KeyError, TypeError):   # numpy's own text would suggest allow_pickle
        raise InputError(f"{path}: not an activation trace (an .npz[.xz] of plain arrays "
                         f"is expected)") from None
    if "meta" not in data:
        raise InputError(f"{path}: not an activation trace (no 'meta')")
    try:
        meta = json.loads(str(data["meta"]))
    except ValueError:
        raise InputError(f"{path}: field 'meta' is not JSON") from None
    for key in ("tokens", "layers", "neurons", "sparsities"):
        if not isinstance(meta, dict) or key not in meta:
            raise InputError(f"{path}: field 'meta.{key}' is missing")
    data["meta"] = meta
    return data


def trace_meta(name_or_path: str | Path = "smollm2-135m") -> dict:
    """The metadata of a shipped trace or file (how it was made, predictor statistics for
    every evaluated sparsity)."""
    cat = list_activations()
    key = str(name_or_path)
    path = activations_dir() / cat[key]["file"] if key in cat else Path(name_or_path)
    return read_trace_file(path)["meta"]


SELECTIONS = ("magnitude", "gate")


def load_activations(name_or_path: str | Path = "smollm2-135m", sparsity: float = 0.9,
                     predictor: str = "lowrank", selection: str = "magnitude") -> ActivationTrace:
    """A shipped activation trace (by catalog name) or a file, at one of its sparsities.
    ``predictor='lowrank'`` also loads the low-rank predictor's sets when the file has them.
    ``selection``: which neurons count as active, ``magnitude`` (|SiLU(gate) * up| above a
    per-layer threshold) or ``gate`` (|SiLU(gate)| above a per-layer threshold, at the same
    per-layer density; the file has no predictor sets for it)."""
    if selection not in SELECTIONS:
        raise InputError(f"selection: must be one of {', '.join(SELECTIONS)}, got "
                         f"{selection!r}")
    cat = list_activations()
    key = str(name_or_path)
    if key in cat:
        path = activations_dir() / cat[key]["file"]
    else:
        path = Path(name_or_path)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"activations {key!r}: neither a shipped name "
                             f"({', '.join(cat) or 'none'}) nor a file")
        from simkit.atomic import check_input_kind
        check_input_kind(path)
    data = read_trace_file(path)
    meta = data["meta"]
    have = [float(s) for s in meta["sparsities"]]
    match = [i for i, s in enumerate(have) if abs(s - sparsity) < 1e-9]
    if not match:
        raise InputError(f"{path.name}: no sparsity {sparsity}; it has "
                         f"{', '.join(str(s) for s in have)}")
    tag = f"s{round(100 * have[match[0]])}"
    T, L, N = int(meta["tokens"]), int(meta["layers"]), int(meta["neurons"])

    def unpack(arr):
        bits = np.unpackbits(arr, axis=-1, count=N).astype(bool)
        return masks_to_csr(bits.reshape(T * L, N))
    key_a = f"active_{tag}" if selection == "magnitude" else f"active_gate_{tag}"
    if key_a not in data:
        raise InputError(f"{path.name}: no {selection}-selected sets at sparsity {sparsity}")
    active = unpack(data[key_a])
    pred = unpack(data[f"predicted_{tag}"]) if predictor == "lowrank" and \
        selection == "magnitude" and f"predicted_{tag}" in data else None
    m = {k: v for k, v in meta.items() if k not in ("predictor_stats", "gate_thresholds")}
    m["sparsity"] = have[match[0]]
    m["selection"] = selection
    m["predictor"] = "lowrank" if pred is not None else None
    if "predictor_stats" in meta:
        m["predictor_stats"] = meta["predictor_stats"].get(tag)
    name = key if selection == "magnitude" else f"{key}[gate]"
    return ActivationTrace(name, L, N, T, active, pred, m)
