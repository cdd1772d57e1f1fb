// Shared by the circuit kernels: a block of V samples simulated at once, one per vector lane.
// Amplitude i of lane v is re[i·V + v] / im[i·V + v]; a gate is a loop over amplitude pairs whose
// body is one vector operation across the lanes (per-lane cos/sin), with no data-dependent branch.
#pragma once
#include <cstdint>

namespace {

template <typename T>
constexpr int64_t lanes() { return 64 / sizeof(T); }

template <typename T>
struct Block {
  T *re, *im;  // (dim, V)
};

// Each loop below visits the pairs (i, i | bit) with bit clear in i.
#define FOR_PAIRS(dim, bit, ...)                            \
  for (int64_t hi_ = 0; hi_ < (dim); hi_ += 2 * (bit))      \
    for (int64_t i = hi_; i < hi_ + (bit); ++i) {           \
      const int64_t j = i + (bit);                          \
      __VA_ARGS__                                           \
    }

// RY per lane: (a0, a1) <- (c a0 - s a1, s a0 + c a1); s -> -s undoes it.
template <typename T>
void apply_ry(const Block<T>& st, int64_t dim, int64_t bit, const T* c0, const T* s0, T sign) {
  constexpr int64_t V = lanes<T>();
  T c[V], s[V];  // local copies: provably not aliased by the state, so they stay in registers
  for (int64_t v = 0; v < V; ++v) {
    c[v] = c0[v];
    s[v] = sign * s0[v];
  }
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  FOR_PAIRS(dim, bit, {
    T *r0 = re + i * V, *r1 = re + j * V, *m0 = im + i * V, *m1 = im + j * V;
    for (int64_t v = 0; v < V; ++v) {
      const T a = r0[v], b = r1[v], x = m0[v], y = m1[v];
      r0[v] = c[v] * a - s[v] * b;
      r1[v] = s[v] * a + c[v] * b;
      m0[v] = c[v] * x - s[v] * y;
      m1[v] = s[v] * x + c[v] * y;
    }
  })
}

// 2 Re <λ| dRY/dθ |φ> per lane (dRY = ½[[-s, -c], [c, -s]]; the ½ and the 2 cancel).
template <typename T>
void grad_ry(const Block<T>& lam, const Block<T>& phi, int64_t dim, int64_t bit, const T* __restrict c,
             const T* __restrict s, T* __restrict out) {
  constexpr int64_t V = lanes<T>();
  T acc[V] = {};
  FOR_PAIRS(dim, bit, {
    const T *r0 = phi.re + i * V, *r1 = phi.re + j * V, *m0 = phi.im + i * V, *m1 = phi.im + j * V;
    const T *lr0 = lam.re + i * V, *lr1 = lam.re + j * V, *li0 = lam.im + i * V, *li1 = lam.im + j * V;
    for (int64_t v = 0; v < V; ++v)
      acc[v] += lr0[v] * (-s[v] * r0[v] - c[v] * r1[v]) + li0[v] * (-s[v] * m0[v] - c[v] * m1[v])
              + lr1[v] * (c[v] * r0[v] - s[v] * r1[v]) + li1[v] * (c[v] * m0[v] - s[v] * m1[v]);
  })
  for (int64_t v = 0; v < V; ++v) out[v] = acc[v];
}

}  // namespace
