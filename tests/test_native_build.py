"""The native kernels' build cache: private fallback folder, atomic builds, error reporting."""
from __future__ import annotations

import os
import tempfile

import pytest

from qssm.native import build


def test_temp_fallback_refuses_a_folder_others_can_write(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = build._private_tmp_root()
    assert root.parent == tmp_path and (root.stat().st_mode & 0o777) == 0o700
    os.chmod(root, 0o777)  # as if planted by someone else, world-writable
    with pytest.raises(OSError, match="refusing the kernel cache"):
        build._private_tmp_root()


def test_a_failing_compiler_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    fake = tmp_path / "fake-c++"
    fake.write_text("#!/bin/sh\necho 'x.cpp:1:1: error: nope' >&2\nexit 1\n")
    fake.chmod(0o755)
    target = tmp_path / "cache" / "lib.so"
    with pytest.raises(OSError, match="error: nope"):
        build._build(str(fake), target)
    assert not target.exists() and list(target.parent.iterdir()) == []  # no half-written library


def test_cache_key_follows_the_sources(tmp_path, monkeypatch):
    cxx = build.compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("QSSM_NATIVE_CACHE", str(tmp_path))
    first = build.library_path(cxx)
    monkeypatch.setattr(build, "HEADERS", build.HEADERS[:-1])  # different inputs, different build
    assert build.library_path(cxx) != first and first.parent.parent == tmp_path
