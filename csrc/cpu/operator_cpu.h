// CPU (OpenMP) drivers of the forward and adjoint dose operators on a voxel subset
// (sfrt_engine/optimise/operators.py). No physics here: csrc/physics/photon.h, proton.h, adjoint.h.
#pragma once

#include <vector>

#include "../params.h"

namespace sfrt {

/// BEV geometry of the points a beam reaches, as stored by the operators: hit[m] is the position in
/// the subset and geom[m][4] = (u, v, zs, depth) [mm] (bev_depth).
struct SubsetGeometry {
    const long long* hit;
    const double* geom;  // null for a photon beam whose stored factors replace it (PhotonPointCache)
    long long n_hit;
};

/// A photon beam's stored per-point factors (csrc/physics/operator_cache.h); fac == nullptr: none.
struct PhotonPointCache {
    const float* fac = nullptr;       // [n_hit][1 + ncomp]
    const long long* base = nullptr;  // [n_hit][ncomp - n_direct]
    const double* frac = nullptr;     // [n_hit][ncomp - n_direct][3]
    const int* win = nullptr;         // [n_hit][n_direct][4]
    const long long* offset = nullptr;  // [n_hit + 1] into pool
    const float* pool = nullptr;
};

/// One photon beam of an operator (pointers into caller-owned arrays).
struct PhotonOperatorBeam {
    PhotonBeamParams params;
    const float* weights;  // [nbv][nbu] MU (forward only)
    const float* tdd;      // [ndepth] Gy/MU
    const float* comp_w;   // [ncomp][ndepth]
    const float* comp_s;   // [ncomp][ndepth] mm
    const float* scatter;  // [tab_nlev][tab_nv][tab_nu] (forward only; unread when n_direct == ncomp)
    SubsetGeometry at;
    PhotonPointCache cache;  // used by the forward and adjoint when present
};

/// A proton beam's stored per-point entries (csrc/physics/operator_cache.h); entry_offset == nullptr: none.
struct ProtonPointCache {
    const long long* entry_offset = nullptr;  // [n_hit + 1] into layer, q, win
    const long long* pool_offset = nullptr;   // [n_hit + 1] into pool
    const int* layer = nullptr;               // [n_entries]
    const float* q = nullptr;                 // [n_entries]
    const int* win = nullptr;                 // [n_entries][4]
    const float* pool = nullptr;
};

/// One proton beam of an operator.
struct ProtonOperatorBeam {
    ProtonBeamParams params;
    const double* layers;  // [n_layers][SFRT_LAYER_PACK_SIZE]
    const float* weights;  // spot weights [Gp], every layer back to back (forward only)
    long long n_weights;   // their count
    const float* idd;      // [n_energies][ndepth]
    const float* sigma;    // [n_energies][ndepth] mm
    SubsetGeometry at;
    ProtonPointCache cache;  // used by the forward and adjoint when present
};

/// Geometry of the subset points (x, y, z) = voxel centres of flat indices voxels[n] [z, y, x]: writes
/// hit_flag[n] (1 where the beam reaches) and geom[n][4]. OpenMP over points.
void photon_geometry_cpu(const GridParams& grid, const PhotonBeamParams& beam, const float* table,
                         const long long* voxels, long long n, unsigned char* hit_flag, double* geom);
void proton_geometry_cpu(const GridParams& grid, const ProtonBeamParams& beam, const float* table,
                         const long long* voxels, long long n, unsigned char* hit_flag, double* geom);

/// Size of a photon beam's stored factors: offset[m] for m = 0..n_hit (offset must hold n_hit + 1 values).
void photon_cache_offsets_cpu(const PhotonOperatorBeam& beam, long long* offset);
/// Fills the stored factors (arrays sized from photon_cache_offsets_cpu). OpenMP over points.
void photon_cache_cpu(const PhotonOperatorBeam& beam, const long long* offset, float* fac, long long* base,
                      double* frac, int* win, float* pool);

/// Sizes of a proton beam's stored entries: entry_offset and pool_offset (n_hit + 1 values each).
void proton_cache_offsets_cpu(const ProtonOperatorBeam& beam, long long* entry_offset, long long* pool_offset);
/// Fills the stored entries (arrays sized from proton_cache_offsets_cpu). OpenMP over points.
void proton_cache_cpu(const ProtonOperatorBeam& beam, const long long* entry_offset, const long long* pool_offset,
                      int* layer, float* q, int* win, float* pool);

/// Forward: adds each beam's dose to out[hit] in beam order (out zeroed by the caller).
void photon_forward_cpu(const std::vector<PhotonOperatorBeam>& beams, float* out);
void proton_forward_cpu(const std::vector<ProtonOperatorBeam>& beams, float* out);

/// Adjoint of one beam: grad_w (nbv * nbu, zeroed) and grad_table (the scatter table's size, zeroed)
/// receive sum over its points of r[hit] dD/dW and dD/dF. Each thread sums a fixed, contiguous share
/// of the points into its own arrays; the shares are then added in thread order (deterministic for a
/// given thread count, no atomics).
void photon_adjoint_cpu(const PhotonOperatorBeam& beam, const double* r, double* grad_w, long long n_w,
                        double* grad_table, long long n_table);
void proton_adjoint_cpu(const ProtonOperatorBeam& beam, const double* r, double* grad_w, long long n_w);

}  // namespace sfrt
