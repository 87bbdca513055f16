// pybind11 module sfrt_engine.kernels._core: argument checks and array plumbing
// for the CPU drivers. Python validates physics inputs; here we check shapes,
// dtypes and contiguity so a wrong call is an error, never a crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/photon_cpu.h"
#include "params.h"

namespace py = pybind11;
using f32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using f64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

#ifndef SFRT_VERSION
#define SFRT_VERSION "unknown"
#endif

namespace {

void require(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}

sfrt::GridParams grid_from(const f64& grid, const f32& density) {
    require(grid.ndim() == 1 && grid.shape(0) == SFRT_GRID_PACK_SIZE,
            "grid: expected a packed float64 vector of length " + std::to_string(SFRT_GRID_PACK_SIZE));
    sfrt::GridParams g = sfrt::unpack_grid(grid.data());
    require(g.nx > 0 && g.ny > 0 && g.nz > 0 && g.dx > 0 && g.dy > 0 && g.dz > 0, "grid: non-positive size or spacing");
    require(density.ndim() == 3 && density.shape(0) == g.nz && density.shape(1) == g.ny && density.shape(2) == g.nx,
            "density: shape does not match the grid (nz, ny, nx) = (" + std::to_string(g.nz) + ", " +
                std::to_string(g.ny) + ", " + std::to_string(g.nx) + ")");
    return g;
}

sfrt::PhotonBeamParams beam_from(const f64& packed, const std::string& where) {
    require(packed.ndim() == 1 && packed.shape(0) == SFRT_BEAM_PACK_SIZE,
            where + ": expected a packed float64 vector of length " + std::to_string(SFRT_BEAM_PACK_SIZE));
    sfrt::PhotonBeamParams b = sfrt::unpack_photon_beam(packed.data());
    require(b.ray_nu > 0 && b.ray_nv > 0 && b.ray_nz > 0, where + ": empty ray table");
    require(b.nbu > 0 && b.nbv > 0 && b.nbu <= SFRT_MAX_BEAMLETS_1D && b.nbv <= SFRT_MAX_BEAMLETS_1D,
            where + ": beamlet counts must be 1.." + std::to_string(SFRT_MAX_BEAMLETS_1D));
    require(b.ncomp >= 1 && b.ncomp <= SFRT_MAX_COMPONENTS, where + ": 1.." + std::to_string(SFRT_MAX_COMPONENTS) +
                                                               " lateral components");
    require(b.ndepth >= 2 && b.depth_step > 0 && b.sad > 0, where + ": bad depth table or SAD");
    return b;
}

py::array_t<float> trace_rays(const f32& density, const f64& grid, const f64& beam) {
    // photon and proton packs share the frame and ray-lattice layout (elements 0..24)
    const sfrt::GridParams g = grid_from(grid, density);
    require(beam.ndim() == 1 && beam.shape(0) == SFRT_BEAM_PACK_SIZE,
            "beam: expected a packed float64 vector of length " + std::to_string(SFRT_BEAM_PACK_SIZE));
    const sfrt::PhotonBeamParams b = sfrt::unpack_photon_beam(beam.data());
    require(b.ray_nu > 0 && b.ray_nv > 0 && b.ray_nz > 0 && b.sad > 0, "beam: empty ray table or bad SAD");
    py::array_t<float> table({(py::ssize_t)b.ray_nv, (py::ssize_t)b.ray_nu, (py::ssize_t)b.ray_nz});
    {
        py::gil_scoped_release release;
        sfrt::trace_rays_cpu(density.data(), g, b, table.mutable_data());
    }
    return table;
}

py::array_t<float> photon_dose(const f32& density, const f64& grid, const std::vector<f64>& params,
                               const std::vector<f32>& weights, const std::vector<f32>& tdd,
                               const std::vector<f32>& comp_w, const std::vector<f32>& comp_s) {
    const sfrt::GridParams g = grid_from(grid, density);
    const size_t n = params.size();
    require(weights.size() == n && tdd.size() == n && comp_w.size() == n && comp_s.size() == n,
            "photon_dose: params, weights, tdd, comp_w and comp_s must have one entry per beam");
    std::vector<sfrt::PhotonBeamArrays> beams;
    for (size_t i = 0; i < n; ++i) {
        const std::string where = "beam " + std::to_string(i);
        sfrt::PhotonBeamArrays a;
        a.params = beam_from(params[i], where);
        const sfrt::PhotonBeamParams& b = a.params;
        require(weights[i].ndim() == 2 && weights[i].shape(0) == b.nbv && weights[i].shape(1) == b.nbu,
                where + ": weights shape does not match (nbv, nbu)");
        require(tdd[i].ndim() == 1 && tdd[i].shape(0) == b.ndepth, where + ": depth dose length != ndepth");
        require(comp_w[i].ndim() == 2 && comp_w[i].shape(0) == b.ncomp && comp_w[i].shape(1) == b.ndepth,
                where + ": component weight table shape != (ncomp, ndepth)");
        require(comp_s[i].ndim() == 2 && comp_s[i].shape(0) == b.ncomp && comp_s[i].shape(1) == b.ndepth,
                where + ": component sigma table shape != (ncomp, ndepth)");
        a.weights = weights[i].data();
        a.tdd = tdd[i].data();
        a.comp_w = comp_w[i].data();
        a.comp_s = comp_s[i].data();
        beams.push_back(a);
    }
    py::array_t<float> dose({(py::ssize_t)g.nz, (py::ssize_t)g.ny, (py::ssize_t)g.nx});
    float* out = dose.mutable_data();
    {
        py::gil_scoped_release release;
        std::fill(out, out + (size_t)g.nz * g.ny * g.nx, 0.0f);
        sfrt::photon_dose_cpu(density.data(), g, beams, out);
    }
    return dose;
}

py::array_t<float> proton_dose(const f32& density, const f64& grid, const std::vector<f64>& params,
                               const std::vector<f64>& layers, const std::vector<f32>& weights,
                               const std::vector<f32>& idd, const std::vector<f32>& sigma) {
    const sfrt::GridParams g = grid_from(grid, density);
    const size_t n = params.size();
    require(layers.size() == n && weights.size() == n && idd.size() == n && sigma.size() == n,
            "proton_dose: params, layers, weights, idd and sigma must have one entry per beam");
    std::vector<sfrt::ProtonBeamArrays> beams;
    for (size_t i = 0; i < n; ++i) {
        const std::string where = "proton beam " + std::to_string(i);
        require(params[i].ndim() == 1 && params[i].shape(0) == SFRT_PROTON_PACK_SIZE,
                where + ": expected a packed float64 vector of length " + std::to_string(SFRT_PROTON_PACK_SIZE));
        sfrt::ProtonBeamArrays a;
        a.params = sfrt::unpack_proton_beam(params[i].data());
        const sfrt::ProtonBeamParams& b = a.params;
        require(b.ray_nu > 0 && b.ray_nv > 0 && b.ray_nz > 0 && b.sad > 0, where + ": empty ray table or bad SAD");
        require(b.n_layers >= 1 && layers[i].ndim() == 2 && layers[i].shape(0) == b.n_layers &&
                    layers[i].shape(1) == SFRT_LAYER_PACK_SIZE,
                where + ": layers must be (n_layers, " + std::to_string(SFRT_LAYER_PACK_SIZE) + ")");
        require(idd[i].ndim() == 2 && idd[i].shape(0) == b.n_energies && idd[i].shape(1) == b.ndepth &&
                    sigma[i].ndim() == 2 && sigma[i].shape(0) == b.n_energies && sigma[i].shape(1) == b.ndepth &&
                    b.ndepth >= 2 && b.depth_step > 0,
                where + ": idd and sigma tables must be (n_energies, ndepth)");
        const long long n_weights = weights[i].ndim() == 1 ? (long long)weights[i].shape(0) : -1;
        require(n_weights >= 0, where + ": weights must be a flat float32 array");
        for (int l = 0; l < b.n_layers; ++l) {
            const sfrt::SpotLayerParams s = sfrt::unpack_layer(layers[i].data(), l);
            require(s.energy >= 0 && s.energy < b.n_energies, where + ": layer energy index out of range");
            require(s.nu >= 1 && s.nv >= 1 && s.nu <= SFRT_MAX_BEAMLETS_1D && s.nv <= SFRT_MAX_BEAMLETS_1D &&
                        s.du > 0 && s.dv > 0,
                    where + ": layer spot lattice must have 1.." + std::to_string(SFRT_MAX_BEAMLETS_1D) +
                        " spots per axis and positive spacing");
            require(s.weight_offset >= 0 && s.weight_offset + (long long)s.nu * s.nv <= n_weights,
                    where + ": layer weights run past the weight array");
            require(s.range_shifter_mm >= 0 && s.range_shifter_mm < 1e4, where + ": range shifter must be >= 0 mm");
        }
        a.layers = layers[i].data();
        a.weights = weights[i].data();
        a.idd = idd[i].data();
        a.sigma = sigma[i].data();
        beams.push_back(a);
    }
    py::array_t<float> dose({(py::ssize_t)g.nz, (py::ssize_t)g.ny, (py::ssize_t)g.nx});
    float* out = dose.mutable_data();
    {
        py::gil_scoped_release release;
        std::fill(out, out + (size_t)g.nz * g.ny * g.nx, 0.0f);
        sfrt::proton_dose_cpu(density.data(), g, beams, out);
    }
    return dose;
}

py::dict build_info() {
    py::dict info;
    info["module"] = "sfrt_engine.kernels._core";
    info["version"] = SFRT_VERSION;
#ifdef _OPENMP
    info["openmp"] = true;
    info["openmp_version"] = _OPENMP;
#else
    info["openmp"] = false;
#endif
    info["max_threads"] = sfrt::cpu_max_threads();
#if defined(__clang__)
    info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    info["compiler"] = std::string("gcc ") + __VERSION__;
#else
    info["compiler"] = "unknown";
#endif
    info["max_beamlets_1d"] = SFRT_MAX_BEAMLETS_1D;
    info["max_components"] = SFRT_MAX_COMPONENTS;
    return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "sfrt-engine CPU kernels (C++/OpenMP); physics in csrc/physics";
    m.def("build_info", &build_info, "Version and compiled features of this module.");
    m.def("trace_rays", &trace_rays, py::arg("density"), py::arg("grid"), py::arg("beam"),
          "Radiological depth ray table [nv, nu, nz] (mm) of one packed photon beam.");
    m.def("photon_dose", &photon_dose, py::arg("density"), py::arg("grid"), py::arg("params"), py::arg("weights"),
          py::arg("tdd"), py::arg("comp_w"), py::arg("comp_s"),
          "Dose [Gy] float32 [z, y, x] of packed photon beams, added in order.");
    m.def("proton_dose", &proton_dose, py::arg("density"), py::arg("grid"), py::arg("params"), py::arg("layers"),
          py::arg("weights"), py::arg("idd"), py::arg("sigma"),
          "Dose [Gy] float32 [z, y, x] of packed proton beams (water-equivalent density), added in order.");
}
