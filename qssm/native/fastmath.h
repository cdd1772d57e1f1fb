// Shared by the native kernels: exp for float that the compiler vectorises (no libm call, no
// branch), and a type-generic fexp (double keeps std::exp's accuracy).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace qssm {

inline float exp_approx(float x) {
  // exp(x) = 2^n · exp(r), r = x - n ln2 ∈ [-ln2/2, ln2/2]; degree-6 polynomial for exp(r).
  const float hi = 88.3762626647949f, lo = -87.3365447505531f;
  const bool under = x < lo;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;  // NaN compares false both times and stays NaN
  const float fn = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(fn) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float out = p * scale;
  return under ? 0.0f : out;
}

inline float fexp(float x) { return exp_approx(x); }
inline double fexp(double x) { return std::exp(x); }

}  // namespace qssm
