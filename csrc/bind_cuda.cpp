// pybind11 module sfrt_engine.kernels._cuda: argument checks and array plumbing
// for the CUDA drivers (csrc/cuda/dose_cuda.cu). Same trace_rays / photon_dose /
// proton_dose as _core, plus device queries and memory plans. Importing this module makes no CUDA call, so it
// imports on machines without a GPU or driver; probe() says whether it can run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind_checks.h"
#include "bind_operator_cuda.h"
#include "cuda/dose_cuda.h"
#include "params.h"

namespace py = pybind11;
using sfrt::bind::f32;
using sfrt::bind::f64;

#ifndef SFRT_VERSION
#define SFRT_VERSION "unknown"
#endif
#ifndef SFRT_CUDA_ARCHS
#define SFRT_CUDA_ARCHS "unknown"
#endif
#ifndef SFRT_NVCC_VERSION
#define SFRT_NVCC_VERSION "unknown"
#endif

using sfrt::bind::beam_from;
using sfrt::bind::grid_from;
using sfrt::bind::require;

namespace {

/// A proton beam's pack, layers and weights checked as _core.proton_dose checks them; the table
/// pointers are left null (plan_proton_memory needs only the sizes).
sfrt::cuda::ProtonBeamHost proton_beam_from(const f64& packed, const f64& layers, const f32& weights,
                                            const std::string& where) {
    sfrt::cuda::ProtonBeamHost a{};
    a.packed = packed.data();
    a.params = sfrt::bind::proton_beam_from(packed, layers, weights, where);
    a.layers = layers.data();
    a.weights = weights.data();
    a.n_weights = (std::size_t)weights.shape(0);
    return a;
}

std::size_t budget_from(long long budget) {
    require(budget >= 0, "memory_budget_bytes: expected >= 0 (0 means no budget), got " + std::to_string(budget));
    return (std::size_t)budget;
}

py::dict plan_dict(const sfrt::cuda::MemoryPlan& p) {
    py::dict d;
    d["chunked"] = p.chunked;
    d["chunk_slices"] = p.chunk_slices;
    d["available_bytes"] = p.available_bytes;
    d["density_bytes"] = p.density_bytes;
    d["dose_bytes"] = p.dose_bytes;
    d["slice_bytes"] = p.slice_bytes;
    d["table_bytes"] = p.table_bytes;
    d["beam_bytes"] = p.beam_bytes;
    d["single_pass_bytes"] = p.single_pass_bytes;
    d["trace_bytes"] = p.trace_bytes;
    return d;
}

py::object probe() {
    const std::string reason = sfrt::cuda::probe();
    if (reason.empty()) return py::none();
    return py::str(reason);
}

py::list devices() {
    py::list out;
    for (const sfrt::cuda::DeviceInfo& d : sfrt::cuda::devices()) {
        py::dict info;
        info["index"] = d.index;
        info["name"] = d.name;
        info["compute_capability"] = py::make_tuple(d.cc_major, d.cc_minor);
        info["total_memory_bytes"] = d.total_memory_bytes;
        info["multiprocessors"] = d.multiprocessors;
        out.append(info);
    }
    return out;
}

py::dict memory_info(long long budget) {
    const sfrt::cuda::MemoryInfo m = sfrt::cuda::memory_info(budget_from(budget));
    py::dict d;
    d["free_bytes"] = m.free_bytes;
    d["total_bytes"] = m.total_bytes;
    d["reserve_bytes"] = m.reserve_bytes;
    d["available_bytes"] = m.available_bytes;
    return d;
}

py::dict plan_memory(const f64& grid, const std::vector<f64>& params, long long available_bytes) {
    const sfrt::GridParams g = grid_from(grid);
    require(available_bytes >= 0, "available_bytes: expected >= 0");
    std::vector<sfrt::PhotonBeamParams> beams;
    for (std::size_t i = 0; i < params.size(); ++i) beams.push_back(beam_from(params[i], "beam " + std::to_string(i)));
    return plan_dict(sfrt::cuda::plan_photon_dose(g, beams, (std::size_t)available_bytes));
}

py::dict plan_proton_memory(const f64& grid, const std::vector<f64>& params, const std::vector<f64>& layers,
                            const std::vector<f32>& weights, long long available_bytes) {
    const sfrt::GridParams g = grid_from(grid);
    require(available_bytes >= 0, "available_bytes: expected >= 0");
    require(layers.size() == params.size() && weights.size() == params.size(),
            "plan_proton_memory: params, layers and weights must have one entry per beam");
    std::vector<sfrt::cuda::ProtonBeamHost> beams;
    for (std::size_t i = 0; i < params.size(); ++i) {
        beams.push_back(proton_beam_from(params[i], layers[i], weights[i], "proton beam " + std::to_string(i)));
    }
    return plan_dict(sfrt::cuda::plan_proton_dose(g, beams, (std::size_t)available_bytes));
}

py::array_t<float> trace_rays(const f32& density, const f64& grid, const f64& beam, long long budget) {
    // photon and proton packs share the frame and ray-lattice layout (elements 0..24), all that is read
    const sfrt::GridParams g = grid_from(grid, density);
    const sfrt::PhotonBeamParams b = sfrt::bind::ray_geometry_from(beam);
    const std::size_t limit = budget_from(budget);
    py::array_t<float> table({(py::ssize_t)b.ray_nv, (py::ssize_t)b.ray_nu, (py::ssize_t)b.ray_nz});
    float* out = table.mutable_data();
    {
        py::gil_scoped_release release;
        sfrt::cuda::trace_rays_cuda(density.data(), g, grid.data(), beam.data(), out, limit);
    }
    return table;
}

py::array_t<float> photon_dose(const f32& density, const f64& grid, const std::vector<f64>& params,
                               const std::vector<f32>& weights, const std::vector<f32>& tdd,
                               const std::vector<f32>& comp_w, const std::vector<f32>& comp_s,
                               const std::vector<f32>& scatter, long long budget) {
    const sfrt::GridParams g = grid_from(grid, density);
    const std::size_t n = params.size();
    require(weights.size() == n && tdd.size() == n && comp_w.size() == n && comp_s.size() == n && scatter.size() == n,
            "photon_dose: params, weights, tdd, comp_w, comp_s and scatter must have one entry per beam");
    std::vector<sfrt::cuda::PhotonBeamHost> beams;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string where = "beam " + std::to_string(i);
        sfrt::cuda::PhotonBeamHost a{};
        a.packed = params[i].data();
        a.params = sfrt::bind::photon_beam_from(params[i], weights[i], tdd[i], comp_w[i], comp_s[i], scatter[i], where);
        a.weights = weights[i].data();
        a.tdd = tdd[i].data();
        a.comp_w = comp_w[i].data();
        a.comp_s = comp_s[i].data();
        a.scatter = scatter[i].data();
        beams.push_back(a);
    }
    const std::size_t limit = budget_from(budget);
    return sfrt::bind::dose_array(g, [&](float* out) {
        sfrt::cuda::photon_dose_cuda(density.data(), g, grid.data(), beams, out, limit);
    });
}

