// pybind11 module sfrt_engine.kernels._core: argument checks and array plumbing
// for the CPU drivers. Python validates physics inputs; here we check shapes,
// dtypes and contiguity so a wrong call is an error, never a crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind_checks.h"
#include "bind_operator.h"
#include "cpu/photon_cpu.h"
#include "params.h"

namespace py = pybind11;
using sfrt::bind::f32;
using sfrt::bind::f64;
using sfrt::bind::require;

#ifndef SFRT_VERSION
#define SFRT_VERSION "unknown"
#endif

namespace {

/// The caller's ray table of beam i (the geometry cache's), checked against the beam's lattice; null when none.
template <class Params>
const float* given_table(const std::vector<std::optional<f32>>& tables, size_t i, size_t n, const Params& b,
                         const std::string& where) {
    if (tables.empty()) return nullptr;
    require(tables.size() == n, "tables: one entry (an array or None) per beam, or none at all");
    if (!tables[i]) return nullptr;
    const f32& t = *tables[i];
    require(t.ndim() == 3 && t.shape(0) == b.ray_nv && t.shape(1) == b.ray_nu && t.shape(2) == b.ray_nz,
            where + ": ray table shape does not match the beam's ray lattice (ray_nv, ray_nu, ray_nz) = (" +
                std::to_string(b.ray_nv) + ", " + std::to_string(b.ray_nu) + ", " + std::to_string(b.ray_nz) + ")");
    return t.data();
}

py::array_t<float> trace_rays(const f32& density, const f64& grid, const f64& beam) {
    // photon and proton packs share the frame and ray-lattice layout (elements 0..24)
    const sfrt::GridParams g = sfrt::bind::grid_from(grid, density);
    const sfrt::PhotonBeamParams b = sfrt::bind::ray_geometry_from(beam);
    py::array_t<float> table({(py::ssize_t)b.ray_nv, (py::ssize_t)b.ray_nu, (py::ssize_t)b.ray_nz});
    {
        py::gil_scoped_release release;
        sfrt::trace_rays_cpu(density.data(), g, b, table.mutable_data());
    }
    return table;
}

py::array_t<float> photon_dose(const f32& density, const f64& grid, const std::vector<f64>& params,
                               const std::vector<f32>& weights, const std::vector<f32>& tdd,
                               const std::vector<f32>& comp_w, const std::vector<f32>& comp_s,
                               const std::vector<f32>& scatter, const std::vector<std::optional<f32>>& tables) {
    const sfrt::GridParams g = sfrt::bind::grid_from(grid, density);
    const size_t n = params.size();
    require(weights.size() == n && tdd.size() == n && comp_w.size() == n && comp_s.size() == n && scatter.size() == n,
            "photon_dose: params, weights, tdd, comp_w, comp_s and scatter must have one entry per beam");
    std::vector<sfrt::PhotonBeamArrays> beams;
    for (size_t i = 0; i < n; ++i) {
        const std::string where = "beam " + std::to_string(i);
        sfrt::PhotonBeamArrays a;
        a.params = sfrt::bind::photon_beam_from(params[i], weights[i], tdd[i], comp_w[i], comp_s[i], scatter[i], where);
        a.weights = weights[i].data();
        a.tdd = tdd[i].data();
        a.comp_w = comp_w[i].data();
        a.comp_s = comp_s[i].data();
        a.scatter = scatter[i].data();
        a.table = given_table(tables, i, n, a.params, where);
        beams.push_back(a);
    }
    return sfrt::bind::dose_array(g, [&](float* out) {
        std::fill(out, out + (size_t)g.nz * g.ny * g.nx, 0.0f);
        sfrt::photon_dose_cpu(density.data(), g, beams, out);
    });
}

py::array_t<float> proton_dose(const f32& density, const f64& grid, const std::vector<f64>& params,
                               const std::vector<f64>& layers, const std::vector<f32>& weights,
                               const std::vector<f32>& idd, const std::vector<f32>& sigma,
                               const std::vector<std::optional<f32>>& tables) {
    const sfrt::GridParams g = sfrt::bind::grid_from(grid, density);
    const size_t n = params.size();
    require(layers.size() == n && weights.size() == n && idd.size() == n && sigma.size() == n,
            "proton_dose: params, layers, weights, idd and sigma must have one entry per beam");
    std::vector<sfrt::ProtonBeamArrays> beams;
    for (size_t i = 0; i < n; ++i) {
        const std::string where = "proton beam " + std::to_string(i);
        sfrt::ProtonBeamArrays a;
        a.params = sfrt::bind::proton_beam_from(params[i], layers[i], weights[i], where);
        sfrt::bind::check_proton_tables(a.params, idd[i], sigma[i], where);
        a.layers = layers[i].data();
        a.weights = weights[i].data();
        a.idd = idd[i].data();
        a.sigma = sigma[i].data();
        a.table = given_table(tables, i, n, a.params, where);
        beams.push_back(a);
    }
    return sfrt::bind::dose_array(g, [&](float* out) {
        std::fill(out, out + (size_t)g.nz * g.ny * g.nx, 0.0f);
        sfrt::proton_dose_cpu(density.data(), g, beams, out);
    });
}

int set_max_threads(int n) {
    require(n >= 1, "set_max_threads: n = " + std::to_string(n) + "; expected a thread count >= 1");
    return sfrt::cpu_set_max_threads(n);
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
    info["compiler"] = sfrt::bind::compiler_text();
    // vector ISA the kernels were compiled for (the -march level), for peak-FLOP/s models
#if defined(__AVX512F__)
    info["simd_bits"] = 512;
#elif defined(__AVX__)
    info["simd_bits"] = 256;
#elif defined(__SSE2__) || defined(__ARM_NEON)
    info["simd_bits"] = 128;
#else
    info["simd_bits"] = 0;
#endif
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
    info["fma"] = true;
#else
    info["fma"] = false;
#endif
    info["max_beamlets_1d"] = SFRT_MAX_BEAMLETS_1D;
    info["max_components"] = SFRT_MAX_COMPONENTS;
    return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "sfrt-engine CPU kernels (C++/OpenMP); physics in csrc/physics";
    m.def("build_info", &build_info, "Version and compiled features of this module.");
    m.def("set_max_threads", &set_max_threads, py::arg("n"),
          "Threads of the OpenMP regions the calling thread starts from now on (omp_set_num_threads); "
          "returns the previous count.");
    m.def("trace_rays", &trace_rays, py::arg("density"), py::arg("grid"), py::arg("beam"),
          "Radiological depth ray table [nv, nu, nz] (mm) of one packed photon beam.");
    m.def("photon_dose", &photon_dose, py::arg("density"), py::arg("grid"), py::arg("params"), py::arg("weights"),
          py::arg("tdd"), py::arg("comp_w"), py::arg("comp_s"), py::arg("scatter"),
          py::arg("tables") = std::vector<std::optional<f32>>(),
          "Dose [Gy] float32 [z, y, x] of packed photon beams, added in order; ``tables`` (optional, one per beam, "
          "an array or None) are ray tables from trace_rays to use instead of tracing.");
    m.def("proton_dose", &proton_dose, py::arg("density"), py::arg("grid"), py::arg("params"), py::arg("layers"),
          py::arg("weights"), py::arg("idd"), py::arg("sigma"), py::arg("tables") = std::vector<std::optional<f32>>(),
          "Dose [Gy] float32 [z, y, x] of packed proton beams (water-equivalent density), added in order; "
          "``tables`` as for photon_dose.");
    sfrt::bind::register_operators(m);
}
