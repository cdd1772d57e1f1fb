// Causal depthwise Conv1d followed by SiLU, fused (the "Conv -> SiLU" of the Mamba-style blocks):
//
//   a[b,t,c] = bias[c] + Σ_k w[c,k] · x[b, t-(K-1)+k, c]   (x = 0 before t = 0)
//   y[b,t,c] = a · σ(a)
//
// x is (B, T, C) with channels contiguous and any batch/time strides (the in_proj split is a
// strided view: no copy is made); y is a fresh contiguous (B, T, C). One pass reads x and writes
// y, against a transpose, a conv, a slice, a transpose back and a SiLU over strided memory in
// the torch path. Backward recomputes a from x (K multiply-adds) instead of keeping it:
//   g_a = g_y · σ(a) · (1 + a (1 - σ(a)))
//   g_x[t] = Σ_k w[k] g_a[t + (K-1) - k],  g_w[c,k] = Σ_{b,t} g_a[b,t,c] x[b,t-(K-1)+k,c],
//   g_bias[c] = Σ_{b,t} g_a[b,t,c]
// Work unit: one batch row b; per time step a loop over the contiguous channels (vectorised).
// g_w / g_bias are summed into per-worker partials that the caller adds up.
#include <cstdint>
#include <vector>

#include "fastmath.h"
#include "workers.h"

namespace {

template <typename T>
struct Conv {
  const T *x, *w, *bias;  // x (B, T, C) strided; w (C, K); bias (C)
  int64_t bsz, len, ch, k, sb, st;  // sizes; x's batch and time strides (elements)
};

template <typename T>
inline T sigmoid(T a) { return T(1) / (T(1) + qssm::fexp(-a)); }

// a (C) for step t of row b, into pre.
template <typename T>
void preact(const Conv<T>& cv, const T* wt, int64_t b, int64_t t, T* __restrict pre) {
  const int64_t C = cv.ch, K = cv.k;
  for (int64_t c = 0; c < C; ++c) pre[c] = cv.bias[c];
  for (int64_t j = 0; j < K; ++j) {
    const int64_t s = t - (K - 1) + j;
    if (s < 0) continue;
    const T* __restrict xs = cv.x + b * cv.sb + s * cv.st;
    const T* __restrict wj = wt + j * C;
    for (int64_t c = 0; c < C; ++c) pre[c] += wj[c] * xs[c];
  }
}

template <typename T>
void forward(const Conv<T>& cv, T* y, int64_t nthreads) {
  const int64_t C = cv.ch, K = cv.k;
  std::vector<T> wt(K * C);  // w transposed to (K, C): contiguous per tap
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < K; ++j) wt[j * C + c] = cv.w[c * K + j];
  qssm::run_workers(nthreads, cv.bsz, [&](int64_t, int64_t lo, int64_t hi) {
    std::vector<T> pre(C);
    for (int64_t b = lo; b < hi; ++b)
      for (int64_t t = 0; t < cv.len; ++t) {
        preact(cv, wt.data(), b, t, pre.data());
        T* __restrict yt = y + (b * cv.len + t) * C;
        for (int64_t c = 0; c < C; ++c) yt[c] = pre[c] * sigmoid(pre[c]);
      }
  });
}

template <typename T>
void backward(const Conv<T>& cv, const T* gy, T* gx, T* gw, T* gbias, int64_t nthreads) {
  const int64_t C = cv.ch, K = cv.k, L = cv.len;
  std::vector<T> wt(K * C);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < K; ++j) wt[j * C + c] = cv.w[c * K + j];
  qssm::run_workers(nthreads, cv.bsz, [&](int64_t worker, int64_t lo, int64_t hi) {
    std::vector<T> pre(C), ga(L * C);
    T* __restrict gwp = gw + worker * K * C;  // (K, C) partial, transposed back by the caller
    T* __restrict gbp = gbias + worker * C;
    for (int64_t b = lo; b < hi; ++b) {
      for (int64_t t = 0; t < L; ++t) {
        preact(cv, wt.data(), b, t, pre.data());
        const T* __restrict g = gy + (b * L + t) * C;
        T* __restrict gat = ga.data() + t * C;
        for (int64_t c = 0; c < C; ++c) {
          const T sg = sigmoid(pre[c]);
          gat[c] = g[c] * sg * (T(1) + pre[c] * (T(1) - sg));
          gbp[c] += gat[c];
        }
      }
      for (int64_t s = 0; s < L; ++s) {
        // x[s] feeds a[t] for t = s + (K-1) - j, tap j
        const T* __restrict xs = cv.x + b * cv.sb + s * cv.st;
        T* __restrict gxs = gx + (b * L + s) * C;
        for (int64_t c = 0; c < C; ++c) gxs[c] = T(0);
        for (int64_t j = 0; j < K; ++j) {
          const int64_t t = s + (K - 1) - j;
          if (t >= L) continue;
          const T* __restrict gat = ga.data() + t * C;
          const T* __restrict wj = wt.data() + j * C;
          T* __restrict gwj = gwp + j * C;
          for (int64_t c = 0; c < C; ++c) {
            gxs[c] += wj[c] * gat[c];
            gwj[c] += gat[c] * xs[c];
          }
        }
      }
    }
  });
}

}  // namespace

// x strided (sb, st in elements; channels contiguous); y, gy, gx contiguous (B, T, C);
// gw (nthreads, K, C) and gbias (nthreads, C) zeroed partials.
#define QSSM_CONV(T, SUFFIX)                                                                      \
  QSSM_EXPORT int qssm_conv_silu_fwd_##SUFFIX(const T* x, const T* w, const T* bias, T* y,      \
                                               int64_t bsz, int64_t len, int64_t ch, int64_t k,   \
                                               int64_t sb, int64_t st, int64_t nthreads) {        \
    return qssm::guarded([&] { forward(Conv<T>{x, w, bias, bsz, len, ch, k, sb, st}, y, nthreads); });                           \
  }                                                                                               \
  QSSM_EXPORT int qssm_conv_silu_bwd_##SUFFIX(const T* x, const T* w, const T* bias,            \
                                               const T* gy, T* gx, T* gw, T* gbias, int64_t bsz,  \
                                               int64_t len, int64_t ch, int64_t k, int64_t sb,    \
                                               int64_t st, int64_t nthreads) {                    \
    return qssm::guarded([&] { backward(Conv<T>{x, w, bias, bsz, len, ch, k, sb, st}, gy, gx, gw, gbias, nthreads); });          \
  }

QSSM_CONV(float, f32)
QSSM_CONV(double, f64)
