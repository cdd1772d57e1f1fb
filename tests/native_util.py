"""Shared by the native-kernel tests: skip only where no C++ compiler exists; a compiler that is
present but yields no loadable library is a failure, never a skip."""
import pytest

from qssm import native


def require_native() -> None:
    if native.load() is None:
        if native.compiler() is None:
            pytest.skip(f"native kernels unavailable: {native.status()}")
        pytest.fail(f"a compiler is present but the native kernels did not load: {native.status()}")
