"""A tiny ChampSim trace writer for tests (no real ChampSim trace ships with simkit).

Packs ``input_instr`` (ChampSim ``inc/trace_instruction.h``) with ``struct``, independently of
the importer's numpy dtype: ip u64, is_branch u8, branch_taken u8, destination registers u8[2],
source registers u8[4], destination memory u64[2], source memory u64[4] -- 64 bytes.
"""
import struct

INSTR = struct.Struct("<QBB2B4B2Q4Q")
assert INSTR.size == 64


def pack(ip, src_mem=(), dst_mem=(), is_branch=0, taken=0, src_regs=(), dst_regs=()):
    src = list(src_mem) + [0] * (4 - len(src_mem))
    dst = list(dst_mem) + [0] * (2 - len(dst_mem))
    sr = list(src_regs) + [0] * (4 - len(src_regs))
    dr = list(dst_regs) + [0] * (2 - len(dst_regs))
    return INSTR.pack(ip, is_branch, taken, *dr, *sr, *dst, *src)


def champsim_bytes(instrs) -> bytes:
    """``instrs``: iterable of (ip, src_mem, dst_mem) tuples."""
    return b"".join(pack(ip, s, d) for ip, s, d in instrs)


def expected_records(instrs, include_ifetch=True):
    """(addr, op, size, icount) per record and trailing instructions, the obvious way."""
    out, pending = [], 0
    for ip, src, dst in instrs:
        pending += 1
        mine = ([(ip, 2, 4)] if include_ifetch else []) \
            + [(a, 0, 8) for a in src if a] + [(a, 1, 8) for a in dst if a]
        for addr, op, size in mine:
            out.append((addr, op, size, pending))
            pending = 0
    return out, pending
