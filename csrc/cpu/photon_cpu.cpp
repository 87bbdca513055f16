#include "photon_cpu.h"

#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../physics/photon.h"
#include "../physics/proton.h"

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
#pragma omp parallel for schedule(dynamic, 16)
    for (long long r = 0; r < n_rays; ++r) {
        const int iv = (int)(r / beam.ray_nu), iu = (int)(r % beam.ray_nu);
        trace_ray(density, grid, beam, iv, iu, table + r * beam.ray_nz, 1);
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
    dose_cpu(density, grid, beams, dose, [](const PhotonBeamArrays& a, const float* t, double x, double y, double z) {
        return photon_point_dose(a.params, t, a.weights, a.tdd, a.comp_w, a.comp_s, a.scatter, x, y, z);
    });
}

void proton_dose_cpu(const float* density, const GridParams& grid, const std::vector<ProtonBeamArrays>& beams,
                     float* dose) {
    dose_cpu(density, grid, beams, dose, [](const ProtonBeamArrays& a, const float* t, double x, double y, double z) {
        return proton_point_dose(a.params, t, a.layers, a.weights, a.idd, a.sigma, x, y, z);
    });
}

}  // namespace sfrt
