"""Both circuits of docs/models.md on CUDA as Triton kernels: one launch forward, one backward.

The kernels (_triton_circuit_kernels.py) run a table of gates over a block of samples' state
vectors; this module builds the tables (same gate order and angle columns as the torch twins in
statevector.py), allocates the state planes and wraps both launches in an autograd Function.
Memory: the final state (re, im) is kept for backward, plus one state-sized adjoint in backward:
O(B'·2^q), as the torch twin. Angles may be float32 (float32 state) or float64 (float64 state).
"""
from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from .. import triton_support as ts

__all__ = ["available", "ssm_circuit_triton", "gated_circuit_triton", "gate_table", "aot_variants"]

RX, RY, RZ, CRX, CNOT = range(5)
MEAS_X, MEAS_Y, MEAS_Z = range(3)
_KERNELS: dict = {}


def available(*tensors) -> bool:
    return tensors[0].dtype in (torch.float32, torch.float64) and ts.usable(*tensors)


def kernels():
    if not _KERNELS:
        from ._triton_circuit_kernels import circuit_bwd, circuit_fwd
        from ..ssm._triton_scan_kernels import acc_dtype

        _KERNELS.update(fwd=circuit_fwd, bwd=circuit_bwd, acc=acc_dtype)
    return _KERNELS


def _bit(n: int, wire: int) -> int:
    return n - 1 - wire  # wire 0 is the most significant bit (PennyLane's convention)


@functools.lru_cache(maxsize=None)
def gate_table(circuit: str, n: int, layers: int) -> tuple:
    """((kind, bit, control bit or -1, angle column or -1), ...), (measured (kind, bit), ...)."""
    gates = []
    if circuit == "ssm":  # angles: embed (q), then rotations (l, q, 3: RX, RY, RZ)
        gates += [(RY, _bit(n, i), -1, i) for i in range(n)]
        for layer in range(layers):
            for i in range(n):
                base = n + 3 * (layer * n + i)
                gates += [(RX, _bit(n, i), -1, base), (RY, _bit(n, i), -1, base + 1), (RZ, _bit(n, i), -1, base + 2)]
            if n > 1:
                gates += [(CNOT, _bit(n, (i + 1) % n), _bit(n, i), -1) for i in range(n)]
        meas = [(MEAS_Z, _bit(n, i)) for i in range(n)]
    elif circuit == "gated":  # angles per layer: RY (q), CRX forward ring (q), RY (q), CRX backward ring (q)
        for layer in range(layers):
            base = 4 * n * layer
            gates += [(RY, _bit(n, i), -1, base + i) for i in range(n)]
            gates += [(CRX, _bit(n, (i + 1) % n), _bit(n, i), base + n + i) for i in range(n)]
            gates += [(RY, _bit(n, i), -1, base + 2 * n + i) for i in range(n)]
            gates += [(CRX, _bit(n, (i - 1) % n), _bit(n, i), base + 3 * n + k)
                      for k, i in enumerate(range(n - 1, -1, -1))]
        meas = [(kind, _bit(n, i)) for kind in (MEAS_X, MEAS_Y, MEAS_Z) for i in range(n)]
    else:
        raise ValueError(f"circuit={circuit!r}: ssm or gated")
    return tuple(gates), tuple(meas)


_TABLES: dict = {}


def _tables(circuit, n, layers, device):
    key = (circuit, n, layers, str(device))
    if key not in _TABLES:  # one host->device copy per circuit shape and device
        gates, meas = gate_table(circuit, n, layers)
        _TABLES[key] = (torch.tensor(gates, dtype=torch.int32).to(device), torch.tensor(meas, dtype=torch.int32).to(device))
    return _TABLES[key]


def blocks(n: int, bsz: int) -> tuple[int, int]:
    """(BLOCK_S samples, BLOCK_P pairs) per program: tiles of up to 256 (samples × pairs), at most
    128 pairs (a 1 × 256 backward tile spills on sm_80/sm_90; 2 × 128 does not)."""
    half = 1 << (n - 1)
    block_p = min(half, 128)
    return max(1, min(ts.next_pow2(bsz), 256 // block_p)), block_p


class _Circuit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles, circuit, n, layers):
        angles = angles.contiguous()
        bsz = angles.shape[0]
        gates, meas = _tables(circuit, n, layers, angles.device)
        block_s, block_p = blocks(n, bsz)
        re = angles.new_empty(bsz, 1 << n)
        im = torch.empty_like(re)
        out = angles.new_empty(bsz, meas.shape[0])
        acc = kernels()["acc"](angles.dtype == torch.float64)
        half = angles * 0.5
        cos, sin = torch.cos(half), torch.sin(half)
        ts.launch(kernels()["fwd"], (-(-bsz // block_s),), cos, sin, gates, meas, re, im, out, bsz, angles.shape[1],
                  gates.shape[0], meas.shape[0], 1 << (n - 1), BLOCK_S=block_s, BLOCK_P=block_p, ACC=acc)
        ctx.save_for_backward(cos, sin, re, im)
        ctx.shape = (circuit, n, layers)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout):
        cos, sin, re, im = ctx.saved_tensors
        circuit, n, layers = ctx.shape
        bsz = cos.shape[0]
        gates, meas = _tables(circuit, n, layers, cos.device)
        block_s, block_p = blocks(n, bsz)
        re, im = re.clone(), im.clone()  # un-computed in place (a second backward must still work)
        lre, lim = torch.empty_like(re), torch.empty_like(re)
        gang = torch.zeros_like(cos)
        acc = kernels()["acc"](cos.dtype == torch.float64)
        ts.launch(kernels()["bwd"], (-(-bsz // block_s),), cos, sin, gates, meas, re, im, lre, lim,
                  gout.contiguous(), gang, bsz, cos.shape[1], gates.shape[0], meas.shape[0], 1 << (n - 1),
                  BLOCK_S=block_s, BLOCK_P=block_p, ACC=acc)
        return gang, None, None, None


def ssm_circuit_triton(embed: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """SSM circuit (contract of ssm_circuit_torch): embed (B', q), rotations (B', 3ql) -> (B', q)."""
    n = embed.shape[1]
    return _Circuit.apply(torch.cat([embed, rotations], 1), "ssm", n, rotations.shape[1] // (3 * n))


def gated_circuit_triton(angles: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Gated circuit (contract of gated_circuit_torch): angles (B', 4ql) -> (B', 3q)."""
    return _Circuit.apply(angles, "gated", n_qubits, angles.shape[1] // (4 * n_qubits))


def aot_variants():
    """Ahead-of-time compile variants for qssm.triton_aot: q = 4, 8, 12, 16 at B' = 4096, and B' = 1."""
    import triton.language as tl

    from ._triton_circuit_kernels import circuit_bwd, circuit_fwd

    out = []
    for q, bsz in ((4, 4096), (8, 4096), (12, 4096), (16, 4096), (12, 1)):
        bs, bp = blocks(q, bsz)
        cc = dict(BLOCK_S=bs, BLOCK_P=bp, ACC=tl.float32)
        for fn in (circuit_fwd, circuit_bwd):
            out.append((f"{fn.__name__} q={q} B'={bsz}", fn, {"gates_ptr": "i32", "meas_ptr": "i32"}, cc))
    return out
