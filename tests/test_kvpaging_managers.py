"""KV-cache managers (simkit.kvpaging.managers): hand-computed cases, a conformance suite over
every registered manager, and numbers reproduced from the papers (REFERENCE.md section 2)."""
from __future__ import annotations

import pytest

from simkit.kvpaging.managers import make_manager, parse_spec
from simkit.kvpaging.managers.config import PagedConfig, StaticConfig, VAttentionConfig
from simkit.kvpaging.models import ModelShape, get_model

# A tiny model: 1 layer, 1 KV head of dim 4, 2 bytes -> 8-byte rows, 16 bytes per token.
TINY = ModelShape("tiny", layers=1, hidden=4, heads=1, kv_heads=1, head_dim=4, ffn=4, vocab=8,
                  max_context=64)


# ---- registry and configs ------------------------------------------------------------------
def test_specs_parse():
    assert parse_spec("static") == StaticConfig()
    assert parse_spec("paged-16") == PagedConfig(block_tokens=16)
    assert parse_spec("paged-7") == PagedConfig(block_tokens=7)
    assert parse_spec("vattention-64KiB") == VAttentionConfig(page_bytes=64 << 10)
    assert parse_spec("vattention-2MiB").page_bytes == 2 << 20
    assert parse_spec("static-max-context", get_model("yi-6b")).reserve_tokens == 4096


@pytest.mark.parametrize("spec", ["paged", "paged-0", "vattention-4KiB", "lru", 3])
def test_bad_spec_lists_accepted(spec):
    with pytest.raises(ValueError, match="accepted: static, static-max-context, paged-16"):
        parse_spec(spec)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="block_tokens"):
        PagedConfig(block_tokens=0)
    with pytest.raises(ValueError, match="hash_block_tokens"):
        PagedConfig(block_tokens=16, hash_block_tokens=500)
    with pytest.raises(ValueError, match="page_bytes"):
        VAttentionConfig(page_bytes=3000)
    with pytest.raises(ValueError, match="fit"):
        StaticConfig(fit="worst-fit")
    with pytest.raises(ValueError, match="nonsense"):
        make_manager("static", TINY, 1024, nonsense=1)


# ---- static reservation ----------------------------------------------------------------------
def test_static_hand_computed():
    # 10 slots of 16 bytes (+ 8 bytes left over below one slot)
    m = make_manager("static", TINY, 10 * 16 + 8)
    assert m.admit(1, 3, 5) is not None          # slots 0-4: 3 tokens, 2 reserved
    u = m.usage()
    assert (u.used_bytes, u.reserved_bytes, u.internal_frag_bytes, u.free_bytes) == \
        (48, 32, 0, 5 * 16 + 8)
    assert m.grow(1, 2) == 0 and m.grow(1) is None   # full at max_tokens
    assert m.admit(2, 2, 3) is not None          # slots 5-7
    assert m.admit(3, 1, 3) is None              # only slots 8-9 left
    m.free(1)                                    # frees 0-4: free 5 + 2 slots, largest 5
    assert m.usage().free_bytes == 7 * 16 + 8
    assert m.largest_free_extent_bytes == 5 * 16
    assert m.admit(4, 6, 6) is None              # 7 slots free but not contiguous
    assert m.admit(4, 4, 4) is not None          # first fit: slots 0-3
    m.check()
    m.free(2)                                    # 4..9 coalesce into one extent
    assert m.largest_free_extent_bytes == 6 * 16
    m.check()


def test_static_fixed_reservation_and_swap():
    m = make_manager("static", TINY, 100 * 16, reserve_tokens=20, round_pow2=True)
    m.admit(1, 5, 10)
    u = m.usage()                                # 32 slots: 5 used, 5 reserved, 22 beyond max
    assert (u.used_bytes, u.reserved_bytes, u.internal_frag_bytes) == (80, 80, 22 * 16)
    assert m.preempt(1, "swap") == 80 and m.usage().swapped_bytes == 80
    assert m.usage().free_bytes == 100 * 16
    assert m.swap_in(1) == 80 and m.tokens(1) == 5
    assert m.fork(1, 2) and m.tokens(2) == 5
    m.free(1), m.free(2)
    assert m.usage().free_bytes == 100 * 16
