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
/// and each node z_k clipped to [z_in, z_out]. Beam is any params struct with the BEV
/// frame and ray-lattice members (PhotonBeamParams, ProtonBeamParams).
template <class Beam>
SFRT_HD inline void trace_ray(const float* rho, const GridParams& g, const Beam& b, int iv, int iu, float* out,
                              long long stride) {
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

namespace sfrt {

/// BEV coordinates of point (x, y, z) [mm]: u, v projected to the isocentre plane [mm],
/// zs the distance from the source along the axis [mm], and the radiological depth [mm]
/// read from the ray table (trilinear in (v, u, z)). Returns false when the point is
/// outside the footprint or nearer the source than min_z.
template <class Beam>
SFRT_HD inline bool bev_depth(const Beam& b, const float* table, double x, double y, double z, double& u, double& v,
                              double& zs, double& depth) {
    const double qx = x - b.iso[0], qy = y - b.iso[1], qz = z - b.iso[2];
    zs = b.sad - (qx * b.es[0] + qy * b.es[1] + qz * b.es[2]);
    if (!(zs > b.min_z)) return false;
    const double scale = b.sad / zs;
    u = (qx * b.eu[0] + qy * b.eu[1] + qz * b.eu[2]) * scale;
    v = (qx * b.ev[0] + qy * b.ev[1] + qz * b.ev[2]) * scale;
    const double u_hi = b.ray_u0 + (b.ray_nu - 1) * b.ray_du, v_hi = b.ray_v0 + (b.ray_nv - 1) * b.ray_dv;
    if (u < b.ray_u0 || u > u_hi || v < b.ray_v0 || v > v_hi) return false;
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
    depth = (1 - tv) * ((1 - tu) * d00 + tu * d01) + tv * ((1 - tu) * d10 + tu * d11);
    return true;
}

}  // namespace sfrt
