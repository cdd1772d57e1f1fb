// The SSM circuit of MODELS.md §1a on a CPU statevector, a block of samples per vector lane.
//
//   |0…0> → RY(θ_i) on every wire → U_{0,i} on every wire → for layers 1..l-1: CNOT ring, U_{k,i}
//   → CNOT ring → <Z_i> for every wire (q outputs).
// U_{k,i} = RZ RY RX of layer k on wire i, a general 2×2 complex matrix built by the caller
// (torch ops, so autograd carries its gradient back to the three angles). The CNOT ring is
// CNOT(0,1), CNOT(1,2), …, CNOT(q-2,q-1), CNOT(q-1,0): a permutation of the basis.
// Wire 0 is the most significant bit of the basis index (PennyLane's convention).
//
// Layout: amplitude i of lane v is re[i·V + v] / im[i·V + v] (V samples per block, one per
// vector lane); every gate is a loop over amplitude pairs whose body is one vector operation.
//
// Backward (adjoint): the forward is recomputed from the inputs, then the gates are walked in
// reverse, undoing the state with U^† while λ (the adjoint, starting at M ψ with M the diagonal
// Σ g_i Z_i) is carried along. Gradients in PyTorch's convention for complex inputs,
// ∂L/∂Re + i ∂L/∂Im:  for U:  g[a][b] = 2 Σ_pairs λ_a conj(φ_b)  (φ the gate's input state);
// for the RY angles: 2 Re <λ| dRY/dθ |φ>.
#include <cstdint>
#include <vector>

#include "lanes.h"
#include "workers.h"

