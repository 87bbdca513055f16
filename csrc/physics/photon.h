// Photon finite-size pencil beam (DESIGN 5.2; specification in
// sfrt_engine/kernels/backend_numpy.py). One function: the dose one beam gives
// one voxel centre. Drivers call it for every voxel and add the results in beam order.
#pragma once

#include "raytrace.h"

namespace sfrt {

/// Where a point reads the scatter table F[tab_nlev][tab_nv][tab_nu]: the flat index of its cell's
/// first corner, the steps to the other corners along l, v, u (0 on a one-node axis) and the
/// fractional weights, for (ln(s / tab_s0) / tab_log_ratio, (v - tab_v0) / tab_dv, (u - tab_u0) / tab_du)
/// with indices clamped.
struct ScatterRead {
    long long base, ol, ov, ou;
    int il, iv, iu;  // the first corner's level, row and column
    double tl, tv, tu;
};

SFRT_HD inline ScatterRead scatter_table_read(const PhotonBeamParams& b, double u, double v, double s_iso) {
    ScatterRead r;
    split_index(log(s_iso / b.tab_s0) / b.tab_log_ratio, b.tab_nlev, r.il, r.tl);
    split_index((v - b.tab_v0) / b.tab_dv, b.tab_nv, r.iv, r.tv);
    split_index((u - b.tab_u0) / b.tab_du, b.tab_nu, r.iu, r.tu);
    const long long sv = b.tab_nu, sl = (long long)b.tab_nv * b.tab_nu;
    r.ou = b.tab_nu > 1 ? 1 : 0;
    r.ov = b.tab_nv > 1 ? sv : 0;
    r.ol = b.tab_nlev > 1 ? sl : 0;
    r.base = r.il * sl + r.iv * sv + r.iu;
    return r;
}

/// Components k >= b.n_direct: the beamlet sum read from the beam's scatter table
/// F[tab_nlev][tab_nv][tab_nu] (sfrt_engine/kernels/_task.py ScatterTable), trilinear in
/// (ln(s / tab_s0) / tab_log_ratio, (v - tab_v0) / tab_dv, (u - tab_u0) / tab_du), indices clamped.
SFRT_HD inline double scatter_table_at(const PhotonBeamParams& b, const float* scatter, double u, double v,
                                       double s_iso) {
    const ScatterRead r = scatter_table_read(b, u, v, s_iso);
    const float* f = scatter + r.base;
    const long long ou = r.ou, ov = r.ov, ol = r.ol;
    const double tu = r.tu, tv = r.tv, tl = r.tl;
    const double f00 = (1 - tu) * f[0] + tu * f[ou], f01 = (1 - tu) * f[ov] + tu * f[ov + ou];
    const double f10 = (1 - tu) * f[ol] + tu * f[ol + ou], f11 = (1 - tu) * f[ol + ov] + tu * f[ol + ov + ou];
    return (1 - tl) * ((1 - tv) * f00 + tv * f01) + tl * ((1 - tv) * f10 + tv * f11);
}

/// Dose [Gy] at point (x, y, z) [mm] from one beam:
///   D = T(d) (SAD/z)^2 sum_k A_k(d) sum_j Pv_kj sum_i W_ji Pu_ki,
///   Pu_ki = [erf((u - a_i)/(sqrt2 s_k)) - erf((u - a_{i+1})/(sqrt2 s_k))] / 2,  s_k = sigma_k(d) SAD / z,
/// with d [mm] read from the ray table (trilinear), u, v [mm] at the isocentre plane, z [mm]
/// from the source along the axis. Beamlets beyond cutoff_sigma * s_k are skipped.
/// table: [ray_nv][ray_nu][ray_nz] depth [mm]; weights: [nbv][nbu] [MU];
/// tdd: [ndepth] T [Gy/MU]; comp_w, comp_s: [ncomp][ndepth] A_k and sigma_k [mm];
/// scatter: the scatter table of components k >= n_direct (see scatter_table_at; unread when
/// n_direct == ncomp). photon_bev_dose takes the point's BEV coordinates u, v, zs [mm] and depth [mm]
/// (from bev_depth); photon_point_dose finds them first.
SFRT_HD inline float photon_bev_dose(const PhotonBeamParams& b, const float* weights, const float* tdd,
                                     const float* comp_w, const float* comp_s, const float* scatter, double u,
                                     double v, double zs, double depth) {
    const double scale = b.sad / zs;

    int id; double td;  // one depth lookup serves every table
    split_index(depth / b.depth_step, b.ndepth, id, td);
    const float t_depth = table_at(tdd, b.ndepth, id, td);
    if (t_depth == 0.0f) return 0.0f;

    float pu[SFRT_LATERAL_TILE + 1];
    float pv[SFRT_LATERAL_TILE + 1];
    float col[SFRT_LATERAL_TILE];
    const float u_rel = (float)(u - b.edge_u0), v_rel = (float)(v - b.edge_v0);
    const float du = (float)b.beamlet_du, dv = (float)b.beamlet_dv;
    float lateral = 0.0f;
    for (int k = 0; k < b.ncomp; ++k) {
        const float a_k = table_at(comp_w + k * b.ndepth, b.ndepth, id, td);
        if (a_k == 0.0f) continue;
        const double s_iso = table_at(comp_s + k * b.ndepth, b.ndepth, id, td) * scale;
        if (k >= b.n_direct) {
            lateral += a_k * (float)scatter_table_at(b, scatter, u, v, s_iso);
            continue;
        }
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
        float sum = 0.0f;
        // columns i0 + ib .. in tiles of SFRT_LATERAL_TILE (one tile on the CPU; see params.h)
        for (int ib = 0; ib < ni; ib += SFRT_LATERAL_TILE) {
            const int ti = ni - ib < SFRT_LATERAL_TILE ? ni - ib : SFRT_LATERAL_TILE;
            // erf at the edges (independent iterations: vectorisable), then differences
            SFRT_SCRATCH_LOOP for (int i = 0; i <= ti; ++i) pu[i] = erf_fast((u_rel - (float)(i0 + ib + i) * du) * inv);
            SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) pu[i] = 0.5f * (pu[i] - pu[i + 1]);
            // column sums c_i = sum_j Pv_j W_ji (axpy over rows, no per-row reduction), then sum_i c_i Pu_i
            SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) col[i] = 0.0f;
            for (int jb = 0; jb < nj; jb += SFRT_LATERAL_TILE) {
                const int tj = nj - jb < SFRT_LATERAL_TILE ? nj - jb : SFRT_LATERAL_TILE;
                SFRT_SCRATCH_LOOP for (int j = 0; j <= tj; ++j) {
                    pv[j] = erf_fast((v_rel - (float)(j0 + jb + j) * dv) * inv);
                }
                SFRT_SCRATCH_LOOP for (int j = 0; j < tj; ++j) pv[j] = 0.5f * (pv[j] - pv[j + 1]);
                SFRT_SCRATCH_LOOP for (int j = 0; j < tj; ++j) {
                    const float* w = weights + (long long)(j0 + jb + j) * b.nbu + i0 + ib;
                    const float pvj = pv[j];
                    SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) col[i] += pvj * w[i];
                }
            }
#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#pragma omp simd reduction(+ : sum)
#endif
            SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) sum += col[i] * pu[i];
        }
        lateral += a_k * sum;
    }
    return (float)(t_depth * scale * scale) * lateral;
}

SFRT_HD inline float photon_point_dose(const PhotonBeamParams& b, const float* table, const float* weights,
                                       const float* tdd, const float* comp_w, const float* comp_s,
                                       const float* scatter, double x, double y, double z) {
    double u, v, zs, depth;
    if (!bev_depth(b, table, x, y, z, u, v, zs, depth)) return 0.0f;
    return photon_bev_dose(b, weights, tdd, comp_w, comp_s, scatter, u, v, zs, depth);
}

}  // namespace sfrt
