// Photon finite-size pencil beam (DESIGN 5.2; specification in
// sfrt_engine/kernels/backend_numpy.py). One function: the dose one beam gives
// one voxel centre. Drivers call it for every voxel and add the results in beam order.
#pragma once

#include "raytrace.h"

namespace sfrt {

/// Dose [Gy] at point (x, y, z) [mm] from one beam:
///   D = T(d) (SAD/z)^2 sum_k A_k(d) sum_j Pv_kj sum_i W_ji Pu_ki,
///   Pu_ki = [erf((u - a_i)/(sqrt2 s_k)) - erf((u - a_{i+1})/(sqrt2 s_k))] / 2,  s_k = sigma_k(d) SAD / z,
/// with d [mm] read from the ray table (trilinear), u, v [mm] at the isocentre plane, z [mm]
/// from the source along the axis. Beamlets beyond cutoff_sigma * s_k are skipped.
/// table: [ray_nv][ray_nu][ray_nz] depth [mm]; weights: [nbv][nbu] [MU];
/// tdd: [ndepth] T [Gy/MU]; comp_w, comp_s: [ncomp][ndepth] A_k and sigma_k [mm].
SFRT_HD inline float photon_point_dose(const PhotonBeamParams& b, const float* table, const float* weights,
                                       const float* tdd, const float* comp_w, const float* comp_s,
                                       double x, double y, double z) {
    const double qx = x - b.iso[0], qy = y - b.iso[1], qz = z - b.iso[2];
    const double zs = b.sad - (qx * b.es[0] + qy * b.es[1] + qz * b.es[2]);
    if (!(zs > b.min_z)) return 0.0f;
    const double scale = b.sad / zs;
    const double u = (qx * b.eu[0] + qy * b.eu[1] + qz * b.eu[2]) * scale;
    const double v = (qx * b.ev[0] + qy * b.ev[1] + qz * b.ev[2]) * scale;
    const double u_hi = b.ray_u0 + (b.ray_nu - 1) * b.ray_du, v_hi = b.ray_v0 + (b.ray_nv - 1) * b.ray_dv;
    if (u < b.ray_u0 || u > u_hi || v < b.ray_v0 || v > v_hi) return 0.0f;

    // radiological depth: trilinear in the (v, u, z) ray table
    int iv, iu, iz; double tv, tu, tz;
    split_index((v - b.ray_v0) / b.ray_dv, b.ray_nv, iv, tv);
    split_index((u - b.ray_u0) / b.ray_du, b.ray_nu, iu, tu);
    split_index((zs - b.ray_z0) / b.ray_dz, b.ray_nz, iz, tz);
    const long long su = b.ray_nz, sv = (long long)b.ray_nu * b.ray_nz;
    const long long ou = b.ray_nu > 1 ? su : 0, ov = b.ray_nv > 1 ? sv : 0, oz = b.ray_nz > 1 ? 1 : 0;
    const float* t0 = table + iv * sv + iu * su + iz;
    const double d00 = (1 - tz) * t0[0] + tz * t0[oz];
    const double d01 = (1 - tz) * t0[ou] + tz * t0[ou + oz];
    const double d10 = (1 - tz) * t0[ov] + tz * t0[ov + oz];
    const double d11 = (1 - tz) * t0[ov + ou] + tz * t0[ov + ou + oz];
    const double depth = (1 - tv) * ((1 - tu) * d00 + tu * d01) + tv * ((1 - tu) * d10 + tu * d11);

    int id; double td;  // one depth lookup serves every table
    split_index(depth / b.depth_step, b.ndepth, id, td);
    const float t_depth = table_at(tdd, b.ndepth, id, td);
    if (t_depth == 0.0f) return 0.0f;

    float pu[SFRT_MAX_BEAMLETS_1D + 1];
    float pv[SFRT_MAX_BEAMLETS_1D + 1];
    float col[SFRT_MAX_BEAMLETS_1D];
    const float u_rel = (float)(u - b.edge_u0), v_rel = (float)(v - b.edge_v0);
    const float du = (float)b.beamlet_du, dv = (float)b.beamlet_dv;
    float lateral = 0.0f;
    for (int k = 0; k < b.ncomp; ++k) {
        const float a_k = table_at(comp_w + k * b.ndepth, b.ndepth, id, td);
        if (a_k == 0.0f) continue;
        const double s_iso = table_at(comp_s + k * b.ndepth, b.ndepth, id, td) * scale;
        const double reach = b.cutoff_sigma * s_iso;
        // beamlet columns/rows whose extent lies within reach of (u, v)
        int i0 = (int)floor((u - reach - b.edge_u0) / b.beamlet_du);
        int i1 = (int)floor((u + reach - b.edge_u0) / b.beamlet_du);
        int j0 = (int)floor((v - reach - b.edge_v0) / b.beamlet_dv);
        int j1 = (int)floor((v + reach - b.edge_v0) / b.beamlet_dv);
        i0 = i0 < 0 ? 0 : i0; i1 = i1 > b.nbu - 1 ? b.nbu - 1 : i1;
        j0 = j0 < 0 ? 0 : j0; j1 = j1 > b.nbv - 1 ? b.nbv - 1 : j1;
        if (i0 > i1 || j0 > j1) continue;
        const int ni = i1 - i0 + 1, nj = j1 - j0 + 1;
        const float inv = (float)(0.70710678118654752 / s_iso);
        // erf at the edges (independent iterations: vectorisable), then differences
        for (int i = 0; i <= ni; ++i) pu[i] = erf_fast((u_rel - (float)(i0 + i) * du) * inv);
        for (int i = 0; i < ni; ++i) pu[i] = 0.5f * (pu[i] - pu[i + 1]);
        for (int j = 0; j <= nj; ++j) pv[j] = erf_fast((v_rel - (float)(j0 + j) * dv) * inv);
        for (int j = 0; j < nj; ++j) pv[j] = 0.5f * (pv[j] - pv[j + 1]);
        // column sums c_i = sum_j Pv_j W_ji (axpy over rows, no per-row reduction), then sum_i c_i Pu_i
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
    return (float)(t_depth * scale * scale) * lateral;
}

}  // namespace sfrt
