// The Gated circuit of MODELS.md §1b on a CPU statevector, a block of samples per vector lane.
//
// Per layer, angles consumed in order: RY(wire i) for i = 0..q-1; CRX(i, (i+1) mod q) for
// i = 0..q-1; RY(wire i); CRX(i, (i-1) mod q) for i = q-1..0. Output per sample:
// <X_i> for all i, then <Y_i>, then <Z_i> (3q values). Wire 0 is the most significant bit of
// the basis index (PennyLane's convention).
//
// The batched torch simulator pays a few dispatched tensor ops per gate on (B', 2^q) tensors;
// at the small q these models use (2^q = 16 amplitudes at the seed config) that overhead is the
// whole cost. Here a block of samples' amplitudes stays in L1 and every gate is a short loop.
//
// Backward is the adjoint method: the forward is recomputed (only the angles are kept), then
// walking the gates in reverse, the state is undone with U^† while λ = U^†…M ψ is carried along
// (M = Σ g_X X_i + g_Y Y_i + g_Z Z_i); dL/dθ_j = 2 Re <λ_j| dU_j/dθ |φ_{j-1}>.
//
// Gates: RY(t) = [[c, -s], [s, c]];  CRX(t) on control 1: RX(t) = [[c, -i s], [-i s, c]],
// with c = cos(t/2), s = sin(t/2).  dRY = ½[[-s, -c], [c, -s]];  dRX = ½[[-s, -i c], [-i c, -s]].
#include <cmath>
#include <cstdint>
#include <vector>

#include "lanes.h"
#include "workers.h"

