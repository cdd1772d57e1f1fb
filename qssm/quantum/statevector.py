"""Batched statevector simulator in plain PyTorch (the default quantum backend).

The state of B' independent q-qubit registers is a complex tensor of shape (B', 2^q), wire 0 the
most significant bit of the basis index (PennyLane's convention). No 2^q x 2^q matrix is ever
formed: memory is O(B' * 2^q).

How the circuits run (each circuit is one autograd.Function with a hand-written backward):
- Product states. RY(θ_i)|0> followed by the first layer's single-qubit rotations is still a
  product state, so the SSM circuit builds it directly as a Kronecker product of q 2-vectors
  (the Gated circuit likewise for its first RY layer): no gate is simulated there.
- Fused single-qubit layers. U_0 ⊗ ... ⊗ U_{q-1} is applied in groups of k adjacent wires
  (k <= 4, k < q, 4^k <= 2^q / 4: a group matrix is at most 16 x 16 per sample). With the
  trailing k wires of the current layout as a group, one batched matmul
  `U_group @ state.view(B', M, 2^k).mT` applies the group AND moves its wires to the front;
  walking the groups from the last wire to the first restores the canonical order: one pass
  over the state per group, no transposes.
- The CNOT ring is a basis permutation: one gather. The SSM circuit's last ring is not applied
  at all: it is folded into the signs of <Z_i>.
- CRX(control, target) updates, in place, the half of the amplitudes whose control bit is 1.
- Backward is the adjoint method: walking the gates in reverse, the state is undone with U^H
  (every gate is unitary) while the adjoint state is propagated, so only the final state is kept
  for backward (autograd would keep one state per gate) and a few state-sized buffers are
  reused throughout. The adjoint is carried conjugated (mu = conj(dL/dpsi)) so that no
  state-sized operand of a batched matmul carries a conjugation (PyTorch would copy it).

Gate conventions follow PennyLane:
  RX(t) = [[c, -i s], [-i s, c]],  RY(t) = [[c, -s], [s, c]],  RZ(t) = diag(e^{-it/2}, e^{it/2})
with c = cos(t/2), s = sin(t/2).
"""
from __future__ import annotations

import functools

import torch

__all__ = ["ssm_circuit_torch", "gated_circuit_torch"]

_MAX_GROUP = 4  # wires per fused single-qubit group (a 16 x 16 matrix per sample)


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


# --------------------------------------------------------------------------- gate matrices

