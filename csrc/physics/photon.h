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

    const float t_depth = table_lerp(tdd, b.ndepth, depth, b.depth_step);
    if (t_depth == 0.0f) return 0.0f;

    float pu[SFRT_MAX_BEAMLETS_1D];
    float lateral = 0.0f;
    for (int k = 0; k < b.ncomp; ++k) {
        const float a_k = table_lerp(comp_w + k * b.ndepth, b.ndepth, depth, b.depth_step);
        if (a_k == 0.0f) continue;
        const double s_iso = table_lerp(comp_s + k * b.ndepth, b.ndepth, depth, b.depth_step) * scale;
        const double reach = b.cutoff_sigma * s_iso;
        // beamlet columns/rows whose extent lies within reach of (u, v)
        int i0 = (int)floor((u - reach - b.edge_u0) / b.beamlet_du);
        int i1 = (int)floor((u + reach - b.edge_u0) / b.beamlet_du);
        int j0 = (int)floor((v - reach - b.edge_v0) / b.beamlet_dv);
        int j1 = (int)floor((v + reach - b.edge_v0) / b.beamlet_dv);
        i0 = i0 < 0 ? 0 : i0; i1 = i1 > b.nbu - 1 ? b.nbu - 1 : i1;
        j0 = j0 < 0 ? 0 : j0; j1 = j1 > b.nbv - 1 ? b.nbv - 1 : j1;
        if (i0 > i1 || j0 > j1) continue;
        const float inv = (float)(0.70710678118654752 / s_iso);
        // Pu for columns i0..i1 from the erf at their edges
        float e_prev = erf_fast((float)(u - (b.edge_u0 + i0 * b.beamlet_du)) * inv);
        for (int i = i0; i <= i1; ++i) {
            const float e_next = erf_fast((float)(u - (b.edge_u0 + (i + 1) * b.beamlet_du)) * inv);
            pu[i - i0] = 0.5f * (e_prev - e_next);
            e_prev = e_next;
        }
        float sum = 0.0f;
        float f_prev = erf_fast((float)(v - (b.edge_v0 + j0 * b.beamlet_dv)) * inv);
        for (int j = j0; j <= j1; ++j) {
            const float f_next = erf_fast((float)(v - (b.edge_v0 + (j + 1) * b.beamlet_dv)) * inv);
            const float pv = 0.5f * (f_prev - f_next);
            f_prev = f_next;
            const float* w = weights + (long long)j * b.nbu + i0;
            float row = 0.0f;
            for (int i = 0; i <= i1 - i0; ++i) row += w[i] * pu[i];
            sum += pv * row;
        }
        lateral += a_k * sum;
    }
    return (float)(t_depth * scale * scale) * lateral;
}

}  // namespace sfrt
