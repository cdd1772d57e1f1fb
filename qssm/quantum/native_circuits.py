"""The two circuits of docs/models.md on the native CPU kernels (qssm/native/gated_kernel.cpp,
ssm_circuit_kernel.cpp).

Same contracts as `ssm_circuit_torch` / `gated_circuit_torch`. A block of samples is simulated
at once, one per vector lane, its statevectors in L1; backward recomputes the forward and runs
the adjoint method, so only the inputs are kept for backward. `ssm_circuit` / `gated_circuit`
with backend="torch" use these for CPU float32/float64 inputs up to MAX_QUBITS[circuit] when the
kernels load; the batched torch statevector (statevector.py) runs otherwise (CUDA, larger q,
QSSM_NATIVE=0).
"""
from __future__ import annotations

import torch

from torch.autograd.function import once_differentiable

from ..native import call, usable
from .statevector import _rot_matrices

__all__ = ["available", "gated_circuit_native", "ssm_circuit_native", "MAX_QUBITS"]

# Where the kernels beat statevector.py (fwd+bwd, one thread, measured): the Gated circuit's
# CRX gates cost the batched simulator several strided in-place ops each, so the kernel wins
# through q = 14 (q=4: 14x, q=12: 7x, q=14: 2.7x); the SSM circuit's fused single-qubit groups
# are large batched matmuls there, and the kernel (one pass per wire) wins only while a block
# of states stays in cache (q=4: 2x, q=8: 1.6x; q=12: 0.7x).
MAX_QUBITS = {"gated": 14, "ssm": 8}


def available(circuit: str, n_qubits: int, *tensors: torch.Tensor) -> bool:
    """Whether `circuit` ("ssm" or "gated") takes the native kernel for these inputs."""
    return n_qubits <= MAX_QUBITS[circuit] and usable(*tensors)


def _half_cos_sin(angles: torch.Tensor):
    """cos(θ/2), sin(θ/2): the kernels take them precomputed (vectorised here, once per call)."""
    half = angles / 2
    return torch.cos(half), torch.sin(half)


class _NativeSSM(torch.autograd.Function):
    """(embed (B', q) RY angles, mats (B', l, q, 2, 2) complex per-wire unitaries) -> (B', q)."""

    @staticmethod
    def forward(ctx, embed, mats):
        embed, mats = embed.contiguous(), mats.contiguous()
        bsz, n = embed.shape
        out = embed.new_empty(bsz, n)
        c, s = _half_cos_sin(embed)
        call("qssm_ssm_fwd", embed.dtype, c.data_ptr(), s.data_ptr(), torch.view_as_real(mats).data_ptr(),
             out.data_ptr(), bsz, n, mats.shape[1], torch.get_num_threads())
        ctx.save_for_backward(embed, mats)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):
        embed, mats = ctx.saved_tensors
        bsz, n = embed.shape
        g_out = g_out.contiguous()
        c, s = _half_cos_sin(embed)
        g_embed = torch.empty_like(embed)
        g_mats = torch.empty_like(mats)  # PyTorch's convention: dL/dRe + i dL/dIm
        call("qssm_ssm_bwd", embed.dtype, c.data_ptr(), s.data_ptr(), torch.view_as_real(mats).data_ptr(),
             g_out.data_ptr(), g_embed.data_ptr(), torch.view_as_real(g_mats).data_ptr(), bsz, n,
             mats.shape[1], torch.get_num_threads())
        return g_embed, g_mats


def ssm_circuit_native(embed: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """SSM circuit of docs/models.md on the native kernel: embed (B', q), rotations (B', 3ql) -> (B', q)."""
    bsz, n = embed.shape
    if rotations.dim() != 2 or rotations.shape[0] != bsz or rotations.shape[1] == 0 or rotations.shape[1] % (3 * n):
        raise ValueError(f"rotations must have shape (B', 3*q*l) with B'={bsz}, q={n}; got {tuple(rotations.shape)}")
    if not available("ssm", n, embed, rotations):
        raise RuntimeError(f"the native SSM circuit cannot run this input "
                           f"(dtype {embed.dtype}/{rotations.dtype}, device {embed.device}, q={n})")
    rot = rotations.reshape(bsz, rotations.shape[1] // (3 * n), n, 3)
    mats = _rot_matrices(rot[..., 0], rot[..., 1], rot[..., 2])  # (B', l, q, 2, 2): RZ RY RX
    return _NativeSSM.apply(embed, mats)


class _NativeGated(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles, n_qubits):
        angles = angles.contiguous()
        bsz = angles.shape[0]
        layers = angles.shape[1] // (4 * n_qubits)
        out = angles.new_empty(bsz, 3 * n_qubits)
        c, s = _half_cos_sin(angles)
        call("qssm_gated_fwd", angles.dtype, c.data_ptr(), s.data_ptr(), out.data_ptr(), bsz, n_qubits, layers,
             torch.get_num_threads())
        ctx.save_for_backward(angles)
        ctx.n_qubits, ctx.layers = n_qubits, layers
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):
        (angles,) = ctx.saved_tensors
        g_out = g_out.contiguous()
        g_angles = torch.empty_like(angles)
        c, s = _half_cos_sin(angles)
        call("qssm_gated_bwd", angles.dtype, c.data_ptr(), s.data_ptr(), g_out.data_ptr(), g_angles.data_ptr(),
             angles.shape[0], ctx.n_qubits, ctx.layers, torch.get_num_threads())
        return g_angles, None


def gated_circuit_native(angles: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Gated circuit of docs/models.md on the native kernel. angles (B', 4*q*l) -> (B', 3q)."""
    if not isinstance(n_qubits, int) or n_qubits < 2:
        raise ValueError(f"n_qubits={n_qubits!r} is not allowed for the gated circuit; need an integer >= 2")
    if angles.dim() != 2 or angles.shape[1] == 0 or angles.shape[1] % (4 * n_qubits):
        raise ValueError(f"angles must have shape (B', 4*q*l) with q={n_qubits}; got {tuple(angles.shape)}")
    if not available("gated", n_qubits, angles):
        raise RuntimeError(f"the native gated circuit cannot run this input "
                           f"(dtype {angles.dtype}, device {angles.device}, q={n_qubits})")
    return _NativeGated.apply(angles, n_qubits)  # under no_grad nothing is kept