namespace {

// u: 8 rows of V lanes: re/im of u00, u01, u10, u11. adjoint: apply U^† instead of U.
template <typename T>
void apply_u(const Block<T>& st, int64_t dim, int64_t bit, const T* u, bool adjoint) {
  constexpr int64_t V = lanes<T>();
  // the matrix applied, per lane: [[a, b], [c, d]]; U^† = [[conj u00, conj u10], [conj u01, conj u11]]
  T ar[V], ai[V], br[V], bi[V], cr[V], ci[V], dr[V], di[V];
  const int br_row = adjoint ? 4 : 2, cr_row = adjoint ? 2 : 4;
  const T sg = adjoint ? T(-1) : T(1);
  for (int64_t v = 0; v < V; ++v) {
    ar[v] = u[v];
    ai[v] = sg * u[V + v];
    br[v] = u[br_row * V + v];
    bi[v] = sg * u[(br_row + 1) * V + v];
    cr[v] = u[cr_row * V + v];
    ci[v] = sg * u[(cr_row + 1) * V + v];
    dr[v] = u[6 * V + v];
    di[v] = sg * u[7 * V + v];
  }
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  FOR_PAIRS(dim, bit, {
    T* __restrict r0 = re + i * V;
    T* __restrict r1 = re + j * V;
    T* __restrict m0 = im + i * V;
    T* __restrict m1 = im + j * V;
    for (int64_t v = 0; v < V; ++v) {
      const T xr = r0[v], xi = m0[v], yr = r1[v], yi = m1[v];
      r0[v] = ar[v] * xr - ai[v] * xi + br[v] * yr - bi[v] * yi;
      m0[v] = ar[v] * xi + ai[v] * xr + br[v] * yi + bi[v] * yr;
      r1[v] = cr[v] * xr - ci[v] * xi + dr[v] * yr - di[v] * yi;
      m1[v] = cr[v] * xi + ci[v] * xr + dr[v] * yi + di[v] * yr;
    }
  })
}

// g (8 rows of V) = 2 Σ_pairs λ_a conj(φ_b) for a, b in {0, 1}.
template <typename T>
void grad_u(const Block<T>& lam, const Block<T>& phi, int64_t dim, int64_t bit, T* g) {
  constexpr int64_t V = lanes<T>();
  T acc[8][V] = {};
  FOR_PAIRS(dim, bit, {
    const T *pr0 = phi.re + i * V, *pi0 = phi.im + i * V, *pr1 = phi.re + j * V, *pi1 = phi.im + j * V;
    const T *lr0 = lam.re + i * V, *li0 = lam.im + i * V, *lr1 = lam.re + j * V, *li1 = lam.im + j * V;
    for (int64_t v = 0; v < V; ++v) {
      // λ_a conj(φ_b) = (lr pr + li pi) + i (li pr - lr pi)
      acc[0][v] += lr0[v] * pr0[v] + li0[v] * pi0[v];
      acc[1][v] += li0[v] * pr0[v] - lr0[v] * pi0[v];
      acc[2][v] += lr0[v] * pr1[v] + li0[v] * pi1[v];
      acc[3][v] += li0[v] * pr1[v] - lr0[v] * pi1[v];
      acc[4][v] += lr1[v] * pr0[v] + li1[v] * pi0[v];
      acc[5][v] += li1[v] * pr0[v] - lr1[v] * pi0[v];
      acc[6][v] += lr1[v] * pr1[v] + li1[v] * pi1[v];
      acc[7][v] += li1[v] * pr1[v] - lr1[v] * pi1[v];
    }
  })
  for (int r = 0; r < 8; ++r)
    for (int64_t v = 0; v < V; ++v) g[r * V + v] = 2 * acc[r][v];
}

// f(i): the basis index the CNOT ring sends |i> to.
std::vector<int64_t> ring_map(int q) {
  const int64_t dim = int64_t(1) << q;
  std::vector<int64_t> f(dim);
  for (int64_t i = 0; i < dim; ++i) {
    int64_t x = i;
    for (int w = 0; w < q; ++w) {
      const int t = (w + 1) % q;
      if (q > 1 && ((x >> (q - 1 - w)) & 1)) x ^= int64_t(1) << (q - 1 - t);
    }
    f[i] = x;
  }
  return f;
}

// The ring as cycles (i0, f(i0), f(f(i0)), ...), fixed points left out: cycle k is
// idx[start[k] .. start[k+1]). Applied in place, so one buffer holds a state through the ring.
struct Cycles {
  std::vector<int64_t> idx, start;
};

Cycles ring_cycles(int q) {
  const std::vector<int64_t> f = ring_map(q);
  const int64_t dim = static_cast<int64_t>(f.size());
  std::vector<char> seen(dim, 0);
  Cycles cy;
  for (int64_t i = 0; i < dim; ++i) {
    if (seen[i] || f[i] == i) continue;
    cy.start.push_back(static_cast<int64_t>(cy.idx.size()));
    int64_t j = i;
    do {
      seen[j] = 1;
      cy.idx.push_back(j);
      j = f[j];
    } while (j != i);
  }
  cy.start.push_back(static_cast<int64_t>(cy.idx.size()));
  return cy;
}

template <typename T>
inline void move_amp(const Block<T>& st, int64_t to, int64_t from) {
  constexpr int64_t V = lanes<T>();
  for (int64_t v = 0; v < V; ++v) {
    st.re[to * V + v] = st.re[from * V + v];
    st.im[to * V + v] = st.im[from * V + v];
  }
}

// forward: new[f(i)] = old[i]; inverse: new[i] = old[f(i)]. In place, along each cycle.
template <typename T>
void permute(const Block<T>& st, const Cycles& cy, bool inverse) {
  constexpr int64_t V = lanes<T>();
  T tr[V], ti[V];
  for (size_t k = 0; k + 1 < cy.start.size(); ++k) {
    const int64_t* c = cy.idx.data() + cy.start[k];
    const int64_t n = cy.start[k + 1] - cy.start[k];
    const int64_t keep = inverse ? c[0] : c[n - 1];
    for (int64_t v = 0; v < V; ++v) {
      tr[v] = st.re[keep * V + v];
      ti[v] = st.im[keep * V + v];
    }
    if (inverse) {
      for (int64_t j = 0; j + 1 < n; ++j) move_amp(st, c[j], c[j + 1]);
    } else {
      for (int64_t j = n - 1; j > 0; --j) move_amp(st, c[j], c[j - 1]);
    }
    const int64_t last = inverse ? c[n - 1] : c[0];
    for (int64_t v = 0; v < V; ++v) {
      st.re[last * V + v] = tr[v];
      st.im[last * V + v] = ti[v];
    }
  }
}

template <typename T>
struct Circuit {
  int q, layers;
  int64_t bsz, dim;
  Cycles ring;
  const T *c, *s, *u;  // (B', q) cos/sin of θ/2; (B', l, q, 2, 2, 2) U as (re, im) pairs
};

// The block's inputs, lane-major: cb, sb (q, V); ub (l·q, 8, V). Lanes past the batch get θ = 0
// and U = I (their outputs are discarded).
template <typename T>
void load_block(const Circuit<T>& cc, int64_t b0, T* cb, T* sb, T* ub) {
  constexpr int64_t V = lanes<T>();
  const int64_t nu = int64_t(cc.layers) * cc.q;
  for (int64_t v = 0; v < V; ++v) {
    const int64_t b = b0 + v;
    const bool live = b < cc.bsz;
    for (int w = 0; w < cc.q; ++w) {
      cb[w * V + v] = live ? cc.c[b * cc.q + w] : T(1);
      sb[w * V + v] = live ? cc.s[b * cc.q + w] : T(0);
    }
    for (int64_t k = 0; k < nu; ++k)
      for (int r = 0; r < 8; ++r)
        ub[(k * 8 + r) * V + v] = live ? cc.u[(b * nu + k) * 8 + r] : T(r == 0 || r == 6);
  }
}

// The block's final state (after the last ring), in st.
template <typename T>
void run_forward(const Circuit<T>& cc, const T* cb, const T* sb, const T* ub, const Block<T>& st) {
  constexpr int64_t V = lanes<T>();
  const int q = cc.q;
  for (int64_t i = 0; i < cc.dim * V; ++i) st.re[i] = st.im[i] = T(0);
  for (int64_t v = 0; v < V; ++v) st.re[v] = T(1);
  for (int w = 0; w < q; ++w) apply_ry(st, cc.dim, int64_t(1) << (q - 1 - w), cb + w * V, sb + w * V, T(1));
  for (int k = 0; k < cc.layers; ++k) {
    if (k > 0 && q > 1) permute(st, cc.ring, false);
    for (int w = 0; w < q; ++w) apply_u(st, cc.dim, int64_t(1) << (q - 1 - w), ub + (k * q + w) * 8 * V, false);
  }
  if (q > 1) permute(st, cc.ring, false);
}

template <typename T>
void forward(const Circuit<T>& cc, T* out, int64_t nthreads) {
  constexpr int64_t V = lanes<T>();
  const int64_t blocks = (cc.bsz + V - 1) / V, q = cc.q, dim = cc.dim;
  const int64_t nu = int64_t(cc.layers) * q;
  qssm::run_workers(nthreads, blocks, [&](int64_t, int64_t lo, int64_t hi) {
    std::vector<T> buf(2 * dim * V + 2 * q * V + nu * 8 * V);
    const Block<T> fin{buf.data(), buf.data() + dim * V};
    T *cb = buf.data() + 2 * dim * V, *sb = cb + q * V, *ub = sb + q * V;
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t b0 = blk * V;
      load_block(cc, b0, cb, sb, ub);
      run_forward(cc, cb, sb, ub, fin);
      for (int w = 0; w < q; ++w) {
        const int64_t bit = int64_t(1) << (q - 1 - w);
        T z[V] = {};
        for (int64_t i = 0; i < dim; ++i) {
          const T sign = (i & bit) ? T(-1) : T(1);
          const T *r = fin.re + i * V, *m = fin.im + i * V;
          for (int64_t v = 0; v < V; ++v) z[v] += sign * (r[v] * r[v] + m[v] * m[v]);
        }
        for (int64_t v = 0; v < V && b0 + v < cc.bsz; ++v) out[(b0 + v) * q + w] = z[v];
      }
    }
  });
}