py::array_t<float> proton_dose(const f32& density, const f64& grid, const std::vector<f64>& params,
                               const std::vector<f64>& layers, const std::vector<f32>& weights,
                               const std::vector<f32>& idd, const std::vector<f32>& sigma, long long budget) {
    const sfrt::GridParams g = grid_from(grid, density);
    const std::size_t n = params.size();
    require(layers.size() == n && weights.size() == n && idd.size() == n && sigma.size() == n,
            "proton_dose: params, layers, weights, idd and sigma must have one entry per beam");
    std::vector<sfrt::cuda::ProtonBeamHost> beams;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string where = "proton beam " + std::to_string(i);
        sfrt::cuda::ProtonBeamHost a = proton_beam_from(params[i], layers[i], weights[i], where);
        sfrt::bind::check_proton_tables(a.params, idd[i], sigma[i], where);
        a.idd = idd[i].data();
        a.sigma = sigma[i].data();
        beams.push_back(a);
    }
    const std::size_t limit = budget_from(budget);
    return sfrt::bind::dose_array(g, [&](float* out) {
        sfrt::cuda::proton_dose_cuda(density.data(), g, grid.data(), beams, out, limit);
    });
}

py::list split_archs(const std::string& text) {
    py::list out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = text.find(',', start);
        const std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (!item.empty()) out.append(item);
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return out;
}

