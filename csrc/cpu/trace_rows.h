// The CPU form of trace_ray (physics/raytrace.h, the specification it is tested against): one ray's
// densities sampled at all its nodes in one vectorised loop (the samples are independent), then the
// trapezoid sums in order, in float64 as trace_ray. Nodes before the ray's entry or after its exit add
// exactly nothing (their clipped z repeats z_in or z_out, so the step is 0) and are not sampled.
#pragma once

#include <vector>

#include "../physics/raytrace.h"

namespace sfrt {
namespace rows {

/// Per-thread work arrays of trace_ray_cpu: the clipped node z and density of each node.
struct TraceScratch {
    std::vector<double> rho;
    explicit TraceScratch(int nz) : rho(nz > 0 ? nz : 1) {}
};

/// trace_ray(rho, g, b, iv, iu, out, 1) with the density samples vectorised (see the file comment).
template <class Beam>
inline void trace_ray_cpu(const float* density, const GridParams& g, const Beam& b, int iv, int iu, float* out,
                          TraceScratch& w) {
    const double u = b.ray_u0 + iu * b.ray_du, v = b.ray_v0 + iv * b.ray_dv;
    double dir[3];
    for (int a = 0; a < 3; ++a) dir[a] = -b.es[a] + (u / b.sad) * b.eu[a] + (v / b.sad) * b.ev[a];
    const double path_per_z = sqrt(1.0 + (u * u + v * v) / (b.sad * b.sad));
    double z_in, z_out;
    ray_box(g, b.src, dir, z_in, z_out);
    const int nz = b.ray_nz;
    const double z0 = b.ray_z0, dz = b.ray_dz;
    // nodes k_lo .. k_hi are the ones whose clipped z differs from the previous node's
    int k_lo = 0;
    while (k_lo < nz && !(z0 + k_lo * dz > z_in)) ++k_lo;
    int k_hi = k_lo;
    while (k_hi < nz && z0 + k_hi * dz < z_out) ++k_hi;
    if (k_hi > nz - 1) k_hi = nz - 1;
    // the density samples: trilinear, indices clamped (sample_trilinear with the grid in locals)
    const double sx = b.src[0], sy = b.src[1], sz = b.src[2], d0 = dir[0], d1 = dir[1], d2 = dir[2];
    const double ox = g.ox, oy = g.oy, oz = g.oz, gdx = g.dx, gdy = g.dy, gdz = g.dz;
    const double fx_hi = g.nx - 1, fy_hi = g.ny - 1, fz_hi = g.nz - 1;
    const int top_x = g.nx > 1 ? g.nx - 2 : 0, top_y = g.ny > 1 ? g.ny - 2 : 0, top_z = g.nz > 1 ? g.nz - 2 : 0;
    const double has_x = g.nx > 1 ? 1.0 : 0.0, has_y = g.ny > 1 ? 1.0 : 0.0, has_z = g.nz > 1 ? 1.0 : 0.0;
    const int ofx = g.nx > 1 ? 1 : 0, ofy = g.ny > 1 ? g.nx : 0, ofz = g.nz > 1 ? g.nx * g.ny : 0;
    const int nx = g.nx, nxy = g.nx * g.ny;
    double* __restrict rho = w.rho.data();
#pragma omp simd
    for (int k = k_lo; k <= k_hi; ++k) {
        double zc = z0 + k * dz;
        zc = zc > z_in ? zc : z_in;
        zc = zc < z_out ? zc : z_out;
        double fx = (sx + zc * d0 - ox) / gdx, fy = (sy + zc * d1 - oy) / gdy, fz = (sz + zc * d2 - oz) / gdz;
        fx = fx > 0.0 ? fx : 0.0; fx = fx < fx_hi ? fx : fx_hi;
        fy = fy > 0.0 ? fy : 0.0; fy = fy < fy_hi ? fy : fy_hi;
        fz = fz > 0.0 ? fz : 0.0; fz = fz < fz_hi ? fz : fz_hi;
        int ix = (int)fx, iy = (int)fy, iz = (int)fz;
        ix = ix < top_x ? ix : top_x;
        iy = iy < top_y ? iy : top_y;
        iz = iz < top_z ? iz : top_z;
        const double tx = (fx - ix) * has_x, ty = (fy - iy) * has_y, tz = (fz - iz) * has_z;
        const int p = iz * nxy + iy * nx + ix;
        const double c00 = (1 - tx) * density[p] + tx * density[p + ofx];
        const double c01 = (1 - tx) * density[p + ofy] + tx * density[p + ofy + ofx];
        const double c10 = (1 - tx) * density[p + ofz] + tx * density[p + ofz + ofx];
        const double c11 = (1 - tx) * density[p + ofz + ofy] + tx * density[p + ofz + ofy + ofx];
        rho[k] = (1 - tz) * ((1 - ty) * c00 + ty * c01) + tz * ((1 - ty) * c10 + ty * c11);
    }
    // the trapezoid sums in node order, from the entry
    double prev_z = z_in;
    double prev_rho = sample_trilinear(density, g, sx + z_in * d0, sy + z_in * d1, sz + z_in * d2);
    double acc = 0.0;
    for (int k = 0; k < k_lo && k < nz; ++k) out[k] = 0.0f;
    for (int k = k_lo; k <= k_hi; ++k) {
        const double zc = clamp_d(z0 + k * dz, z_in, z_out);
        acc += 0.5 * (prev_rho + rho[k]) * (zc - prev_z) * path_per_z;
        prev_z = zc;
        prev_rho = rho[k];
        out[k] = (float)acc;
    }
    for (int k = k_hi + 1; k < nz; ++k) out[k] = (float)acc;
}

}  // namespace rows
}  // namespace sfrt
