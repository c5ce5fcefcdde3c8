"""A low-rank sparsity predictor trained on real activations, with numpy ("LLM in a flash"
3.3 uses a Deja Vu-style low-rank predictor on the attention output).

For a gated (SwiGLU) FFN a neuron's activation is ``a = SiLU(g) * u`` with ``g = W_gate h`` and
``u = W_up h``. The predictor approximates both maps at rank ``r`` and scores

    score = | SiLU(h A_g B_g) * (h A_u B_u) |        A: (d, r), B: (r, neurons), per layer

Training (``fit``) on real FFN inputs ``h``: the rank-``r`` maps are the reduced-rank
regressions of ``g`` and ``u`` on ``h`` (``B`` = the top ``r`` right singular vectors of the
training pre-activations, ``A = W^T B^T``), so the approximation is best where real inputs
lie; then per layer the score threshold that leaves ``fn_target`` of the training activations
out (the paper: 5% false negatives). Rates are reported on other tokens than the training ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _silu(x):
    return x / (1.0 + np.exp(-x))


@dataclass
class LowRankPredictor:
    A: list            # per layer (2, d, r) float32: gate, up
    B: list            # per layer (2, r, neurons) float32
    threshold: np.ndarray
    rank: int

    @classmethod
    def fit(cls, H: np.ndarray, Y: np.ndarray, gate_w, up_w, rank: int,
            fn_target: float = 0.05) -> "LowRankPredictor":
        """H: (tokens, layers, d) inputs; Y: (tokens, layers, neurons) bool active masks;
        gate_w/up_w: per layer (neurons, d) weights."""
        T, L, d = H.shape
        As, Bs, th = [], [], np.zeros(L, np.float32)
        for l in range(L):
            X = H[:, l].astype(np.float32)
            A2, B2 = [], []
            for k, W in enumerate((gate_w[l], up_w[l])):
                V = _top_right_singular(X @ W.T, rank, seed=2 * l + k)   # (neurons, r)
                A2.append((W.T @ V).astype(np.float32))
                B2.append(V.T.astype(np.float32))
            p = cls([np.stack(A2)], [np.stack(B2)], np.zeros(1), rank)
            s = p.scores(X, 0)
            pos = s[Y[:, l]]
            th[l] = np.quantile(pos, fn_target) if len(pos) else np.inf
            As.append(np.stack(A2))
            Bs.append(np.stack(B2))
        return cls(As, Bs, th, rank)

    def scores(self, h: np.ndarray, layer: int) -> np.ndarray:
        A, B = self.A[layer], self.B[layer]
        g = (h @ A[0]) @ B[0]
        u = (h @ A[1]) @ B[1]
        return np.abs(_silu(g) * u)

    def predict(self, H: np.ndarray) -> np.ndarray:
        """(tokens, layers, d) -> (tokens, layers, neurons) bool."""
        return np.stack([self.scores(H[:, l], l) >= self.threshold[l]
                         for l in range(H.shape[1])], axis=1)

    @property
    def params(self) -> int:
        return int(sum(a.size + b.size for a, b in zip(self.A, self.B)))


def rates(Y: np.ndarray, P: np.ndarray) -> dict:
    """False-negative rate (of active), false-positive rate (of inactive), over-prediction."""
    act = int(Y.sum())
    fn = int((Y & ~P).sum())
    fp = int((~Y & P).sum())
    return {"fn_rate": fn / act if act else float("nan"),
            "fp_rate": fp / (Y.size - act) if Y.size > act else float("nan"),
            "over_prediction": int(P.sum()) / act if act else float("nan")}


def _top_right_singular(F: np.ndarray, rank: int, seed: int = 0, power: int = 3) -> np.ndarray:
    """Top ``rank`` right singular vectors of F (randomized range finder with power
    iterations; Halko, Martinsson and Tropp 2011)."""
    n = F.shape[1]
    k = min(rank + 16, n)
    Q = np.random.default_rng(seed).standard_normal((n, k)).astype(F.dtype)
    for _ in range(power):
        Q, _ = np.linalg.qr(F.T @ (F @ Q))
    _, _, Vt = np.linalg.svd(F @ Q, full_matrices=False)
    return (Q @ Vt.T)[:, :rank]