namespace {

struct Gate {
  int crx;     // 0: RY on wire a; 1: CRX(control a, target b)
  int a, b;    // wires
  int64_t k;   // angle index within the sample's 4·q·l angles
};

std::vector<Gate> gated_gates(int q, int layers) {
  std::vector<Gate> g;
  for (int l = 0; l < layers; ++l) {
    const int64_t base = int64_t(4) * q * l;
    for (int i = 0; i < q; ++i) g.push_back({0, i, -1, base + i});
    for (int i = 0; i < q; ++i) g.push_back({1, i, (i + 1) % q, base + q + i});
    for (int i = 0; i < q; ++i) g.push_back({0, i, -1, base + 2 * q + i});
    for (int k = 0; k < q; ++k) {
      const int i = q - 1 - k;
      g.push_back({1, i, (i - 1 + q) % q, base + 3 * q + k});
    }
  }
  return g;
}

// c, s: this gate's per-lane cos/sin (V values); s -> -s (pass neg = true) gives the inverse.
template <typename T, bool neg>
void apply(const Block<T>& st, const Gate& g, int q, const T* __restrict c, const T* __restrict s0) {
  constexpr int64_t V = lanes<T>();
  const int64_t dim = int64_t(1) << q;
  if (!g.crx) {
    apply_ry(st, dim, int64_t(1) << (q - 1 - g.a), c, s0, neg ? T(-1) : T(1));
    return;
  }
  T s[V];
  for (int64_t v = 0; v < V; ++v) s[v] = neg ? -s0[v] : s0[v];
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  const int64_t cb = int64_t(1) << (q - 1 - g.a), tb = int64_t(1) << (q - 1 - g.b);
  for (int64_t i = 0; i < dim; ++i) {
    if (!(i & cb) || (i & tb)) continue;
    T* r0 = re + i * V; T* r1 = re + (i | tb) * V;
    T* m0 = im + i * V; T* m1 = im + (i | tb) * V;
    for (int64_t v = 0; v < V; ++v) {
      const T a = r0[v], b = r1[v], x = m0[v], y = m1[v];
      r0[v] = c[v] * a + s[v] * y;
      m0[v] = c[v] * x - s[v] * b;
      r1[v] = s[v] * x + c[v] * b;
      m1[v] = c[v] * y - s[v] * a;
    }
  }
}

// Per lane: 2 Re <lam| dU |phi> for the gate at (c, s), into out[V].
template <typename T>
void grad(const Block<T>& lam, const Block<T>& phi, const Gate& g, int q, const T* __restrict c,
          const T* __restrict s, T* __restrict out) {
  constexpr int64_t V = lanes<T>();
  const int64_t dim = int64_t(1) << q;
  if (!g.crx) {
    grad_ry(lam, phi, dim, int64_t(1) << (q - 1 - g.a), c, s, out);
    return;
  }
  T acc[V] = {};
  const int64_t cb = int64_t(1) << (q - 1 - g.a), tb = int64_t(1) << (q - 1 - g.b);
  for (int64_t i = 0; i < dim; ++i) {
    if (!(i & cb) || (i & tb)) continue;
    const int64_t j = i | tb;
    const T *r0 = phi.re + i * V, *r1 = phi.re + j * V, *m0 = phi.im + i * V, *m1 = phi.im + j * V;
    const T *lr0 = lam.re + i * V, *lr1 = lam.re + j * V, *li0 = lam.im + i * V, *li1 = lam.im + j * V;
    for (int64_t v = 0; v < V; ++v)
      acc[v] += lr0[v] * (-s[v] * r0[v] + c[v] * m1[v]) + li0[v] * (-s[v] * m0[v] - c[v] * r1[v])
              + lr1[v] * (c[v] * m0[v] - s[v] * r1[v]) + li1[v] * (-c[v] * r0[v] - s[v] * m1[v]);
  }
  for (int64_t v = 0; v < V; ++v) out[v] = acc[v];  // the ½ of dU and the 2 of 2 Re cancel
}

// The block's per-angle cos/sin, transposed to (nang, V); lanes past the batch get angle 0.
template <typename T>
void load_angles(const T* c, const T* s, int64_t b0, int64_t bsz, int64_t nang, T* cb, T* sb) {
  constexpr int64_t V = lanes<T>();
  for (int64_t v = 0; v < V; ++v) {
    const bool live = b0 + v < bsz;
    for (int64_t k = 0; k < nang; ++k) {
      cb[k * V + v] = live ? c[(b0 + v) * nang + k] : T(1);
      sb[k * V + v] = live ? s[(b0 + v) * nang + k] : T(0);
    }
  }
}

template <typename T>
void run_forward(const Block<T>& st, const std::vector<Gate>& gates, const T* cb, const T* sb, int q) {
  constexpr int64_t V = lanes<T>();
  const int64_t n = (int64_t(1) << q) * V;
  for (int64_t i = 0; i < n; ++i) st.re[i] = st.im[i] = T(0);
  for (int64_t v = 0; v < V; ++v) st.re[v] = T(1);
  for (const Gate& g : gates) apply<T, false>(st, g, q, cb + g.k * V, sb + g.k * V);
}

template <typename T>
void forward(const T* c, const T* s, T* out, int64_t bsz, int q, int layers, int64_t nthreads) {
  constexpr int64_t V = lanes<T>();
  const auto gates = gated_gates(q, layers);
  const int64_t dim = int64_t(1) << q, nang = int64_t(4) * q * layers;
  const int64_t blocks = (bsz + V - 1) / V;
  qssm::run_workers(nthreads, blocks, [&](int64_t, int64_t lo, int64_t hi) {
    std::vector<T> buf(2 * dim * V + 2 * nang * V);
    const Block<T> st{buf.data(), buf.data() + dim * V};
    T* cb = buf.data() + 2 * dim * V;
    T* sb = cb + nang * V;
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t b0 = blk * V;
      load_angles(c, s, b0, bsz, nang, cb, sb);
      run_forward(st, gates, cb, sb, q);
      for (int w = 0; w < q; ++w) {
        const int64_t bit = int64_t(1) << (q - 1 - w);
        T x[V] = {}, y[V] = {}, z[V] = {};
        for (int64_t i = 0; i < dim; ++i) {
          const T *r0 = st.re + i * V, *m0 = st.im + i * V;
          const T sign = (i & bit) ? T(-1) : T(1);
          for (int64_t v = 0; v < V; ++v) z[v] += sign * (r0[v] * r0[v] + m0[v] * m0[v]);
          if (i & bit) continue;
          const T *r1 = st.re + (i | bit) * V, *m1 = st.im + (i | bit) * V;
          for (int64_t v = 0; v < V; ++v) {
            x[v] += r0[v] * r1[v] + m0[v] * m1[v];
            y[v] += r0[v] * m1[v] - m0[v] * r1[v];
          }
        }
        for (int64_t v = 0; v < V && b0 + v < bsz; ++v) {
          T* o = out + (b0 + v) * 3 * q;
          o[w] = 2 * x[v];
          o[q + w] = 2 * y[v];
          o[2 * q + w] = z[v];
        }
      }
    }
  });
}