template <typename T>
void backward(const Circuit<T>& cc, const T* gout, T* g_theta, T* g_u, int64_t nthreads) {
  constexpr int64_t V = lanes<T>();
  const int64_t blocks = (cc.bsz + V - 1) / V, q = cc.q, dim = cc.dim;
  const int64_t nu = int64_t(cc.layers) * q;
  qssm::run_workers(nthreads, blocks, [&](int64_t, int64_t lo, int64_t hi) {
    std::vector<T> buf(4 * dim * V + 3 * q * V + 2 * nu * 8 * V);
    T* base = buf.data();
    const Block<T> phi{base, base + dim * V}, lam{base + 2 * dim * V, base + 3 * dim * V};
    T *cb = base + 4 * dim * V, *sb = cb + q * V, *gt = sb + q * V, *ub = gt + q * V, *gu = ub + nu * 8 * V;
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t b0 = blk * V;
      load_block(cc, b0, cb, sb, ub);
      run_forward(cc, cb, sb, ub, phi);
      // λ = M ψ with M = diag(Σ_w g_w sign_w(i))
      for (int64_t i = 0; i < dim; ++i) {
        T m[V] = {};
        for (int w = 0; w < q; ++w) {
          const bool one = (i >> (q - 1 - w)) & 1;
          for (int64_t v = 0; v < V; ++v) {
            const T g = b0 + v < cc.bsz ? gout[(b0 + v) * q + w] : T(0);
            m[v] += one ? -g : g;
          }
        }
        for (int64_t v = 0; v < V; ++v) {
          lam.re[i * V + v] = m[v] * phi.re[i * V + v];
          lam.im[i * V + v] = m[v] * phi.im[i * V + v];
        }
      }
      if (q > 1) {  // undo the final ring
        permute(phi, cc.ring, true);
        permute(lam, cc.ring, true);
      }
      for (int k = cc.layers - 1; k >= 0; --k) {
        for (int w = q - 1; w >= 0; --w) {
          const int64_t bit = int64_t(1) << (q - 1 - w);
          const T* u = ub + (k * q + w) * 8 * V;
          apply_u(phi, dim, bit, u, true);  // φ = the gate's input
          grad_u(lam, phi, dim, bit, gu + (k * q + w) * 8 * V);
          apply_u(lam, dim, bit, u, true);
        }
        if (k > 0 && q > 1) {
          permute(phi, cc.ring, true);
          permute(lam, cc.ring, true);
        }
      }
      for (int w = q - 1; w >= 0; --w) {
        const int64_t bit = int64_t(1) << (q - 1 - w);
        apply_ry(phi, dim, bit, cb + w * V, sb + w * V, T(-1));
        grad_ry(lam, phi, dim, bit, cb + w * V, sb + w * V, gt + w * V);
        apply_ry(lam, dim, bit, cb + w * V, sb + w * V, T(-1));
      }
      for (int64_t v = 0; v < V && b0 + v < cc.bsz; ++v) {
        const int64_t b = b0 + v;
        for (int w = 0; w < q; ++w) g_theta[b * q + w] = gt[w * V + v];
        for (int64_t k = 0; k < nu; ++k)
          for (int r = 0; r < 8; ++r) g_u[(b * nu + k) * 8 + r] = gu[(k * 8 + r) * V + v];
      }
    }
  });
}

}  // namespace

