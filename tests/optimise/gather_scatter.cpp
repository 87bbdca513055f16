// The two forms of the adjoint in csrc/physics/adjoint.h must agree: the scatter form the CPU runs
// (photon_bev_adjoint, proton_bev_adjoint: each point adds to every weight) and the gather form the
// GPU runs (photon_beamlet_influence, photon_table_column_adjoint, proton_spot_influence: one weight
// sums over the points), including the GPU kernels' cheap rejects by u and by v range (reach bound as
// sfrt_engine/optimise/_engine_gpu.py computes it). Synthetic beams, random points; prints the largest
// relative differences (tests/optimise/test_operator_kernels.py runs it).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "physics/adjoint.h"

using namespace sfrt;

int main() {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> U(0.0, 1.0);
    const int nd = 50;
    std::vector<float> tdd(nd), comp_w(2 * nd), comp_s(2 * nd);
    for (int i = 0; i < nd; ++i) {
        tdd[i] = (float)(0.5 + U(rng)) * (i == 0 ? 0.0f : 1.0f);
        comp_w[i] = (float)(0.7 + 0.2 * U(rng));
        comp_w[nd + i] = (float)(0.1 + 0.2 * U(rng));
        comp_s[i] = (float)(2.0 + 6.0 * i / nd);
        comp_s[nd + i] = (float)(15.0 + 45.0 * i / nd);
    }
    PhotonBeamParams b{};
    b.sad = 1000.0; b.edge_u0 = -20.0; b.beamlet_du = 5.0; b.nbu = 8; b.edge_v0 = -15.0; b.beamlet_dv = 5.0;
    b.nbv = 6; b.depth_step = 2.0; b.ndepth = nd; b.ncomp = 2; b.cutoff_sigma = 6.0; b.min_z = 1.0;
    b.n_direct = 1; b.tab_u0 = -60.0; b.tab_du = 4.0; b.tab_nu = 31; b.tab_v0 = -52.0; b.tab_dv = 4.0; b.tab_nv = 27;
    b.tab_s0 = 12.0; b.tab_log_ratio = std::log(1.05); b.tab_nlev = 40;
    const int n = 3000;
    std::vector<double> pts(4 * n), r(n);
    double max_scale = 0.0;
    for (int m = 0; m < n; ++m) {
        pts[4 * m] = -55.0 + 110.0 * U(rng);
        pts[4 * m + 1] = -50.0 + 100.0 * U(rng);
        pts[4 * m + 2] = 900.0 + 200.0 * U(rng);
        pts[4 * m + 3] = 100.0 * U(rng);
        r[m] = U(rng) - 0.3;
        max_scale = std::fmax(max_scale, b.sad / pts[4 * m + 2]);
    }
    const long long nw = (long long)b.nbu * b.nbv, ncol = (long long)b.tab_nu * b.tab_nv, nt = ncol * b.tab_nlev;
    std::vector<double> gw(nw, 0.0), gt(nt, 0.0);
    for (int m = 0; m < n; ++m) {
        const double* p = &pts[4 * m];
        photon_bev_adjoint(b, tdd.data(), comp_w.data(), comp_s.data(), p[0], p[1], p[2], p[3], r[m], gw.data(),
                           gt.data());
    }
    float smax = 0.0f;
    for (int i = 0; i < nd; ++i) smax = std::fmax(smax, comp_s[i]);
    const double reach = 6.0 * smax * max_scale * (1 + 1e-6) + 1e-6;
    double err_w = 0.0, max_w = 0.0;
    for (int j = 0; j < b.nbv; ++j) {
        for (int i = 0; i < b.nbu; ++i) {
            const double u_lo = b.edge_u0 + i * b.beamlet_du - reach, u_hi = b.edge_u0 + (i + 1) * b.beamlet_du + reach;
            const double v_lo = b.edge_v0 + j * b.beamlet_dv - reach, v_hi = b.edge_v0 + (j + 1) * b.beamlet_dv + reach;
            double acc = 0.0;
            for (int m = 0; m < n; ++m) {
                const double* p = &pts[4 * m];
                if (p[0] < u_lo || p[0] > u_hi || p[1] < v_lo || p[1] > v_hi) continue;
                acc += r[m] * photon_beamlet_influence(b, tdd.data(), comp_w.data(), comp_s.data(), p[0], p[1], p[2],
                                                       p[3], j, i);
            }
            err_w = std::fmax(err_w, std::fabs(acc - gw[j * b.nbu + i]));
            max_w = std::fmax(max_w, std::fabs(gw[j * b.nbu + i]));
        }
    }
    std::vector<double> gt2(nt, 0.0);
    for (int jn = 0; jn < b.tab_nv; ++jn) {
        const double v_node = b.tab_v0 + jn * b.tab_dv;
        const double v_lo = jn == 0 ? -1e300 : v_node - b.tab_dv, v_hi = jn == b.tab_nv - 1 ? 1e300 : v_node + b.tab_dv;
        for (int in = 0; in < b.tab_nu; ++in) {
            const double u_node = b.tab_u0 + in * b.tab_du;
            const double u_lo = in == 0 ? -1e300 : u_node - b.tab_du, u_hi = in == b.tab_nu - 1 ? 1e300 : u_node + b.tab_du;
            for (int m = 0; m < n; ++m) {
                const double* p = &pts[4 * m];
                if (p[0] < u_lo || p[0] > u_hi || p[1] < v_lo || p[1] > v_hi) continue;
                photon_table_column_adjoint(b, tdd.data(), comp_w.data(), comp_s.data(), p[0], p[1], p[2], p[3], r[m],
                                            jn, in, &gt2[(long long)jn * b.tab_nu + in], ncol);
            }
        }
    }
    double err_t = 0.0, max_t = 0.0;
    for (long long e = 0; e < nt; ++e) {
        err_t = std::fmax(err_t, std::fabs(gt2[e] - gt[e]));
        max_t = std::fmax(max_t, std::fabs(gt[e]));
    }

    // protons: two layers, one behind a range shifter
    const int ne = 2;
    std::vector<float> idd(ne * nd), sigma(ne * nd);
    for (int e = 0; e < ne; ++e) {
        for (int i = 0; i < nd; ++i) {
            idd[e * nd + i] = (i < 40 + 5 * e) ? (float)(1.0 + U(rng)) : 0.0f;
            sigma[e * nd + i] = (float)(3.0 + 3.0 * i / nd + e);
        }
    }
    ProtonBeamParams q{};
    q.sad = 2000.0; q.n_layers = 2; q.n_energies = ne; q.ndepth = nd; q.depth_step = 2.0; q.cutoff_sigma = 6.0;
    q.min_z = 1.0;
    const double layers[2 * SFRT_LAYER_PACK_SIZE] = {0, -20.0, 5.0, 9, -15.0, 5.0, 7, 0, 10.0,
                                                     1, -18.0, 6.0, 7, -12.0, 6.0, 5, 63, 0.0};
    const long long n_spots = 63 + 35;
    std::vector<double> gp(n_spots, 0.0), gp2(n_spots, 0.0);
    double max_qscale = 0.0;
    for (int m = 0; m < n; ++m) {
        const double* p = &pts[4 * m];
        max_qscale = std::fmax(max_qscale, q.sad / p[2]);
        proton_bev_adjoint(q, layers, idd.data(), sigma.data(), p[0], p[1], p[2], p[3], r[m], gp.data());
    }
    float qmax = 0.0f;
    for (float s : sigma) qmax = std::fmax(qmax, s);
    const double qreach = 6.0 * qmax * max_qscale * (1 + 1e-6) + 1e-6;
    for (int l = 0; l < 2; ++l) {
        const SpotLayerParams s = unpack_layer(layers, l);
        for (int j = 0; j < s.nv; ++j) {
            for (int i = 0; i < s.nu; ++i) {
                const double us = s.u0 + i * s.du, vs = s.v0 + j * s.dv;
                double acc = 0.0;
                for (int m = 0; m < n; ++m) {
                    const double* p = &pts[4 * m];
                    if (p[0] < us - qreach || p[0] > us + qreach || p[1] < vs - qreach || p[1] > vs + qreach) continue;
                    acc += r[m] * proton_spot_influence(q, s, idd.data(), sigma.data(), p[0], p[1], p[2], p[3], j, i);
                }
                gp2[s.weight_offset + (long long)j * s.nu + i] = acc;
            }
        }
    }
    double err_p = 0.0, max_p = 0.0;
    for (long long e = 0; e < n_spots; ++e) {
        err_p = std::fmax(err_p, std::fabs(gp2[e] - gp[e]));
        max_p = std::fmax(max_p, std::fabs(gp[e]));
    }
    std::printf("%.3e %.3e %.3e %.3e %.3e %.3e\n", err_w / max_w, err_t / max_t, err_p / max_p, max_w, max_t, max_p);
    return 0;
}
