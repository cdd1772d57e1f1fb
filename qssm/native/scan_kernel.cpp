// Fused selective scan for CPU: the recurrence of MODELS.md §2 with the state kept in cache.
//
//   h_t = exp(Δ_t ⊙ A) ⊙ h_{t-1} + B_t ⊗ (Δ_t ⊙ x_t),   y_t = C_t · h_t + D ⊙ x_t
//
// Layouts (all contiguous, row-major):
//   x, delta, y, gy, gx, gdelta   (Bsz, L, di)
//   At                            (N, di)      A transposed: one contiguous row per state n
//   Bm, Cm                        (Bsz, L, N)
//   D                             (di)
//   states                        (Bsz, nchunks, N, di)  state entering each chunk of `chunk` steps
//
// Work unit: one batch row b and a span of w consecutive channels (all of di, unless there are
// fewer batch rows than threads). Per time step each pass is a vectorised loop over the span's
// contiguous channels; the span's N×w state stays in L1/L2, every input element is read once per
// pass and nothing of size L·N·di is ever written. Forward saves the state at each chunk start when
// `states` is non-null. Backward walks chunks in reverse: it recomputes the chunk's states (and
// their decays) from the saved entry state into a K×N×w scratch, K = min(chunk, L), then runs the
// adjoint recurrence G_t = C_t gy_t + dA_{t+1} ⊙ G_{t+1}.
//
// Reductions across channels (gB, gC: over di) and across batch/time (gA, gD) go to
// partial buffers the caller sums: gA/gD one per worker, gB/gC one per channel group (a group's
// batch rows write disjoint rows). No locks, no atomics, deterministic.
//
// Threads: `nthreads` std::threads (the caller passes torch.get_num_threads()); 1 runs inline.
// Built with -fopenmp-simd only (no OpenMP runtime): the pragmas ask for vectorised reductions.
// Float uses a branch-free exp the compiler vectorises (Cephes-style polynomial, ~2 ulp, NaN kept);
// double uses std::exp.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fastmath.h"
#include "workers.h"

namespace {

template <typename T>
struct Args {
  const T *x, *delta, *At, *Bm, *Cm, *D, *gy;
  T *y, *states, *gx, *gdelta;
  T *gA, *gD, *gB, *gC;  // partials: gA/gD per worker; gB/gC per channel group
  int64_t bsz, L, di, N, chunk, nchunks;
};

#define R __restrict

// A span is the channels [d0, d0 + w) of one batch row b. Per time step every pass below is a
// loop over the span's contiguous channels (vectorised), so each step reads whole cache lines of
// x, Δ and y, and the span's N×w state stays in L1.

// ---------------------------------------------------------------- forward

template <typename T>
void forward_span(const Args<T>& a, int64_t b, int64_t d0, int64_t w, T* R h, T* R du, T* R acc) {
  const int64_t di = a.di, N = a.N;
  for (int64_t i = 0; i < N * w; ++i) h[i] = T(0);
  for (int64_t t = 0; t < a.L; ++t) {
    if (a.states && t % a.chunk == 0) {
      T* R s = a.states + ((b * a.nchunks + t / a.chunk) * N) * di + d0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < w; ++i) s[n * di + i] = h[n * w + i];
    }
    const int64_t row = b * a.L + t;
    const T* R dt = a.delta + row * di + d0;
    const T* R u = a.x + row * di + d0;
    const T* R Dd = a.D + d0;
    for (int64_t i = 0; i < w; ++i) {
      du[i] = dt[i] * u[i];
      acc[i] = Dd[i] * u[i];
    }
    for (int64_t n = 0; n < N; ++n) {
      const T* R an = a.At + n * di + d0;
      const T bn = a.Bm[row * N + n], cn = a.Cm[row * N + n];
      T* R hn = h + n * w;
      for (int64_t i = 0; i < w; ++i) {
        hn[i] = qssm::fexp(dt[i] * an[i]) * hn[i] + bn * du[i];
        acc[i] += cn * hn[i];
      }
    }
    T* R yt = a.y + row * di + d0;
    for (int64_t i = 0; i < w; ++i) yt[i] = acc[i];
  }
}

// ---------------------------------------------------------------- backward

