// pybind11 plumbing of the dose-operator launchers: device addresses in, nothing out. The arrays
// belong to the caller (sfrt_engine/optimise/_engine_gpu.py, cupy); their sizes are checked there.
#include "bind_operator_cuda.h"

#include <stdexcept>

#include "cuda/operator_cuda.h"

namespace py = pybind11;

namespace sfrt::bind {

namespace {

int segments(int n_seg) {
    if (n_seg < 1) throw std::invalid_argument("n_seg: expected >= 1 segments");
    return n_seg;
}

}  // namespace

void register_cuda_operators(py::module_& m) {
    using namespace sfrt::cuda;
    m.def("photon_forward_device", [](dptr beam, dptr weights, dptr tdd, dptr comp_w, dptr comp_s, dptr scatter,
                                      dptr hit, dptr geom, long long n_hit, dptr out) {
        py::gil_scoped_release release;
        photon_forward_device(beam, weights, tdd, comp_w, comp_s, scatter, hit, geom, n_hit, out);
    }, "out[hit[m]] += photon dose of point m (device addresses; one beam).");
    m.def("proton_forward_device", [](dptr beam, dptr layers, dptr weights, dptr idd, dptr sigma, dptr hit,
                                      dptr geom, long long n_hit, dptr out) {
        py::gil_scoped_release release;
        proton_forward_device(beam, layers, weights, idd, sigma, hit, geom, n_hit, out);
    }, "out[hit[m]] += proton dose of point m (device addresses; one beam).");
    m.def("photon_adjoint_weights_device", [](dptr beam, dptr tdd, dptr comp_w, dptr comp_s, dptr hit, dptr geom,
                                              dptr r, dptr begin, dptr end, long long n_w, int n_seg, double reach,
                                              dptr partial) {
        const int s = segments(n_seg);
        py::gil_scoped_release release;
        photon_adjoint_weights_device(beam, tdd, comp_w, comp_s, hit, geom, r, begin, end, n_w, s, reach, partial);
    }, "Per-segment beamlet gradients partial[n_seg][n_w] (device addresses; one beam).");
    m.def("photon_adjoint_table_device", [](dptr beam, dptr tdd, dptr comp_w, dptr comp_s, dptr hit, dptr geom,
                                            dptr r, dptr begin, dptr end, long long n_col, int n_seg, dptr partial) {
        const int s = segments(n_seg);
        py::gil_scoped_release release;
        photon_adjoint_table_device(beam, tdd, comp_w, comp_s, hit, geom, r, begin, end, n_col, s, partial);
    }, "Per-segment scatter-table gradients partial[n_seg][nlev][nv][nu] (device addresses; one beam).");
    m.def("proton_adjoint_spots_device", [](dptr beam, dptr layers, dptr idd, dptr sigma, dptr hit, dptr geom,
                                            dptr r, dptr begin, dptr end, long long n_spots, int n_seg, double reach,
                                            dptr partial) {
        const int s = segments(n_seg);
        py::gil_scoped_release release;
        proton_adjoint_spots_device(beam, layers, idd, sigma, hit, geom, r, begin, end, n_spots, s, reach, partial);
    }, "Per-segment spot gradients partial[n_seg][n_spots] (device addresses; one beam).");
    m.def("sum_segments_device", [](dptr partial, long long n, int n_seg, dptr out) {
        const int s = segments(n_seg);
        py::gil_scoped_release release;
        sum_segments_device(partial, n, s, out);
    }, "out[e] = sum over segments, in order, of partial[s][e] (device addresses).");
}

}  // namespace sfrt::bind
