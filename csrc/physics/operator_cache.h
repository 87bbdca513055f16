// Stored per-point factors of photon_bev_dose (sfrt_engine/optimise/_engine_cpp.py, the CPU operator):
// what does not depend on the weights is evaluated once per point and kept, so an optimiser's hundreds
// of forward and adjoint calls only multiply. Per point m of a beam:
//   fac[m][0] = T(d) (SAD/z)^2 as the float photon_bev_dose multiplies by; fac[m][1 + k] = A_k(d);
//   per tabulated component k >= n_direct: the table read (scatter_table_read) as base[m][k - n_direct]
//     and frac[m][k - n_direct][3] = (tl, tv, tu);
//   per directly summed component k < n_direct: the beamlet window win[m][k] = (i0, ni, j0, nj) of the
//     cut-off and, from pool + offset[m], the profiles Pu (ni values) then Pv (nj values) of each such
//     component, computed with photon_profile exactly as photon_bev_dose computes them.
// photon_cached_dose then repeats photon_bev_dose's arithmetic (the same products and sums, in the same
// order) on the stored values, and photon_cached_adjoint is its transpose (as photon_bev_adjoint).
#pragma once

#include "adjoint.h"

namespace sfrt {

/// Fills the stored factors of one point (pool may be null: then only the pool size is returned).
/// Returns the number of pool floats the point needs.
SFRT_HD inline int photon_cache_point(const PhotonBeamParams& b, const float* tdd, const float* comp_w,
                                      const float* comp_s, double u, double v, double zs, double depth, float* fac,
                                      long long* base, double* frac, int* win, float* pool) {
    float c, a[SFRT_MAX_COMPONENTS];
    double s_iso[SFRT_MAX_COMPONENTS];
    for (int k = 0; k <= b.ncomp; ++k) fac[k] = 0.0f;
    for (int k = 0; k < b.n_direct; ++k) win[4 * k] = win[4 * k + 1] = win[4 * k + 2] = win[4 * k + 3] = 0;
    for (int k = b.n_direct; k < b.ncomp; ++k) {
        base[k - b.n_direct] = 0;
        frac[3 * (k - b.n_direct)] = frac[3 * (k - b.n_direct) + 1] = frac[3 * (k - b.n_direct) + 2] = 0.0;
    }
    if (!photon_factors(b, tdd, comp_w, comp_s, zs, depth, c, a, s_iso)) return 0;
    fac[0] = c;
    const float u_rel = (float)(u - b.edge_u0), v_rel = (float)(v - b.edge_v0);
    int used = 0;
    for (int k = 0; k < b.ncomp; ++k) {
        fac[1 + k] = a[k];
        if (a[k] == 0.0f) continue;
        if (k >= b.n_direct) {
            const ScatterRead t = scatter_table_read(b, u, v, s_iso[k]);
            base[k - b.n_direct] = t.base;
            double* f = frac + 3 * (k - b.n_direct);
            f[0] = t.tl; f[1] = t.tv; f[2] = t.tu;
            continue;
        }
        int i0, i1, j0, j1;
        if (!photon_window(b, u, v, s_iso[k], i0, i1, j0, j1)) continue;
        const int ni = i1 - i0 + 1, nj = j1 - j0 + 1;
        win[4 * k] = i0; win[4 * k + 1] = ni; win[4 * k + 2] = j0; win[4 * k + 3] = nj;
        if (pool != nullptr) {
            const float inv = (float)(0.70710678118654752 / s_iso[k]);
            for (int i = 0; i < ni; ++i) pool[used + i] = photon_profile(u_rel, i0 + i, (float)b.beamlet_du, inv);
            for (int j = 0; j < nj; ++j) pool[used + ni + j] = photon_profile(v_rel, j0 + j, (float)b.beamlet_dv, inv);
        }
        used += ni + nj;
    }
    return used;
}

/// photon_bev_dose from the stored factors of one point (see the file comment).
SFRT_HD inline float photon_cached_dose(const PhotonBeamParams& b, const float* weights, const float* scatter,
                                        const float* fac, const long long* base, const double* frac, const int* win,
                                        const float* pool, float* col) {
    if (fac[0] == 0.0f) return 0.0f;
    float lateral = 0.0f;
    for (int k = 0; k < b.ncomp; ++k) {
        const float a_k = fac[1 + k];
        if (a_k == 0.0f) continue;
        if (k >= b.n_direct) {
            const float* f = scatter + base[k - b.n_direct];
            const double tl = frac[3 * (k - b.n_direct)], tv = frac[3 * (k - b.n_direct) + 1],
                         tu = frac[3 * (k - b.n_direct) + 2];
            const long long ou = b.tab_nu > 1 ? 1 : 0, ov = b.tab_nv > 1 ? b.tab_nu : 0,
                            ol = b.tab_nlev > 1 ? (long long)b.tab_nv * b.tab_nu : 0;
            const double f00 = (1 - tu) * f[0] + tu * f[ou], f01 = (1 - tu) * f[ov] + tu * f[ov + ou];
            const double f10 = (1 - tu) * f[ol] + tu * f[ol + ou], f11 = (1 - tu) * f[ol + ov] + tu * f[ol + ov + ou];
            lateral += a_k * (float)((1 - tl) * ((1 - tv) * f00 + tv * f01) + tl * ((1 - tv) * f10 + tv * f11));
            continue;
        }
        const int i0 = win[4 * k], ni = win[4 * k + 1], j0 = win[4 * k + 2], nj = win[4 * k + 3];
        if (ni == 0) continue;
        const float* pu = pool;
        const float* pv = pool + ni;
        pool += ni + nj;
        for (int i = 0; i < ni; ++i) col[i] = 0.0f;
        for (int j = 0; j < nj; ++j) {
            const float* w = weights + (long long)(j0 + j) * b.nbu + i0;
            const float pvj = pv[j];
            for (int i = 0; i < ni; ++i) col[i] += pvj * w[i];
        }
        float sum = 0.0f;
#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#pragma omp simd reduction(+ : sum)
#endif
        for (int i = 0; i < ni; ++i) sum += col[i] * pu[i];
        lateral += a_k * sum;
    }
    return fac[0] * lateral;
}

/// Transpose of photon_cached_dose (as photon_bev_adjoint): adds r dD/dW to grad_w and r dD/dF to grad_table.
SFRT_HD inline void photon_cached_adjoint(const PhotonBeamParams& b, const float* fac, const long long* base,
                                          const double* frac, const int* win, const float* pool, double r,
                                          double* grad_w, double* grad_table) {
    if (r == 0.0 || fac[0] == 0.0f) return;
    for (int k = 0; k < b.ncomp; ++k) {
        const float a_k = fac[1 + k];
        if (a_k == 0.0f) continue;
        const double g = r * (double)fac[0] * (double)a_k;
        if (k >= b.n_direct) {
            const double tl = frac[3 * (k - b.n_direct)], tv = frac[3 * (k - b.n_direct) + 1],
                         tu = frac[3 * (k - b.n_direct) + 2];
            const long long ou = b.tab_nu > 1 ? 1 : 0, ov = b.tab_nv > 1 ? b.tab_nu : 0,
                            ol = b.tab_nlev > 1 ? (long long)b.tab_nv * b.tab_nu : 0;
            double* f = grad_table + base[k - b.n_direct];
            const double gl[2] = {g * (1 - tl), g * tl};
            const long long dl[2] = {0, ol};
            for (int q = 0; q < 2; ++q) {
                f[dl[q]] += gl[q] * (1 - tv) * (1 - tu);
                f[dl[q] + ou] += gl[q] * (1 - tv) * tu;
                f[dl[q] + ov] += gl[q] * tv * (1 - tu);
                f[dl[q] + ov + ou] += gl[q] * tv * tu;
            }
            continue;
        }
        const int i0 = win[4 * k], ni = win[4 * k + 1], j0 = win[4 * k + 2], nj = win[4 * k + 3];
        if (ni == 0) continue;
        const float* pu = pool;
        const float* pv = pool + ni;
        pool += ni + nj;
        for (int j = 0; j < nj; ++j) {
            const double gj = g * (double)pv[j];
            double* row = grad_w + (long long)(j0 + j) * b.nbu + i0;
            for (int i = 0; i < ni; ++i) row[i] += gj * (double)pu[i];
        }
    }
}

}  // namespace sfrt

