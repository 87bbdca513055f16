// CPU (OpenMP) drivers: loops that call csrc/physics. No physics here.
#pragma once

#include <vector>

#include "../params.h"

namespace sfrt {

/// Photon beam inputs as the drivers see them (pointers into caller-owned arrays).
struct PhotonBeamArrays {
    PhotonBeamParams params;
    const float* weights;  // [nbv][nbu] MU
    const float* tdd;      // [ndepth] Gy/MU
    const float* comp_w;   // [ncomp][ndepth]
    const float* comp_s;   // [ncomp][ndepth] mm
    const float* scatter;  // [tab_nlev][tab_nv][tab_nu] MU: scatter table (unread when n_direct == ncomp)
    const float* table = nullptr;  // [ray_nv][ray_nu][ray_nz] ray table from trace_rays_cpu, or null: traced here
};

/// Ray table [ray_nv][ray_nu][ray_nz] of one beam (OpenMP over rays).
void trace_rays_cpu(const float* density, const GridParams& grid, const PhotonBeamParams& beam, float* table);

/// Dose [Gy] of the beams, added voxel by voxel in beam order into dose[nz][ny][nx]
/// (which the caller zeroes). OpenMP over (z, y) rows, each computed whole by one thread with the row
/// kernels of photon_rows.h; deterministic, the same bits on any thread count. A beam's ray table is
/// traced here unless the caller passes the one trace_rays_cpu made (the geometry cache's).
void photon_dose_cpu(const float* density, const GridParams& grid, const std::vector<PhotonBeamArrays>& beams,
                     float* dose);

/// Proton beam inputs as the drivers see them.
struct ProtonBeamArrays {
    ProtonBeamParams params;
    const double* layers;  // [n_layers][SFRT_LAYER_PACK_SIZE]
    const float* weights;  // all layers' spot weights [Gp], back to back
    const float* idd;      // [n_energies][ndepth] Gy mm^2 / Gp
    const float* sigma;    // [n_energies][ndepth] mm
    const float* table = nullptr;  // [ray_nv][ray_nu][ray_nz] ray table from trace_rays_cpu, or null: traced here
};

/// Dose [Gy] of proton beams, added in beam order into dose[nz][ny][nx] (zeroed by the caller).
void proton_dose_cpu(const float* density, const GridParams& grid, const std::vector<ProtonBeamArrays>& beams,
                     float* dose);

/// Ray table [ray_nv][ray_nu][ray_nz] of one proton beam.
void trace_rays_cpu(const float* density, const GridParams& grid, const ProtonBeamParams& beam, float* table);

/// Threads OpenMP would use (1 without OpenMP).
int cpu_max_threads();

/// Sets the threads of the OpenMP parallel regions that the calling thread starts from now on
/// (omp_set_num_threads; n >= 1); returns the previous cpu_max_threads(). No-op without OpenMP.
int cpu_set_max_threads(int n);

}  // namespace sfrt
