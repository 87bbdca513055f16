// The CPU form of photon_point_dose (physics/photon.h, the specification it is tested against): one
// beam's dose over a whole row of voxels (x fastest) at a time, in stages over the row that the
// compiler vectorises, float32 after the geometry:
//   A  geometry and depth (float64 geometry, as bev_depth): u, v, SAD/z, ray-table depth, footprint;
//   B  every depth table read once per voxel from one packed record per depth node (DepthPack):
//      T(d) (SAD/z)^2, A_k(d), s_k = sigma_k(d) SAD/z;
//   C  components k >= n_direct: the scatter-table read, with a float32 logarithm (log_fast);
//      components k < n_direct: the beamlet sum in blocks of kLanes voxels, one voxel per SIMD lane:
//      the erf profiles are evaluated on the union of the lanes' cut-off windows, each lane's profile
//      zeroed outside its own window, so every lane sums the beamlets of its own cut-off window;
//      a block whose voxels are all beyond the cut-off reach is skipped before any profile;
//   D  dose[ix] += T (SAD/z)^2 * sum_k A_k * (beamlet sum or table value).
// Each row is computed by one thread from its own data, so the result does not depend on the thread
// count. Differences from photon_bev_dose are float32 rounding of the same formula: the depth, the
// depth-table and scatter-table interpolations and the cut-off windows in float32 where the point
// form works in float64 and rounds afterwards (a beamlet at exactly the cut-off may fall on the other
// side; its share is below 1e-9), and the lanes' sums add the same products with zeros in between.
// Measured: a few 1e-7 of the maximum dose; bounded in tests/kernels/test_cpu_rows.py against the
// float64 reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../params.h"

namespace sfrt {
namespace rows {

constexpr int kLanes = 8;  // voxels per block of the beamlet sum: one AVX2 register of float32

/// Natural logarithm of a positive normal float32 in float32 arithmetic, branch-free so loops over it
/// vectorise: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m - 1) / (m + 1),
/// by its odd series to s^9 (|s| <= 0.1716: truncation below 1e-9); about 1 ulp of rounding.
/// 0 gives -87.3 (the exponent of the smallest normal) rather than -inf, which the clamped table
/// index treats alike.
inline float log_fast(float x) {
    std::int32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    std::int32_t e = ((bits >> 23) & 0xff) - 127;
    std::int32_t mb = (bits & 0x007fffff) | 0x3f800000;  // mantissa in [1, 2)
    float m;
    std::memcpy(&m, &mb, sizeof m);
    const bool big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e = big ? e + 1 : e;
    const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p + (float)e * 0.693147180559945f;
}

/// A beam's depth tables T, A_k, sigma_k interleaved per depth interval: record i holds, for each
/// quantity q = T, A_0, sigma_0, ..., A_{K-1}, sigma_{K-1}, its values at nodes i and i + 1 (both at
/// node 0 when the tables have one node), so one index and one cache line serve every table.
struct DepthPack {
    int n = 0, nq = 0;       // nodes, quantities
    float inv_step = 0.0f;   // 1 / depth_step [1/mm]
    std::vector<float> rec;  // [max(n - 1, 1)][nq][2]
};

inline DepthPack pack_depth(const PhotonBeamParams& b, const float* tdd, const float* comp_w, const float* comp_s) {
    DepthPack p;
    p.n = b.ndepth;
    p.nq = 1 + 2 * b.ncomp;
    p.inv_step = (float)(1.0 / b.depth_step);
    const int nrec = b.ndepth > 1 ? b.ndepth - 1 : 1;
    p.rec.resize((size_t)nrec * p.nq * 2);
    for (int i = 0; i < nrec; ++i) {
        const int j = b.ndepth > 1 ? i + 1 : i;
        float* r = p.rec.data() + (size_t)i * p.nq * 2;
        r[0] = tdd[i]; r[1] = tdd[j];
        for (int k = 0; k < b.ncomp; ++k) {
            const float* w = comp_w + (size_t)k * b.ndepth;
            const float* s = comp_s + (size_t)k * b.ndepth;
            r[2 + 4 * k] = w[i]; r[3 + 4 * k] = w[j];
            r[4 + 4 * k] = s[i]; r[5 + 4 * k] = s[j];
        }
    }
    return p;
}

struct alignas(32) Lanes {
    float x[kLanes];
};

/// Per-thread work arrays of photon_row (one row of nx voxels, beam windows up to SFRT_MAX_BEAMLETS_1D).
struct RowScratch {
    std::vector<float> u, v, u_rel, v_rel, scale, tu, tv, tz, depth, c, lat;  // [nx + kLanes]
    std::vector<int> idx;                                                    // [nx + kLanes]
    std::vector<float> a, s;                                      // [ncomp][nx + kLanes]
    std::vector<unsigned char> hit;                               // [nx + kLanes]
    std::vector<Lanes> eu, ev;                                    // [SFRT_MAX_BEAMLETS_1D + 2]
    int stride = 0;

