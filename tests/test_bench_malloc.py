"""simkit.bench.malloc.build: the compiled helpers live where only this user can write.

A program run from a predictable path in a world-writable directory can be planted there by
another user first; the cache must refuse such a directory and such a file."""
from __future__ import annotations

import os
import shutil
import stat

import pytest

from simkit.bench.malloc import build as B


def test_private_cache_dir_is_0700_and_ours(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    d = B.cache_dir()
    assert d == tmp_path / "cache" / "simkit"
    st = os.lstat(d)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()


@pytest.mark.parametrize("how", ["world-writable", "symlink"])
def test_an_unsafe_cache_dir_is_not_used(tmp_path, monkeypatch, how):
    cache = tmp_path / "cache"
    cache.mkdir()
    if how == "world-writable":
        (cache / "simkit").mkdir()
        os.chmod(cache / "simkit", 0o777)
    else:
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        (cache / "simkit").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    d = B.cache_dir()
    assert d != cache / "simkit" and not str(d).startswith(str(tmp_path))
    st = os.lstat(d)                                   # the mkdtemp fallback
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.getuid()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not on PATH")
def test_a_planted_executable_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    exe = B.build("malloc_probe")
    assert stat.S_IMODE(os.lstat(exe).st_mode) == 0o700
    exe.unlink()
    exe.write_text("#!/bin/sh\necho planted\n")      # what another user could have left
    os.chmod(exe, 0o777)
    again = B.build("malloc_probe")
    assert again == exe and b"planted" not in exe.read_bytes()
    assert stat.S_IMODE(os.lstat(exe).st_mode) == 0o700
