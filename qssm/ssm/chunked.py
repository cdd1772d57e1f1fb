"""Chunked selective scan: a memory-lean fused path for the recurrence of docs/models.md.

Glossary (shapes; batch-first at the API):
  x, delta  (B, L, di)   input and positive step sizes Δ
  A         (N,) or (di, N), negative reals (shared by all channels, or per channel)
  B, C      (B, L, N)    input/output matrices
  D         (di,)        skip
  K         chunk length: the state is checkpointed every K steps (default 16)
  dA_t = exp(Δ_t ⊗ A)         (B, N, di)  decay of step t
  h_t = dA_t ⊙ h_{t-1} + B_t ⊗ (Δ_t·x_t);   y_t = C_t · h_t + D ⊙ x_t
  G_t = dLoss/dh_t = C_t ⊗ gy_t + dA_{t+1} ⊙ G_{t+1}      (the adjoint recurrence)
The state is laid out (B, N, di) so that every broadcast runs along the contiguous di axis.

Forward walks time step by step on one (B, N, di) state: each step is a handful of batched ops
on a tensor that stays in the core's cache (B·N·di·4 bytes = 512 KiB at the micro-benchmark size, docs/performance.md), and
nothing of size L·N is ever materialised. The per-step inputs and outputs of a chunk of K steps
are staged through small time-major buffers (one copy in, one copy out per chunk), so every
per-step op reads and writes contiguous memory (a slice x[:, t] of a (B, L, di) tensor is B rows
L·di elements apart, which thrashes caches and the TLB at large L). For backward only the state
entering each chunk is kept: ceil(L/K) tensors of (B, N, di), i.e. O(B·di·N·L/K) on top of the
inputs' O(B·di·L). Backward walks the chunks in reverse: it recomputes the chunk's K states
from the saved entry state into one (K, B, N, di) workspace, then walks the chunk's steps in
reverse with the adjoint recurrence, producing every gradient of a step with small batched
contractions. Time is linear in L (every step costs the same); workspaces are allocated once per
call (fresh multi-MB allocations per chunk cost a page fault per page on CPU).

The per-step ops are bound by memory traffic, not by their launch overhead (each moves ~1 MiB
at the micro-benchmark size, docs/performance.md), so the layout aims at passes over cache-resident (B, N, di) tensors:
the reverse walk recomputes dA_t (an exp of a cache-resident tensor is cheaper than writing
and re-reading K decays per chunk), and it carries M_t = dA_t ⊙ G_t between steps, which is
both the decay term of G_{t-1} = M_t + C_{t-1} ⊗ gy_{t-1} and the factor of P_t = M_t ⊙ h_{t-1}.
(Batching the non-recurrent ops over a whole chunk into (K, B, N, di) workspaces was measured
slower on CPU: it trades L2-resident passes for passes through L3/DRAM.)

No cumsum/exp closed form is used (it overflows in float32 for long chunks): each step is the
same multiply-add as in the plain loop, so values match `scan_reference` to rounding.
Every operation is a device-agnostic tensor op; nothing leaves the tensors' device and nothing
synchronises with the host.
"""
from __future__ import annotations

import torch

__all__ = ["scan_chunked"]


def _a_t(A):
    """A as a broadcastable (N, 1) (shared) or (N, di) (per channel) tensor."""
    return A.t().contiguous() if A.dim() == 2 else A.view(-1, 1)


def _load(dst, src, t0, t1):
    """Stage src[:, t0:t1] (B, k, F) into the time-major chunk buffer dst[:k] (k, B, F)."""
    k = t1 - t0
    dst[:k].copy_(src[:, t0:t1].transpose(0, 1))
    return dst[:k]


