// Argument checks shared by the pybind11 modules _core and _cuda: packed parameter
// vectors and the arrays that go with them are validated here once, so a wrong call is
// a ValueError naming the beam and the problem, never a crash in a kernel.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "params.h"

namespace sfrt::bind {

namespace py = pybind11;
using f32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using f64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

inline void require(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}

inline GridParams grid_from(const f64& grid) {
    require(grid.ndim() == 1 && grid.shape(0) == SFRT_GRID_PACK_SIZE,
            "grid: expected a packed float64 vector of length " + std::to_string(SFRT_GRID_PACK_SIZE));
    GridParams g = unpack_grid(grid.data());
    require(g.nx > 0 && g.ny > 0 && g.nz > 0 && g.dx > 0 && g.dy > 0 && g.dz > 0, "grid: non-positive size or spacing");
    return g;
}

inline GridParams grid_from(const f64& grid, const f32& density) {
    GridParams g = grid_from(grid);
    require(density.ndim() == 3 && density.shape(0) == g.nz && density.shape(1) == g.ny && density.shape(2) == g.nx,
            "density: shape does not match the grid (nz, ny, nx) = (" + std::to_string(g.nz) + ", " +
                std::to_string(g.ny) + ", " + std::to_string(g.nx) + ")");
    return g;
}

/// The frame and ray lattice of a photon or proton pack (they share elements 0..24).
inline PhotonBeamParams ray_geometry_from(const f64& beam) {
    require(beam.ndim() == 1 && beam.shape(0) == SFRT_BEAM_PACK_SIZE,
            "beam: expected a packed float64 vector of length " + std::to_string(SFRT_BEAM_PACK_SIZE));
    const PhotonBeamParams b = unpack_photon_beam(beam.data());
    require(b.ray_nu > 0 && b.ray_nv > 0 && b.ray_nz > 0 && b.sad > 0, "beam: empty ray table or bad SAD");
    return b;
}

inline PhotonBeamParams beam_from(const f64& packed, const std::string& where) {
    require(packed.ndim() == 1 && packed.shape(0) == SFRT_BEAM_PACK_SIZE,
            where + ": expected a packed float64 vector of length " + std::to_string(SFRT_BEAM_PACK_SIZE));
    PhotonBeamParams b = unpack_photon_beam(packed.data());
    require(b.ray_nu > 0 && b.ray_nv > 0 && b.ray_nz > 0, where + ": empty ray table");
    require(b.nbu > 0 && b.nbv > 0 && b.nbu <= SFRT_MAX_BEAMLETS_1D && b.nbv <= SFRT_MAX_BEAMLETS_1D,
            where + ": beamlet counts must be 1.." + std::to_string(SFRT_MAX_BEAMLETS_1D));
    require(b.ncomp >= 1 && b.ncomp <= SFRT_MAX_COMPONENTS,
            where + ": 1.." + std::to_string(SFRT_MAX_COMPONENTS) + " lateral components");
    require(b.ndepth >= 2 && b.depth_step > 0 && b.sad > 0, where + ": bad depth table or SAD");
    require(b.n_direct >= 0 && b.n_direct <= b.ncomp, where + ": n_direct must be 0..ncomp");
    if (b.n_direct < b.ncomp) {
        require(b.tab_nu >= 1 && b.tab_nv >= 1 && b.tab_nlev >= 1 && b.tab_du > 0 && b.tab_dv > 0 && b.tab_s0 > 0 &&
                    b.tab_log_ratio > 0,
                where + ": scatter table lattice needs positive sizes, steps, s0 and log ratio");
    }
    return b;
}

/// A photon beam's pack with its weight map and machine tables.
inline PhotonBeamParams photon_beam_from(const f64& packed, const f32& weights, const f32& tdd, const f32& comp_w,
                                         const f32& comp_s, const f32& scatter, const std::string& where) {
    const PhotonBeamParams b = beam_from(packed, where);
    require(weights.ndim() == 2 && weights.shape(0) == b.nbv && weights.shape(1) == b.nbu,
            where + ": weights shape does not match (nbv, nbu)");
    require(tdd.ndim() == 1 && tdd.shape(0) == b.ndepth, where + ": depth dose length != ndepth");
    require(comp_w.ndim() == 2 && comp_w.shape(0) == b.ncomp && comp_w.shape(1) == b.ndepth,
            where + ": component weight table shape != (ncomp, ndepth)");
    require(comp_s.ndim() == 2 && comp_s.shape(0) == b.ncomp && comp_s.shape(1) == b.ndepth,
            where + ": component sigma table shape != (ncomp, ndepth)");
    if (b.n_direct < b.ncomp) {
        require(scatter.ndim() == 3 && scatter.shape(0) == b.tab_nlev && scatter.shape(1) == b.tab_nv &&
                    scatter.shape(2) == b.tab_nu,
                where + ": scatter table shape != (tab_nlev, tab_nv, tab_nu) = (" + std::to_string(b.tab_nlev) + ", " +
                    std::to_string(b.tab_nv) + ", " + std::to_string(b.tab_nu) + ")");
    } else {
        require(scatter.ndim() == 3 && scatter.shape(0) == 0,
                where + ": no tabulated component (n_direct == ncomp): the scatter table must have shape (0, *, *)");
    }
    return b;
}

/// A proton beam's pack with its layers and flat spot weights.
inline ProtonBeamParams proton_beam_from(const f64& packed, const f64& layers, const f32& weights,
                                         const std::string& where) {
    require(packed.ndim() == 1 && packed.shape(0) == SFRT_PROTON_PACK_SIZE,
            where + ": expected a packed float64 vector of length " + std::to_string(SFRT_PROTON_PACK_SIZE));
    const ProtonBeamParams b = unpack_proton_beam(packed.data());
    require(b.ray_nu > 0 && b.ray_nv > 0 && b.ray_nz > 0 && b.sad > 0, where + ": empty ray table or bad SAD");
    require(b.n_energies >= 1 && b.ndepth >= 2 && b.depth_step > 0, where + ": bad idd/sigma table sizes");
    require(b.n_layers >= 1 && layers.ndim() == 2 && layers.shape(0) == b.n_layers &&
                layers.shape(1) == SFRT_LAYER_PACK_SIZE,
            where + ": layers must be (n_layers, " + std::to_string(SFRT_LAYER_PACK_SIZE) + ")");
    require(weights.ndim() == 1, where + ": weights must be a flat float32 array");
    const long long n_weights = (long long)weights.shape(0);
    for (int l = 0; l < b.n_layers; ++l) {
        const SpotLayerParams s = unpack_layer(layers.data(), l);
        require(s.energy >= 0 && s.energy < b.n_energies, where + ": layer energy index out of range");
        require(s.nu >= 1 && s.nv >= 1 && s.nu <= SFRT_MAX_BEAMLETS_1D && s.nv <= SFRT_MAX_BEAMLETS_1D &&
                    s.du > 0 && s.dv > 0,
                where + ": layer spot lattice must have 1.." + std::to_string(SFRT_MAX_BEAMLETS_1D) +
                    " spots per axis and positive spacing");
        require(s.weight_offset >= 0 && s.weight_offset + (long long)s.nu * s.nv <= n_weights,
                where + ": layer weights run past the weight array");
        require(s.range_shifter_mm >= 0 && s.range_shifter_mm < 1e4, where + ": range shifter must be >= 0 mm");
    }
    return b;
}

/// The machine's per-energy tables of a proton beam.
inline void check_proton_tables(const ProtonBeamParams& b, const f32& idd, const f32& sigma, const std::string& where) {
    require(idd.ndim() == 2 && idd.shape(0) == b.n_energies && idd.shape(1) == b.ndepth && sigma.ndim() == 2 &&
                sigma.shape(0) == b.n_energies && sigma.shape(1) == b.ndepth,
            where + ": idd and sigma tables must be (n_energies, ndepth)");
}

/// A float32 [nz][ny][nx] dose array for grid g, filled by compute(out) with the GIL released.
template <class Compute>
py::array_t<float> dose_array(const GridParams& g, const Compute& compute) {
    py::array_t<float> dose({(py::ssize_t)g.nz, (py::ssize_t)g.ny, (py::ssize_t)g.nx});
    float* out = dose.mutable_data();
    {
        py::gil_scoped_release release;
        compute(out);
    }
    return dose;
}

/// The C++ compiler that built the module, e.g. "gcc 12.2.0".
inline std::string compiler_text() {
#if defined(__clang__)
    return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("gcc ") + __VERSION__;
#else
    return "unknown";
#endif
}

}  // namespace sfrt::bind
