"""Batched statevector simulator in plain PyTorch (the default quantum backend).

The state of B' independent q-qubit registers is a complex tensor of shape (B', 2, ..., 2)
(one axis per wire, wire 0 first). Every gate is a small batched contraction on one axis
(single-qubit gates, one 2x2 matrix per sample) or a permutation / masked update on two axes
(CNOT, CRX). No 2^q x 2^q matrix is ever formed, so memory is O(B' * 2^q) and a layer costs
O(B' * q * 2^q). Autograd differentiates through everything (the angles are ordinary tensors).

Gate conventions follow PennyLane:
  RX(t) = [[c, -i s], [-i s, c]],  RY(t) = [[c, -s], [s, c]],  RZ(t) = diag(e^{-it/2}, e^{it/2})
with c = cos(t/2), s = sin(t/2).
"""
from __future__ import annotations

import functools

import torch

__all__ = ["ssm_circuit_torch", "gated_circuit_torch"]


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _rot_matrices(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """U = RZ(c) @ RY(b) @ RX(a) for angle tensors of shape S; returns (*S, 2, 2) complex."""
    ca, sa = torch.cos(a / 2), torch.sin(a / 2)
    cb, sb = torch.cos(b / 2), torch.sin(b / 2)
    ctype = _complex_dtype(a.dtype)
    # M = RY(b) RX(a) = [[cb*ca + i sb*sa, -sb*ca - i cb*sa], [sb*ca - i cb*sa, cb*ca - i sb*sa]]
    m00 = torch.complex(cb * ca, sb * sa)
    m01 = torch.complex(-sb * ca, -cb * sa)
    m10 = torch.complex(sb * ca, -cb * sa)
    m11 = torch.complex(cb * ca, -sb * sa)
    # RZ(c) multiplies row 0 by e^{-ic/2} and row 1 by e^{+ic/2}
    ph = torch.polar(torch.ones_like(c), c / 2).to(ctype)  # e^{ic/2}
    row0 = torch.stack([m00, m01], -1) * ph.conj().unsqueeze(-1)
    row1 = torch.stack([m10, m11], -1) * ph.unsqueeze(-1)
    return torch.stack([row0, row1], -2)


def _apply_1q(state: torch.Tensor, u: torch.Tensor, wire: int, n: int) -> torch.Tensor:
    """Apply per-sample 2x2 matrices u (B', 2, 2) to `wire` of state (B', 2^wire, 2, rest)."""
    bsz = state.shape[0]
    s = state.reshape(bsz, 1 << wire, 2, 1 << (n - wire - 1))
    return torch.einsum("bij,bajc->baic", u, s)


@functools.lru_cache(maxsize=None)
def _cnot_ring_perm(n: int) -> torch.Tensor:
    """Basis permutation of CNOT(0,1) CNOT(1,2) ... CNOT(n-2,n-1) CNOT(n-1,0), as a gather index.

    new_state[k] = old_state[perm[k]]; bit of wire w in basis index k is (k >> (n-1-w)) & 1.
    """
    dim = 1 << n
    pairs = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if n > 1 else [])
    idx = list(range(dim))
    for ctrl, tgt in pairs:  # applying a gate G after the current map P: new = G(P(state))
        cbit, tbit = 1 << (n - 1 - ctrl), 1 << (n - 1 - tgt)
        # G: new[k] = old[k ^ tbit if k & cbit else k]
        idx = [idx[(k ^ tbit) if (k & cbit) else k] for k in range(dim)]
    return torch.tensor(idx, dtype=torch.long)


@functools.lru_cache(maxsize=None)
def _z_signs(n: int) -> torch.Tensor:
    """(2^n, n) matrix of eigenvalues of Z_i on each basis state (+1 for bit 0, -1 for bit 1)."""
    k = torch.arange(1 << n).unsqueeze(1)
    shifts = torch.arange(n - 1, -1, -1).unsqueeze(0)
    return 1.0 - 2.0 * ((k >> shifts) & 1).to(torch.float64)


def _expval_z(state: torch.Tensor, n: int) -> torch.Tensor:
    probs = state.real.square() + state.imag.square()  # (B', 2^n)
    signs = _z_signs(n).to(device=probs.device, dtype=probs.dtype)
    return probs.reshape(probs.shape[0], -1) @ signs


