// CUDA kernels of the photon and proton dose: grid-stride loops that index, call
// csrc/physics and accumulate. No physics here.
//
// One source, two compilers: nvcc builds these kernels into the _cuda module
// (csrc/cuda/dose_cuda.cu), and the CuPy backend compiles this very file with
// NVRTC at run time (sfrt_engine/kernels/backend_cupy.py). So: NVRTC-clean (no
// standard headers), extern "C" names (no mangling to look up), and only plain
// pointers and ints as arguments. The packed float64 parameter vectors of
// csrc/params.h are unpacked once per block into shared memory.
#pragma once

#include "../physics/photon.h"
#include "../physics/proton.h"

/// Ray table of one beam: thread r traces the ray through lattice node
/// (iv, iu) = (r / ray_nu, r % ray_nu) and writes its depths [mm] to
/// table[r * ray_nz + k], k = 0 .. ray_nz - 1: layout [ray_nv][ray_nu][ray_nz], as on the CPU.
/// density: [nz][ny][nx] relative electron density (photons) or stopping power (protons);
/// grid_packed: SFRT_GRID_PACK_SIZE values; beam_packed: a photon pack (SFRT_BEAM_PACK_SIZE) or a
/// proton pack (SFRT_PROTON_PACK_SIZE). Both packs hold the BEV frame and the ray lattice in
/// elements 0..24 in the same order (csrc/params.h), which is all trace_ray reads, so the
/// photon unpacking serves both (as in _core.trace_rays).
extern "C" __global__ void sfrt_trace_rays(const float* __restrict__ density, const double* __restrict__ grid_packed,
                                           const double* __restrict__ beam_packed, float* __restrict__ table) {
    __shared__ sfrt::GridParams g;
    __shared__ sfrt::PhotonBeamParams b;
    if (threadIdx.x == 0) {
        g = sfrt::unpack_grid(grid_packed);
        b = sfrt::unpack_photon_beam(beam_packed);
    }
    __syncthreads();
    const long long n_rays = (long long)b.ray_nv * b.ray_nu;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; r < n_rays; r += step) {
        sfrt::trace_ray(density, g, b, (int)(r / b.ray_nu), (int)(r % b.ray_nu), table + r * b.ray_nz, 1);
    }
}

/// Grid-stride loop of the dose kernels over the z-slices [z_begin, z_begin + z_count):
/// dose[((iz - z_begin) * ny + iy) * nx + ix] += point(voxel centre (ix, iy, iz) [mm]).
/// One thread per voxel, x fastest (coalesced); every voxel is written by one thread only.
template <class Point>
__device__ inline void sfrt_add_over_chunk(const sfrt::GridParams& g, float* __restrict__ dose, int z_begin,
                                           int z_count, const Point& point) {
    const long long plane = (long long)g.nx * g.ny;
    const long long n = plane * z_count;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const int ix = (int)(i % g.nx);
        const int iy = (int)((i / g.nx) % g.ny);
        const int iz = z_begin + (int)(i / plane);
        dose[i] += point(g.ox + ix * g.dx, g.oy + iy * g.dy, g.oz + iz * g.dz);
    }
}

/// Adds one beam's dose [Gy] to the z-slices [z_begin, z_begin + z_count) of the grid:
/// dose[((iz - z_begin) * ny + iy) * nx + ix] += photon_point_dose(voxel centre (ix, iy, iz)).
/// One thread per voxel, x fastest (coalesced), grid-stride; every voxel is written by one
/// thread only, so launching the beams in order sums them in order (deterministic, no atomics).
/// table: [ray_nv][ray_nu][ray_nz] from sfrt_trace_rays; weights: [nbv][nbu] MU;
/// tdd: [ndepth] Gy/MU; comp_w, comp_s: [ncomp][ndepth] (weight, sigma [mm]);
/// scatter: [tab_nlev][tab_nv][tab_nu] scatter table (unread when n_direct == ncomp).
extern "C" __global__ void sfrt_photon_dose(const double* __restrict__ grid_packed,
                                            const double* __restrict__ beam_packed, const float* __restrict__ table,
                                            const float* __restrict__ weights, const float* __restrict__ tdd,
                                            const float* __restrict__ comp_w, const float* __restrict__ comp_s,
                                            const float* __restrict__ scatter, float* __restrict__ dose, int z_begin,
                                            int z_count) {
    __shared__ sfrt::GridParams g;
    __shared__ sfrt::PhotonBeamParams b;
    if (threadIdx.x == 0) {
        g = sfrt::unpack_grid(grid_packed);
        b = sfrt::unpack_photon_beam(beam_packed);
    }
    __syncthreads();
    sfrt_add_over_chunk(g, dose, z_begin, z_count, [&](double x, double y, double z) {
        return sfrt::photon_point_dose(b, table, weights, tdd, comp_w, comp_s, scatter, x, y, z);
    });
}

/// Adds one proton beam's dose [Gy] to the z-slices [z_begin, z_begin + z_count) of the grid,
/// voxel by voxel as sfrt_photon_dose does (deterministic, no atomics).
/// table: [ray_nv][ray_nu][ray_nz] from sfrt_trace_rays on the stopping-power grid;
/// layers: [n_layers][SFRT_LAYER_PACK_SIZE] float64; weights: every layer's [nv][nu] spot
/// weights [Gp] back to back; idd: [n_energies][ndepth] Gy mm^2/Gp; sigma: [n_energies][ndepth] mm.
extern "C" __global__ void sfrt_proton_dose(const double* __restrict__ grid_packed,
                                            const double* __restrict__ beam_packed, const float* __restrict__ table,
                                            const double* __restrict__ layers, const float* __restrict__ weights,
                                            const float* __restrict__ idd, const float* __restrict__ sigma,
                                            float* __restrict__ dose, int z_begin, int z_count) {
    __shared__ sfrt::GridParams g;
    __shared__ sfrt::ProtonBeamParams b;
    if (threadIdx.x == 0) {
        g = sfrt::unpack_grid(grid_packed);
        b = sfrt::unpack_proton_beam(beam_packed);
    }
    __syncthreads();
    sfrt_add_over_chunk(g, dose, z_begin, z_count, [&](double x, double y, double z) {
        return sfrt::proton_point_dose(b, table, layers, weights, idd, sigma, x, y, z);
    });
}
