"""Triton kernels of the selective scan (imported only when Triton runs; see triton_scan.py).

Per program: batch row `pid_b`, channels pid_d*BLOCK_D ..; the state h (BLOCK_D, BLOCK_N) lives in
registers in the ACC dtype. Strides are passed for every (B, L, ·) input so that views (the
blocks' in_proj/x_proj splits) are read in place; y, dx, dΔ are written contiguous (B, L, di).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def softplus(v):
    """softplus(v) as torch computes it (threshold 20), log1p without cancellation."""
    e = tl.exp(tl.minimum(v, 20.0))
    u = 1.0 + e
    lp = tl.where(u == 1.0, e, tl.log(u) * (e / (u - 1.0)))  # log1p(e), Goldberg's correction
    return tl.where(v > 20.0, v, lp)


@triton.jit
def softplus_grad(v):
    """d softplus / dv = sigmoid(v) (1 above the threshold, as torch)."""
    s = 1.0 / (1.0 + tl.exp(-tl.maximum(v, -80.0)))
    return tl.where(v > 20.0, 1.0, s)


@triton.jit
def _setup(pid_b, pid_d, x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, DI, N, sx_b, sx_d, sdt_b, sdt_d, sa_d, sa_n,
           sb_b, sb_n, sc_b, sc_n, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr):
    """A program's channel/state offsets and masks, its A block and D, and its rows of x, Δ, B, C."""
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    md = offs_d < DI
    mn = offs_n < N
    mdn = md[:, None] & mn[None, :]
    a = tl.load(a_ptr + offs_d[:, None] * sa_d + offs_n[None, :] * sa_n, mask=mdn, other=0.0).to(ACC)
    dsk = tl.load(d_ptr + offs_d, mask=md, other=0.0).to(ACC)
    xp = x_ptr + pid_b * sx_b + offs_d * sx_d
    dp = dt_ptr + pid_b * sdt_b + offs_d * sdt_d
    bp = b_ptr + pid_b * sb_b + offs_n * sb_n
    cp = c_ptr + pid_b * sc_b + offs_n * sc_n
    return offs_d, offs_n, md, mn, mdn, a, dsk, xp, dp, bp, cp


@triton.jit
def _step(h, a, xp, dp, bp, t, sx_t, sdt_t, sb_t, md, mn, SOFTPLUS: tl.constexpr, ACC: tl.constexpr):
    """One step of the recurrence at time t: h <- exp(Δ A) h + Δ x B; returns (h, x_t, Δ_t)."""
    xv = tl.load(xp + t * sx_t, mask=md, other=0.0).to(ACC)
    dv = tl.load(dp + t * sdt_t, mask=md, other=0.0).to(ACC)
    if SOFTPLUS:
        dv = softplus(dv)
    bv = tl.load(bp + t * sb_t, mask=mn, other=0.0).to(ACC)
    return tl.exp(dv[:, None] * a) * h + (dv * xv)[:, None] * bv[None, :], xv, dv


