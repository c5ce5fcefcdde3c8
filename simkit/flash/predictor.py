"""A low-rank sparsity predictor (Deja Vu style, "LLM in a flash" 3.3), trained on real
activations with numpy.

Per layer, from the FFN input ``h`` (after the attention block and the FFN norm) it scores
every neuron with a rank-``r`` linear map and marks as active the neurons whose score is at
least a per-layer threshold::

    score = ([h, 1] @ A) @ B          A: (d+1, r), B: (r, neurons)

Training (``fit``): ridge least squares of the 0/1 active masks on ``[h, 1]``, then the
reduced-rank regression solution (the fitted values projected on their top ``r`` right singular
vectors), then the threshold that leaves ``fn_target`` of the training activations out
(the paper: 5% false negatives). Rates are measured on other tokens than the training ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LowRankPredictor:
    A: list            # per layer (d+1, r) float32
    B: list            # per layer (r, neurons) float32
    threshold: np.ndarray
    rank: int

    @classmethod
    def fit(cls, H: np.ndarray, Y: np.ndarray, rank: int, fn_target: float = 0.05,
            ridge: float = 1.0) -> "LowRankPredictor":
        """H: (tokens, layers, d) inputs; Y: (tokens, layers, neurons) bool masks."""
        T, L, d = H.shape
        As, Bs, th = [], [], np.zeros(L, np.float32)
        for l in range(L):
            X = np.concatenate([H[:, l], np.ones((T, 1), H.dtype)], axis=1).astype(np.float64)
            y = Y[:, l].astype(np.float64)
            G = X.T @ X
            G[np.diag_indices_from(G)] += ridge * np.trace(G) / len(G) * 1e-3
            W = np.linalg.solve(G, X.T @ y)                        # (d+1, neurons)
            _, _, Vt = np.linalg.svd(X @ W, full_matrices=False)
            V = Vt[:rank].T                                        # (neurons, r)
            A, B = (W @ V).astype(np.float32), V.T.astype(np.float32)
            s = (X.astype(np.float32) @ A) @ B
            pos = s[Y[:, l]]
            th[l] = np.quantile(pos, fn_target) if len(pos) else np.inf
            As.append(A)
            Bs.append(B)
        return cls(As, Bs, th, rank)

    def scores(self, h: np.ndarray, layer: int) -> np.ndarray:
        X = np.concatenate([h, np.ones((len(h), 1), h.dtype)], axis=1).astype(np.float32)
        return (X @ self.A[layer]) @ self.B[layer]

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
