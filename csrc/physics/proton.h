// Proton pencil beam (IMPT approximation; DESIGN 5.3; specification in
// sfrt_engine/kernels/backend_numpy.py). One function: the dose one scanned beam
// gives one voxel centre, summed over its energy layers and spots.
#pragma once

#include "raytrace.h"

namespace sfrt {

/// Dose [Gy] at point (x, y, z) [mm] from one proton beam:
///   D = sum_layers IDD_E(d) / (2 pi s^2) sum_j gv_j sum_i W_ji gu_i,
///   gu_i = exp(-(u - u_i)^2 / (2 s_iso^2)),  s = sigma_E(d) [mm, physical],  s_iso = s SAD / z,
/// with d the water-equivalent depth [mm] of the voxel (ray table) plus the layer's range
/// shifter, u, v [mm] at the isocentre
/// plane and z [mm] from the source. Spots beyond cutoff_sigma * s_iso are skipped.
/// table: [ray_nv][ray_nu][ray_nz]; layers: packed [n_layers][SFRT_LAYER_PACK_SIZE];
/// weights: all layers' [nv][nu] maps [Gp] back to back; idd: [n_energies][ndepth] Gy mm^2/Gp;
/// sigma: [n_energies][ndepth] mm. proton_bev_dose takes the point's BEV coordinates u, v, zs [mm] and
/// depth [mm] (from bev_depth); proton_point_dose finds them first.
SFRT_HD inline float proton_bev_dose(const ProtonBeamParams& b, const double* layers, const float* weights,
                                     const float* idd, const float* sigma, double u, double v, double zs,
                                     double depth) {
    const double scale = b.sad / zs;

    float gu[SFRT_LATERAL_TILE];
    float gv[SFRT_LATERAL_TILE];
    float col[SFRT_LATERAL_TILE];
    float total = 0.0f;
    for (int l = 0; l < b.n_layers; ++l) {
        const SpotLayerParams s = unpack_layer(layers, l);
        int id; double td;
        split_index((depth + s.range_shifter_mm) / b.depth_step, b.ndepth, id, td);
        const long long row = (long long)s.energy * b.ndepth;
        const float dd = table_at(idd + row, b.ndepth, id, td);
        if (dd == 0.0f) continue;  // beyond the Bragg peak's reach
        const double sig = table_at(sigma + row, b.ndepth, id, td);
        const double s_iso = sig * scale;
        const double reach = b.cutoff_sigma * s_iso;
        int i0 = (int)ceil((u - reach - s.u0) / s.du), i1 = (int)floor((u + reach - s.u0) / s.du);
        int j0 = (int)ceil((v - reach - s.v0) / s.dv), j1 = (int)floor((v + reach - s.v0) / s.dv);
        i0 = i0 < 0 ? 0 : i0; i1 = i1 > s.nu - 1 ? s.nu - 1 : i1;
        j0 = j0 < 0 ? 0 : j0; j1 = j1 > s.nv - 1 ? s.nv - 1 : j1;
        if (i0 > i1 || j0 > j1) continue;
        const int ni = i1 - i0 + 1, nj = j1 - j0 + 1;
        const float inv2 = (float)(-0.5 / (s_iso * s_iso));
        const float u_rel = (float)(u - s.u0), v_rel = (float)(v - s.v0);
        const float du = (float)s.du, dv = (float)s.dv;
        const float* w0 = weights + s.weight_offset;
        float sum = 0.0f;
        // spot columns i0 + ib .. in tiles of SFRT_LATERAL_TILE (one tile on the CPU; see params.h)
        for (int ib = 0; ib < ni; ib += SFRT_LATERAL_TILE) {
            const int ti = ni - ib < SFRT_LATERAL_TILE ? ni - ib : SFRT_LATERAL_TILE;
            SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) {
                const float t = u_rel - (float)(i0 + ib + i) * du;
                gu[i] = expf(t * t * inv2);
            }
            SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) col[i] = 0.0f;
            for (int jb = 0; jb < nj; jb += SFRT_LATERAL_TILE) {
                const int tj = nj - jb < SFRT_LATERAL_TILE ? nj - jb : SFRT_LATERAL_TILE;
                SFRT_SCRATCH_LOOP for (int j = 0; j < tj; ++j) {
                    const float t = v_rel - (float)(j0 + jb + j) * dv;
                    gv[j] = expf(t * t * inv2);
                }
                SFRT_SCRATCH_LOOP for (int j = 0; j < tj; ++j) {
                    const float* w = w0 + (long long)(j0 + jb + j) * s.nu + i0 + ib;
                    const float g = gv[j];
                    SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) col[i] += g * w[i];
                }
            }
#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#pragma omp simd reduction(+ : sum)
#endif
            SFRT_SCRATCH_LOOP for (int i = 0; i < ti; ++i) sum += col[i] * gu[i];
        }
        total += dd * (float)(0.15915494309189535 / (sig * sig)) * sum;  // 1 / (2 pi s^2)
    }
    return total;
}

SFRT_HD inline float proton_point_dose(const ProtonBeamParams& b, const float* table, const double* layers,
                                       const float* weights, const float* idd, const float* sigma,
                                       double x, double y, double z) {
    double u, v, zs, depth;
    if (!bev_depth(b, table, x, y, z, u, v, zs, depth)) return 0.0f;
    return proton_bev_dose(b, layers, weights, idd, sigma, u, v, zs, depth);
}

}  // namespace sfrt
