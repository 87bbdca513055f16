// Adjoints of the photon and proton dose (issue 12; specification in
// sfrt_engine/optimise/_reference.py): the transposes of photon_bev_dose and proton_bev_dose.
//
// The dose of a voxel is linear in the beam's weights W (and, for the components read from the
// scatter table, in the table F, itself linear in W). Two forms of the same derivatives:
//  - scatter (CPU): one voxel adds r dD/dW to every beamlet (spot) it depends on, and r dD/dF to
//    the 8 table nodes it reads; the drivers give each thread its own gradient arrays.
//  - gather (GPU): dD/dW_ji of one voxel for one beamlet (spot), so a thread per weight sums over
//    voxels in a fixed order; the table nodes likewise per (v, u) column of nodes.
// Both evaluate the forward's own float32 profiles (same erf_fast / expf arguments, same beamlet
// ranges of the lateral cut-off, same zero tests), so they are its exact transpose; products and
// sums are in float64.
#pragma once

#include "photon.h"
#include "proton.h"

namespace sfrt {

/// The depth-dependent factors of photon_bev_dose at one point: c = T(d) (SAD/z)^2 (as the float
/// the forward multiplies by), the component weights A_k and sigmas s_k (isocentre plane, mm).
/// Returns false where the forward returns 0 before any beamlet (T(d) == 0).
SFRT_HD inline bool photon_factors(const PhotonBeamParams& b, const float* tdd, const float* comp_w,
                                   const float* comp_s, double zs, double depth, float& c, float* a,
                                   double* s_iso) {
    const double scale = b.sad / zs;
    int id; double td;
    split_index(depth / b.depth_step, b.ndepth, id, td);
    const float t_depth = table_at(tdd, b.ndepth, id, td);
    if (t_depth == 0.0f) return false;
    c = (float)(t_depth * scale * scale);
    for (int k = 0; k < b.ncomp; ++k) {
        a[k] = table_at(comp_w + k * b.ndepth, b.ndepth, id, td);
        s_iso[k] = table_at(comp_s + k * b.ndepth, b.ndepth, id, td) * scale;
    }
    return true;
}

/// Beamlet range [i0, i1] x [j0, j1] of component sigma s_iso that photon_bev_dose visits (cut-off).
SFRT_HD inline bool photon_window(const PhotonBeamParams& b, double u, double v, double s_iso, int& i0, int& i1,
                                  int& j0, int& j1) {
    const double reach = b.cutoff_sigma * s_iso;
    i0 = (int)floor((u - reach - b.edge_u0) / b.beamlet_du);
    i1 = (int)floor((u + reach - b.edge_u0) / b.beamlet_du);
    j0 = (int)floor((v - reach - b.edge_v0) / b.beamlet_dv);
    j1 = (int)floor((v + reach - b.edge_v0) / b.beamlet_dv);
    i0 = i0 < 0 ? 0 : i0; i1 = i1 > b.nbu - 1 ? b.nbu - 1 : i1;
    j0 = j0 < 0 ? 0 : j0; j1 = j1 > b.nbv - 1 ? b.nbv - 1 : j1;
    return i0 <= i1 && j0 <= j1;
}

/// The erf-difference profile of beamlet e along one axis, exactly as photon_bev_dose computes it:
/// [erf_fast((x_rel - e w) inv) - erf_fast((x_rel - (e + 1) w) inv)] / 2.
SFRT_HD inline float photon_profile(float x_rel, int e, float w, float inv) {
    return 0.5f * (erf_fast((x_rel - (float)e * w) * inv) - erf_fast((x_rel - (float)(e + 1) * w) * inv));
}

/// Scatter form: adds r dD/dW_ji to grad_w[j * nbu + i] (components k < n_direct) and r dD/dF to the
/// table nodes grad_table[...] (components k >= n_direct) for the point (u, v, zs, depth).
SFRT_HD inline void photon_bev_adjoint(const PhotonBeamParams& b, const float* tdd, const float* comp_w,
                                       const float* comp_s, double u, double v, double zs, double depth, double r,
                                       double* grad_w, double* grad_table) {
    float c, a[SFRT_MAX_COMPONENTS];
    double s_iso[SFRT_MAX_COMPONENTS];
    if (r == 0.0 || !photon_factors(b, tdd, comp_w, comp_s, zs, depth, c, a, s_iso)) return;
    const float u_rel = (float)(u - b.edge_u0), v_rel = (float)(v - b.edge_v0);
    const float du = (float)b.beamlet_du, dv = (float)b.beamlet_dv;
    float pu[SFRT_MAX_BEAMLETS_1D];
    for (int k = 0; k < b.ncomp; ++k) {
        if (a[k] == 0.0f) continue;
        const double g = r * (double)c * (double)a[k];
        if (k >= b.n_direct) {
            const ScatterRead t = scatter_table_read(b, u, v, s_iso[k]);
            double* f = grad_table + t.base;
            const double w00 = (1 - t.tv) * (1 - t.tu), w01 = (1 - t.tv) * t.tu, w10 = t.tv * (1 - t.tu),
                         w11 = t.tv * t.tu;
            const double gl[2] = {g * (1 - t.tl), g * t.tl};
            const long long ol[2] = {0, t.ol};
            for (int q = 0; q < 2; ++q) {
                f[ol[q]] += gl[q] * w00;
                f[ol[q] + t.ou] += gl[q] * w01;
                f[ol[q] + t.ov] += gl[q] * w10;
                f[ol[q] + t.ov + t.ou] += gl[q] * w11;
            }
            continue;
        }
        int i0, i1, j0, j1;
        if (!photon_window(b, u, v, s_iso[k], i0, i1, j0, j1)) continue;
        const float inv = (float)(0.70710678118654752 / s_iso[k]);
        for (int i = i0; i <= i1; ++i) pu[i - i0] = photon_profile(u_rel, i, du, inv);
        for (int j = j0; j <= j1; ++j) {
            const double gj = g * (double)photon_profile(v_rel, j, dv, inv);
            double* row = grad_w + (long long)j * b.nbu + i0;
            for (int i = 0; i <= i1 - i0; ++i) row[i] += gj * (double)pu[i];
        }
    }
}

/// Gather form, components k < n_direct: dD/dW_ji of the point (u, v, zs, depth) for beamlet (j, i).
SFRT_HD inline double photon_beamlet_influence(const PhotonBeamParams& b, const float* tdd, const float* comp_w,
                                               const float* comp_s, double u, double v, double zs, double depth,
                                               int j, int i) {
    float c, a[SFRT_MAX_COMPONENTS];
    double s_iso[SFRT_MAX_COMPONENTS];
    if (!photon_factors(b, tdd, comp_w, comp_s, zs, depth, c, a, s_iso)) return 0.0;
    const float u_rel = (float)(u - b.edge_u0), v_rel = (float)(v - b.edge_v0);
    double acc = 0.0;
    for (int k = 0; k < b.n_direct; ++k) {
        if (a[k] == 0.0f) continue;
        int i0, i1, j0, j1;
        if (!photon_window(b, u, v, s_iso[k], i0, i1, j0, j1) || i < i0 || i > i1 || j < j0 || j > j1) continue;
        const float inv = (float)(0.70710678118654752 / s_iso[k]);
        acc += (double)a[k] * (double)photon_profile(v_rel, j, (float)b.beamlet_dv, inv) *
               (double)photon_profile(u_rel, i, (float)b.beamlet_du, inv);
    }
    return (double)c * acc;
}

/// Gather form, components k >= n_direct: adds r dD/dF[l][jn][in] of the point to column[l] for
/// every level l, for the table node column (jn, in) (column: tab_nlev entries).
SFRT_HD inline void photon_table_column_adjoint(const PhotonBeamParams& b, const float* tdd, const float* comp_w,
                                                const float* comp_s, double u, double v, double zs, double depth,
                                                double r, int jn, int in, double* column, long long level_stride) {
    float c, a[SFRT_MAX_COMPONENTS];
    double s_iso[SFRT_MAX_COMPONENTS];
    if (r == 0.0 || !photon_factors(b, tdd, comp_w, comp_s, zs, depth, c, a, s_iso)) return;
    for (int k = b.n_direct; k < b.ncomp; ++k) {
        if (a[k] == 0.0f) continue;
        const ScatterRead t = scatter_table_read(b, u, v, s_iso[k]);
        const int sv = t.ov ? 1 : 0, su = t.ou ? 1 : 0;
        double w = 0.0;  // weight of node column (jn, in) among the 4 (v, u) corners (2 or 4 coincide on a one-node axis)
        if (jn == t.iv && in == t.iu) w += (1 - t.tv) * (1 - t.tu);
        if (jn == t.iv && in == t.iu + su) w += (1 - t.tv) * t.tu;
        if (jn == t.iv + sv && in == t.iu) w += t.tv * (1 - t.tu);
        if (jn == t.iv + sv && in == t.iu + su) w += t.tv * t.tu;
        if (w == 0.0) continue;
        const double g = r * (double)c * (double)a[k] * w;
        column[(long long)t.il * level_stride] += g * (1 - t.tl);
        column[(long long)(t.il + (t.ol ? 1 : 0)) * level_stride] += g * t.tl;
    }
}

/// The factors of layer s of proton_bev_dose at one point: q = IDD / (2 pi s^2) as the forward's float
/// product, the isocentre-plane sigma and the spot range [i0, i1] x [j0, j1] of the cut-off. False where
/// the layer gives the point nothing.
SFRT_HD inline bool proton_layer_factors(const ProtonBeamParams& b, const SpotLayerParams& s, const float* idd,
                                         const float* sigma, double u, double v, double zs, double depth, float& q,
                                         double& s_iso, int& i0, int& i1, int& j0, int& j1) {
    int id; double td;
    split_index((depth + s.range_shifter_mm) / b.depth_step, b.ndepth, id, td);
    const long long row = (long long)s.energy * b.ndepth;
    const float dd = table_at(idd + row, b.ndepth, id, td);
    if (dd == 0.0f) return false;
    const double sig = table_at(sigma + row, b.ndepth, id, td);
    s_iso = sig * (b.sad / zs);
    const double reach = b.cutoff_sigma * s_iso;
    i0 = (int)ceil((u - reach - s.u0) / s.du); i1 = (int)floor((u + reach - s.u0) / s.du);
    j0 = (int)ceil((v - reach - s.v0) / s.dv); j1 = (int)floor((v + reach - s.v0) / s.dv);
    i0 = i0 < 0 ? 0 : i0; i1 = i1 > s.nu - 1 ? s.nu - 1 : i1;
    j0 = j0 < 0 ? 0 : j0; j1 = j1 > s.nv - 1 ? s.nv - 1 : j1;
    q = dd * (float)(0.15915494309189535 / (sig * sig));
    return i0 <= i1 && j0 <= j1;
}

/// The Gaussian factor of spot e along one axis, exactly as proton_bev_dose computes it.
SFRT_HD inline float proton_profile(float x_rel, int e, float w, float inv2) {
    const float t = x_rel - (float)e * w;
    return expf(t * t * inv2);
}

/// Scatter form: adds r dD/dW to grad_w[weight_offset + j * nu + i] for every spot of every layer.
SFRT_HD inline void proton_bev_adjoint(const ProtonBeamParams& b, const double* layers, const float* idd,
                                       const float* sigma, double u, double v, double zs, double depth, double r,
                                       double* grad_w) {
    if (r == 0.0) return;
    float gu[SFRT_MAX_BEAMLETS_1D];
    for (int l = 0; l < b.n_layers; ++l) {
        const SpotLayerParams s = unpack_layer(layers, l);
        float q; double s_iso; int i0, i1, j0, j1;
        if (!proton_layer_factors(b, s, idd, sigma, u, v, zs, depth, q, s_iso, i0, i1, j0, j1)) continue;
        const float inv2 = (float)(-0.5 / (s_iso * s_iso));
        const float u_rel = (float)(u - s.u0), v_rel = (float)(v - s.v0);
        for (int i = i0; i <= i1; ++i) gu[i - i0] = proton_profile(u_rel, i, (float)s.du, inv2);
        const double g = r * (double)q;
        for (int j = j0; j <= j1; ++j) {
            const double gj = g * (double)proton_profile(v_rel, j, (float)s.dv, inv2);
            double* row = grad_w + s.weight_offset + (long long)j * s.nu + i0;
            for (int i = 0; i <= i1 - i0; ++i) row[i] += gj * (double)gu[i];
        }
    }
}

/// Gather form: dD/dW of the point for spot (j, i) of layer s.
SFRT_HD inline double proton_spot_influence(const ProtonBeamParams& b, const SpotLayerParams& s, const float* idd,
                                            const float* sigma, double u, double v, double zs, double depth, int j,
                                            int i) {
    float q; double s_iso; int i0, i1, j0, j1;
    if (!proton_layer_factors(b, s, idd, sigma, u, v, zs, depth, q, s_iso, i0, i1, j0, j1)) return 0.0;
    if (i < i0 || i > i1 || j < j0 || j > j1) return 0.0;
    const float inv2 = (float)(-0.5 / (s_iso * s_iso));
    return (double)q * (double)proton_profile((float)(v - s.v0), j, (float)s.dv, inv2) *
           (double)proton_profile((float)(u - s.u0), i, (float)s.du, inv2);
}

}  // namespace sfrt
