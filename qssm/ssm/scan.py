"""Selective scan: the recurrence of MODELS.md §2.

Shapes (time-major inside, batch-first at the API):
  x      (B, L, di)   input sequence
  delta  (B, L, di)   step sizes, already positive (softplus applied by the caller)
  A      (N,) shared by all channels, or (di, N) per channel; negative reals
  B, C   (B, L, N)    input-dependent input/output matrices
  D      (di,)        skip connection
Recurrence per channel c and state n:
  h_t = exp(delta_t,c * A_n) * h_{t-1} + delta_t,c * B_t,n * x_t,c
  y_t,c = sum_n C_t,n * h_t,n + D_c * x_t,c
Returns y (B, L, di).
"""
from __future__ import annotations

import torch

SCAN_IMPLS = ("reference", "chunked")
__all__ = ["selective_scan", "scan_reference", "SCAN_IMPLS", "SCAN_KERNELS"]


def _check_shapes(x, delta, A, B, C, D) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be (B, L, di); got shape {tuple(x.shape)}")
    bsz, length, di = x.shape
    if delta.shape != x.shape:
        raise ValueError(f"delta must match x {tuple(x.shape)}; got {tuple(delta.shape)}")
    if A.dim() == 1:
        n = A.shape[0]
    elif A.dim() == 2 and A.shape[0] == di:
        n = A.shape[1]
    else:
        raise ValueError(f"A must be (N,) or (di={di}, N); got {tuple(A.shape)}")
    for name, t in (("B", B), ("C", C)):
        if tuple(t.shape) != (bsz, length, n):
            raise ValueError(f"{name} must be (B, L, N) = {(bsz, length, n)}; got {tuple(t.shape)}")
    if tuple(D.shape) != (di,):
        raise ValueError(f"D must be (di,) = ({di},); got {tuple(D.shape)}")


def scan_reference(x, delta, A, B, C, D):
    """The plain recurrence, one timestep at a time (the twin every fast path is tested against)."""
    bsz, length, di = x.shape
    a = A if A.dim() == 2 else A.unsqueeze(0).expand(di, -1)  # (di, N)
    h = x.new_zeros(bsz, di, a.shape[1])
    ys = []
    for x_t, d_t, b_t, c_t in zip(x.unbind(1), delta.unbind(1), B.unbind(1), C.unbind(1)):
        # x_t, d_t: (B, di); b_t, c_t: (B, N); h: (B, di, N)
        h = torch.exp(d_t.unsqueeze(-1) * a) * h + (d_t * x_t).unsqueeze(-1) * b_t.unsqueeze(1)
        ys.append((h * c_t.unsqueeze(1)).sum(-1) + D * x_t)
    return torch.stack(ys, 1)


SCAN_KERNELS = ("auto", "native", "torch")


def selective_scan(x, delta, A, B, C, D, *, impl: str = "chunked", chunk: int = 32, kernel: str = "auto"):
    """Run the selective scan with the chosen implementation ("chunked" default, "reference").

    "chunked" saves the state only every `chunk` steps and recomputes inside a chunk in
    backward. `kernel` picks how it runs: "native" is the fused compiled CPU kernel
    (`qssm.ssm.native_scan`), "torch" the device-agnostic tensor-op version (`qssm.ssm.chunked`), and
    "auto" (default) takes the native kernel for CPU float32/float64 tensors when it is built and
    not turned off (QSSM_NATIVE=0), the torch version otherwise (CUDA included).
    """
    _check_shapes(x, delta, A, B, C, D)
    if kernel not in SCAN_KERNELS:
        raise ValueError(f"kernel={kernel!r} is not supported; allowed: {', '.join(SCAN_KERNELS)}")
    if impl == "reference":
        return scan_reference(x, delta, A, B, C, D)
    if impl == "chunked":
        if kernel != "torch":
            from . import native_scan

            if kernel == "native" or native_scan.available(x, delta, A, B, C, D):
                return native_scan.scan_native(x, delta, A, B, C, D, chunk=chunk)
        from .chunked import scan_chunked

        return scan_chunked(x, delta, A, B, C, D, chunk=chunk)
    raise ValueError(f"scan={impl!r} is not supported; allowed: {', '.join(SCAN_IMPLS)}")