py::dict build_info() {
    py::dict info;
    info["module"] = "sfrt_engine.kernels._cuda";
    info["version"] = SFRT_VERSION;
    info["cuda_architectures"] = split_archs(SFRT_CUDA_ARCHS);
    info["cuda_runtime_version"] = sfrt::cuda::runtime_version();
    info["cuda_runtime"] = "static";
    info["nvcc_version"] = SFRT_NVCC_VERSION;
    info["host_compiler"] = sfrt::bind::compiler_text();
    info["max_beamlets_1d"] = SFRT_MAX_BEAMLETS_1D;
    info["max_components"] = SFRT_MAX_COMPONENTS;
    return info;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "sfrt-engine CUDA kernels (nvcc); physics in csrc/physics. Importing makes no CUDA call.";
    py::register_exception<sfrt::cuda::DeviceMemoryError>(m, "DeviceMemoryError", PyExc_MemoryError);
    m.def("build_info", &build_info, "Version, CUDA architectures and runtime this module was built with (no CUDA call).");
    m.def("probe", &probe, "None when the current CUDA device can run the kernels, otherwise the reason.");
    m.def("driver_version", &sfrt::cuda::driver_version, "Installed CUDA driver version, 'none' without a driver.");
    m.def("devices", &devices, "Visible CUDA devices; RuntimeError 'no CUDA device: ...' when there is none.");
    m.def("memory_info", &memory_info, py::arg("memory_budget_bytes") = 0,
          "Device memory (bytes) free, total, reserved for kernel local memory and headroom, and available "
          "to the engine (capped by memory_budget_bytes when > 0).");
    m.def("plan_memory", &plan_memory, py::arg("grid"), py::arg("params"), py::arg("available_bytes"),
          "How photon_dose would use available_bytes of device memory (pure; no CUDA call). "
          "Raises DeviceMemoryError when even z-chunks do not fit.");
    m.def("plan_proton_memory", &plan_proton_memory, py::arg("grid"), py::arg("params"), py::arg("layers"),
          py::arg("weights"), py::arg("available_bytes"),
          "How proton_dose would use available_bytes of device memory (pure; no CUDA call). "
          "Raises DeviceMemoryError when even z-chunks do not fit.");
    m.def("trace_rays", &trace_rays, py::arg("density"), py::arg("grid"), py::arg("beam"), py::kw_only(),
          py::arg("memory_budget_bytes") = 0,
          "Radiological depth ray table [nv, nu, nz] (mm) of one packed photon or proton beam.");
    m.def("photon_dose", &photon_dose, py::arg("density"), py::arg("grid"), py::arg("params"), py::arg("weights"),
          py::arg("tdd"), py::arg("comp_w"), py::arg("comp_s"), py::arg("scatter"), py::kw_only(), py::arg("memory_budget_bytes") = 0,
          "Dose [Gy] float32 [z, y, x] of packed photon beams, added in order; z-chunked when the grid does not "
          "fit the device.");
    m.def("proton_dose", &proton_dose, py::arg("density"), py::arg("grid"), py::arg("params"), py::arg("layers"),
          py::arg("weights"), py::arg("idd"), py::arg("sigma"), py::kw_only(), py::arg("memory_budget_bytes") = 0,
          "Dose [Gy] float32 [z, y, x] of packed proton beams (water-equivalent density), added in order; "
          "z-chunked when the grid does not fit the device.");
    sfrt::bind::register_cuda_operators(m);
}
