"""Jitted helpers that are compiled to LLVM IR for linking only, never to machine code.

numba compiles every ``@njit`` function, helpers included, to machine code as soon as it is
typed, although a helper built without its CPython and C wrappers (``no_cpython_wrapper``,
``no_cfunc_wrapper``) can only ever run linked into the entry kernel that calls it, whose own
module is emitted with the helper's code inside. For the cache kernels that machine code was
a sixth of a cold start's CPU time (issue 18, item 5: 0.8 of 5.8 s measured with the emission
timed per library). ``link_only(njit(...))`` registers a helper so that its library skips that
emission (and the write of its environment pointer, which only the emitted code would read);
its optimized IR, which every caller links, is unchanged, and so is every entry kernel's
machine code.

The hook wraps two methods of numba's CPU code library and JIT codegen; it is installed only
when they exist with the expected names (numba 0.60 to at least 0.68), and touches no library
but those of registered helpers (matched by name and by the mangled name of their module), so
with another numba it falls back to numba's own behaviour.
"""
import numba.core.codegen as _cg

_HELPERS = set()     # (qualified name, mangled module prefix) of each registered helper


def _mangled(module: str) -> str:
    return "".join(f"{len(p)}{p}" for p in module.split("."))


def _is_link_only(lib) -> bool:
    for qualname, prefix in _HELPERS:
        if lib.name != qualname:
            continue
        defined = [f.name for f in lib._final_module.functions if not f.is_declaration]
        if any(n.startswith(("cpython.", "cfunc.")) for n in defined):
            return False
        return any(prefix in n for n in defined)
    return False


def _install() -> bool:
    lib_cls = getattr(_cg, "CPUCodeLibrary", None)
    gen_cls = getattr(_cg, "JITCPUCodegen", None)
    needed = ("_finalize_final_module", "_finalize_dynamic_globals",
              "_verify_declare_only_symbols")
    if lib_cls is None or gen_cls is None or not all(hasattr(lib_cls, m) for m in needed) \
            or not hasattr(gen_cls, "set_env") or getattr(lib_cls, "_simkit_link_only", False):
        return False
    finalize = lib_cls._finalize_final_module
    set_env = gen_cls.set_env

    def _finalize_final_module(self):
        if not _is_link_only(self):
            return finalize(self)
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._finalized = True          # linkable (its IR); never added to the JIT engine

    def _set_env(self, env_name, env):
        if self._engine.is_symbol_defined(env_name):
            return set_env(self, env_name, env)

    lib_cls._finalize_final_module = _finalize_final_module
    gen_cls.set_env = _set_env
    lib_cls._simkit_link_only = True
    return True


INSTALLED = _install()


def link_only(dispatcher):
    """Register a jitted helper (built with ``no_cpython_wrapper`` and ``no_cfunc_wrapper``)
    as link-only; returns it."""
    f = dispatcher.py_func
    _HELPERS.add((f.__qualname__, _mangled(f.__module__) + str(len(f.__name__)) + f.__name__))
    return dispatcher