def _forward(x, delta, A, B, C, D, chunk, keep_states):
    bsz, length, di = x.shape
    n = B.shape[-1]
    aT = _a_t(A)
    y = x.new_empty(x.shape)  # (B, L, di), contiguous whatever the strides of x
    n_chunks = -(-length // chunk)
    kmax = min(chunk, length)
    # states[c] = h entering chunk c (kept only when a backward will need it)
    states = x.new_empty(n_chunks, bsz, n, di) if keep_states else None
    h = x.new_zeros(bsz, n, di)
    h_next = torch.empty_like(h)
    dA = torch.empty_like(h)
    xb, db, dxb, yb = (x.new_empty(kmax, bsz, di) for _ in range(4))  # time-major chunk staging
    Bb, Cb = B.new_empty(kmax, bsz, n), C.new_empty(kmax, bsz, n)
    for c in range(n_chunks):
        t0 = c * chunk
        t1 = min(t0 + chunk, length)
        k = t1 - t0
        xc, dc = _load(xb, x, t0, t1), _load(db, delta, t0, t1)
        Bc, Cc = _load(Bb, B, t0, t1), _load(Cb, C, t0, t1)
        torch.mul(dc, xc, out=dxb[:k])
        if keep_states:
            states[c].copy_(h)
        for j in range(k):
            torch.mul(dc[j].unsqueeze(1), aT, out=dA).exp_()  # dA_t (B, N, di)
            torch.mul(dA, h, out=h_next)
            h_next.addcmul_(Bc[j].unsqueeze(-1), dxb[j].unsqueeze(1))  # + B_t ⊗ Δ_t x_t
            h, h_next = h_next, h
            torch.bmm(Cc[j].unsqueeze(1), h, out=yb[j].unsqueeze(1))  # (B,1,N) @ (B,N,di)
        yb[:k].addcmul_(xc, D)
        y[:, t0:t1].copy_(yb[:k].transpose(0, 1))
    return y, states


class _ChunkedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, chunk):
        y, states = _forward(x, delta, A, B, C, D, chunk, keep_states=True)
        ctx.save_for_backward(x, delta, A, B, C, D, states)
        ctx.chunk = chunk
        return y

    @staticmethod
    def backward(ctx, gy):
        x, delta, A, B, C, D, states = ctx.saved_tensors
        chunk = ctx.chunk
        bsz, length, di = x.shape
        n = B.shape[-1]
        shared_a = A.dim() == 1
        aT = _a_t(A)
        a_row = A.view(1, 1, n).expand(bsz, 1, n) if shared_a else None
        gx = x.new_empty(x.shape)  # (B, L, di)
        gdelta = x.new_empty(x.shape)
        gB = B.new_empty(B.shape)  # (B, L, N)
        gC = C.new_empty(C.shape)
        kmax = min(chunk, length)
        hs = x.new_empty(kmax, bsz, n, di)  # states h_t of the current chunk
        # time-major chunk staging: inputs, and per-step results written out once per chunk
        xb, db, dxb, gyb, gxb, gdb, GBb = (x.new_empty(kmax, bsz, di) for _ in range(7))
        Bb, Cb, gBb, gCb = (B.new_empty(kmax, bsz, n) for _ in range(4))
        # G holds dA_{t+1} ⊙ G_{t+1} between steps (zero after the last step): adding C_t ⊗ gy_t
        # makes it G_t, and the P_t below needs the same product dA_t ⊙ G_t that G_{t-1} does
        G = x.new_zeros(bsz, n, di)
        dA = torch.empty_like(G)  # dA_t
        P = torch.empty_like(G)
        if shared_a:
            gA_acc = x.new_zeros(bsz, 1, n)  # sum over t, c of Δ_t,c P_t,n,c
            g_a = x.new_empty(bsz, 1, n)
        else:
            gA_acc = x.new_zeros(bsz, n, di)  # sum over t of Δ_t ⊙ P_t
        gD = x.new_zeros(di)
        # per-step views of the staging buffers, made once per call
        gCu, gBu, GBu = gCb.unsqueeze(2), gBb.unsqueeze(2), GBb.unsqueeze(2)  # (k, B, 1, ·)
        dxu, dcu, gyu = dxb.unsqueeze(2), db.unsqueeze(2), gyb.unsqueeze(2)  # (k, B, 1, di)
        Brow, Bcol, Ccol = Bb.unsqueeze(2), Bb.unsqueeze(-1), Cb.unsqueeze(-1)
        for c in range(states.shape[0] - 1, -1, -1):
            t0 = c * chunk
            t1 = min(t0 + chunk, length)
            k = t1 - t0
            xc, dc, gyc = _load(xb, x, t0, t1), _load(db, delta, t0, t1), _load(gyb, gy, t0, t1)
            _load(Bb, B, t0, t1), _load(Cb, C, t0, t1)
            torch.mul(dc, xc, out=dxb[:k])
            # recompute the chunk's states from its entry state
            h0 = states[c]
            h = h0
            for j in range(k):
                torch.mul(dcu[j], aT, out=dA).exp_()
                torch.mul(dA, h, out=hs[j])
                h = hs[j].addcmul_(Bcol[j], dxu[j])
            # walk the chunk in reverse
            for j in range(k - 1, -1, -1):
                d_t = dcu[j]  # (B, 1, di)
                # G_t = dA_{t+1} ⊙ G_{t+1} + C_t ⊗ gy_t
                G.addcmul_(Ccol[j], gyu[j])
                # gC_t = h_t · gy_t ; gB_t = G_t · Δ_t x_t   (contractions over di)
                torch.bmm(gyu[j], hs[j].mT, out=gCu[j])
                torch.bmm(dxu[j], G.mT, out=gBu[j])
                # GB_t = B_t · G_t (over N): feeds gx and gΔ through Δ_t x_t
                torch.bmm(Brow[j], G, out=GBu[j])
                # dA_t again (cheaper than a round trip through memory), then G ← dA_t ⊙ G_t
                torch.mul(d_t, aT, out=dA).exp_()
                G.mul_(dA)
                # P_t = dLoss/d(Δ_t A) = G_t ⊙ dA_t ⊙ h_{t-1}
                torch.mul(G, hs[j - 1] if j else h0, out=P)
                if shared_a:
                    torch.bmm(d_t, P.mT, out=g_a)  # sum over c of Δ P
                    gA_acc.add_(g_a)
                    torch.bmm(a_row, P, out=gdb[j].unsqueeze(1))  # sum over n of A P
                else:
                    gA_acc.addcmul_(P, d_t)
                    torch.sum(P.mul_(aT), 1, out=gdb[j])
            # per chunk: gΔ = (decay part) + x GB ; gx = Δ GB + D gy ; gD += gy x
            GBc = GBb[:k]
            gdb[:k].addcmul_(xc, GBc)
            torch.mul(dc, GBc, out=gxb[:k]).addcmul_(gyc, D)
            gD.add_((gyc * xc).sum((0, 1)))
            gx[:, t0:t1].copy_(gxb[:k].transpose(0, 1))
            gdelta[:, t0:t1].copy_(gdb[:k].transpose(0, 1))
            gB[:, t0:t1].copy_(gBb[:k].transpose(0, 1))
            gC[:, t0:t1].copy_(gCb[:k].transpose(0, 1))
        gA = gA_acc.sum(0)  # (1, N) or (N, di)
        gA = gA.view(n) if shared_a else gA.t()
        return gx, gdelta, gA, gB, gC, gD, None


def scan_chunked(x, delta, A, B, C, D, *, chunk: int = 16):
    """Selective scan (same contract as `scan_reference`) that saves only chunk-entry states.

    Under ``torch.no_grad()`` (or when no input requires grad) nothing is kept for backward.
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} must be a positive integer")
    tensors = (x, delta, A, B, C, D)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _ChunkedScan.apply(x, delta, A, B, C, D, chunk)
    y, _ = _forward(x, delta, A, B, C, D, chunk, keep_states=False)
    return y