// c, s: (B', q) cos/sin of half the embedding angles; u: (B', l, q, 2, 2) complex as (re, im).
#define QSSM_SSM(T, SUFFIX)                                                                        \
  QSSM_EXPORT int qssm_ssm_fwd_##SUFFIX(const T* c, const T* s, const T* u, T* out, int64_t bsz, \
                                         int64_t q, int64_t layers, int64_t nthreads) {            \
    return qssm::guarded([&] {                                                                     \
      forward(Circuit<T>{int(q), int(layers), bsz, int64_t(1) << q, ring_cycles(int(q)), c, s, u}, out, \
              nthreads);                                                                           \
    });                                                                    \
  }                                                                                                \
  QSSM_EXPORT int qssm_ssm_bwd_##SUFFIX(const T* c, const T* s, const T* u, const T* gout,       \
                                         T* g_theta, T* g_u, int64_t bsz, int64_t q,               \
                                         int64_t layers, int64_t nthreads) {                       \
    return qssm::guarded([&] {                                                                     \
      backward(Circuit<T>{int(q), int(layers), bsz, int64_t(1) << q, ring_cycles(int(q)), c, s, u},   \
               gout, g_theta, g_u, nthreads);                                                      \
    });                                                    \
  }

QSSM_SSM(float, f32)
QSSM_SSM(double, f64)