template <typename T>
void backward_span(const Args<T>& a, int64_t b, int64_t d0, int64_t w, T* R gB, T* R gC,
                   T* R gA, T* R gD, T* R G, T* R hs, T* R dA, T* R tmp) {
  const int64_t di = a.di, N = a.N, K = a.chunk;
  T* R du = tmp;
  T* R GB = tmp + w;
  T* R gd = tmp + 2 * w;
  const T* R Dd = a.D + d0;
  for (int64_t i = 0; i < N * w; ++i) G[i] = T(0);
  for (int64_t c = a.nchunks - 1; c >= 0; --c) {
    const int64_t t0 = c * K;
    const int64_t k = (t0 + K < a.L ? K : a.L - t0);
    const T* R s = a.states + ((b * a.nchunks + c) * N) * di + d0;
    // entry state in hs[0], the chunk's states h_{t0+j} in hs[j+1], their decays in dA[j]
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < w; ++i) hs[n * w + i] = s[n * di + i];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t row = b * a.L + t0 + j;
      const T* R dt = a.delta + row * di + d0;
      const T* R u = a.x + row * di + d0;
      for (int64_t i = 0; i < w; ++i) du[i] = dt[i] * u[i];
      for (int64_t n = 0; n < N; ++n) {
        const T* R an = a.At + n * di + d0;
        const T bn = a.Bm[row * N + n];
        const T* R hp = hs + (j * N + n) * w;
        T* R hc = hs + ((j + 1) * N + n) * w;
        T* R en = dA + (j * N + n) * w;
        for (int64_t i = 0; i < w; ++i) {
          en[i] = qssm::fexp(dt[i] * an[i]);
          hc[i] = en[i] * hp[i] + bn * du[i];
        }
      }
    }
    for (int64_t j = k - 1; j >= 0; --j) {
      const int64_t row = b * a.L + t0 + j;
      const T* R dt = a.delta + row * di + d0;
      const T* R u = a.x + row * di + d0;
      const T* R g = a.gy + row * di + d0;
      for (int64_t i = 0; i < w; ++i) {
        du[i] = dt[i] * u[i];
        GB[i] = T(0);
        gd[i] = T(0);
      }
      for (int64_t n = 0; n < N; ++n) {
        const T* R an = a.At + n * di + d0;
        const T* R hp = hs + (j * N + n) * w;        // h_{t-1}
        const T* R hc = hs + ((j + 1) * N + n) * w;  // h_t
        const T* R en = dA + (j * N + n) * w;        // dA_t
        T* R gAn = gA + n * di + d0;
        T* R Gn = G + n * w;
        const T bn = a.Bm[row * N + n], cn = a.Cm[row * N + n];
        T sc = T(0), sb = T(0);
#pragma omp simd reduction(+ : sc, sb)
        for (int64_t i = 0; i < w; ++i) {
          const T gt = Gn[i] + cn * g[i];  // G_t
          sc += g[i] * hc[i];
          sb += gt * du[i];
          GB[i] += bn * gt;
          const T m = gt * en[i];  // dA_t ⊙ G_t
          const T p = m * hp[i];   // dLoss/d(Δ_t A_n), per channel
          gAn[i] += dt[i] * p;
          gd[i] += an[i] * p;
          Gn[i] = m;
        }
        gC[row * N + n] += sc;
        gB[row * N + n] += sb;
      }
      T* R gxt = a.gx + row * di + d0;
      T* R gdt = a.gdelta + row * di + d0;
      T* R gDd = gD + d0;
      for (int64_t i = 0; i < w; ++i) {
        gdt[i] = gd[i] + u[i] * GB[i];
        gxt[i] = dt[i] * GB[i] + Dd[i] * g[i];
        gDd[i] += g[i] * u[i];
      }
    }
  }
}

// ---------------------------------------------------------------- work split

// A task is (b, group): group g covers channels [g·span, min(di, (g+1)·span)). With at least as
// many batch rows as threads a group is all of di; otherwise the channels are cut (in multiples
// of one 512-bit vector) so every thread has work.
struct Split {
  int64_t groups, span, tasks;
};

