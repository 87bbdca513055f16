// Radiological depth: density sampling and the per-ray trapezoid integral
// (DESIGN 5.1; specification in sfrt_engine/kernels/backend_numpy.py).
#pragma once

#include "../params.h"

namespace sfrt {

/// Trilinear interpolation of a [nz][ny][nx] float volume at point (x, y, z) [mm],
/// voxel indices clamped to the grid.
SFRT_HD inline double sample_trilinear(const float* vol, const GridParams& g, double x, double y, double z) {
    int ix, iy, iz; double tx, ty, tz;
    split_index((x - g.ox) / g.dx, g.nx, ix, tx);
    split_index((y - g.oy) / g.dy, g.ny, iy, ty);
    split_index((z - g.oz) / g.dz, g.nz, iz, tz);
    const int sx = g.nx > 1 ? 1 : 0, sy = g.ny > 1 ? g.nx : 0, sz = g.nz > 1 ? g.nx * g.ny : 0;
    const float* p = vol + ((long long)iz * g.ny + iy) * g.nx + ix;
    const double c00 = (1 - tx) * p[0] + tx * p[sx];
    const double c01 = (1 - tx) * p[sy] + tx * p[sy + sx];
    const double c10 = (1 - tx) * p[sz] + tx * p[sz + sx];
    const double c11 = (1 - tx) * p[sz + sy] + tx * p[sz + sy + sx];
    return (1 - tz) * ((1 - ty) * c00 + ty * c01) + tz * ((1 - ty) * c10 + ty * c11);
}

/// Parameters z_in <= z_out where the ray src + z * dir crosses the grid's outer faces
/// (slab method, z >= 0); z_out == z_in when the ray misses the grid.
SFRT_HD inline void ray_box(const GridParams& g, const double* src, const double* dir, double& z_in, double& z_out) {
    const double lo[3] = {g.ox - 0.5 * g.dx, g.oy - 0.5 * g.dy, g.oz - 0.5 * g.dz};
    const double hi[3] = {g.ox + (g.nx - 0.5) * g.dx, g.oy + (g.ny - 0.5) * g.dy, g.oz + (g.nz - 0.5) * g.dz};
    double t0 = 0.0, t1 = 1e300;
    for (int a = 0; a < 3; ++a) {
        if (dir[a] == 0.0) {
            if (src[a] < lo[a] || src[a] > hi[a]) t1 = -1e300;
            continue;
        }
        const double ta = (lo[a] - src[a]) / dir[a], tb = (hi[a] - src[a]) / dir[a];
        t0 = fmax(t0, fmin(ta, tb));
        t1 = fmin(t1, fmax(ta, tb));
    }
    z_in = t0;
    z_out = fmax(t1, t0);
}

/// Water-equivalent depth [mm] along the ray through lattice node (iv, iu), written to
/// out[k * stride] for k = 0 .. ray_nz - 1: trapezoid rule between the ray's grid entry
/// and each node z_k clipped to [z_in, z_out].
SFRT_HD inline void trace_ray(const float* rho, const GridParams& g, const PhotonBeamParams& b, int iv, int iu,
                              float* out, long long stride) {
    const double u = b.ray_u0 + iu * b.ray_du, v = b.ray_v0 + iv * b.ray_dv;
    double dir[3];
    for (int a = 0; a < 3; ++a) dir[a] = -b.es[a] + (u / b.sad) * b.eu[a] + (v / b.sad) * b.ev[a];
    const double path_per_z = sqrt(1.0 + (u * u + v * v) / (b.sad * b.sad));
    double z_in, z_out;
    ray_box(g, b.src, dir, z_in, z_out);
    double prev_z = z_in;
    double prev_rho = sample_trilinear(rho, g, b.src[0] + z_in * dir[0], b.src[1] + z_in * dir[1], b.src[2] + z_in * dir[2]);
    double acc = 0.0;
    for (int k = 0; k < b.ray_nz; ++k) {
        const double zc = clamp_d(b.ray_z0 + k * b.ray_dz, z_in, z_out);
        const double r = sample_trilinear(rho, g, b.src[0] + zc * dir[0], b.src[1] + zc * dir[1], b.src[2] + zc * dir[2]);
        acc += 0.5 * (prev_rho + r) * (zc - prev_z) * path_per_z;
        prev_z = zc;
        prev_rho = r;
        out[k * stride] = (float)acc;
    }
}

}  // namespace sfrt
