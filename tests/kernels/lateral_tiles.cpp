// Host harness for tests/kernels/test_gpu_backends.py::test_lateral_tiles_do_not_change_the_dose.
// The GPU builds of csrc/physics run the lateral beamlet/spot sums in tiles of
// SFRT_LATERAL_TILE (64) to keep per-thread local memory small; the CPU takes a whole
// beam in one tile. The test compiles this file twice, with a tiny tile and with the
// CPU default, and requires the same bits: the tiles must repeat the same arithmetic
// in the same order. Prints the photon and proton point doses on a lattice of points
// as hex float bits, one per line.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "physics/photon.h"
#include "physics/proton.h"

namespace {

std::uint32_t lcg = 12345u;
float uniform() {  // deterministic weights in [0.5, 1.5)
    lcg = lcg * 1664525u + 1013904223u;
    return 0.5f + (float)(lcg >> 8) / 16777216.0f;
}

template <class Beam>
void frame(Beam& b) {
    b.sad = 1000.0;
    const double iso[3] = {0, 0, 0}, eu[3] = {1, 0, 0}, ev[3] = {0, 0, 1}, es[3] = {0, -1, 0};
    for (int a = 0; a < 3; ++a) {
        b.iso[a] = iso[a];
        b.eu[a] = eu[a];
        b.ev[a] = ev[a];
        b.es[a] = es[a];
        b.src[a] = iso[a] + b.sad * es[a];
    }
    // a 2 x 2 x 2 ray table covering everything: depth = z - 900 mm
    b.ray_u0 = -200.0; b.ray_du = 400.0; b.ray_nu = 2;
    b.ray_v0 = -200.0; b.ray_dv = 400.0; b.ray_nv = 2;
    b.ray_z0 = 900.0; b.ray_dz = 300.0; b.ray_nz = 2;
    b.min_z = 1.0;
}

void print(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    std::printf("%08x\n", bits);
}

}  // namespace

int main() {
    const float table[8] = {0.0f, 300.0f, 0.0f, 300.0f, 0.0f, 300.0f, 0.0f, 300.0f};

    // photons: 37 x 23 beamlets of 2.5 mm, two components, the wide one reaching every beamlet
    sfrt::PhotonBeamParams pb{};
    frame(pb);
    pb.nbu = 37; pb.nbv = 23;
    pb.edge_u0 = -46.25; pb.beamlet_du = 2.5;
    pb.edge_v0 = -28.75; pb.beamlet_dv = 2.5;
    pb.ndepth = 4; pb.depth_step = 100.0; pb.ncomp = 2; pb.cutoff_sigma = 6.0;
    pb.n_direct = pb.ncomp;  // both components summed over the beamlets (no scatter table)
    std::vector<float> weights(pb.nbu * pb.nbv);
    for (float& w : weights) w = uniform();
    const float tdd[4] = {1.0f, 0.8f, 0.6f, 0.4f};
    const float comp_w[8] = {0.9f, 0.8f, 0.7f, 0.6f, 0.1f, 0.2f, 0.3f, 0.4f};
    const float comp_s[8] = {2.0f, 2.5f, 3.0f, 3.5f, 20.0f, 25.0f, 30.0f, 35.0f};

    // protons: two layers, 41 x 29 and 17 x 33 spots, wide enough for several tiles per axis
    sfrt::ProtonBeamParams qb{};
    frame(qb);
    qb.n_layers = 2; qb.n_energies = 2; qb.ndepth = 4; qb.depth_step = 100.0; qb.cutoff_sigma = 6.0;
    // energy, u0, du, nu, v0, dv, nv, weight_offset; later fields of the pack stay 0
    const double head[2][8] = {{0, -40.0, 2.0, 41, -28.0, 2.0, 29, 0}, {1, -24.0, 3.0, 17, -48.0, 3.0, 33, 41 * 29}};
    std::vector<double> layers(2 * SFRT_LAYER_PACK_SIZE, 0.0);
    for (int l = 0; l < 2; ++l)
        for (int k = 0; k < 8; ++k) layers[l * SFRT_LAYER_PACK_SIZE + k] = head[l][k];
    std::vector<float> spots(41 * 29 + 17 * 33);
    for (float& w : spots) w = uniform();
    const float idd[8] = {1.0f, 1.2f, 1.5f, 0.5f, 0.9f, 1.0f, 1.1f, 1.3f};
    const float sigma[8] = {6.0f, 8.0f, 10.0f, 12.0f, 4.0f, 5.0f, 6.0f, 7.0f};

    for (double y = -80.0; y <= 160.0; y += 40.0)
        for (double z = -60.0; z <= 60.0; z += 7.5)
            for (double x = -70.0; x <= 70.0; x += 3.5) {
                print(sfrt::photon_point_dose(pb, table, weights.data(), tdd, comp_w, comp_s, nullptr, x, y, z));
                print(sfrt::proton_point_dose(qb, table, layers.data(), spots.data(), idd, sigma, x, y, z));
            }
    return 0;
}
