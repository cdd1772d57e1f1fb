"""The Gated circuit (MODELS.md §1b) on the native CPU kernel (qssm/native/gated_kernel.cpp).

Same contract as `gated_circuit_torch`: angles (B', 4ql) -> (B', 3q). Each sample's statevector
is simulated on its own in L1; backward recomputes the forward and runs the adjoint method, so
only the angles are kept for backward. Used by `gated_circuit(..., backend="torch")` for CPU
float32/float64 inputs up to NATIVE_MAX_QUBITS when the kernels load; the batched torch
statevector (statevector.py) runs otherwise (CUDA, larger q, QSSM_NATIVE=0).
"""
from __future__ import annotations

import torch

from ..native import load, suffix, usable

__all__ = ["available", "gated_circuit_native", "NATIVE_MAX_QUBITS"]

# per-sample simulation wins while a sample's state is small; past this the batched tensor ops
# of statevector.py amortise their per-gate overhead over large contiguous states
NATIVE_MAX_QUBITS = 12


def available(angles: torch.Tensor, n_qubits: int) -> bool:
    return n_qubits <= NATIVE_MAX_QUBITS and usable(angles)


class _NativeGated(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles, n_qubits):
        angles = angles.contiguous()
        bsz = angles.shape[0]
        layers = angles.shape[1] // (4 * n_qubits)
        out = angles.new_empty(bsz, 3 * n_qubits)
        half = angles / 2
        c, s = torch.cos(half), torch.sin(half)
        getattr(load(), f"qssm_gated_fwd_{suffix(angles.dtype)}")(
            c.data_ptr(), s.data_ptr(), out.data_ptr(), bsz, n_qubits, layers, torch.get_num_threads())
        ctx.save_for_backward(angles)
        ctx.n_qubits, ctx.layers = n_qubits, layers
        return out

    @staticmethod
    def backward(ctx, g_out):
        (angles,) = ctx.saved_tensors
        g_out = g_out.contiguous()
        g_angles = torch.empty_like(angles)
        half = angles / 2
        c, s = torch.cos(half), torch.sin(half)
        getattr(load(), f"qssm_gated_bwd_{suffix(angles.dtype)}")(
            c.data_ptr(), s.data_ptr(), g_out.data_ptr(), g_angles.data_ptr(), angles.shape[0],
            ctx.n_qubits, ctx.layers, torch.get_num_threads())
        return g_angles, None


def gated_circuit_native(angles: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Gated circuit of MODELS.md §1b on the native kernel. angles (B', 4*q*l) -> (B', 3q)."""
    if not available(angles, n_qubits):
        raise RuntimeError(f"the native gated circuit cannot run this input "
                           f"(dtype {angles.dtype}, device {angles.device}, q={n_qubits})")
    return _NativeGated.apply(angles, n_qubits)  # under no_grad nothing is kept
