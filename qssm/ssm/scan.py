"""Selective scan: the recurrence of docs/models.md.

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
__all__ = ["selective_scan", "scan_reference", "scan_kernel", "SCAN_IMPLS", "SCAN_KERNELS"]


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


SCAN_KERNELS = ("auto", "native", "triton", "torch")


def scan_kernel(x, delta, A, B, C, D) -> str:
    """The kernel `kernel="auto"` takes for these tensors: "triton" (CUDA, Triton importable),
    "native" (CPU float32/float64, compiled kernel loaded), else "torch"."""
    from . import native_scan, triton_scan

    if triton_scan.available(x, delta, A, B, C, D) and len({t.dtype for t in (x, delta, B, C)}) == 1:
        return "triton"
    if native_scan.available(x, delta, A, B, C, D):
        return "native"
    return "torch"


def selective_scan(x, delta, A, B, C, D, *, impl: str = "chunked", chunk: int = 32, kernel: str = "auto",
                   delta_softplus: bool = False, reverse: bool = False):
    """Run the selective scan with the chosen implementation ("chunked" default, "reference").

    "chunked" saves the state only every `chunk` steps and recomputes inside a chunk in
    backward. `kernel` picks how it runs: "triton" the fused GPU kernels (`qssm.ssm.triton_scan`),
    "native" the fused compiled CPU kernel (`qssm.ssm.native_scan`), "torch" the device-agnostic
    tensor-op version (`qssm.ssm.chunked`), and "auto" (default) the first of those that can run
    the tensors (`scan_kernel`): Triton on CUDA, native on CPU, torch otherwise.
    `delta_softplus=True` takes Δ before its softplus; `reverse=True` scans time from the end
    (the same as flipping x, Δ, B, C along time, scanning and flipping y back). The Triton kernels
    fold both in; the other kernels apply them around the scan.
    """
    _check_shapes(x, delta, A, B, C, D)
    if kernel not in SCAN_KERNELS:
        raise ValueError(f"kernel={kernel!r} is not supported; allowed: {', '.join(SCAN_KERNELS)}")
    if impl not in SCAN_IMPLS:
        raise ValueError(f"scan={impl!r} is not supported; allowed: {', '.join(SCAN_IMPLS)}")
    requested = kernel
    if impl == "chunked" and kernel == "auto":
        kernel = scan_kernel(x, delta, A, B, C, D)
    if impl == "chunked" and kernel == "triton":
        from .triton_scan import scan_triton

        return scan_triton(x, delta, A, B, C, D, chunk=chunk, delta_softplus=delta_softplus, reverse=reverse)
    from ..amp import full_precision, needs_full_precision, upcast

    # mixed precision: a float32 state, autocast off (an explicit kernel="native" refuses half inputs)
    if requested != "native" and needs_full_precision(x, delta, A, B, C, D):
        out_dtype = x.dtype
        with full_precision(x.device.type):
            y = selective_scan(*upcast(x, delta, A, B, C, D), impl=impl, chunk=chunk, kernel=requested,
                               delta_softplus=delta_softplus, reverse=reverse)
        return y.to(out_dtype)
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    if reverse:
        x, delta, B, C = (t.flip(1) for t in (x, delta, B, C))
    if impl == "reference":
        y = scan_reference(x, delta, A, B, C, D)
    elif kernel == "native":
        from .native_scan import scan_native

        y = scan_native(x, delta, A, B, C, D, chunk=chunk)
    else:
        from .chunked import scan_chunked

        y = scan_chunked(x, delta, A, B, C, D, chunk=chunk)
    return y.flip(1) if reverse else y
