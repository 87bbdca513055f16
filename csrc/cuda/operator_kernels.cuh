// CUDA kernels of the forward and adjoint dose operators on a voxel subset
// (sfrt_engine/optimise/_engine_gpu.py): index, call csrc/physics, accumulate. No physics here.
//
// Compiled by nvcc into _cuda (csrc/cuda/operator_cuda.cu) and by NVRTC in the cupy engine, like
// dose_kernels.cuh: NVRTC-clean, extern "C", plain pointers and ints. Each beam's stored points are
// sorted by v; hit[m] is a point's position in the subset, geom[m] = (u, v, zs, depth).
//
// Deterministic and atomic-free: the forward adds one beam per launch, each point written by one
// thread; the adjoints gather. A thread owns one weight (or one (v, u) column of scatter-table nodes)
// and one of n_seg segments of the points that can reach it ([begin[w], end[w]) in v order), and
// writes its partial sum to partial[seg][w]; sfrt_sum_segments adds the segments in order.
#pragma once

#include "../physics/adjoint.h"

/// out[hit[m]] += photon_bev_dose(point m), m < n_hit (one photon beam).
extern "C" __global__ void sfrt_photon_forward(const double* __restrict__ beam_packed,
                                               const float* __restrict__ weights, const float* __restrict__ tdd,
                                               const float* __restrict__ comp_w, const float* __restrict__ comp_s,
                                               const float* __restrict__ scatter, const long long* __restrict__ hit,
                                               const double* __restrict__ geom, long long n_hit,
                                               float* __restrict__ out) {
    __shared__ sfrt::PhotonBeamParams b;
    if (threadIdx.x == 0) b = sfrt::unpack_photon_beam(beam_packed);
    __syncthreads();
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x; m < n_hit; m += step) {
        const double* p = geom + 4 * m;
        out[hit[m]] += sfrt::photon_bev_dose(b, weights, tdd, comp_w, comp_s, scatter, p[0], p[1], p[2], p[3]);
    }
}

/// out[hit[m]] += proton_bev_dose(point m), m < n_hit (one proton beam).
extern "C" __global__ void sfrt_proton_forward(const double* __restrict__ beam_packed,
                                               const double* __restrict__ layers, const float* __restrict__ weights,
                                               const float* __restrict__ idd, const float* __restrict__ sigma,
                                               const long long* __restrict__ hit, const double* __restrict__ geom,
                                               long long n_hit, float* __restrict__ out) {
    __shared__ sfrt::ProtonBeamParams b;
    if (threadIdx.x == 0) b = sfrt::unpack_proton_beam(beam_packed);
    __syncthreads();
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x; m < n_hit; m += step) {
        const double* p = geom + 4 * m;
        out[hit[m]] += sfrt::proton_bev_dose(b, layers, weights, idd, sigma, p[0], p[1], p[2], p[3]);
    }
}

/// Segment s of n_seg of the range [lo, hi).
__device__ inline void sfrt_segment(long long lo, long long hi, int s, int n_seg, long long& a, long long& z) {
    const long long n = hi - lo;
    a = lo + n * s / n_seg;
    z = lo + n * (s + 1) / n_seg;
}

/// Photon beamlets (components k < n_direct): thread t = seg * n_w + w, w = j * nbu + i, writes
/// partial[t] = sum over its segment of the points of r[hit[m]] dD/dW_ji. Points whose u lies farther than
/// reach_mm [isocentre plane] from the beamlet are skipped (they are outside every cut-off window).
extern "C" __global__ void sfrt_photon_adjoint_weights(
    const double* __restrict__ beam_packed, const float* __restrict__ tdd, const float* __restrict__ comp_w,
    const float* __restrict__ comp_s, const long long* __restrict__ hit, const double* __restrict__ geom,
    const double* __restrict__ r, const long long* __restrict__ begin, const long long* __restrict__ end,
    int n_seg, double reach_mm, double* __restrict__ partial) {
    __shared__ sfrt::PhotonBeamParams b;
    if (threadIdx.x == 0) b = sfrt::unpack_photon_beam(beam_packed);
    __syncthreads();
    const long long n_w = (long long)b.nbu * b.nbv;
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_w * n_seg) return;
    const int seg = (int)(t / n_w);
    const long long w = t % n_w;
    const int j = (int)(w / b.nbu), i = (int)(w % b.nbu);
    const double u_lo = b.edge_u0 + i * b.beamlet_du - reach_mm, u_hi = b.edge_u0 + (i + 1) * b.beamlet_du + reach_mm;
    long long a, z;
    sfrt_segment(begin[w], end[w], seg, n_seg, a, z);
    double acc = 0.0;
    for (long long m = a; m < z; ++m) {
        const double* p = geom + 4 * m;
        if (p[0] < u_lo || p[0] > u_hi) continue;
        const double rm = r[hit[m]];
        if (rm == 0.0) continue;
        acc += rm * sfrt::photon_beamlet_influence(b, tdd, comp_w, comp_s, p[0], p[1], p[2], p[3], j, i);
    }
    partial[t] = acc;
}