def ssm_circuit_torch(embed: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """SSM circuit of MODELS.md §1a. embed (B', q) RY angles; rotations (B', 3*q*l) -> (B', q)."""
    bsz, n = embed.shape
    layers = rotations.shape[1] // (3 * n)
    ctype = _complex_dtype(embed.dtype)
    # RY(theta)|0> = cos(theta/2)|0> + sin(theta/2)|1>: the embedded state is a product state.
    amp = torch.stack([torch.cos(embed / 2), torch.sin(embed / 2)], -1)  # (B', q, 2)
    state = amp[:, 0]
    for w in range(1, n):
        state = (state.unsqueeze(-1) * amp[:, w].unsqueeze(1)).reshape(bsz, -1)
    state = state.to(ctype)
    rot = rotations.reshape(bsz, layers, n, 3)
    mats = _rot_matrices(rot[..., 0], rot[..., 1], rot[..., 2])  # (B', l, q, 2, 2)
    perm = _cnot_ring_perm(n).to(embed.device)
    for layer in range(layers):
        for w in range(n):
            state = _apply_1q(state, mats[:, layer, w], w, n)
        state = state.reshape(bsz, -1)
        if n > 1:
            state = state.index_select(1, perm)
    return _expval_z(state.reshape(bsz, -1), n)


def _ry_matrices(t: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _apply_crx(state: torch.Tensor, t: torch.Tensor, ctrl: int, tgt: int, n: int) -> torch.Tensor:
    """CRX(t) with per-sample angles t (B',) on state (B', 2, ..., 2)."""
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    ctype = state.dtype
    # moved: (B', 2_ctrl, 2_tgt, rest)
    moved = state.movedim((1 + ctrl, 1 + tgt), (1, 2))
    rest = moved.shape[3:]
    moved = moved.reshape(state.shape[0], 2, 2, -1)
    a0, a1 = moved[:, 1, 0], moved[:, 1, 1]  # target amplitudes where control is 1
    cc = c.to(ctype).unsqueeze(-1)
    ms = (-1j * s).to(ctype).unsqueeze(-1)
    on = torch.stack([cc * a0 + ms * a1, ms * a0 + cc * a1], 1)
    new = torch.stack([moved[:, 0], on], 1).reshape(state.shape[0], 2, 2, *rest)
    return new.movedim((1, 2), (1 + ctrl, 1 + tgt))


def _expval_xyz(state: torch.Tensor, n: int) -> torch.Tensor:
    bsz = state.shape[0]
    xs, ys = [], []
    for w in range(n):
        s = state.reshape(bsz, 1 << w, 2, 1 << (n - w - 1))
        z = (s[:, :, 0].conj() * s[:, :, 1]).sum((1, 2))
        xs.append(2 * z.real)
        ys.append(2 * z.imag)
    zexp = _expval_z(state.reshape(bsz, -1), n)
    return torch.cat([torch.stack(xs, 1), torch.stack(ys, 1), zexp], 1)


def gated_circuit_torch(angles: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Gated circuit of MODELS.md §1b. angles (B', 4*q*l) -> (B', 3q): <X_i>, <Y_i>, <Z_i>."""
    n = n_qubits
    bsz = angles.shape[0]
    layers = angles.shape[1] // (4 * n)
    ctype = _complex_dtype(angles.dtype)
    ang = angles.reshape(bsz, layers, 4, n)  # per layer: RY, CRX fwd ring, RY, CRX bwd ring
    state = torch.zeros(bsz, 1 << n, dtype=ctype, device=angles.device)
    state[:, 0] = 1
    shape = (bsz,) + (2,) * n
    for layer in range(layers):
        for block in range(4):
            if block in (0, 2):
                mats = _ry_matrices(ang[:, layer, block]).to(ctype)  # (B', q, 2, 2)
                for w in range(n):
                    state = _apply_1q(state, mats[:, w], w, n)
            else:
                state = state.reshape(shape)
                order = range(n) if block == 1 else range(n - 1, -1, -1)
                step = 1 if block == 1 else -1
                for k, i in enumerate(order):
                    state = _apply_crx(state, ang[:, layer, block, k], i, (i + step) % n, n)
            state = state.reshape(bsz, -1)
    return _expval_xyz(state, n)


