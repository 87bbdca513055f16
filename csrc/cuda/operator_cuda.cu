// Launchers of the dose-operator kernels: one thread per item, grid-stride where the kernel loops,
// synchronised and checked so an error names its kernel. No physics here.
#include "operator_cuda.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "operator_kernels.cuh"

namespace sfrt {
namespace cuda {
namespace {

constexpr int kBlock = 256;
constexpr long long kMaxBlocks = 1 << 16;

template <class T>
T* p(dptr a) {
    return reinterpret_cast<T*>(a);
}

unsigned blocks_for(long long n, bool grid_stride) {
    long long b = (n + kBlock - 1) / kBlock;
    if (b < 1) b = 1;
    if (grid_stride && b > kMaxBlocks) b = kMaxBlocks;
    if (b > 0x7fffffffLL) throw std::invalid_argument("operator kernel: too many threads for one launch");
    return (unsigned)b;
}

void check(const char* kernel) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        cudaGetLastError();
        throw std::runtime_error(std::string("CUDA error while running kernel ") + kernel + ": " +
                                 cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
    }
}

}  // namespace

void photon_forward_device(dptr beam, dptr weights, dptr tdd, dptr comp_w, dptr comp_s, dptr scatter, dptr hit,
                           dptr geom, long long n_hit, dptr out) {
    if (n_hit <= 0) return;
    sfrt_photon_forward<<<blocks_for(n_hit, true), kBlock>>>(p<const double>(beam), p<const float>(weights),
                                                            p<const float>(tdd), p<const float>(comp_w),
                                                            p<const float>(comp_s), p<const float>(scatter),
                                                            p<const long long>(hit), p<const double>(geom), n_hit,
                                                            p<float>(out));
    check("sfrt_photon_forward");
}

void proton_forward_device(dptr beam, dptr layers, dptr weights, dptr idd, dptr sigma, dptr hit, dptr geom,
                           long long n_hit, dptr out) {
    if (n_hit <= 0) return;
    sfrt_proton_forward<<<blocks_for(n_hit, true), kBlock>>>(p<const double>(beam), p<const double>(layers),
                                                            p<const float>(weights), p<const float>(idd),
                                                            p<const float>(sigma), p<const long long>(hit),
                                                            p<const double>(geom), n_hit, p<float>(out));
    check("sfrt_proton_forward");
}

void photon_adjoint_weights_device(dptr beam, dptr tdd, dptr comp_w, dptr comp_s, dptr hit, dptr geom, dptr r,
                                   dptr begin, dptr end, long long n_w, int n_seg, double reach_mm, dptr partial) {
    sfrt_photon_adjoint_weights<<<blocks_for(n_w * n_seg, false), kBlock>>>(
        p<const double>(beam), p<const float>(tdd), p<const float>(comp_w), p<const float>(comp_s),
        p<const long long>(hit), p<const double>(geom), p<const double>(r), p<const long long>(begin),
        p<const long long>(end), n_seg, reach_mm, p<double>(partial));
    check("sfrt_photon_adjoint_weights");
}

void photon_adjoint_table_device(dptr beam, dptr tdd, dptr comp_w, dptr comp_s, dptr hit, dptr geom, dptr r,
                                 dptr begin, dptr end, long long n_col, int n_seg, dptr partial) {
    sfrt_photon_adjoint_table<<<blocks_for(n_col * n_seg, false), kBlock>>>(
        p<const double>(beam), p<const float>(tdd), p<const float>(comp_w), p<const float>(comp_s),
        p<const long long>(hit), p<const double>(geom), p<const double>(r), p<const long long>(begin),
        p<const long long>(end), n_seg, p<double>(partial));
    check("sfrt_photon_adjoint_table");
}

void proton_adjoint_spots_device(dptr beam, dptr layers, dptr idd, dptr sigma, dptr hit, dptr geom, dptr r,
                                 dptr begin, dptr end, long long n_spots, int n_seg, double reach_mm, dptr partial) {
    sfrt_proton_adjoint_spots<<<blocks_for(n_spots * n_seg, false), kBlock>>>(
        p<const double>(beam), p<const double>(layers), p<const float>(idd), p<const float>(sigma),
        p<const long long>(hit), p<const double>(geom), p<const double>(r), p<const long long>(begin),
        p<const long long>(end), n_spots, n_seg, reach_mm, p<double>(partial));
    check("sfrt_proton_adjoint_spots");
}

void sum_segments_device(dptr partial, long long n, int n_seg, dptr out) {
    if (n <= 0) return;
    sfrt_sum_segments<<<blocks_for(n, true), kBlock>>>(p<const double>(partial), n, n_seg, p<double>(out));
    check("sfrt_sum_segments");
}

}  // namespace cuda
}  // namespace sfrt