@triton.jit
def scan_fwd(x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, y_ptr, st_ptr, L, DI, N, CHUNK,
             sx_b, sx_t, sx_d, sdt_b, sdt_t, sdt_d, sa_d, sa_n, sb_b, sb_t, sb_n, sc_b, sc_t, sc_n,
             SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr, KEEP: tl.constexpr,
             BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1)
    offs_d, offs_n, md, mn, mdn, a, dsk, xp, dp, bp, cp = _setup(
        pid_b, pid_d, x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, DI, N, sx_b, sx_d, sdt_b, sdt_d, sa_d, sa_n,
        sb_b, sb_n, sc_b, sc_n, BLOCK_D, BLOCK_N, ACC)
    yp = y_ptr + pid_b * L * DI + offs_d
    n_chunks = (L + CHUNK - 1) // CHUNK
    sp = st_ptr + (pid_b * n_chunks * DI + offs_d[:, None]) * N + offs_n[None, :]  # states (B, nc, DI, N)
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=ACC)
    for i in range(0, L):
        if REVERSE:
            t = L - 1 - i
        else:
            t = i
        if KEEP:
            if i % CHUNK == 0:
                tl.store(sp + (i // CHUNK) * DI * N, h, mask=mdn)
        h, xv, dv = _step(h, a, xp, dp, bp, t, sx_t, sdt_t, sb_t, md, mn, SOFTPLUS, ACC)
        cv = tl.load(cp + t * sc_t, mask=mn, other=0.0).to(ACC)
        yv = tl.sum(h * cv[None, :], 1) + dsk * xv
        tl.store(yp + t * DI, yv.to(y_ptr.dtype.element_ty), mask=md)


@triton.jit
def scan_bwd(x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, st_ptr, gy_ptr, gx_ptr, gdt_ptr, ga_ptr, gd_ptr,
             gb_ptr, gc_ptr, ws_ptr, L, DI, N, CHUNK,
             sx_b, sx_t, sx_d, sdt_b, sdt_t, sdt_d, sa_d, sa_n, sb_b, sb_t, sb_n, sc_b, sc_t, sc_n,
             sg_b, sg_t, sg_d,
             SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr,
             BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_d = tl.program_id(1)
    offs_d, offs_n, md, mn, mdn, a, dsk, xp, dp, bp, cp = _setup(
        pid_b, pid_d, x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, DI, N, sx_b, sx_d, sdt_b, sdt_d, sa_d, sa_n,
        sb_b, sb_n, sc_b, sc_n, BLOCK_D, BLOCK_N, ACC)
    n_b = tl.num_programs(0)
    n_blk = tl.num_programs(1)
    gyp = gy_ptr + pid_b * sg_b + offs_d * sg_d
    gxp = gx_ptr + pid_b * L * DI + offs_d
    gdp = gdt_ptr + pid_b * L * DI + offs_d
    part = (pid_d * n_b + pid_b) * L * N + offs_n  # (n_blk, B, L, N) partials of dB, dC
    n_chunks = (L + CHUNK - 1) // CHUNK
    sp = st_ptr + (pid_b * n_chunks * DI + offs_d[:, None]) * N + offs_n[None, :]
    slot = BLOCK_D * BLOCK_N
    kp1 = tl.minimum(CHUNK, L) + 1
    wsp = (ws_ptr + (pid_b * n_blk + pid_d) * kp1 * slot
           + tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + offs_n[None, :])  # this program's K+1 states
    G = tl.zeros((BLOCK_D, BLOCK_N), dtype=ACC)  # dA_{t+1} ⊙ G_{t+1} between steps
    g_a = tl.zeros((BLOCK_D, BLOCK_N), dtype=ACC)
    g_d = tl.zeros((BLOCK_D,), dtype=ACC)
    for ci in range(0, n_chunks):
        c = n_chunks - 1 - ci
        i0 = c * CHUNK
        k = tl.minimum(CHUNK, L - i0)
        h = tl.load(sp + c * DI * N, mask=mdn, other=0.0).to(ACC)
        tl.store(wsp, h)
        for j in range(0, k):  # recompute the chunk's states from its entry state
            i = i0 + j
            if REVERSE:
                t = L - 1 - i
            else:
                t = i
            h, xv, dv = _step(h, a, xp, dp, bp, t, sx_t, sdt_t, sb_t, md, mn, SOFTPLUS, ACC)
            tl.store(wsp + (j + 1) * slot, h)
        tl.debug_barrier()
        h_t = h
        for jj in range(0, k):  # the adjoint walk, last step first
            j = k - 1 - jj
            i = i0 + j
            if REVERSE:
                t = L - 1 - i
            else:
                t = i
            h_prev = tl.load(wsp + j * slot)
            xv = tl.load(xp + t * sx_t, mask=md, other=0.0).to(ACC)
            raw = tl.load(dp + t * sdt_t, mask=md, other=0.0).to(ACC)
            if SOFTPLUS:
                dv = softplus(raw)
            else:
                dv = raw
            bv = tl.load(bp + t * sb_t, mask=mn, other=0.0).to(ACC)
            cv = tl.load(cp + t * sc_t, mask=mn, other=0.0).to(ACC)
            gyv = tl.load(gyp + t * sg_t, mask=md, other=0.0).to(ACC)
            G = G + cv[None, :] * gyv[:, None]  # G_t
            tl.store(gc_ptr + part + t * N, tl.sum(h_t * gyv[:, None], 0), mask=mn)
            dxv = dv * xv
            tl.store(gb_ptr + part + t * N, tl.sum(G * dxv[:, None], 0), mask=mn)
            gb_sum = tl.sum(G * bv[None, :], 1)  # B_t · G_t over N
            G = G * tl.exp(dv[:, None] * a)  # dA_t ⊙ G_t: carried to step t-1
            P = G * h_prev
            g_a += dv[:, None] * P
            gdv = tl.sum(a * P, 1) + xv * gb_sum
            if SOFTPLUS:
                gdv = gdv * softplus_grad(raw)
            gxv = dv * gb_sum + dsk * gyv
            g_d += gyv * xv
            tl.store(gxp + t * DI, gxv.to(gx_ptr.dtype.element_ty), mask=md)
            tl.store(gdp + t * DI, gdv.to(gdt_ptr.dtype.element_ty), mask=md)
            h_t = h_prev
        tl.debug_barrier()  # the next chunk overwrites the scratch
    tl.store(ga_ptr + (pid_b * DI + offs_d[:, None]) * N + offs_n[None, :], g_a, mask=mdn)
    tl.store(gd_ptr + pid_b * DI + offs_d, g_d, mask=md)


def acc_dtype(float64: bool):
    """The state's dtype constexpr: float64 for float64 inputs, float32 otherwise."""
    return tl.float64 if float64 else tl.float32