template <typename T>
void backward(const T* c, const T* s, const T* gout, T* gang, int64_t bsz, int q, int layers,
              int64_t nthreads) {
  constexpr int64_t V = lanes<T>();
  const auto gates = gated_gates(q, layers);
  const int64_t dim = int64_t(1) << q, nang = int64_t(4) * q * layers;
  const int64_t blocks = (bsz + V - 1) / V;
  qssm::run_workers(nthreads, blocks, [&](int64_t, int64_t lo, int64_t hi) {
    std::vector<T> buf(4 * dim * V + 3 * nang * V + 3 * q * V);
    const Block<T> phi{buf.data(), buf.data() + dim * V};
    const Block<T> lam{buf.data() + 2 * dim * V, buf.data() + 3 * dim * V};
    T* cb = buf.data() + 4 * dim * V;
    T* sb = cb + nang * V;
    T* gb = sb + nang * V;  // (nang, V) angle gradients of the block
    T* go = gb + nang * V;  // (3q, V) output gradients of the block
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t b0 = blk * V;
      load_angles(c, s, b0, bsz, nang, cb, sb);
      for (int64_t v = 0; v < V; ++v)
        for (int64_t k = 0; k < 3 * q; ++k) go[k * V + v] = b0 + v < bsz ? gout[(b0 + v) * 3 * q + k] : T(0);
      run_forward(phi, gates, cb, sb, q);
      // lam = M psi, M = sum_w gX_w X_w + gY_w Y_w + gZ_w Z_w
      for (int64_t i = 0; i < dim * V; ++i) lam.re[i] = lam.im[i] = T(0);
      for (int w = 0; w < q; ++w) {
        const int64_t bit = int64_t(1) << (q - 1 - w);
        const T *gx = go + w * V, *gy = go + (q + w) * V, *gz = go + (2 * q + w) * V;
        for (int64_t i = 0; i < dim; ++i) {
          const T sign = (i & bit) ? T(-1) : T(1);
          const T *p0 = phi.re + i * V, *q0 = phi.im + i * V;
          T *l0 = lam.re + i * V, *k0 = lam.im + i * V;
          for (int64_t v = 0; v < V; ++v) {
            l0[v] += sign * gz[v] * p0[v];
            k0[v] += sign * gz[v] * q0[v];
          }
          if (i & bit) continue;
          const int64_t j = i | bit;
          const T *p1 = phi.re + j * V, *q1 = phi.im + j * V;
          T *l1 = lam.re + j * V, *k1 = lam.im + j * V;
          // X swaps the pair; Y: (Y psi)_i = -i psi_j, (Y psi)_j = i psi_i
          for (int64_t v = 0; v < V; ++v) {
            l0[v] += gx[v] * p1[v] + gy[v] * q1[v];
            k0[v] += gx[v] * q1[v] - gy[v] * p1[v];
            l1[v] += gx[v] * p0[v] - gy[v] * q0[v];
            k1[v] += gx[v] * q0[v] + gy[v] * p0[v];
          }
        }
      }
      for (auto it = gates.rbegin(); it != gates.rend(); ++it) {
        const T* ck = cb + it->k * V;
        const T* sk = sb + it->k * V;
        apply<T, true>(phi, *it, q, ck, sk);  // phi_{j-1} = U_j^† phi_j
        grad(lam, phi, *it, q, ck, sk, gb + it->k * V);
        apply<T, true>(lam, *it, q, ck, sk);
      }
      for (int64_t v = 0; v < V && b0 + v < bsz; ++v)
        for (int64_t k = 0; k < nang; ++k) gang[(b0 + v) * nang + k] = gb[k * V + v];
    }
  });
}

}  // namespace

// c, s: (B', 4ql) cos and sin of half the angles (computed by the caller, vectorised).
#define QSSM_GATED(T, SUFFIX)                                                                    \
  QSSM_EXPORT int qssm_gated_fwd_##SUFFIX(const T* c, const T* s, T* out, int64_t bsz,          \
                                           int64_t q, int64_t layers, int64_t nthreads) {        \
    return qssm::guarded([&] { forward(c, s, out, bsz, static_cast<int>(q), static_cast<int>(layers), nthreads); });            \
  }                                                                                              \
  QSSM_EXPORT int qssm_gated_bwd_##SUFFIX(const T* c, const T* s, const T* gout, T* gang,       \
                                           int64_t bsz, int64_t q, int64_t layers,               \
                                           int64_t nthreads) {                                   \
    return qssm::guarded([&] { backward(c, s, gout, gang, bsz, static_cast<int>(q), static_cast<int>(layers), nthreads); });    \
  }

QSSM_GATED(float, f32)
QSSM_GATED(double, f64)
