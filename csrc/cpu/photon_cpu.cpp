#include "photon_cpu.h"

#include <stdexcept>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../physics/photon.h"
#include "../physics/proton.h"
#include "photon_rows.h"
#include "trace_rows.h"

namespace sfrt {

int cpu_max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int cpu_set_max_threads(int n) {
    const int previous = cpu_max_threads();
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
    return previous;
}

namespace {

template <class Beam>
void trace_all(const float* density, const GridParams& grid, const Beam& beam, float* table) {
    const long long n_rays = (long long)beam.ray_nv * beam.ray_nu;
#pragma omp parallel
    {
        rows::TraceScratch scratch(beam.ray_nz);
#pragma omp for schedule(dynamic, 16)
        for (long long r = 0; r < n_rays; ++r) {
            const int iv = (int)(r / beam.ray_nu), iu = (int)(r % beam.ray_nu);
            rows::trace_ray_cpu(density, grid, beam, iv, iu, table + r * beam.ray_nz, scratch);
        }
    }
}

/// Adds f(x, y, z) over every voxel centre to dose, OpenMP over (z, y) rows.
template <class F>
void add_over_grid(const GridParams& grid, float* dose, const F& f) {
    const long long rows = (long long)grid.nz * grid.ny;
#pragma omp parallel for schedule(dynamic, 4)
    for (long long r = 0; r < rows; ++r) {
        const int iz = (int)(r / grid.ny), iy = (int)(r % grid.ny);
        const double z = grid.oz + iz * grid.dz, y = grid.oy + iy * grid.dy;
        float* out = dose + r * grid.nx;
        for (int ix = 0; ix < grid.nx; ++ix) out[ix] += f(grid.ox + ix * grid.dx, y, z);
    }
}

/// Adds every beam's dose in order: its ray table first (the caller's, or traced here), then
/// point(beam, table, x, y, z) over the grid.
template <class BeamArrays, class Point>
void dose_cpu(const float* density, const GridParams& grid, const std::vector<BeamArrays>& beams, float* dose,
              const Point& point) {
    for (const BeamArrays& beam : beams) {
        const auto& b = beam.params;
        std::vector<float> traced;
        const float* t = beam.table;
        if (t == nullptr) {
            traced.resize((size_t)b.ray_nv * b.ray_nu * b.ray_nz);
            trace_all(density, grid, b, traced.data());
            t = traced.data();
        }
        add_over_grid(grid, dose, [&](double x, double y, double z) { return point(beam, t, x, y, z); });
    }
}

}  // namespace

void trace_rays_cpu(const float* density, const GridParams& grid, const PhotonBeamParams& beam, float* table) {
    trace_all(density, grid, beam, table);
}

void trace_rays_cpu(const float* density, const GridParams& grid, const ProtonBeamParams& beam, float* table) {
    trace_all(density, grid, beam, table);
}

void photon_dose_cpu(const float* density, const GridParams& grid, const std::vector<PhotonBeamArrays>& beams,
                     float* dose) {
    // per beam: its ray table, then rows::photon_row over every (z, y) row (photon_rows.h)
    const long long rows = (long long)grid.nz * grid.ny;
    for (const PhotonBeamArrays& beam : beams) {
        const PhotonBeamParams& b = beam.params;
        const long long n_table = (long long)b.ray_nv * b.ray_nu * b.ray_nz;
        if (n_table >= (1LL << 31) || (long long)b.tab_nlev * b.tab_nv * b.tab_nu >= (1LL << 31)) {
            // the row kernels index these tables with 32-bit offsets (vector gathers)
            throw std::length_error("photon_dose: a ray table or scatter table has 2^31 or more entries; "
                                    "use a coarser dose grid or fewer rays");
        }
        std::vector<float> traced;
        const float* table = beam.table;  // the caller's (trace_rays_cpu), or traced here
        if (table == nullptr) {
            traced.resize((size_t)n_table);
            trace_all(density, grid, b, traced.data());
            table = traced.data();
        }
        const rows::DepthPack depth = rows::pack_depth(b, beam.tdd, beam.comp_w, beam.comp_s);
#pragma omp parallel
        {
            rows::RowScratch scratch(grid.nx);
#pragma omp for schedule(dynamic, 4)
            for (long long r = 0; r < rows; ++r) {
                rows::photon_row(b, depth, table, beam.weights, beam.scatter, grid, (int)(r / grid.ny),
                                 (int)(r % grid.ny), scratch, dose + r * grid.nx);
            }
        }
    }
}

void proton_dose_cpu(const float* density, const GridParams& grid, const std::vector<ProtonBeamArrays>& beams,
                     float* dose) {
    dose_cpu(density, grid, beams, dose, [](const ProtonBeamArrays& a, const float* t, double x, double y, double z) {
        return proton_point_dose(a.params, t, a.layers, a.weights, a.idd, a.sigma, x, y, z);
    });
}

}  // namespace sfrt
