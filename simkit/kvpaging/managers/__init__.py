"""KV-cache managers and their registry.

    make_manager("paged-16", model, capacity_bytes)                 -> PagedManager
    make_manager("vattention-64KiB", model, capacity_bytes, overlap=False)
    make_manager("static", model, capacity_bytes, fit="best-fit")

Specs (``SPECS`` lists examples; ``paged-B`` takes any block size B):

    static                 Orca/FasterTransformer: reserve max_tokens contiguous slots per request
    static-max-context     reserve the model's max context for every request
    orca-oracle            PagedAttention's Orca baselines (REFERENCE 2.1): reserve exactly
    orca-pow2              prompt + output (= static), that rounded up to a power of two, or
    orca-max               the model's max context (= static-max-context)
    paged-B                PagedAttention, blocks of B tokens (vLLM default 16)
    vattention-64KiB       vAttention with 64KiB / 128KiB / 256KiB / 2MiB physical pages
    ...-128KiB, -256KiB, -2MiB

Keyword overrides replace fields of the spec's frozen config (``StaticConfig``,
``PagedConfig``, ``VAttentionConfig``); an unknown field raises ``ValueError`` naming it.
The interface every manager implements is ``base.KVManager`` (see ``base.py``).
"""
from __future__ import annotations

import dataclasses
import re

from simkit.kvpaging.managers.base import Admission, KVManager, MemoryUsage
from simkit.kvpaging.managers.config import PagedConfig, StaticConfig, VAttentionConfig
from simkit.kvpaging.models import ModelShape
from simkit.units import parse_size

VATTENTION_PAGES = ("64KiB", "128KiB", "256KiB", "2MiB")

#: Spec strings the registry accepts (``paged-B`` for any positive B).
SPECS = (("static", "static-max-context", "paged-16", "paged-32", "paged-B", "orca-oracle",
          "orca-pow2", "orca-max")
         + tuple(f"vattention-{p}" for p in VATTENTION_PAGES))

#: Specs the conformance tests run over.
CONFORMANCE_SPECS = ("static", "paged-16", "paged-32", "vattention-64KiB", "vattention-2MiB")


def _bad_spec(spec) -> ValueError:
    return ValueError(f"manager: unknown manager spec {spec!r}; accepted: {', '.join(SPECS)} "
                      f"(paged-B for any block size B)")


def parse_spec(spec: str, model: ModelShape | None = None):
    """The config a spec names (``"paged-32"`` -> ``PagedConfig(block_tokens=32)``)."""
    if not isinstance(spec, str):
        raise _bad_spec(spec)
    s = spec.strip().lower()
    if s == "static":
        return StaticConfig()
    if s == "orca-oracle":
        return StaticConfig()
    if s == "orca-pow2":
        return StaticConfig(round_pow2=True)
    if s in ("static-max-context", "orca-max"):
        if model is None:
            raise ValueError(f"manager: {s} needs a model (its max_context)")
        return StaticConfig(reserve_tokens=model.max_context)
    m = re.fullmatch(r"paged-(\d+)", s)
    if m and int(m.group(1)) > 0:
        return PagedConfig(block_tokens=int(m.group(1)))
    m = re.fullmatch(r"vattention-(\w+)", s)
    if m:
        try:
            page = parse_size(m.group(1), "page_bytes")
        except ValueError:
            raise _bad_spec(spec) from None
        if page in {parse_size(p) for p in VATTENTION_PAGES}:
            return VAttentionConfig(page_bytes=page)
    raise _bad_spec(spec)


def manager_class(config):
    if isinstance(config, StaticConfig):
        from simkit.kvpaging.managers.static import StaticManager
        return StaticManager
    if isinstance(config, PagedConfig):
        from simkit.kvpaging.managers.paged import PagedManager
        return PagedManager
    if isinstance(config, VAttentionConfig):
        from simkit.kvpaging.managers.vattention import VAttentionManager
        return VAttentionManager
    raise TypeError(f"config: not a manager config: {config!r}")


def make_manager(spec: str, model: ModelShape, capacity_bytes: int, **overrides) -> KVManager:
    """A manager for ``spec`` owning ``capacity_bytes`` of KV memory for ``model``."""
    config = parse_spec(spec, model)
    if overrides:
        names = {f.name for f in dataclasses.fields(config)}
        for k in overrides:
            if k not in names:
                raise ValueError(f"{k}: not a field of {type(config).__name__} "
                                 f"(fields: {', '.join(sorted(names))})")
        config = dataclasses.replace(config, **overrides)
    return manager_class(config)(config, model, capacity_bytes, name=spec.strip())


__all__ = ["Admission", "CONFORMANCE_SPECS", "KVManager", "MemoryUsage", "PagedConfig", "SPECS",
           "StaticConfig", "VAttentionConfig", "make_manager", "manager_class", "parse_spec"]
