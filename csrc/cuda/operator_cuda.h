// Launchers of the dose-operator kernels (csrc/cuda/operator_kernels.cuh) on device arrays owned by
// the caller (the cupy arrays of sfrt_engine/optimise/_engine_gpu.py, passed as addresses). No CUDA
// types here, so bind_operator_cuda.cpp compiles with the plain host compiler. Each launcher checks
// the launch and the run, naming the kernel.
#pragma once

#include <cstdint>

namespace sfrt {
namespace cuda {

using dptr = std::uintptr_t;  // a device address

void photon_forward_device(dptr beam, dptr weights, dptr tdd, dptr comp_w, dptr comp_s, dptr scatter, dptr hit,
                           dptr geom, long long n_hit, dptr out);
void proton_forward_device(dptr beam, dptr layers, dptr weights, dptr idd, dptr sigma, dptr hit, dptr geom,
                           long long n_hit, dptr out);
void photon_adjoint_weights_device(dptr beam, dptr tdd, dptr comp_w, dptr comp_s, dptr hit, dptr geom, dptr r,
                                   dptr begin, dptr end, long long n_w, int n_seg, double reach_mm, dptr partial);
void photon_adjoint_table_device(dptr beam, dptr tdd, dptr comp_w, dptr comp_s, dptr hit, dptr geom, dptr r,
                                 dptr begin, dptr end, long long n_col, int n_seg, dptr partial);
void proton_adjoint_spots_device(dptr beam, dptr layers, dptr idd, dptr sigma, dptr hit, dptr geom, dptr r,
                                 dptr begin, dptr end, long long n_spots, int n_seg, double reach_mm, dptr partial);
void sum_segments_device(dptr partial, long long n, int n_seg, dptr out);

}  // namespace cuda
}  // namespace sfrt
