"""The circuits' share of a training step, measured in the cell's own process.

``free_circuits()`` swaps the circuits the quantum branches call (``qssm.quantum.branches``) for
zero-cost stand-ins of the same output shapes — gradients still reach every input — and puts the
real ones back on exit. A step run so is the floor any circuit simulator could reach (``qssm
micro`` uses the same stand-ins for its circuit-free step).

``circuit_share(pass_fn, pairs, sync)`` times ``pairs`` interleaved pairs of one forward+backward
with and without the circuits (order alternating, so drift hits both) and returns
``1 - median(free) / median(full)``, clipped to [0, 1].
"""
from __future__ import annotations

import contextlib
import time


def _free_ssm(embed, rotations, **_):
    return embed * 0 + rotations[..., :1] * 0                 # (B', q)


def _free_gated(angles, *, n_qubits, **_):
    return (angles[..., :1] * 0).expand(-1, 3 * n_qubits)   # (B', 3q)


@contextlib.contextmanager
def free_circuits():
    import qssm.quantum.branches as branches

    saved = branches.ssm_circuit, branches.gated_circuit
    branches.ssm_circuit, branches.gated_circuit = _free_ssm, _free_gated
    try:
        yield
    finally:
        branches.ssm_circuit, branches.gated_circuit = saved


def patch_free_circuits() -> None:
    """Install the stand-ins for good (a measurement's own fresh process: ``qssm micro``)."""
    import qssm.quantum.branches as branches

    branches.ssm_circuit, branches.gated_circuit = _free_ssm, _free_gated


def circuit_share(pass_fn, pairs: int, sync) -> tuple[float, float, float]:
    """(share, median full pass s, median circuit-free pass s) over ``pairs`` interleaved pairs."""
    full, free = [], []
    for k in range(pairs):
        for with_circuits in ((True, False) if k % 2 == 0 else (False, True)):
            ctx = contextlib.nullcontext() if with_circuits else free_circuits()
            with ctx:
                sync()
                t0 = time.perf_counter()
                pass_fn()
                sync()
                (full if with_circuits else free).append(time.perf_counter() - t0)
    mf, mz = sorted(full)[len(full) // 2], sorted(free)[len(free) // 2]
    share = 1.0 - mz / mf if mf > 0 else 0.0
    return min(1.0, max(0.0, share)), mf, mz
