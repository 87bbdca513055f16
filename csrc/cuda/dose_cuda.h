// CUDA drivers of the photon and proton dose (implemented in dose_cuda.cu): device
// memory planning, allocation, copies and launches of the kernels in
// dose_kernels.cuh. No CUDA types here, so bind_cuda.cpp compiles with the
// plain host compiler.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "../params.h"

namespace sfrt {
namespace cuda {

/// The device lacks the memory a computation needs; the message names the sizes.
/// bind_cuda.cpp maps it to sfrt_engine.kernels._cuda.DeviceMemoryError (a MemoryError).
struct DeviceMemoryError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// One photon beam as the drivers see it (pointers into caller-owned host arrays).
struct PhotonBeamHost {
    const double* packed;     // [SFRT_BEAM_PACK_SIZE], uploaded as is: the kernels unpack it
    PhotonBeamParams params;  // the same, unpacked on the host for the sizes
    const float* weights;     // [nbv][nbu] MU
    const float* tdd;         // [ndepth] Gy/MU
    const float* comp_w;      // [ncomp][ndepth]
    const float* comp_s;      // [ncomp][ndepth] mm
    const float* scatter;     // [tab_nlev][tab_nv][tab_nu] MU (none when n_direct == ncomp)
};

/// One proton beam as the drivers see it (pointers into caller-owned host arrays).
struct ProtonBeamHost {
    const double* packed;     // [SFRT_PROTON_PACK_SIZE], uploaded as is: the kernels unpack it
    ProtonBeamParams params;  // the same, unpacked on the host for the sizes
    const double* layers;     // [n_layers][SFRT_LAYER_PACK_SIZE]
    const float* weights;     // every layer's spot weights [Gp], back to back
    std::size_t n_weights;    // length of weights
    const float* idd;         // [n_energies][ndepth] Gy mm^2/Gp
    const float* sigma;       // [n_energies][ndepth] mm
};

/// How a dose call uses device memory. All sizes in bytes, each buffer
/// rounded up to the allocation alignment.
struct MemoryPlan {
    std::size_t density_bytes;      // density grid (float32)
    std::size_t dose_bytes;         // whole dose grid (float32)
    std::size_t slice_bytes;        // one z-slice of dose (unrounded)
    std::size_t table_bytes;        // largest ray table
    std::size_t beam_bytes;         // packed grid + packed beam + the largest beam's weights and tables
                                    // (protons: layers, spot weights, IDD and sigma tables)
    std::size_t single_pass_bytes;  // density + dose + table + beam: everything resident at once
    std::size_t trace_bytes;        // density + table + beam: tracing one ray table
    std::size_t available_bytes;    // what the plan may use
    bool chunked;                   // false: one pass; true: trace all tables first, then dose in z-chunks
    int chunk_slices;               // z-slices per dose chunk (nz when not chunked)
};

/// Pure host computation (no CUDA calls). Throws DeviceMemoryError naming the sizes when
/// not even one z-slice of dose fits next to the density or the largest ray table.
MemoryPlan plan_photon_dose(const GridParams& grid, const std::vector<PhotonBeamParams>& beams,
                            std::size_t available_bytes);
/// The same for proton beams (the data pointers of the beams are not read).
MemoryPlan plan_proton_dose(const GridParams& grid, const std::vector<ProtonBeamHost>& beams,
                            std::size_t available_bytes);

/// Device memory the engine may use now on the current device: free memory minus the
/// local-memory reserve of the kernels and a headroom, capped by budget_bytes when > 0.
struct MemoryInfo {
    std::size_t free_bytes, total_bytes, reserve_bytes, available_bytes;
};
MemoryInfo memory_info(std::size_t budget_bytes);

/// "" when the current device can run the kernels, otherwise a reason a person can act on
/// ("no CUDA device: ...", or a missing architecture). Never throws.
std::string probe();

struct DeviceInfo {
    int index;
    std::string name;
    int cc_major, cc_minor;
    std::size_t total_memory_bytes;
    int multiprocessors;
};
/// Every visible device; throws std::runtime_error("no CUDA device: ...") when there is none.
std::vector<DeviceInfo> devices();

/// Ray table [ray_nv][ray_nu][ray_nz] (mm) of one beam into host memory `table`. `beam_packed` is a
/// photon or a proton pack (the same frame and ray-lattice fields; only those are read).
void trace_rays_cuda(const float* density, const GridParams& grid, const double* grid_packed,
                     const double* beam_packed, float* table, std::size_t budget_bytes);

/// Dose [Gy] of the beams, added voxel by voxel in beam order, into host dose[nz][ny][nx]
/// (overwritten). Processes the grid in z-chunks when it does not fit the device; the
/// result is bit-identical either way. Returns the plan it followed.
MemoryPlan photon_dose_cuda(const float* density, const GridParams& grid, const double* grid_packed,
                            const std::vector<PhotonBeamHost>& beams, float* dose, std::size_t budget_bytes);

/// Dose [Gy] of proton beams (density: relative stopping power), as photon_dose_cuda.
MemoryPlan proton_dose_cuda(const float* density, const GridParams& grid, const double* grid_packed,
                            const std::vector<ProtonBeamHost>& beams, float* dose, std::size_t budget_bytes);

/// CUDA runtime version this module was built with and linked statically, e.g. "13.0".
std::string runtime_version();
/// Version of the CUDA driver installed ("none" when there is no driver).
std::string driver_version();
/// Bytes rendered for people: "512 B", "3.2 KiB", "12.0 MiB", "1.5 GiB".
std::string format_bytes(std::size_t bytes);

}  // namespace cuda
}  // namespace sfrt
