"""A Triton decode-attention kernel that reads the KV cache through a block table.

One program per (sequence, query head) walks the sequence's blocks in order, loading each block's
K and V rows of its KV head through the block table, with an online softmax (running max and
sum) in float32. The same kernel runs over an in-order block table (``triton-contiguous``:
sequence b's blocks are b*n .. b*n+n-1, so its KV is contiguous in memory) and a shuffled one
(``triton-paged``), so the ratio of their times is what the paged layout alone costs.

KV pool layout (one layer)::

    k_pool, v_pool: [num_blocks, BLOCK, kv_heads, head_dim]    block_table: [batch, blocks]
    q: [batch, heads, head_dim]  ->  out: [batch, heads, head_dim]   (GQA: head h reads kv head
                                                                      h // (heads // kv_heads))

Imported only where Triton is installed (``simkit.bench.gpu.measure``); checked on the CPU with
``TRITON_INTERPRET=1`` where Triton and torch are installed.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _paged_decode_kernel(q_ptr, k_ptr, v_ptr, bt_ptr, o_ptr, ctx_len, scale,
                         stride_qb, stride_qh, stride_kb, stride_kt, stride_kh,
                         stride_btb, stride_ob, stride_oh,
                         GROUP: tl.constexpr, BLOCK: tl.constexpr, D: tl.constexpr):
    b = tl.program_id(0)
    h = tl.program_id(1)
    kvh = h // GROUP
    d = tl.arange(0, D)
    t = tl.arange(0, BLOCK)
    q = tl.load(q_ptr + b * stride_qb + h * stride_qh + d).to(tl.float32)
    m_i = tl.max(tl.full([BLOCK], float("-inf"), tl.float32), 0)
    l_i = tl.sum(tl.zeros([BLOCK], tl.float32), 0)
    acc = tl.zeros([D], tl.float32)
    n_blocks = tl.cdiv(ctx_len, BLOCK)
    for i in range(0, n_blocks):
        blk = tl.load(bt_ptr + b * stride_btb + i).to(tl.int64)
        pos = i * BLOCK + t
        mask = pos < ctx_len
        off = blk * stride_kb + t[:, None] * stride_kt + kvh * stride_kh + d[None, :]
        k = tl.load(k_ptr + off, mask=mask[:, None], other=0.0).to(tl.float32)
        s = tl.sum(k * q[None, :], 1) * scale
        s = tl.where(mask, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 0))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new)
        v = tl.load(v_ptr + off, mask=mask[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, 0)
        l_i = l_i * alpha + tl.sum(p, 0)
        m_i = m_new
    out = acc / l_i
    tl.store(o_ptr + b * stride_ob + h * stride_oh + d, out.to(o_ptr.dtype.element_ty))


def paged_decode(q, k_pool, v_pool, block_table, ctx_len: int, out=None):
    """Decode attention of ``q`` [batch, heads, D] over ``ctx_len`` tokens of KV per sequence
    held in ``k_pool``/``v_pool`` [blocks, BLOCK, kv_heads, D] through ``block_table``."""
    import torch

    batch, heads, dim = q.shape
    _, block, kv_heads, _ = k_pool.shape
    if out is None:
        out = torch.empty_like(q)
    grid = (batch, heads)
    _paged_decode_kernel[grid](
        q, k_pool, v_pool, block_table, out, ctx_len, dim ** -0.5,
        q.stride(0), q.stride(1), k_pool.stride(0), k_pool.stride(1), k_pool.stride(2),
        block_table.stride(0), out.stride(0), out.stride(1),
        GROUP=heads // kv_heads, BLOCK=block, D=dim)
    return out