def _rot_matrices(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """U = RZ(c) @ RY(b) @ RX(a) for angle tensors of shape S; returns (*S, 2, 2) complex."""
    ca, sa = torch.cos(a / 2), torch.sin(a / 2)
    cb, sb = torch.cos(b / 2), torch.sin(b / 2)
    cc, sc = torch.cos(c / 2), torch.sin(c / 2)
    # M = RY(b) RX(a) = [[cb ca + i sb sa, -sb ca - i cb sa], [sb ca - i cb sa, cb ca - i sb sa]]
    m00r, m00i = cb * ca, sb * sa
    m01r, m01i = -sb * ca, -cb * sa
    m10r, m10i = sb * ca, -cb * sa
    m11r, m11i = cb * ca, -sb * sa
    # RZ(c): row 0 times e^{-ic/2} = (cc - i sc), row 1 times e^{+ic/2} = (cc + i sc)
    u00 = torch.complex(m00r * cc + m00i * sc, m00i * cc - m00r * sc)
    u01 = torch.complex(m01r * cc + m01i * sc, m01i * cc - m01r * sc)
    u10 = torch.complex(m10r * cc - m10i * sc, m10i * cc + m10r * sc)
    u11 = torch.complex(m11r * cc - m11i * sc, m11i * cc + m11r * sc)
    return torch.stack([torch.stack([u00, u01], -1), torch.stack([u10, u11], -1)], -2)


def _ry_matrices(t: torch.Tensor) -> torch.Tensor:
    """RY(t) for an angle tensor of shape S: (*S, 2, 2) real."""
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _kron_batched(mats: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample Kronecker product of (B', 2, 2) matrices, first factor most significant."""
    out = mats[0]
    for m in mats[1:]:
        bsz, r, c = out.shape
        out = (out[:, :, None, :, None] * m[:, None, :, None, :]).reshape(bsz, 2 * r, 2 * c)
    return out


def _group_cap(n: int) -> int:
    """Wires per fused group: a group matrix has 4^k entries per sample, so keep 4^k <= 2^n / 4
    (building it, and its share of the backward, stays cheap next to a pass over the state),
    k <= _MAX_GROUP and k < n (never a 2^q x 2^q matrix). Measured: fusing more wires at small
    q (up to q - 1) was slower, not faster."""
    return max(1, min(_MAX_GROUP, (n - 2) // 2, n - 1))


def _groups(n: int) -> list[tuple[int, int]]:
    """Split wires 0..n-1 into contiguous groups (start, size) of at most _group_cap(n) wires
    (so never a 2^q x 2^q matrix), sizes as even as possible."""
    cap = _group_cap(n)
    count = -(-n // cap)
    sizes = [n // count + (1 if i < n % count else 0) for i in range(count)]
    out, start = [], 0
    for s in sizes:
        out.append((start, s))
        start += s
    return out


# --------------------------------------------------------------------------- permutations

def _ring_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if n > 1 else [])


@functools.lru_cache(maxsize=None)
def _cnot_ring_perm_cpu(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Basis permutation of CNOT(0,1) CNOT(1,2) ... CNOT(n-2,n-1) CNOT(n-1,0) and its inverse.

    new_state[k] = old_state[perm[k]]; the bit of wire w in basis index k is (k >> (n-1-w)) & 1.
    """
    idx = torch.arange(1 << n)
    for ctrl, tgt in _ring_pairs(n):  # apply gate G after the current map P: new = G(P(state))
        cbit, tbit = 1 << (n - 1 - ctrl), 1 << (n - 1 - tgt)
        k = torch.arange(1 << n)
        src = torch.where((k & cbit) != 0, k ^ tbit, k)  # G: new[k] = old[k ^ tbit if k & cbit else k]
        idx = idx[src]
    inv = torch.empty_like(idx)
    inv[idx] = torch.arange(1 << n)
    return idx, inv


_DEVICE_CACHE: dict = {}


def _on_device(key, make, device):
    """Cache small index/sign tensors per device (a host->device copy per call would sync)."""
    k = (key, str(device))
    t = _DEVICE_CACHE.get(k)
    if t is None:
        t = make().to(device)
        _DEVICE_CACHE[k] = t
    return t


# --------------------------------------------------------------------------- measurements

@functools.lru_cache(maxsize=None)
def _z_signs_cpu(n: int, fold_ring: bool) -> torch.Tensor:
    """(2^n, n) eigenvalues of Z_i per basis state; with fold_ring, of Z_i measured after a
    final CNOT ring (row j holds the signs of basis state inv_perm[j])."""
    k = torch.arange(1 << n)
    if fold_ring:
        k = _cnot_ring_perm_cpu(n)[1]
    shifts = torch.arange(n - 1, -1, -1)
    return 1.0 - 2.0 * ((k.unsqueeze(1) >> shifts.unsqueeze(0)) & 1).to(torch.float64)


# --------------------------------------------------------------------------- the SSM circuit

def _product_raw(vecs: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Kronecker product of the per-wire 2-vectors vecs[:, lo:hi] -> (B', 2^(hi-lo)), no autograd."""
    if hi - lo == 1:
        return vecs[:, lo]
    mid = (lo + hi) // 2
    a, b = _product_raw(vecs, lo, mid), _product_raw(vecs, mid, hi)
    return (a.unsqueeze(2) * b.unsqueeze(1)).reshape(a.shape[0], -1)


def _product_backward(vecs: torch.Tensor, mu: torch.Tensor, lo: int, hi: int, out: torch.Tensor) -> None:
    """conj-gradients of the product state's factors: mu = conj(dL/dpsi) for psi =
    vecs[lo] ⊗ ... ⊗ vecs[hi-1] (B', 2^(hi-lo)); writes conj(dL/dvecs[:, w]) into out[:, w]."""
    if hi - lo == 1:
        out[:, lo] = mu
        return
    mid = (lo + hi) // 2
    a, b = _product_raw(vecs, lo, mid), _product_raw(vecs, mid, hi)
    mu_v = mu.reshape(mu.shape[0], a.shape[1], b.shape[1])
    mu_a = torch.bmm(mu_v, b.unsqueeze(2)).squeeze(2)  # sum over the second factor's index
    mu_b = torch.bmm(a.unsqueeze(1), mu_v).squeeze(1)
    _product_backward(vecs, mu_a, lo, mid, out)
    _product_backward(vecs, mu_b, mid, hi, out)


def _kron_backward(cg: torch.Tensor, factors: list[torch.Tensor]) -> list[torch.Tensor]:
    """conj-gradients of the factors of U = U_1 ⊗ ... ⊗ U_s from cg = conj(dL/dU) (B', 2^s, 2^s).

    Split U = L ⊗ R (first and second half of the factors): with cg viewed as [l, r, L', R'],
    conj(dL/dL)[l, L'] = sum_{r, R'} cg[l, r, L', R'] R[r, R'] and conj(dL/dR)[r, R'] =
    sum_{l, L'} L[l, L'] cg[l, r, L', R'] -- two small batched matmuls -- then recurse.
    """
    s = len(factors)
    if s == 1:
        return [cg]
    h = s // 2
    left, right = factors[:h], factors[h:]
    kl, kr = 1 << h, 1 << (s - h)
    bsz = cg.shape[0]
    t = cg.reshape(bsz, kl, kr, kl, kr).permute(0, 1, 3, 2, 4).reshape(bsz, kl * kl, kr * kr)
    u_l = _kron_batched(left).reshape(bsz, 1, kl * kl)
    u_r = _kron_batched(right).reshape(bsz, kr * kr, 1)
    cg_l = torch.bmm(t, u_r).view(bsz, kl, kl)
    cg_r = torch.bmm(u_l, t).view(bsz, kr, kr)
    return _kron_backward(cg_l, left) + _kron_backward(cg_r, right)


@functools.lru_cache(maxsize=None)
def _signs2_conj_cpu(n: int) -> torch.Tensor:
    """(2^(n+1), n): rows (2j, 2j+1) = (2 s_j, -2 s_j), s_j the folded Z signs of basis state j;
    g @ this^T maps dL/d<Z> to conj(dL/dpsi) / psi on the (re, im) pairs."""
    s = _z_signs_cpu(n, n > 1)
    return torch.stack([2 * s, -2 * s], 1).reshape(2 << n, n)


def _signs2(n: int, dtype, device) -> torch.Tensor:
    """Z signs (with the final CNOT ring folded in) repeated for the (re, im) pairs: (2^(n+1), n)."""
    return _on_device(("z2", n, dtype),
                      lambda: _z_signs_cpu(n, n > 1).repeat_interleave(2, 0).to(dtype), device)


def _group_adjoint(psi, mu, factors, psi_bufs, mu_bufs, need_input: bool):
    """One fused group U = kron(factors) of a layer, walked backwards.

    psi (B', 2^n) is the group's output state and mu the adjoint there. Returns the
    conj-gradients of the factors, the input state (psi itself when not `need_input`) and the
    adjoint at the input."""
    bsz = psi.shape[0]
    k = 1 << len(factors)
    m = psi[0].numel() // k
    u = _kron_batched(factors)
    uc = u.conj().resolve_conj()
    out_v, mu_v = psi.view(bsz, k, m), mu.view(bsz, k, m)
    # conj(dL/dU) = mu_out x = (mu_out psi_out^T) conj(U)   (k x k per sample)
    grads = _kron_backward(torch.bmm(torch.bmm(mu_v, out_v.mT), uc), factors)
    # adjoint of the gate's input: lam_in = U^H lam_out, i.e. mu_in (B', M, k) = mu_out^T U
    mu_in = mu_bufs.other(mu)
    torch.bmm(mu_v.mT, u, out=mu_in.view(bsz, m, k))
    if need_input:
        # the gate's input state, x (B', M, k) = out^T conj(U)  (undo the unitary)
        x = psi_bufs.other(psi)
        torch.bmm(out_v.mT, uc, out=x.view(bsz, m, k))
        psi = x
    return grads, psi, mu_in


class _Buffers:
    """Two state-sized work buffers, allocated on first use, alternated between reads and writes;
    `keep` (e.g. a saved tensor) is read but never handed out for writing."""

    def __init__(self, keep, first=None):
        self.keep = keep
        self.pool = [first] if first is not None else []

    def other(self, cur):
        for b in self.pool:
            if b is not cur:
                return b
        like = cur if cur is not None else self.keep
        b = torch.empty_like(like)
        self.pool.append(b)
        return b


def _gather(state: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[b, k] = state[b, index[k]] (a per-row gather; faster than index_select on dim 1)."""
    return torch.gather(state, 1, index.expand(state.shape[0], -1), out=out)


def _ssm_forward_state(vecs: torch.Tensor, mats: torch.Tensor, n: int):
    """The SSM circuit's final state (B', 2^q) before the last CNOT ring, and a spare buffer."""
    bsz = vecs.shape[0]
    cur = _product_raw(vecs, 0, n)  # (B', 2^q), a fresh tensor (written below)
    if n == 1:
        cur = cur.clone()  # a view of vecs otherwise
    dim = cur.shape[1]
    bufs = _Buffers(None, cur)
    for layer in range(mats.shape[1]):
        if n > 1:
            perm = _on_device(("perm", n), lambda: _cnot_ring_perm_cpu(n)[0], cur.device)
            cur = _gather(cur, perm, out=bufs.other(cur))
        for start, size in reversed(_groups(n)):
            k = 1 << size
            u = _kron_batched([mats[:, layer, w] for w in range(start, start + size)])
            nxt = bufs.other(cur)
            torch.bmm(u, cur.view(bsz, dim // k, k).mT, out=nxt.view(bsz, k, dim // k))
            cur = nxt
    return cur, bufs.other(cur)


class _SSMCircuit(torch.autograd.Function):
    """The SSM circuit from its product-state factors to <Z_i>, with a hand-written backward.

    forward(vecs (B', q, 2), mats (B', l-1, q, 2, 2)) -> (B', q) real, where vecs are the wires'
    states after the embedding and the first layer's rotations, and mats the rotations of the
    later layers. Backward is the adjoint method: it walks the gates in reverse, un-computing the
    state with U^H (the gates are unitary) while propagating the adjoint state, so it keeps only
    the final state and uses a few state-sized buffers, whatever the number of layers.
    The adjoint is carried conjugated, mu = conj(dL/dpsi) (PyTorch's gradient of a real loss
    w.r.t. z = x + iy is dL/dx + i dL/dy): every batched matmul is then free of conjugated
    state-sized operands, which PyTorch would otherwise materialise (a copy per gate).
    A group's gradient comes from the states at its output: conj(dL/dU) = (mu_out psi_out^T) conj(U).
    """

    @staticmethod
    def forward(ctx, vecs, mats, n):
        cur, spare = _ssm_forward_state(vecs, mats, n)
        bsz, dim = cur.shape
        # <Z_i> = sum_j |psi_j|^2 sign_i(j) (the last CNOT ring folded into the signs)
        re = torch.view_as_real(cur).reshape(bsz, 2 * dim)
        sq = torch.view_as_real(spare).reshape(bsz, 2 * dim)
        torch.mul(re, re, out=sq)
        out = sq @ _signs2(n, sq.dtype, sq.device)
        ctx.save_for_backward(cur, vecs, mats)
        ctx.n = n
        ctx.state_consumed = False
        return out

    @staticmethod
    def backward(ctx, g_out):
        psi, vecs, mats = ctx.saved_tensors
        n = ctx.n
        if ctx.state_consumed:  # a second backward (retain_graph): the saved state was reused
            psi, _ = _ssm_forward_state(vecs, mats, n)
        # its storage serves as a work buffer below; .data keeps autograd's version check of the
        # saved tensor quiet (state_consumed records the reuse instead)
        psi = psi.data
        layers = mats.shape[1] + 1
        bsz, dim = psi.shape
        # from <Z_i>: dL/dpsi_j = 2 (sum_i g_i sign_i(j)) psi_j; on the (re, im) pairs,
        # mu = psi_pairs * (2 w, -2 w) with w = g @ signs^T, computed in mu's own storage
        signs = _on_device(("z2c", n, g_out.dtype), lambda: _signs2_conj_cpu(n).to(g_out.dtype), psi.device)
        mu = torch.empty_like(psi)
        mu_pairs = torch.view_as_real(mu).reshape(bsz, 2 * dim)
        torch.mm(g_out.contiguous(), signs.t(), out=mu_pairs)
        mu_pairs.mul_(torch.view_as_real(psi).reshape(bsz, 2 * dim))
        g_mats = torch.zeros_like(mats)  # conj-gradients, conjugated at the end
        # the saved state is overwritten below (it is not needed once walked past); a second
        # backward recomputes it (state_consumed)
        psi_bufs = _Buffers(None, psi)
        mu_bufs = _Buffers(None, mu)
        groups = _groups(n)  # the forward's order, reversed
        for layer in range(layers - 2, -1, -1):
            for gi, (start, size) in enumerate(groups):
                factors = [mats[:, layer, w] for w in range(start, start + size)]
                need_input = layer > 0 or gi < len(groups) - 1
                grads, psi, mu = _group_adjoint(psi, mu, factors, psi_bufs, mu_bufs, need_input)
                for j, g in enumerate(grads):
                    g_mats[:, layer, start + j] = g
                ctx.state_consumed = ctx.state_consumed or need_input
            if n > 1:
                inv = _on_device(("inv", n), lambda: _cnot_ring_perm_cpu(n)[1], psi.device)
                mu = _gather(mu, inv, out=mu_bufs.other(mu))
                if layer > 0:  # the product state entering the first ring is not needed
                    psi = _gather(psi, inv, out=psi_bufs.other(psi))
        g_vecs = torch.empty_like(vecs)
        _product_backward(vecs, mu, 0, n, g_vecs)
        return g_vecs.conj_physical_(), g_mats.conj_physical_(), None


def ssm_circuit_torch(embed: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """SSM circuit of docs/models.md. embed (B', q) RY angles; rotations (B', 3*q*l) -> (B', q)."""
    bsz, n = embed.shape
    layers = rotations.shape[1] // (3 * n)
    ctype = _complex_dtype(embed.dtype)
    rot = rotations.reshape(bsz, layers, n, 3)
    mats = _rot_matrices(rot[..., 0], rot[..., 1], rot[..., 2]).to(ctype)  # (B', l, q, 2, 2)
    # RY(θ)|0> = (cos θ/2, sin θ/2); the first layer's rotations keep it a product state
    amp = torch.stack([torch.cos(embed / 2), torch.sin(embed / 2)], -1).to(ctype)  # (B', q, 2)
    vecs = (mats[:, 0] @ amp.unsqueeze(-1)).squeeze(-1)  # (B', q, 2)
    return _SSMCircuit.apply(vecs, mats[:, 1:], n)


# --------------------------------------------------------------------------- the Gated circuit

def _crx_views(state: torch.Tensor, ctrl: int, tgt: int, n: int):
    """Views (a0, a1) of the amplitudes with control bit 1 and target bit 0 / 1: (B', x, y, z)."""
    bsz = state.shape[0]
    lo, hi = min(ctrl, tgt), max(ctrl, tgt)
    # axes: (B', wires before lo, lo, wires between, hi, wires after)
    s = state.view(bsz, 1 << lo, 2, 1 << (hi - lo - 1), 2, 1 << (n - hi - 1))
    c_ax, t_ax = (2, 4) if ctrl < tgt else (4, 2)
    on = s.select(c_ax, 1)
    t_on = t_ax if t_ax < c_ax else t_ax - 1
    return on.select(t_on, 0), on.select(t_on, 1)


def _crx_(state: torch.Tensor, cos: torch.Tensor, msin: torch.Tensor, ctrl: int, tgt: int, n: int) -> None:
    """In place: CRX on (ctrl, tgt) with per-sample cos(θ/2) (B', 1, 1, 1) real and msin =
    -i sin(θ/2) (B', 1, 1, 1) complex: on control 1, (a0, a1) <- (c a0 + ms a1, ms a0 + c a1)."""
    a0, a1 = _crx_views(state, ctrl, tgt, n)
    keep = a0.clone()
    a0.mul_(cos).addcmul_(a1, msin)
    a1.mul_(cos).addcmul_(keep, msin)


def _gated_ops(n: int, layers: int):
    """The Gated circuit after its first RY layer, as ("ry", index) / ("crx", ring, k, ctrl, tgt)."""
    ops = []
    for layer in range(layers):
        if layer > 0:
            ops.append(("ry", 2 * layer - 1))
        ops += [("crx", 2 * layer, k, i, (i + 1) % n) for k, i in enumerate(range(n))]
        ops.append(("ry", 2 * layer))
        ops += [("crx", 2 * layer + 1, k, i, (i - 1) % n) for k, i in enumerate(range(n - 1, -1, -1))]
    return ops


def _gated_forward_state(vecs, ry, cos, msin, n):
    """Final state of the Gated circuit (B', 2^q) and a spare state-sized buffer."""
    bsz = vecs.shape[0]
    cur = _product_raw(vecs, 0, n)  # (B', 2^q), fresh (n >= 2)
    dim = cur.shape[1]
    bufs = _Buffers(None, cur)
    for op in _gated_ops(n, cos.shape[1] // 2):
        if op[0] == "crx":
            _, ring, k, ctrl, tgt = op
            _crx_(cur, cos[:, ring, k], msin[:, ring, k], ctrl, tgt, n)
        else:
            for start, size in reversed(_groups(n)):
                kk = 1 << size
                u = _kron_batched([ry[:, op[1], w] for w in range(start, start + size)])
                nxt = bufs.other(cur)
                torch.bmm(u, cur.view(bsz, dim // kk, kk).mT, out=nxt.view(bsz, kk, dim // kk))
                cur = nxt
    return cur, bufs.other(cur)


class _GatedCircuit(torch.autograd.Function):
    """The Gated circuit from its first RY layer's product state to (<X_i>, <Y_i>, <Z_i>), with
    a hand-written adjoint backward (as _SSMCircuit): CRX gates act in place; RY layers use the
    fused groups.

    forward(vecs (B', q, 2) complex, ry (B', 2l-1, q, 2, 2) complex, theta (B', 2l, q) real)
    -> (B', 3q); theta[:, r, k] is the k-th CRX angle of ring r in the order applied.
    For CRX(θ) = |0><0| ⊗ I + |1><1| ⊗ RX(θ): RX^T = RX, so the conjugated adjoint propagates
    through the gate itself, the state is undone with CRX(-θ), and with dRX/dθ = -i/2 X RX,
    dL/dθ = Im(sum over control-1 amplitudes of mu_0 psi_1 + mu_1 psi_0) / 2 at the gate output.
    """

    @staticmethod
    def forward(ctx, vecs, ry, theta, n):
        half = theta / 2
        cos = torch.cos(half).unsqueeze(-1).unsqueeze(-1).unsqueeze(-1)  # (B', 2l, q, 1, 1, 1)
        msin = torch.complex(torch.zeros_like(half), -torch.sin(half))[..., None, None, None]
        cur, spare = _gated_forward_state(vecs, ry, cos, msin, n)
        bsz, dim = cur.shape
        xs, ys = [], []
        for w in range(n):
            v = cur.view(bsz, 1 << w, 2, 1 << (n - w - 1))
            z = (v[:, :, 0].conj() * v[:, :, 1]).sum((1, 2))  # <0|..|1> over wire w
            xs.append(2 * z.real)
            ys.append(2 * z.imag)
        re = torch.view_as_real(cur).reshape(bsz, 2 * dim)
        sq = torch.view_as_real(spare).reshape(bsz, 2 * dim)
        torch.mul(re, re, out=sq)
        zs = sq @ _on_device(("z2u", n, sq.dtype),
                             lambda: _z_signs_cpu(n, False).repeat_interleave(2, 0).to(sq.dtype), sq.device)
        out = torch.cat([torch.stack(xs, 1), torch.stack(ys, 1), zs], 1)
        ctx.save_for_backward(cur, vecs, ry, theta)
        ctx.n = n
        ctx.state_consumed = False
        return out

    @staticmethod
    def backward(ctx, g_out):
        psi, vecs, ry, theta = ctx.saved_tensors
        n = ctx.n
        half = theta / 2
        cos = torch.cos(half)[..., None, None, None]
        msin = torch.complex(torch.zeros_like(half), -torch.sin(half))[..., None, None, None]
        if ctx.state_consumed:  # a second backward (retain_graph): recompute the final state
            psi, _ = _gated_forward_state(vecs, ry, cos, msin, n)
        psi = psi.data  # used as a work buffer below (see _SSMCircuit.backward)
        bsz, dim = psi.shape
        g_out = g_out.contiguous()
        gx, gy, gz = g_out[:, :n], g_out[:, n:2 * n], g_out[:, 2 * n:]
        # g = dL/dpsi (PyTorch's convention): Z part 2 w psi with w = gz @ signs^T ...
        g = torch.empty_like(psi)
        g_pairs = torch.view_as_real(g).reshape(bsz, 2 * dim)
        signs2 = _on_device(("z2u2", n, g_out.dtype),
                            lambda: (2 * _z_signs_cpu(n, False)).repeat_interleave(2, 0).to(g_out.dtype), psi.device)
        torch.mm(gz, signs2.t(), out=g_pairs)
        g_pairs.mul_(torch.view_as_real(psi).reshape(bsz, 2 * dim))
        # ... X, Y part: g_0 += 2 (gx - i gy) psi_1 and g_1 += 2 (gx + i gy) psi_0 over each wire
        cxy = 2 * torch.complex(gx, -gy)  # (B', q)
        for w in range(n):
            gv = g.view(bsz, 1 << w, 2, 1 << (n - w - 1))
            pv = psi.view(bsz, 1 << w, 2, 1 << (n - w - 1))
            c = cxy[:, w].view(bsz, 1, 1)
            gv[:, :, 0].addcmul_(pv[:, :, 1], c)
            gv[:, :, 1].addcmul_(pv[:, :, 0], c.conj())
        torch.view_as_real(g)[..., 1].neg_()  # mu = conj(g), in place
        mu = g
        g_ry = torch.zeros_like(ry)
        g_theta = torch.zeros_like(theta)
        psi_bufs = _Buffers(None, psi)
        mu_bufs = _Buffers(None, mu)
        for op in reversed(_gated_ops(n, theta.shape[1] // 2)):
            if op[0] == "crx":
                _, ring, k, ctrl, tgt = op
                m0, m1 = _crx_views(mu, ctrl, tgt, n)
                p0, p1 = _crx_views(psi, ctrl, tgt, n)
                rho = (m0 * p1).sum((1, 2, 3)) + (m1 * p0).sum((1, 2, 3))
                g_theta[:, ring, k] = rho.imag / 2
                c, ms = cos[:, ring, k], msin[:, ring, k]
                _crx_(mu, c, ms, ctrl, tgt, n)  # mu_in = CRX(θ)^T mu_out = CRX(θ) mu_out
                _crx_(psi, c, -ms, ctrl, tgt, n)  # psi_in = CRX(-θ) psi_out
                ctx.state_consumed = True
            else:
                idx = op[1]
                for start, size in _groups(n):
                    factors = [ry[:, idx, w] for w in range(start, start + size)]
                    grads, psi, mu = _group_adjoint(psi, mu, factors, psi_bufs, mu_bufs, True)
                    for j, gw in enumerate(grads):
                        g_ry[:, idx, start + j] = gw
                    ctx.state_consumed = True
        g_vecs = torch.empty_like(vecs)
        _product_backward(vecs, mu, 0, n, g_vecs)
        return g_vecs.conj_physical_(), g_ry.conj_physical_(), g_theta, None


def gated_circuit_torch(angles: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Gated circuit of docs/models.md. angles (B', 4*q*l) -> (B', 3q): <X_i>, <Y_i>, <Z_i>."""
    n = n_qubits
    bsz = angles.shape[0]
    layers = angles.shape[1] // (4 * n)
    ctype = _complex_dtype(angles.dtype)
    ang = angles.reshape(bsz, layers, 4, n)  # per layer: RY, CRX fwd ring, RY, CRX bwd ring
    ry = _ry_matrices(ang[:, :, 0::2]).reshape(bsz, 2 * layers, n, 2, 2).to(ctype)  # RY layers in order
    vecs = ry[:, 0, :, :, 0]  # RY(θ)|0> = first column, (B', q, 2)
    theta = ang[:, :, 1::2].reshape(bsz, 2 * layers, n)  # CRX rings in order
    return _GatedCircuit.apply(vecs, ry[:, 1:], theta, n)
