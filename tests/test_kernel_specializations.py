"""Cold start (issue 18, item 5): no jitted helper is called with a Python literal argument.

numba types a Python int or bool constant passed to another jitted function as a literal
(``Literal[int](2)``) and compiles the callee once per literal value: run_mmu compiled fill,
lookup, touch and their callees five times each, a third of its cold compile. The kernels pass
numpy scalars instead (``np.int64(0)``, module constants such as ``T_L2 = np.int64(2)``,
``YES``/``NO``). This reads the kernel sources (no compiling) and fails on any call of a jitted
function of these modules with a Python int/bool literal or a module-level Python int/bool.
"""
import ast
import importlib
import inspect

import pytest
from numba.core.registry import CPUDispatcher

MODULES = ("simkit.cache._kernels", "simkit.tlb._kernels", "simkit.core._kernels",
           "simkit.allocators._kernels")


def literal_args(modname):
    """(line, call, argument) of each helper call with a Python literal argument."""
    mod = importlib.import_module(modname)
    jitted = {name for name, v in vars(mod).items() if isinstance(v, CPUDispatcher)}
    aliases = {}                  # e.g. CK -> simkit.cache._kernels
    for name, v in vars(mod).items():
        if inspect.ismodule(v) and v.__name__ in MODULES:
            aliases[name] = v
    tree = ast.parse(inspect.getsource(mod))
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in jitted:
            fname = f.id
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                and f.value.id in aliases \
                and isinstance(getattr(aliases[f.value.id], f.attr, None), CPUDispatcher):
            fname = f.attr
        else:
            continue
        for a in node.args:
            if isinstance(a, ast.Constant) and isinstance(a.value, (bool, int)):
                bad.append((node.lineno, fname, ast.unparse(a)))
            elif isinstance(a, ast.Name):
                v = getattr(mod, a.id, None)
                if a.id in vars(mod) and type(v) in (bool, int):
                    bad.append((node.lineno, fname, a.id))
            elif isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name) \
                    and a.value.id in aliases:
                v = getattr(aliases[a.value.id], a.attr, None)
                if type(v) in (bool, int):
                    bad.append((node.lineno, fname, ast.unparse(a)))
    return bad


@pytest.mark.parametrize("modname", MODULES)
def test_no_literal_arguments(modname):
    assert literal_args(modname) == []


def test_the_check_finds_a_literal():
    """The check can fail: a module with literal calls is reported."""
    import sys
    import textwrap
    import types

    src = textwrap.dedent('''
        import numpy as np
        from numba import njit
        K = 3
        Z = np.int64(0)
        @njit
        def h(a, b):
            return a + b
        @njit
        def f(x):
            return h(x, 1) + h(x, K) + h(x, Z) + h(x, True)
    ''')
    name = "simkit_literal_probe_mod"
    mod = types.ModuleType(name)
    exec(compile(src, name, "exec"), mod.__dict__)
    sys.modules[name] = mod
    orig = inspect.getsource
    try:
        inspect.getsource = lambda m: src if m is mod else orig(m)
        found = literal_args(name)
    finally:
        inspect.getsource = orig
        del sys.modules[name]
    assert sorted((c, a) for _, c, a in found) == [("h", "1"), ("h", "K"), ("h", "True")]
