// Building blocks shared by every dose formula: the host/device marker, a fast
// erf, clamped interpolation. NVRTC-clean: no standard headers under NVRTC.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SFRT_HD __host__ __device__
#else
#define SFRT_HD
#endif

// Marks a loop over a per-thread scratch array (SFRT_LATERAL_TILE entries, params.h). The GPU
// compilers unroll it by 4 (as nvcc does by itself for loops of unknown length) and never in
// full: fully unrolled, the arrays move into registers (about 240 per thread, half the
// occupancy) and every tile runs at full width however few entries it holds.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SFRT_SCRATCH_LOOP _Pragma("unroll 4")
#else
#define SFRT_SCRATCH_LOOP
#endif

#if !defined(__CUDACC_RTC__)
#include <cmath>
#endif

namespace sfrt {

/// erf(x) by Abramowitz & Stegun 7.1.28: 1 - (1 + a1 x + ... + a6 x^6)^-16 for x >= 0, odd in x.
/// Absolute error <= 3e-7 in exact arithmetic (1.8e-6 in float32, measured against
/// scipy.special.erf). Branch-free so loops over it vectorise: for |x| > ~13 the 16th
/// power overflows to +inf and 1/inf = 0 gives exactly 1 (IEEE; never build with -ffast-math).
SFRT_HD inline float erf_fast(float x) {
    const float ax = fabsf(x);
    float p = 0.0000430638f;
    p = p * ax + 0.0002765672f;
    p = p * ax + 0.0001520143f;
    p = p * ax + 0.0092705272f;
    p = p * ax + 0.0422820123f;
    p = p * ax + 0.0705230784f;
    p = p * ax + 1.0f;
    const float p2 = p * p, p4 = p2 * p2, p8 = p4 * p4, p16 = p8 * p8;
    return copysignf(1.0f - 1.0f / p16, x);
}

SFRT_HD inline double clamp_d(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/// Split a fractional index f (clamped to [0, n-1]) into a base index i <= n-2 and weight t.
SFRT_HD inline void split_index(double f, int n, int& i, double& t) {
    f = clamp_d(f, 0.0, (double)(n - 1));
    i = (int)floor(f);
    if (i > n - 2) i = n - 2;
    if (i < 0) i = 0;
    t = (n > 1) ? f - (double)i : 0.0;
}

/// Linear interpolation of a table at a split index (i, t) from split_index.
SFRT_HD inline float table_at(const float* table, int n, int i, double t) {
    const int j = (n > 1) ? i + 1 : i;
    return (float)((1.0 - t) * table[i] + t * table[j]);
}

/// Linear interpolation of a table with nodes at i * step, clamped at both ends.
SFRT_HD inline float table_lerp(const float* table, int n, double x, double step) {
    int i; double t;
    split_index(x / step, n, i, t);
    return table_at(table, n, i, t);
}

}  // namespace sfrt
