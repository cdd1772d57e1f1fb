"""Triton kernels of the blocks' causal depthwise conv + SiLU (imported only when Triton runs).

  a[b,t,c] = bias[c] + Σ_k w[c,k] · x[b, t-(K-1)+k, c]   (x = 0 before t = 0);  y = a · σ(a)
Backward recomputes a instead of keeping it: g_a = g_y · σ(a) · (1 + a (1 - σ(a))),
g_x[t] = Σ_s w[K-1-s] g_a[t+s], g_w[c,k] = Σ_{b,t} g_a[t] x[t-(K-1)+k], g_bias = Σ g_a.
A program owns a (BLOCK_T, BLOCK_C) tile of one batch row; x is read strided in place (channels
contiguous); g_w and g_bias are written as per-program partials that torch sums.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _pre(x_row, w_ptr, bias, offs_t, offs_c, mc, T, sx_t, C, K: tl.constexpr, ACC: tl.constexpr):
    """The pre-activation a at times offs_t (0 where offs_t is outside [0, T))."""
    a = tl.zeros((offs_t.shape[0], offs_c.shape[0]), dtype=ACC) + bias[None, :]
    for k in tl.static_range(K):
        ts = offs_t - (K - 1) + k
        m = ((ts >= 0) & (ts < T))[:, None] & mc[None, :]
        xv = tl.load(x_row + ts[:, None] * sx_t + offs_c[None, :], mask=m, other=0.0).to(ACC)
        wk = tl.load(w_ptr + offs_c * K + k, mask=mc, other=0.0).to(ACC)
        a += wk[None, :] * xv
    return a


@triton.jit
def conv_silu_fwd(x_ptr, w_ptr, b_ptr, y_ptr, T, C, sx_b, sx_t,
                  K: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)
    offs_t = (tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)  # times strides
    offs_c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    mc = offs_c < C
    bias = tl.load(b_ptr + offs_c, mask=mc, other=0.0).to(ACC)
    a = _pre(x_ptr + pid_b * sx_b, w_ptr, bias, offs_t, offs_c, mc, T, sx_t, C, K, ACC)
    y = a / (1.0 + tl.exp(-a))
    m = (offs_t < T)[:, None] & mc[None, :]
    tl.store(y_ptr + (pid_b * T + offs_t[:, None]) * C + offs_c[None, :], y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def conv_silu_bwd(x_ptr, w_ptr, b_ptr, gy_ptr, gx_ptr, gw_ptr, gb_ptr, T, C, sx_b, sx_t, sg_b, sg_t,
                  K: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_t = tl.program_id(1)
    offs_t = (pid_t * BLOCK_T + tl.arange(0, BLOCK_T)).to(tl.int64)
    offs_c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    mc = offs_c < C
    bias = tl.load(b_ptr + offs_c, mask=mc, other=0.0).to(ACC)
    x_row = x_ptr + pid_b * sx_b
    gx = tl.zeros((BLOCK_T, BLOCK_C), dtype=ACC)
    for s in tl.static_range(K):  # g_a at t+s feeds g_x[t] through w[K-1-s]
        tt = offs_t + s
        a = _pre(x_row, w_ptr, bias, tt, offs_c, mc, T, sx_t, C, K, ACC)
        m = (tt < T)[:, None] & mc[None, :]
        g = tl.load(gy_ptr + pid_b * sg_b + tt[:, None] * sg_t + offs_c[None, :], mask=m, other=0.0).to(ACC)
        sig = 1.0 / (1.0 + tl.exp(-a))
        ga = g * sig * (1.0 + a * (1.0 - sig))
        wk = tl.load(w_ptr + offs_c * K + (K - 1 - s), mask=mc, other=0.0).to(ACC)
        gx += wk[None, :] * ga
        if s == 0:  # this tile's own g_a: the weight and bias gradients
            part = pid_b * tl.num_programs(1) + pid_t  # (B * n_t, K, C) and (B * n_t, C) partials
            tl.store(gb_ptr + part * C + offs_c, tl.sum(ga, 0), mask=mc)
            for k in tl.static_range(K):
                ts = offs_t - (K - 1) + k
                mk = ((ts >= 0) & (ts < T))[:, None] & mc[None, :]
                xv = tl.load(x_row + ts[:, None] * sx_t + offs_c[None, :], mask=mk, other=0.0).to(ACC)
                tl.store(gw_ptr + (part * K + k) * C + offs_c, tl.sum(ga * xv, 0), mask=mc)
    m = (offs_t < T)[:, None] & mc[None, :]
    tl.store(gx_ptr + (pid_b * T + offs_t[:, None]) * C + offs_c[None, :], gx.to(gx_ptr.dtype.element_ty), mask=m)