namespace sfrt {

// Proton beams (proton_bev_dose), per point m: its layers with a non-empty spot window, in layer order, as
// entries e in [entry_offset[m], entry_offset[m + 1]): layer[e], q[e] (IDD / (2 pi s^2) as the forward's
// float product) and win[e] = (i0, ni, j0, nj); from pool + pool_offset[m], each entry's profiles gu (ni)
// then gv (nj), computed with proton_profile exactly as proton_bev_dose computes them.

/// Fills the stored entries of one point (null arrays: count only). Returns the entries; adds the pool
/// floats to *pool_count.
SFRT_HD inline int proton_cache_point(const ProtonBeamParams& b, const double* layers, const float* idd,
                                      const float* sigma, double u, double v, double zs, double depth, int* layer,
                                      float* q, int* win, float* pool, long long* pool_count) {
    int entries = 0;
    long long used = 0;
    for (int l = 0; l < b.n_layers; ++l) {
        const SpotLayerParams s = unpack_layer(layers, l);
        float ql; double s_iso; int i0, i1, j0, j1;
        if (!proton_layer_factors(b, s, idd, sigma, u, v, zs, depth, ql, s_iso, i0, i1, j0, j1)) continue;
        const int ni = i1 - i0 + 1, nj = j1 - j0 + 1;
        if (layer != nullptr) {
            layer[entries] = l;
            q[entries] = ql;
            int* w = win + 4 * entries;
            w[0] = i0; w[1] = ni; w[2] = j0; w[3] = nj;
            const float inv2 = (float)(-0.5 / (s_iso * s_iso));
            const float u_rel = (float)(u - s.u0), v_rel = (float)(v - s.v0);
            for (int i = 0; i < ni; ++i) pool[used + i] = proton_profile(u_rel, i0 + i, (float)s.du, inv2);
            for (int j = 0; j < nj; ++j) pool[used + ni + j] = proton_profile(v_rel, j0 + j, (float)s.dv, inv2);
        }
        used += ni + nj;
        ++entries;
    }
    *pool_count += used;
    return entries;
}

/// proton_bev_dose from the stored entries of one point.
SFRT_HD inline float proton_cached_dose(const double* layers, const float* weights, int n_entries, const int* layer,
                                        const float* q, const int* win, const float* pool, float* col) {
    float total = 0.0f;
    for (int e = 0; e < n_entries; ++e) {
        const SpotLayerParams s = unpack_layer(layers, layer[e]);
        const int i0 = win[4 * e], ni = win[4 * e + 1], j0 = win[4 * e + 2], nj = win[4 * e + 3];
        const float* gu = pool;
        const float* gv = pool + ni;
        pool += ni + nj;
        const float* w0 = weights + s.weight_offset;
        for (int i = 0; i < ni; ++i) col[i] = 0.0f;
        for (int j = 0; j < nj; ++j) {
            const float* w = w0 + (long long)(j0 + j) * s.nu + i0;
            const float g = gv[j];
            for (int i = 0; i < ni; ++i) col[i] += g * w[i];
        }
        float sum = 0.0f;
#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#pragma omp simd reduction(+ : sum)
#endif
        for (int i = 0; i < ni; ++i) sum += col[i] * gu[i];
        total += q[e] * sum;
    }
    return total;
}

/// Transpose of proton_cached_dose (as proton_bev_adjoint): adds r dD/dW to grad_w.
SFRT_HD inline void proton_cached_adjoint(const double* layers, int n_entries, const int* layer, const float* q,
                                          const int* win, const float* pool, double r, double* grad_w) {
    if (r == 0.0) return;
    for (int e = 0; e < n_entries; ++e) {
        const SpotLayerParams s = unpack_layer(layers, layer[e]);
        const int i0 = win[4 * e], ni = win[4 * e + 1], j0 = win[4 * e + 2], nj = win[4 * e + 3];
        const float* gu = pool;
        const float* gv = pool + ni;
        pool += ni + nj;
        const double g = r * (double)q[e];
        for (int j = 0; j < nj; ++j) {
            const double gj = g * (double)gv[j];
            double* row = grad_w + s.weight_offset + (long long)(j0 + j) * s.nu + i0;
            for (int i = 0; i < ni; ++i) row[i] += gj * (double)gu[i];
        }
    }
}

}  // namespace sfrt
