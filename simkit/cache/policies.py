"""Replacement policies and inclusion modes, named and numbered.

Kernels dispatch on the integer id (a small int keeps numba's on-disk cache valid; passing
policy functions would recompile in every process). Each policy's verbs (on_hit, on_fill,
victim) live in ``_kernels.py`` beside the id they serve.

=========  ==  =====================================================================  ======
name       id  behaviour                                                              state
=========  ==  =====================================================================  ======
lru         0  least recently used; ways kept in recency order (MRU first), a hit      order
               moves its line to the front, a fill evicts the last valid way
fifo        1  first in, first out; ways kept in fill order, hits change nothing      order
random      2  random valid way (xorshift64*, seeded per level); invalid ways first   none
plru        3  tree pseudo-LRU: ways-1 bits per set point away from the last touch;   bits
               ways must be a power of two (<= 64)
srrip       4  static RRIP, hit-priority (Jaleel et al., ISCA 2010): M-bit RRPV,      RRPV
               insert at 2^M-2, hit -> 0, victim = first way at 2^M-1 (age all else)
brrip       5  bimodal RRIP (same paper): insert at 2^M-1, except 1 in ``throttle``   RRPV
               fills at 2^M-2
drrip       6  set dueling between SRRIP and BRRIP (same paper): leader sets for      RRPV
               each, a saturating PSEL counter steers the follower sets               +PSEL
srrip-fp    7  SRRIP with frequency priority (same paper): as srrip, but a hit        RRPV
               lowers the RRPV by one (as Sniper's ``cache_set_srrip.cc``, the L2
               policy of the Victima artifact)
srrip-      8  Victima's TLB-aware SRRIP (MICRO 2023, REFERENCE.md 1.3, paper):       RRPV
victima        srrip-fp, and while the level's translation-pressure switch is on     +flag
               (the MMU sets it when the L2 TLB MPKI of the last epoch exceeds its
               threshold; on when no MMU drives it): TLB blocks insert at 0, a
               TLB-block hit lowers the RRPV by 3 (data: 1), and a TLB block picked
               as victim is spared once (moved to 2^M-2)
srrip-      9  the Victima artifact's ``srrip/tlb_enabled`` (REFERENCE.md 1.3):       RRPV
victima-       srrip-fp with a TLB-block hit -> 0; no switch; its rescue loop never
artifact       fires (``num_attempts`` 1), so none here. Not modelled: its fill of
               an invalid way at 0 when the stale occupant was a TLB block (simkit
               keeps no stale tags; invalid ways occur only at cold start or after
               back-invalidation)
=========  ==  =====================================================================  ======

TLB blocks are the lines whose line number has bit 56 set (``_kernels.TLB_LINE``), the
namespace ``simkit.tlb`` gives them; data line numbers (physical address >> 6) never reach it.

Inclusion (``HierarchyConfig.inclusion``):

* ``non-inclusive`` (default): a miss fills every level it passed; evictions are independent;
  dirty victims are written into the next level (allocated there without a fetch).
* ``inclusive``: as above, and a line evicted from level k is invalidated in levels above k
  (back-invalidation); a dirty upper copy makes the write-back dirty.
* ``exclusive``: a line lives in one level at a time. Fills go to the first level only; a hit
  in a lower level moves the line up; every victim (clean or dirty) moves one level down,
  and dirty victims of the last level go to memory.
"""
from __future__ import annotations

LRU, FIFO, RANDOM, PLRU, SRRIP, BRRIP, DRRIP, SRRIP_FP, VICTIMA_RRIP, VICTIMA_RRIP_ART = range(10)
POLICY_IDS = {"lru": LRU, "fifo": FIFO, "random": RANDOM, "plru": PLRU,
              "srrip": SRRIP, "brrip": BRRIP, "drrip": DRRIP, "srrip-fp": SRRIP_FP,
              "srrip-victima": VICTIMA_RRIP, "srrip-victima-artifact": VICTIMA_RRIP_ART}
ORDERED_POLICIES = (LRU, FIFO)          # state kept in the order of the ways
RRIP_POLICIES = (SRRIP, BRRIP, DRRIP, SRRIP_FP, VICTIMA_RRIP, VICTIMA_RRIP_ART)

NON_INCLUSIVE, INCLUSIVE, EXCLUSIVE = range(3)
INCLUSION_IDS = {"non-inclusive": NON_INCLUSIVE, "inclusive": INCLUSIVE, "exclusive": EXCLUSIVE}


def policy_id(name: str) -> int:
    try:
        return POLICY_IDS[name]
    except KeyError:
        raise ValueError(f"policy: unknown {name!r}; choose from {', '.join(POLICY_IDS)}") from None


def inclusion_id(name: str) -> int:
    try:
        return INCLUSION_IDS[name]
    except KeyError:
        raise ValueError(f"inclusion: unknown {name!r}; choose from "
                         f"{', '.join(INCLUSION_IDS)}") from None
