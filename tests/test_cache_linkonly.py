"""Link-only helpers (issue 18, cold start): a registered helper is compiled to IR that its
callers link, with no machine code of its own, and kernels calling helpers still compute right."""
import numpy as np
from numba import njit, types

from simkit.cache import _kernels as K
from simkit.cache import _linkonly as L
from simkit.cache.cache import CacheState
from simkit.cache.config import CacheConfig, HierarchyConfig


def _twice_plus(x, y):
    return x * 2 + y


def _emitted(cres):
    return cres.library.codegen._engine.is_symbol_defined(cres.fndesc.mangled_name)


def test_a_helper_gets_no_machine_code_and_its_caller_runs():
    assert L.INSTALLED                      # numba has the methods the hook wraps
    helper = K.helper(_twice_plus)          # registered link-only, as the cache helpers
    sig = (types.int64, types.int64)
    helper.compile(sig)
    assert not _emitted(helper.overloads[sig])

    @njit
    def caller(x):
        return helper(x, np.int64(1)) + 3

    assert caller(np.int64(20)) == 44
    plain = njit(_twice_plus)               # not registered: numba's own behaviour
    plain.compile(sig)
    assert _emitted(plain.overloads[sig])


def test_kernels_calling_cache_helpers_compute_right():
    @njit
    def probe(c, line):                     # a fresh, uncached caller of two cache helpers
        v = K.fill(c, K.LV0, line, K.ZERO)
        return K.lookup(c, K.LV0, line), v

    s = CacheState(HierarchyConfig(levels=(CacheConfig("L1", 4 * 2 * 64, 2),)))
    slot, v = probe(s.as_tuple(), np.uint64(6))
    assert v == K.EMPTY and slot == 2 * (6 % 4)          # set 2 of 4, its MRU way
    assert s.resident_lines(0).tolist() == [6]