inline Split make_split(int64_t bsz, int64_t di, int64_t nthreads, int64_t elem) {
  if (bsz <= 0 || di <= 0) return {1, 1, 0};  // nothing to do (and nothing to divide by)
  const int64_t vec = 64 / elem;
  int64_t groups = 1;
  if (bsz < nthreads) groups = (nthreads + bsz - 1) / bsz;
  int64_t span = (di + groups - 1) / groups;
  span = ((span + vec - 1) / vec) * vec;
  if (span > di) span = di;
  groups = (di + span - 1) / span;
  return {groups, span, bsz * groups};
}

template <typename T>
void forward(const Args<T>& a, int64_t nthreads) {
  const Split s = make_split(a.bsz, a.di, nthreads, sizeof(T));
  qssm::run_workers(nthreads, s.tasks, [&](int64_t, int64_t lo, int64_t hi) {
    std::vector<T> h(a.N * s.span), tmp(2 * s.span);
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / s.groups, d0 = (task % s.groups) * s.span;
      const int64_t w = std::min(s.span, a.di - d0);
      forward_span(a, b, d0, w, h.data(), tmp.data(), tmp.data() + s.span);
    }
  });
}

template <typename T>
int backward(const Args<T>& a, int64_t nthreads, int64_t groups) {
  const Split s = make_split(a.bsz, a.di, nthreads, sizeof(T));
  if (s.groups != groups) return -1;  // the caller sized gB/gC for another split
  qssm::run_workers(nthreads, s.tasks, [&](int64_t worker, int64_t lo, int64_t hi) {
    const int64_t per = a.N * s.span;
    const int64_t K = std::min(a.chunk, a.L);  // a chunk never holds more than L steps
    std::vector<T> G(per), hs((K + 1) * per), dA(K * per), tmp(3 * s.span);
    T* gA = a.gA + worker * a.N * a.di;
    T* gD = a.gD + worker * a.di;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / s.groups, g = task % s.groups, d0 = g * s.span;
      const int64_t w = std::min(s.span, a.di - d0);
      T* gB = a.gB + g * a.bsz * a.L * a.N;
      T* gC = a.gC + g * a.bsz * a.L * a.N;
      backward_span(a, b, d0, w, gB, gC, gA, gD, G.data(), hs.data(), dA.data(), tmp.data());
    }
  });
  return 0;
}

}  // namespace

// ---------------------------------------------------------------- C ABI (ctypes)

// Channel groups the backward will use for (bsz, di, nthreads): the caller sizes gB/gC partials.
QSSM_EXPORT int64_t qssm_scan_groups(int64_t bsz, int64_t di, int64_t nthreads, int64_t elem) {
  return make_split(bsz, di, nthreads, elem).groups;
}

#define QSSM_DEFINE(T, SUFFIX)                                                                   \
  QSSM_EXPORT int qssm_scan_fwd_##SUFFIX(const T* x, const T* delta, const T* At, const T* Bm,  \
                                          const T* Cm, const T* D, T* y, T* states, int64_t bsz, \
                                          int64_t L, int64_t di, int64_t N, int64_t chunk,       \
                                          int64_t nthreads) {                                    \
    Args<T> a{x, delta, At, Bm, Cm, D, nullptr, y, states, nullptr, nullptr, nullptr, nullptr,  \
              nullptr, nullptr, bsz, L, di, N, chunk, (L + chunk - 1) / chunk};                  \
    return qssm::guarded([&] { forward(a, nthreads); });                                                      \
  }                                                                                              \
  QSSM_EXPORT int qssm_scan_bwd_##SUFFIX(const T* x, const T* delta, const T* At, const T* Bm,  \
                                          const T* Cm, const T* D, const T* states, const T* gy, \
                                          T* gx, T* gdelta, T* gA, T* gD, T* gB, T* gC,          \
                                          int64_t bsz, int64_t L, int64_t di, int64_t N,         \
                                          int64_t chunk, int64_t nthreads, int64_t groups) {     \
    Args<T> a{x, delta, At, Bm, Cm, D, gy, nullptr, const_cast<T*>(states), gx, gdelta, gA, gD, \
              gB, gC, bsz, L, di, N, chunk, (L + chunk - 1) / chunk};                            \
    int rc = 0;                                                                                  \
    const int g = qssm::guarded([&] { rc = backward(a, nthreads, groups); });                    \
    return g ? g : rc;                                      \
  }

QSSM_DEFINE(float, f32)
QSSM_DEFINE(double, f64)
