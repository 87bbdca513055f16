#include "operator_cpu.h"

#include <algorithm>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../physics/operator_cache.h"

namespace sfrt {

namespace {

template <class Beam>
void geometry_cpu(const GridParams& g, const Beam& b, const float* table, const long long* voxels, long long n,
                  unsigned char* hit_flag, double* geom) {
    const long long plane = (long long)g.nx * g.ny;
#pragma omp parallel for schedule(static)
    for (long long m = 0; m < n; ++m) {
        const long long idx = voxels[m];
        const int iz = (int)(idx / plane), iy = (int)((idx / g.nx) % g.ny), ix = (int)(idx % g.nx);
        double* out = geom + 4 * m;
        // voxel centre exactly as the dose drivers compute it
        hit_flag[m] = bev_depth(b, table, g.ox + ix * g.dx, g.oy + iy * g.dy, g.oz + iz * g.dz, out[0], out[1], out[2],
                                out[3]) ? 1 : 0;
        if (!hit_flag[m]) out[0] = out[1] = out[2] = out[3] = 0.0;
    }
}

/// Partial sums of the adjoint: a fixed number of chunks of points, whatever the thread count, so a
/// result is bit-identical on 1, 2 or 16 threads (the study runners rely on it). 32 chunks keep 16
/// threads busy; the memory is 32 arrays of n_out doubles.
constexpr long long kReduceChunks = 32;

/// Sum over the points of add(point m, chunk array) in kReduceChunks contiguous chunks (fewer for
/// small n_points), each chunk's array filled by one thread, then the chunks' arrays added into out
/// in chunk order.
template <class Add>
void reduce_by_chunk(long long n_points, double* out, long long n_out, const Add& add) {
    const long long chunks = std::max<long long>(1, std::min<long long>(kReduceChunks, n_points / 256));
    std::vector<std::vector<double>> partial((size_t)chunks);
#pragma omp parallel for schedule(dynamic, 1)
    for (long long c = 0; c < chunks; ++c) {
        std::vector<double>& mine = partial[(size_t)c];
        mine.assign((size_t)n_out, 0.0);
        const long long begin = n_points * c / chunks, end = n_points * (c + 1) / chunks;
        for (long long m = begin; m < end; ++m) add(m, mine.data());
    }
#pragma omp parallel for schedule(static)
    for (long long e = 0; e < n_out; ++e) {
        double s = out[e];
        for (long long c = 0; c < chunks; ++c) s += partial[(size_t)c][e];
        out[e] = s;
    }
}

}  // namespace

void photon_geometry_cpu(const GridParams& grid, const PhotonBeamParams& beam, const float* table,
                         const long long* voxels, long long n, unsigned char* hit_flag, double* geom) {
    geometry_cpu(grid, beam, table, voxels, n, hit_flag, geom);
}

void proton_geometry_cpu(const GridParams& grid, const ProtonBeamParams& beam, const float* table,
                         const long long* voxels, long long n, unsigned char* hit_flag, double* geom) {
    geometry_cpu(grid, beam, table, voxels, n, hit_flag, geom);
}

namespace {

int n_table_comps(const PhotonBeamParams& b) { return b.ncomp - b.n_direct; }

}  // namespace

void photon_cache_offsets_cpu(const PhotonOperatorBeam& a, long long* offset) {
    const PhotonBeamParams& b = a.params;
    offset[0] = 0;
#pragma omp parallel
    {
        float fac[SFRT_MAX_COMPONENTS + 1];
        long long base[SFRT_MAX_COMPONENTS];
        double frac[3 * SFRT_MAX_COMPONENTS];
        int win[4 * SFRT_MAX_COMPONENTS];
#pragma omp for schedule(static)
        for (long long m = 0; m < a.at.n_hit; ++m) {
            const double* p = a.at.geom + 4 * m;
            offset[m + 1] = photon_cache_point(b, a.tdd, a.comp_w, a.comp_s, p[0], p[1], p[2], p[3], fac, base, frac,
                                               win, nullptr);
        }
    }
    for (long long m = 0; m < a.at.n_hit; ++m) offset[m + 1] += offset[m];
}

void photon_cache_cpu(const PhotonOperatorBeam& a, const long long* offset, float* fac, long long* base, double* frac,
                      int* win, float* pool) {
    const PhotonBeamParams& b = a.params;
    const int nt = n_table_comps(b), nd = b.n_direct;
#pragma omp parallel for schedule(static)
    for (long long m = 0; m < a.at.n_hit; ++m) {
        const double* p = a.at.geom + 4 * m;
        photon_cache_point(b, a.tdd, a.comp_w, a.comp_s, p[0], p[1], p[2], p[3], fac + m * (b.ncomp + 1),
                           base + m * nt, frac + m * 3 * nt, win + m * 4 * nd, pool + offset[m]);
    }
}

void photon_forward_cpu(const std::vector<PhotonOperatorBeam>& beams, float* out) {
    for (const PhotonOperatorBeam& a : beams) {
        const double* geom = a.at.geom;
        const PhotonPointCache& c = a.cache;
        if (c.fac != nullptr) {
            const PhotonBeamParams& b = a.params;
            const int nt = n_table_comps(b), nd = b.n_direct;
#pragma omp parallel
            {
                float col[SFRT_MAX_BEAMLETS_1D];
#pragma omp for schedule(static)
                for (long long m = 0; m < a.at.n_hit; ++m) {
                    out[a.at.hit[m]] += photon_cached_dose(b, a.weights, a.scatter, c.fac + m * (b.ncomp + 1),
                                                           c.base + m * nt, c.frac + m * 3 * nt, c.win + m * 4 * nd,
                                                           c.pool + c.offset[m], col);
                }
            }
            continue;
        }
#pragma omp parallel for schedule(static)
        for (long long m = 0; m < a.at.n_hit; ++m) {
            const double* p = geom + 4 * m;
            out[a.at.hit[m]] += photon_bev_dose(a.params, a.weights, a.tdd, a.comp_w, a.comp_s, a.scatter, p[0], p[1],
                                                p[2], p[3]);
        }
    }
}

void proton_cache_offsets_cpu(const ProtonOperatorBeam& a, long long* entry_offset, long long* pool_offset) {
    entry_offset[0] = pool_offset[0] = 0;
#pragma omp parallel for schedule(static)
    for (long long m = 0; m < a.at.n_hit; ++m) {
        const double* p = a.at.geom + 4 * m;
        long long pool = 0;
        entry_offset[m + 1] = proton_cache_point(a.params, a.layers, a.idd, a.sigma, p[0], p[1], p[2], p[3], nullptr,
                                                 nullptr, nullptr, nullptr, &pool);
        pool_offset[m + 1] = pool;
    }
    for (long long m = 0; m < a.at.n_hit; ++m) {
        entry_offset[m + 1] += entry_offset[m];
        pool_offset[m + 1] += pool_offset[m];
    }
}

void proton_cache_cpu(const ProtonOperatorBeam& a, const long long* entry_offset, const long long* pool_offset,
                      int* layer, float* q, int* win, float* pool) {
#pragma omp parallel for schedule(static)
    for (long long m = 0; m < a.at.n_hit; ++m) {
        const double* p = a.at.geom + 4 * m;
        const long long e = entry_offset[m];
        long long used = 0;
        proton_cache_point(a.params, a.layers, a.idd, a.sigma, p[0], p[1], p[2], p[3], layer + e, q + e, win + 4 * e,
                           pool + pool_offset[m], &used);
    }
}

void proton_forward_cpu(const std::vector<ProtonOperatorBeam>& beams, float* out) {
    for (const ProtonOperatorBeam& a : beams) {
        const ProtonPointCache& c = a.cache;
        if (c.entry_offset != nullptr) {
#pragma omp parallel
            {
                float col[SFRT_MAX_BEAMLETS_1D];
#pragma omp for schedule(static)
                for (long long m = 0; m < a.at.n_hit; ++m) {
                    const long long e = c.entry_offset[m];
                    out[a.at.hit[m]] += proton_cached_dose(a.layers, a.weights, (int)(c.entry_offset[m + 1] - e),
                                                           c.layer + e, c.q + e, c.win + 4 * e,
                                                           c.pool + c.pool_offset[m], col);
                }
            }
            continue;
        }
        const double* geom = a.at.geom;
#pragma omp parallel for schedule(static)
        for (long long m = 0; m < a.at.n_hit; ++m) {
            const double* p = geom + 4 * m;
            out[a.at.hit[m]] += proton_bev_dose(a.params, a.layers, a.weights, a.idd, a.sigma, p[0], p[1], p[2], p[3]);
        }
    }
}

void photon_adjoint_cpu(const PhotonOperatorBeam& a, const double* r, double* grad_w, long long n_w,
                        double* grad_table, long long n_table) {
    // one array per thread: the beamlet gradient followed by the table gradient
    std::vector<double> both((size_t)(n_w + n_table), 0.0);
    const PhotonPointCache& c = a.cache;
    if (c.fac != nullptr) {
        const PhotonBeamParams& b = a.params;
        const int nt = n_table_comps(b), nd = b.n_direct;
        reduce_by_chunk(a.at.n_hit, both.data(), n_w + n_table, [&](long long m, double* mine) {
            photon_cached_adjoint(b, c.fac + m * (b.ncomp + 1), c.base + m * nt, c.frac + m * 3 * nt,
                                  c.win + m * 4 * nd, c.pool + c.offset[m], r[a.at.hit[m]], mine, mine + n_w);
        });
    } else {
        reduce_by_chunk(a.at.n_hit, both.data(), n_w + n_table, [&](long long m, double* mine) {
            const double* p = a.at.geom + 4 * m;
            photon_bev_adjoint(a.params, a.tdd, a.comp_w, a.comp_s, p[0], p[1], p[2], p[3], r[a.at.hit[m]], mine,
                               mine + n_w);
        });
    }
    std::copy(both.begin(), both.begin() + n_w, grad_w);
    std::copy(both.begin() + n_w, both.end(), grad_table);
}

void proton_adjoint_cpu(const ProtonOperatorBeam& a, const double* r, double* grad_w, long long n_w) {
    const ProtonPointCache& c = a.cache;
    if (c.entry_offset != nullptr) {
        reduce_by_chunk(a.at.n_hit, grad_w, n_w, [&](long long m, double* mine) {
            const long long e = c.entry_offset[m];
            proton_cached_adjoint(a.layers, (int)(c.entry_offset[m + 1] - e), c.layer + e, c.q + e, c.win + 4 * e,
                                  c.pool + c.pool_offset[m], r[a.at.hit[m]], mine);
        });
        return;
    }
    reduce_by_chunk(a.at.n_hit, grad_w, n_w, [&](long long m, double* mine) {
        const double* p = a.at.geom + 4 * m;
        proton_bev_adjoint(a.params, a.layers, a.idd, a.sigma, p[0], p[1], p[2], p[3], r[a.at.hit[m]], mine);
    });
}

}  // namespace sfrt
