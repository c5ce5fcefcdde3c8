"""Composable loading policies of "LLM in a flash" (REFERENCE.md 3.1, Table 2).

A policy is four switches, combined with ``+`` (``hybrid+predictor+windowing+bundling``):

- ``naive``      every weight is read from flash for every token, sequentially;
- ``hybrid``     attention, embeddings and norms stay in DRAM; without a predictor, FFN rows
                 fill DRAM up to ``dram_fraction`` of the model (the first neuron ids of every
                 layer) and the rest of the FFN is read sequentially per token;
- ``predictor``  only the FFN neurons the sparsity predictor marks as active are read, one
                 random read per neuron and matrix;
- ``windowing``  neurons used by the last ``window`` tokens stay in DRAM; only new ones are read;
- ``bundling``   row-column bundling: the up (and gate) column and the down row of a neuron are
                 stored together and read as one chunk of ``neuron_bytes``.

Named presets are the Table 2 ladder: ``naive``, ``hybrid``, ``predictor-only``
(= hybrid+predictor), ``windowing`` (= hybrid+predictor+windowing) and ``all``/``bundling``
(everything).
"""
from __future__ import annotations

from dataclasses import dataclass

COMPONENTS = ("hybrid", "predictor", "windowing", "bundling")


@dataclass(frozen=True)
class Policy:
    hybrid: bool = False
    predictor: bool = False
    windowing: bool = False
    bundling: bool = False

    def __post_init__(self) -> None:
        for c in COMPONENTS:
            if not isinstance(getattr(self, c), bool):
                raise ValueError(f"{c}: must be a bool, got {getattr(self, c)!r}")
        if self.windowing and not self.predictor:
            raise ValueError("windowing: needs predictor (without one every neuron is needed "
                             "every token and the window holds the whole FFN)")

    @property
    def name(self) -> str:
        on = [c for c in COMPONENTS if getattr(self, c)]
        return "+".join(on) if on else "naive"

    @property
    def sparse(self) -> bool:
        """Reads FFN neurons one by one (a predictor decides which)."""
        return self.predictor


PRESETS: dict[str, Policy] = {
    "naive": Policy(),
    "hybrid": Policy(hybrid=True),
    "predictor-only": Policy(hybrid=True, predictor=True),
    "windowing": Policy(hybrid=True, predictor=True, windowing=True),
    "bundling": Policy(hybrid=True, predictor=True, windowing=True, bundling=True),
    "all": Policy(hybrid=True, predictor=True, windowing=True, bundling=True),
}
# Table 2 of the paper, top to bottom
LADDER = ("naive", "hybrid", "predictor-only", "windowing", "all")


def parse_policy(text: str | Policy) -> Policy:
    """A preset name or components joined by ``+`` (``hybrid+predictor+bundling``)."""
    if isinstance(text, Policy):
        return text
    key = str(text).strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    parts = [p for p in key.split("+") if p]
    bad = [p for p in parts if p not in COMPONENTS]
    if not parts or bad:
        raise ValueError(f"policy: unknown {(bad[0] if bad else text)!r}; use a preset "
                         f"({', '.join(PRESETS)}) or components joined by '+' "
                         f"({', '.join(COMPONENTS)})")
    return Policy(**{p: True for p in parts})