    explicit RowScratch(int nx) : stride(nx + kLanes) {
        for (std::vector<float>* a1 : {&u, &v, &u_rel, &v_rel, &scale, &tu, &tv, &tz, &depth, &c, &lat}) {
            a1->assign(stride, 0.0f);
        }
        idx.assign(stride, 0);
        a.assign((size_t)SFRT_MAX_COMPONENTS * stride, 0.0f);
        s.assign((size_t)SFRT_MAX_COMPONENTS * stride, 1.0f);
        hit.assign(stride, 0);
        eu.resize(SFRT_MAX_BEAMLETS_1D + 2);
        ev.resize(SFRT_MAX_BEAMLETS_1D + 2);
    }
};

/// Stage A over the row: BEV coordinates, SAD/z and ray-table depth of every voxel (bev_depth: the
/// geometry and the table's fractional indices in float64, the interpolation in float32). Returns the
/// first and last voxel inside the footprint in lo, hi (hi < lo when none is). The ray table must have
/// fewer than 2^31 entries (checked by the driver).
inline void row_geometry(const PhotonBeamParams& b, const float* table, const GridParams& g, int iz, int iy,
                         RowScratch& w, int& lo, int& hi) {
    // every parameter in a local: loads from the structs inside the loops would block vectorisation
    const int nx = g.nx;
    const double ox = g.ox - b.iso[0], dx = g.dx;
    const double qy = g.oy + iy * g.dy - b.iso[1], qz = g.oz + iz * g.dz - b.iso[2];
    const double sad = b.sad, min_z = b.min_z;
    const double es0 = b.es[0], eu0 = b.eu[0], ev0 = b.ev[0];
    const double zs_yz = sad - (qy * b.es[1] + qz * b.es[2]);
    const double nu_yz = qy * b.eu[1] + qz * b.eu[2], nv_yz = qy * b.ev[1] + qz * b.ev[2];
    const double ru0 = b.ray_u0, rv0 = b.ray_v0, rz0 = b.ray_z0;
    const double inv_rdu = 1.0 / b.ray_du, inv_rdv = 1.0 / b.ray_dv, inv_rdz = 1.0 / b.ray_dz;
    const double u_hi = b.ray_u0 + (b.ray_nu - 1) * b.ray_du, v_hi = b.ray_v0 + (b.ray_nv - 1) * b.ray_dv;
    const double fu_hi = b.ray_nu - 1, fv_hi = b.ray_nv - 1, fz_hi = b.ray_nz - 1;
    const int top_u = b.ray_nu > 1 ? b.ray_nu - 2 : 0, top_v = b.ray_nv > 1 ? b.ray_nv - 2 : 0,
              top_z = b.ray_nz > 1 ? b.ray_nz - 2 : 0;
    const double has_u = b.ray_nu > 1 ? 1.0 : 0.0, has_v = b.ray_nv > 1 ? 1.0 : 0.0, has_z = b.ray_nz > 1 ? 1.0 : 0.0;
    const double edge_u0 = b.edge_u0, edge_v0 = b.edge_v0;
    const int su = b.ray_nz, sv = b.ray_nu * b.ray_nz;
    const int ou = b.ray_nu > 1 ? su : 0, ov = b.ray_nv > 1 ? sv : 0, oz = b.ray_nz > 1 ? 1 : 0;
    float* __restrict u_out = w.u.data();
    float* __restrict v_out = w.v.data();
    float* __restrict ur_out = w.u_rel.data();
    float* __restrict vr_out = w.v_rel.data();
    float* __restrict sc_out = w.scale.data();
    float* __restrict tu_out = w.tu.data();
    float* __restrict tv_out = w.tv.data();
    float* __restrict tz_out = w.tz.data();
    int* __restrict idx = w.idx.data();
    unsigned char* __restrict hit = w.hit.data();
#pragma omp simd
    for (int ix = 0; ix < nx; ++ix) {
        const double qx = ox + ix * dx;
        const double zs = zs_yz - qx * es0;
        const double scale = sad / zs;
        const double u = (qx * eu0 + nu_yz) * scale;
        const double v = (qx * ev0 + nv_yz) * scale;
        const bool in = (zs > min_z) & (u >= ru0) & (u <= u_hi) & (v >= rv0) & (v <= v_hi);
        // split_index of the three axes (NaN-safe clamps: far points get any in-range cell, unused)
        double fu = (u - ru0) * inv_rdu, fv = (v - rv0) * inv_rdv, fz = (zs - rz0) * inv_rdz;
        fu = fu > 0.0 ? fu : 0.0; fu = fu < fu_hi ? fu : fu_hi;
        fv = fv > 0.0 ? fv : 0.0; fv = fv < fv_hi ? fv : fv_hi;
        fz = fz > 0.0 ? fz : 0.0; fz = fz < fz_hi ? fz : fz_hi;
        int iu = (int)fu, iv = (int)fv, izz = (int)fz;
        iu = iu < top_u ? iu : top_u;
        iv = iv < top_v ? iv : top_v;
        izz = izz < top_z ? izz : top_z;
        tu_out[ix] = (float)((fu - iu) * has_u);
        tv_out[ix] = (float)((fv - iv) * has_v);
        tz_out[ix] = (float)((fz - izz) * has_z);
        idx[ix] = iv * sv + iu * su + izz;
        u_out[ix] = (float)u;
        v_out[ix] = (float)v;
        ur_out[ix] = (float)(u - edge_u0);
        vr_out[ix] = (float)(v - edge_v0);
        sc_out[ix] = (float)scale;
        hit[ix] = in ? 1 : 0;
    }
    lo = 0;
    while (lo < nx && !hit[lo]) ++lo;
    hi = nx - 1;
    while (hi >= lo && !hit[hi]) --hi;
    float* __restrict d_out = w.depth.data();
#pragma omp simd
    for (int ix = lo; ix <= hi; ++ix) {
        const float* t0 = table + idx[ix];
        const float tu = tu_out[ix], tv = tv_out[ix], tz = tz_out[ix];
        const float d00 = (1 - tz) * t0[0] + tz * t0[oz];
        const float d01 = (1 - tz) * t0[ou] + tz * t0[ou + oz];
        const float d10 = (1 - tz) * t0[ov] + tz * t0[ov + oz];
        const float d11 = (1 - tz) * t0[ov + ou] + tz * t0[ov + ou + oz];
        d_out[ix] = (1 - tv) * ((1 - tu) * d00 + tu * d01) + tv * ((1 - tu) * d10 + tu * d11);
    }
}

/// Stage B over [lo, hi]: c = T(d) (SAD/z)^2, a_k = A_k(d), s_k = sigma_k(d) SAD/z, all 0 outside the footprint.
inline void row_depth_tables(const PhotonBeamParams& b, const DepthPack& dp, RowScratch& w, int lo, int hi) {
    const float* __restrict rec = dp.rec.data();
    const float* __restrict depth = w.depth.data();
    const float* __restrict scale = w.scale.data();
    const unsigned char* __restrict hit = w.hit.data();
    int* __restrict off = w.idx.data();   // reused: record offset of each voxel's depth interval
    float* __restrict td = w.tz.data();   // reused: fraction within the interval
    float* __restrict c = w.c.data();
    const int nq2 = 2 * dp.nq, top = dp.n > 1 ? dp.n - 2 : 0;
    const float fmax_idx = (float)(dp.n - 1), inv_step = dp.inv_step, has = dp.n > 1 ? 1.0f : 0.0f;
#pragma omp simd
    for (int ix = lo; ix <= hi; ++ix) {
        float f = depth[ix] * inv_step;
        f = f > 0.0f ? f : 0.0f;  // NaN-safe clamp to [0, n - 1] (split_index)
        f = f < fmax_idx ? f : fmax_idx;
        int id = (int)f;
        id = id < top ? id : top;
        const float t = (f - (float)id) * has;
        const int o = id * nq2;
        const float sc = scale[ix], val = ((1.0f - t) * rec[o] + t * rec[o + 1]) * sc * sc;
        c[ix] = hit[ix] ? val : 0.0f;
        off[ix] = o;
        td[ix] = t;
    }
    for (int k = 0; k < b.ncomp; ++k) {
        float* __restrict a = w.a.data() + (size_t)k * w.stride;
        float* __restrict s = w.s.data() + (size_t)k * w.stride;
        const float* __restrict rk = rec + 2 + 4 * k;
#pragma omp simd
        for (int ix = lo; ix <= hi; ++ix) {
            const int o = off[ix];
            const float t = td[ix];
            const float av = (1.0f - t) * rk[o] + t * rk[o + 1], sv = ((1.0f - t) * rk[o + 2] + t * rk[o + 3]) * scale[ix];
            a[ix] = hit[ix] ? av : 0.0f;
            s[ix] = hit[ix] ? sv : 1.0f;  // finite where unused
        }
    }
}

/// Split a float32 fractional index f (clamped to [0, n - 1]) into a base index i <= n - 2 and weight t.
inline void split_index_f(float f, int n, int& i, float& t) {
    const float hi = (float)(n - 1);
    f = f > 0.0f ? f : 0.0f;  // NaN-safe clamp
    f = f < hi ? f : hi;
    i = (int)f;
    const int top = n > 1 ? n - 2 : 0;
    i = i < top ? i : top;
    t = (f - (float)i) * (n > 1 ? 1.0f : 0.0f);
}

/// Component k >= n_direct over [lo, hi]: lat += A_k * F(ln(s_k / s0) / ln r, v, u) (scatter_table_at).
inline void row_scatter(const PhotonBeamParams& b, const float* scatter, int k, RowScratch& w, int lo, int hi) {
    const float* __restrict a = w.a.data() + (size_t)k * w.stride;
    const float* __restrict s = w.s.data() + (size_t)k * w.stride;
    const float* __restrict u = w.u.data();
    const float* __restrict v = w.v.data();
    float* __restrict lat = w.lat.data();
    const float ln_s0 = (float)std::log(b.tab_s0), inv_lr = (float)(1.0 / b.tab_log_ratio);
    const float u0 = (float)b.tab_u0, v0 = (float)b.tab_v0, inv_du = (float)(1.0 / b.tab_du),
                inv_dv = (float)(1.0 / b.tab_dv);
    const int nl = b.tab_nlev, nv = b.tab_nv, nu = b.tab_nu;
    const int sv = nu, sl = nv * nu;
    const int ou = nu > 1 ? 1 : 0, ov = nv > 1 ? sv : 0, ol = nl > 1 ? sl : 0;
#pragma omp simd
    for (int ix = lo; ix <= hi; ++ix) {
        int il, iv, iu; float tl, tv, tu;
        split_index_f((log_fast(s[ix]) - ln_s0) * inv_lr, nl, il, tl);
        split_index_f((v[ix] - v0) * inv_dv, nv, iv, tv);
        split_index_f((u[ix] - u0) * inv_du, nu, iu, tu);
        const int o = il * sl + iv * sv + iu;
        const float f00 = (1 - tu) * scatter[o] + tu * scatter[o + ou];
        const float f01 = (1 - tu) * scatter[o + ov] + tu * scatter[o + ov + ou];
        const float f10 = (1 - tu) * scatter[o + ol] + tu * scatter[o + ol + ou];
        const float f11 = (1 - tu) * scatter[o + ol + ov] + tu * scatter[o + ol + ov + ou];
        lat[ix] += a[ix] * ((1 - tl) * ((1 - tv) * f00 + tv * f01) + tl * ((1 - tv) * f10 + tv * f11));
    }
}

/// One lane's beamlet window [i0, i1] along one axis of the cut-off (photon_window in float32), as
/// whole numbers held in floats so the lanes' windows stay in vector registers: floor of the edges'
/// fractional indices, clamped to the beam's n beamlets (empty when i0 > i1).
inline void lane_window(float x_rel, float reach, float inv_w, float n, float& i0, float& i1) {
    float f0 = (x_rel - reach) * inv_w, f1 = (x_rel + reach) * inv_w;
    f0 = f0 > -1.0f ? f0 : -1.0f;  // NaN-safe: far or undefined points clamp to just outside the beam
    f0 = f0 < n ? f0 : n;
    f1 = f1 > -1.0f ? f1 : -1.0f;
    f1 = f1 < n ? f1 : n;
    i0 = std::floor(f0);
    i1 = std::floor(f1);
    i0 = i0 > 0.0f ? i0 : 0.0f;
    i1 = i1 < n - 1.0f ? i1 : n - 1.0f;
}

/// Component k < n_direct over [lo, hi] in blocks of kLanes voxels: lat += A_k sum_j Pv_j sum_i W_ji Pu_i
/// over each voxel's cut-off window (photon_bev_dose's beamlet sum).
inline void row_beamlets(const PhotonBeamParams& b, const float* weights, int k, RowScratch& w, int lo, int hi) {
    const float* __restrict a = w.a.data() + (size_t)k * w.stride;
    const float* __restrict s = w.s.data() + (size_t)k * w.stride;
    const float* __restrict u_rel = w.u_rel.data();
    const float* __restrict v_rel = w.v_rel.data();
    float* __restrict lat = w.lat.data();
    const int nbu = b.nbu;
    const float fnbu = (float)b.nbu, fnbv = (float)b.nbv;
    const float du = (float)b.beamlet_du, dv = (float)b.beamlet_dv;
    const float inv_du = (float)(1.0 / b.beamlet_du), inv_dv = (float)(1.0 / b.beamlet_dv);
    const float cutoff = (float)b.cutoff_sigma;
    Lanes* __restrict eu = w.eu.data();
    Lanes* __restrict ev = w.ev.data();
    for (int x0 = lo; x0 <= hi; x0 += kLanes) {
        const float* ur = u_rel + x0;
        const float* vr = v_rel + x0;
        alignas(32) float inv[kLanes], ak[kLanes];
        alignas(32) float i0[kLanes], i1[kLanes], j0[kLanes], j1[kLanes];  // windows, whole numbers
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) {
            // lanes past hi read the scratch's padding or stale entries (any value, even NaN): a = 0 and the
            // empty window below zero their profiles by selection, so nothing of them reaches a sum
            const int ix = x0 + l;
            const float al = a[ix], sl = s[ix];
            ak[l] = ix > hi ? 0.0f : al;
            inv[l] = 0.70710678118654752f / sl;
            const float reach = cutoff * sl;
            float a0, a1, b0, b1;
            lane_window(ur[l], reach, inv_du, fnbu, a0, a1);
            lane_window(vr[l], reach, inv_dv, fnbv, b0, b1);
            const bool off = (ak[l] == 0.0f) | (a0 > a1) | (b0 > b1);  // empty windows and idle lanes
            i0[l] = off ? fnbu : a0; i1[l] = off ? -1.0f : a1;        // drop out of the block's union
            j0[l] = off ? fnbv : b0; j1[l] = off ? -1.0f : b1;
        }
        float fI0 = fnbu, fI1 = -1.0f, fJ0 = fnbv, fJ1 = -1.0f;
#pragma omp simd reduction(min : fI0, fJ0) reduction(max : fI1, fJ1)
        for (int l = 0; l < kLanes; ++l) {
            fI0 = i0[l] < fI0 ? i0[l] : fI0; fI1 = i1[l] > fI1 ? i1[l] : fI1;
            fJ0 = j0[l] < fJ0 ? j0[l] : fJ0; fJ1 = j1[l] > fJ1 ? j1[l] : fJ1;
        }
        if (fI0 > fI1 || fJ0 > fJ1) continue;  // every voxel of the block beyond the cut-off
        const int I0 = (int)fI0, I1 = (int)fI1, J0 = (int)fJ0, J1 = (int)fJ1;
        const int ni = I1 - I0 + 1, nj = J1 - J0 + 1;
        // erf at the union's edges, then each lane's profile, zero outside the lane's own window
        for (int i = 0; i <= ni; ++i) {
            const float edge = (float)(I0 + i) * du;
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) eu[i].x[l] = erf_fast((ur[l] - edge) * inv[l]);
        }
        for (int i = 0; i < ni; ++i) {
            const float e = (float)(I0 + i);
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) {
                const float p = 0.5f * (eu[i].x[l] - eu[i + 1].x[l]);
                eu[i].x[l] = (e >= i0[l]) & (e <= i1[l]) ? p : 0.0f;
            }
        }
        for (int j = 0; j <= nj; ++j) {
            const float edge = (float)(J0 + j) * dv;
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) ev[j].x[l] = erf_fast((vr[l] - edge) * inv[l]);
        }
        for (int j = 0; j < nj; ++j) {
            const float e = (float)(J0 + j);
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) {
                const float p = 0.5f * (ev[j].x[l] - ev[j + 1].x[l]);
                ev[j].x[l] = (e >= j0[l]) & (e <= j1[l]) ? p : 0.0f;
            }
        }
        // column sums c_i = sum_j Pv_j W_ji (weights broadcast to every lane, j in order), four columns at a
        // time in registers, then sum_i c_i Pu_i in order
        alignas(32) float sum[kLanes] = {};
        int i = 0;
        for (; i + 4 <= ni; i += 4) {
            alignas(32) float c0[kLanes] = {}, c1[kLanes] = {}, c2[kLanes] = {}, c3[kLanes] = {};
            for (int j = 0; j < nj; ++j) {
                const float* wr = weights + (long long)(J0 + j) * nbu + I0 + i;
                const float w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3];
                const float* pv = ev[j].x;
#pragma omp simd
                for (int l = 0; l < kLanes; ++l) {
                    c0[l] += pv[l] * w0;
                    c1[l] += pv[l] * w1;
                    c2[l] += pv[l] * w2;
                    c3[l] += pv[l] * w3;
                }
            }
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) {
                float t = sum[l] + c0[l] * eu[i].x[l];
                t += c1[l] * eu[i + 1].x[l];
                t += c2[l] * eu[i + 2].x[l];
                sum[l] = t + c3[l] * eu[i + 3].x[l];
            }
        }
        for (; i < ni; ++i) {
            alignas(32) float c0[kLanes] = {};
            for (int j = 0; j < nj; ++j) {
                const float w0 = weights[(long long)(J0 + j) * nbu + I0 + i];
                const float* pv = ev[j].x;
#pragma omp simd
                for (int l = 0; l < kLanes; ++l) c0[l] += pv[l] * w0;
            }
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) sum[l] += c0[l] * eu[i].x[l];
        }
        for (int l = 0; l < kLanes && x0 + l <= hi; ++l) lat[x0 + l] += ak[l] * sum[l];
    }
}

/// Adds one beam's dose to the row out[nx] of voxel row (iz, iy) (stages A-D of the file comment).
inline void photon_row(const PhotonBeamParams& b, const DepthPack& dp, const float* table, const float* weights,
                       const float* scatter, const GridParams& g, int iz, int iy, RowScratch& w, float* out) {
    int lo, hi;
    row_geometry(b, table, g, iz, iy, w, lo, hi);
    if (hi < lo) return;
    row_depth_tables(b, dp, w, lo, hi);
    for (int ix = lo; ix <= hi; ++ix) w.lat[ix] = 0.0f;
    for (int k = 0; k < b.ncomp; ++k) {
        if (k >= b.n_direct) row_scatter(b, scatter, k, w, lo, hi);
        else row_beamlets(b, weights, k, w, lo, hi);
    }
    const float* c = w.c.data();
    const float* lat = w.lat.data();
#pragma omp simd
    for (int ix = lo; ix <= hi; ++ix) out[ix] += c[ix] * lat[ix];
}

}  // namespace rows
}  // namespace sfrt