/// Scatter-table nodes (components k >= n_direct): thread t = seg * n_col + c, c = jn * tab_nu + in, writes
/// partial[seg][l][jn][in] for every level l: the sum over its segment of r[hit[m]] dD/dF[l][jn][in].
extern "C" __global__ void sfrt_photon_adjoint_table(
    const double* __restrict__ beam_packed, const float* __restrict__ tdd, const float* __restrict__ comp_w,
    const float* __restrict__ comp_s, const long long* __restrict__ hit, const double* __restrict__ geom,
    const double* __restrict__ r, const long long* __restrict__ begin, const long long* __restrict__ end,
    int n_seg, double* __restrict__ partial) {
    __shared__ sfrt::PhotonBeamParams b;
    if (threadIdx.x == 0) b = sfrt::unpack_photon_beam(beam_packed);
    __syncthreads();
    const long long n_col = (long long)b.tab_nu * b.tab_nv, n_table = n_col * b.tab_nlev;
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_col * n_seg) return;
    const int seg = (int)(t / n_col);
    const long long c = t % n_col;
    const int jn = (int)(c / b.tab_nu), in = (int)(c % b.tab_nu);
    double* column = partial + seg * n_table + c;
    for (int l = 0; l < b.tab_nlev; ++l) column[(long long)l * n_col] = 0.0;
    // a point reads node columns within one table step of it (or the edge columns, clamped)
    const double u_node = b.tab_u0 + in * b.tab_du;
    const double u_lo = in == 0 ? -1e300 : u_node - b.tab_du, u_hi = in == b.tab_nu - 1 ? 1e300 : u_node + b.tab_du;
    long long a, z;
    sfrt_segment(begin[c], end[c], seg, n_seg, a, z);
    for (long long m = a; m < z; ++m) {
        const double* p = geom + 4 * m;
        if (p[0] < u_lo || p[0] > u_hi) continue;
        sfrt::photon_table_column_adjoint(b, tdd, comp_w, comp_s, p[0], p[1], p[2], p[3], r[hit[m]], jn, in, column,
                                          n_col);
    }
}

/// Proton spots: thread t = seg * n_spots + w (w in the beam's flat spot layout, layers back to back) writes
/// partial[t] = sum over its segment of r[hit[m]] dD/dW_w.
extern "C" __global__ void sfrt_proton_adjoint_spots(
    const double* __restrict__ beam_packed, const double* __restrict__ layers, const float* __restrict__ idd,
    const float* __restrict__ sigma, const long long* __restrict__ hit, const double* __restrict__ geom,
    const double* __restrict__ r, const long long* __restrict__ begin, const long long* __restrict__ end,
    long long n_spots, int n_seg, double reach_mm, double* __restrict__ partial) {
    __shared__ sfrt::ProtonBeamParams b;
    if (threadIdx.x == 0) b = sfrt::unpack_proton_beam(beam_packed);
    __syncthreads();
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_spots * n_seg) return;
    const int seg = (int)(t / n_spots);
    const long long w = t % n_spots;
    sfrt::SpotLayerParams s = sfrt::unpack_layer(layers, 0);
    for (int l = 1; l < b.n_layers; ++l) {  // the layer holding spot w
        const sfrt::SpotLayerParams next = sfrt::unpack_layer(layers, l);
        if (next.weight_offset > w) break;
        s = next;
    }
    const int j = (int)((w - s.weight_offset) / s.nu), i = (int)((w - s.weight_offset) % s.nu);
    const double u_spot = s.u0 + i * s.du;
    long long a, z;
    sfrt_segment(begin[w], end[w], seg, n_seg, a, z);
    double acc = 0.0;
    for (long long m = a; m < z; ++m) {
        const double* p = geom + 4 * m;
        if (p[0] < u_spot - reach_mm || p[0] > u_spot + reach_mm) continue;
        const double rm = r[hit[m]];
        if (rm == 0.0) continue;
        acc += rm * sfrt::proton_spot_influence(b, s, idd, sigma, p[0], p[1], p[2], p[3], j, i);
    }
    partial[t] = acc;
}

/// out[e] = sum over s < n_seg, in order, of partial[s * n + e].
extern "C" __global__ void sfrt_sum_segments(const double* __restrict__ partial, long long n, int n_seg,
                                             double* __restrict__ out) {
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += step) {
        double s = 0.0;
        for (int k = 0; k < n_seg; ++k) s += partial[k * n + e];
        out[e] = s;
    }
}
