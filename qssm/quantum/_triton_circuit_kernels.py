"""Triton kernels of both circuits (imported only when Triton runs; see triton_circuits.py).

A circuit is a table of gates, one int32 row each: (kind, target bit, control bit or -1, angle
column or -1), kinds RX=0, RY=1, RZ=2, CRX=3, CNOT=4 (bit b of a basis index is wire q-1-b).
Every gate is a 2x2 complex matrix U applied to the amplitude pairs (i0, i1 = i0 + 2^b) whose
control bit is set; its generator G (U = exp(-iθG/2)) gives the angle's gradient.
A program owns BLOCK_S samples; their statevectors (re, im planes) live in global memory, which
stays in L1/L2 at the sizes that matter, and the program walks the gates in order, BLOCK_P pairs
at a time, with a barrier between gates. One launch runs the whole forward (state preparation,
all gates, every measurement); one launch the whole backward (the adjoint method: the state is
un-computed with U^H while the adjoint λ = dL/dψ* is propagated; dL/dθ = Im<λ|G|ψ> after the gate).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _pairs(j, p):
    """Basis indices (i0, i1) of pair j on bit p: j with a 0 (a 1) inserted at bit p."""
    low = j & ((1 << p) - 1)
    i0 = (j - low) * 2 + low
    return i0, i0 + (1 << p)


@triton.jit
def _matrix(kind, c, s):
    """U of a gate kind at half-angle cos c, sin s (per sample): 8 reals u00r, u00i, ..., u11i."""
    z = c * 0.0
    one = z + 1.0
    is_rx = (kind == 0) | (kind == 3)
    u00r = tl.where(kind == 4, z, c)
    u00i = tl.where(kind == 2, -s, z)
    u01r = tl.where(kind == 1, -s, tl.where(kind == 4, one, z))
    u01i = tl.where(is_rx, -s, z)
    u10r = tl.where(kind == 1, s, tl.where(kind == 4, one, z))
    u10i = tl.where(is_rx, -s, z)
    u11r = tl.where(kind == 4, z, c)
    u11i = tl.where(kind == 2, s, z)
    return u00r, u00i, u01r, u01i, u10r, u10i, u11r, u11i


@triton.jit
def _apply(u00r, u00i, u01r, u01i, u10r, u10i, u11r, u11i, r0, m0, r1, m1):
    """(b0, b1) = U (a0, a1) for complex a = r + i m; U entries broadcast over the pair axis."""
    b0r = u00r * r0 - u00i * m0 + u01r * r1 - u01i * m1
    b0i = u00r * m0 + u00i * r0 + u01r * m1 + u01i * r1
    b1r = u10r * r0 - u10i * m0 + u11r * r1 - u11i * m1
    b1i = u10r * m0 + u10i * r0 + u11r * m1 + u11i * r1
    return b0r, b0i, b1r, b1i


@triton.jit
def _observable(kind, z):
    """Hermitian 2x2 of X (0), Y (1) or Z (2) as (o00r, o01r, o01i, o11r); o10 = conj(o01)."""
    o00 = tl.where(kind == 2, z + 1.0, z)
    o01r = tl.where(kind == 0, z + 1.0, z)
    o01i = tl.where(kind == 1, z - 1.0, z)
    return o00, o01r, o01i, -o00


@triton.jit
def _times_observable(o00, o01r, o01i, o11, r0, m0, r1, m1):
    """O (a0, a1) for the Hermitian O of _observable: (O a)_0 = o00 a0 + o01 a1, (O a)_1 = conj(o01) a0 + o11 a1."""
    t0r = o00 * r0 + o01r * r1 - o01i * m1
    t0i = o00 * m0 + o01r * m1 + o01i * r1
    t1r = o01r * r0 + o01i * m0 + o11 * r1
    t1i = o01r * m0 - o01i * r0 + o11 * m1
    return t0r, t0i, t1r, t1i


@triton.jit
def _load_pair(re_ptr, im_ptr, p0, p1, mask):
    return (tl.load(re_ptr + p0, mask=mask, other=0.0), tl.load(im_ptr + p0, mask=mask, other=0.0),
            tl.load(re_ptr + p1, mask=mask, other=0.0), tl.load(im_ptr + p1, mask=mask, other=0.0))


@triton.jit
def _store_pair(re_ptr, im_ptr, p0, p1, mask, b0r, b0i, b1r, b1i):
    tl.store(re_ptr + p0, b0r, mask=mask)
    tl.store(im_ptr + p0, b0i, mask=mask)
    tl.store(re_ptr + p1, b1r, mask=mask)
    tl.store(im_ptr + p1, b1i, mask=mask)


@triton.jit
def _gate_row(gates_ptr, g):
    return (tl.load(gates_ptr + 4 * g), tl.load(gates_ptr + 4 * g + 1), tl.load(gates_ptr + 4 * g + 2),
            tl.load(gates_ptr + 4 * g + 3))


@triton.jit
def _half_angle(cos_ptr, sin_ptr, s, ms, n_ang, col, sign, ACC: tl.constexpr):
    """cos(θ/2), sign·sin(θ/2) of the gate's angle column per sample (computed by torch: no trig
    in the kernels, whose range reduction would take a stack frame); CNOT: unused."""
    k = s * n_ang + tl.maximum(col, 0)
    return (tl.load(cos_ptr + k, mask=ms, other=1.0).to(ACC),
            sign * tl.load(sin_ptr + k, mask=ms, other=0.0).to(ACC))


@triton.jit
def circuit_fwd(cos_ptr, sin_ptr, gates_ptr, meas_ptr, re_ptr, im_ptr, out_ptr, B, n_ang, n_gates, n_meas, HALF,
                BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, ACC: tl.constexpr):
    s = (tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)).to(tl.int64)
    ms = s < B
    dim = 2 * HALF
    rows = s[:, None] * dim
    for j0 in range(0, dim, BLOCK_P):  # |0...0>
        k = j0 + tl.arange(0, BLOCK_P)
        m = ms[:, None] & (k < dim)[None, :]
        one = tl.where(k == 0, 1.0, 0.0).to(ACC)
        tl.store(re_ptr + rows + k[None, :], tl.zeros((BLOCK_S, BLOCK_P), ACC) + one[None, :], mask=m)
        tl.store(im_ptr + rows + k[None, :], tl.zeros((BLOCK_S, BLOCK_P), ACC), mask=m)
    tl.debug_barrier()
    for g in range(0, n_gates):
        kind, p, cb, col = _gate_row(gates_ptr, g)
        cmask = tl.where(cb < 0, 0, 1 << tl.maximum(cb, 0))
        c, sn = _half_angle(cos_ptr, sin_ptr, s, ms, n_ang, col, 1.0, ACC)
        u00r, u00i, u01r, u01i, u10r, u10i, u11r, u11i = _matrix(kind, c[:, None], sn[:, None])
        for j0 in range(0, HALF, BLOCK_P):
            i0, i1 = _pairs(j0 + tl.arange(0, BLOCK_P), p)
            on = ((i0 & cmask) == cmask)[None, :] & ms[:, None]  # control bit set (always, without one)
            p0, p1 = rows + i0[None, :], rows + i1[None, :]
            r0, m0, r1, m1 = _load_pair(re_ptr, im_ptr, p0, p1, on)
            b0r, b0i, b1r, b1i = _apply(u00r, u00i, u01r, u01i, u10r, u10i, u11r, u11i, r0, m0, r1, m1)
            _store_pair(re_ptr, im_ptr, p0, p1, on, b0r, b0i, b1r, b1i)
        tl.debug_barrier()
    for q in range(0, n_meas):  # <O> = Σ_pairs conj(a) O a
        kind = tl.load(meas_ptr + 2 * q)
        p = tl.load(meas_ptr + 2 * q + 1)
        acc = tl.zeros((BLOCK_S,), ACC)
        o00, o01r, o01i, o11 = _observable(kind, acc[:, None])
        for j0 in range(0, HALF, BLOCK_P):
            i0, i1 = _pairs(j0 + tl.arange(0, BLOCK_P), p)
            m = ms[:, None] & (i0 >= 0)[None, :]
            p0, p1 = rows + i0[None, :], rows + i1[None, :]
            r0, m0, r1, m1 = _load_pair(re_ptr, im_ptr, p0, p1, m)
            # 2 Re(conj(a0) o01 a1) + o00 |a0|^2 + o11 |a1|^2
            cr = r0 * r1 + m0 * m1  # conj(a0) a1
            ci = r0 * m1 - m0 * r1
            val = o00 * (r0 * r0 + m0 * m0) + o11 * (r1 * r1 + m1 * m1) + 2.0 * (o01r * cr - o01i * ci)
            acc += tl.sum(val, 1)
        tl.store(out_ptr + s * n_meas + q, acc.to(out_ptr.dtype.element_ty), mask=ms)


@triton.jit
def circuit_bwd(cos_ptr, sin_ptr, gates_ptr, meas_ptr, re_ptr, im_ptr, lre_ptr, lim_ptr, gout_ptr, gang_ptr, B, n_ang,
                n_gates, n_meas, HALF, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, ACC: tl.constexpr):
    s = (tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)).to(tl.int64)
    ms = s < B
    dim = 2 * HALF
    rows = s[:, None] * dim
    for j0 in range(0, dim, BLOCK_P):  # λ = 0
        k = j0 + tl.arange(0, BLOCK_P)
        m = ms[:, None] & (k < dim)[None, :]
        tl.store(lre_ptr + rows + k[None, :], tl.zeros((BLOCK_S, BLOCK_P), ACC), mask=m)
        tl.store(lim_ptr + rows + k[None, :], tl.zeros((BLOCK_S, BLOCK_P), ACC), mask=m)
    tl.debug_barrier()
    for q in range(0, n_meas):  # λ = Σ_q g_q O_q ψ
        kind = tl.load(meas_ptr + 2 * q)
        p = tl.load(meas_ptr + 2 * q + 1)
        gq = tl.load(gout_ptr + s * n_meas + q, mask=ms, other=0.0).to(ACC)[:, None]
        o00, o01r, o01i, o11 = _observable(kind, gq * 0.0)
        for j0 in range(0, HALF, BLOCK_P):
            i0, i1 = _pairs(j0 + tl.arange(0, BLOCK_P), p)
            m = ms[:, None] & (i0 >= 0)[None, :]
            p0, p1 = rows + i0[None, :], rows + i1[None, :]
            r0, m0, r1, m1 = _load_pair(re_ptr, im_ptr, p0, p1, m)
            t0r, t0i, t1r, t1i = _times_observable(o00, o01r, o01i, o11, r0, m0, r1, m1)
            tl.store(lre_ptr + p0, tl.load(lre_ptr + p0, mask=m, other=0.0) + gq * t0r, mask=m)
            tl.store(lim_ptr + p0, tl.load(lim_ptr + p0, mask=m, other=0.0) + gq * t0i, mask=m)
            tl.store(lre_ptr + p1, tl.load(lre_ptr + p1, mask=m, other=0.0) + gq * t1r, mask=m)
            tl.store(lim_ptr + p1, tl.load(lim_ptr + p1, mask=m, other=0.0) + gq * t1i, mask=m)
        tl.debug_barrier()
    for gi in range(0, n_gates):  # the gates in reverse: gradient, then un-compute ψ and λ
        kind, p, cb, col = _gate_row(gates_ptr, n_gates - 1 - gi)
        cmask = tl.where(cb < 0, 0, 1 << tl.maximum(cb, 0))
        c, sn = _half_angle(cos_ptr, sin_ptr, s, ms, n_ang, col, -1.0, ACC)  # U^H = U(-θ) (CNOT: itself)
        u00r, u00i, u01r, u01i, u10r, u10i, u11r, u11i = _matrix(kind, c[:, None], sn[:, None])
        # generator: X for RX/CRX, Y for RY, Z for RZ (kind 0..3; CNOT has no angle)
        gk = tl.where(kind == 3, 0, kind)
        acc = tl.zeros((BLOCK_S,), ACC)
        o00, o01r, o01i, o11 = _observable(gk, acc[:, None])
        for j0 in range(0, HALF, BLOCK_P):
            i0, i1 = _pairs(j0 + tl.arange(0, BLOCK_P), p)
            on = ((i0 & cmask) == cmask)[None, :] & ms[:, None]  # control bit set (always, without one)
            p0, p1 = rows + i0[None, :], rows + i1[None, :]
            r0, m0, r1, m1 = _load_pair(re_ptr, im_ptr, p0, p1, on)
            l0r, l0i, l1r, l1i = _load_pair(lre_ptr, lim_ptr, p0, p1, on)
            # Im <λ|G ψ> over this gate's pairs
            t0r, t0i, t1r, t1i = _times_observable(o00, o01r, o01i, o11, r0, m0, r1, m1)
            acc += tl.sum(l0r * t0i - l0i * t0r + l1r * t1i - l1i * t1r, 1)
            b0r, b0i, b1r, b1i = _apply(u00r, u00i, u01r, u01i, u10r, u10i, u11r, u11i, r0, m0, r1, m1)
            _store_pair(re_ptr, im_ptr, p0, p1, on, b0r, b0i, b1r, b1i)
            b0r, b0i, b1r, b1i = _apply(u00r, u00i, u01r, u01i, u10r, u10i, u11r, u11i, l0r, l0i, l1r, l1i)
            _store_pair(lre_ptr, lim_ptr, p0, p1, on, b0r, b0i, b1r, b1i)
        if col >= 0:
            tl.store(gang_ptr + s * n_ang + col, acc.to(gang_ptr.dtype.element_ty), mask=ms)
        tl.debug_barrier()
