// Host harness for tests/kernels/test_work_model.py::test_counts_match_the_instrumented_kernels.
// Runs photon_point_dose or proton_point_dose of csrc/physics over every voxel of a grid for one
// beam, with erf_fast and expf wrapped in counters, and prints
//   <pairs bev_depth accepts> <erf_fast calls> <expf calls>
// Inputs (raw little-endian files in the working directory, written by the test): grid.bin and
// beam.bin (the float64 packs), table.bin (float32 ray table), then for "photon" weights, tdd, cw,
// cs, scatter (float32) and for "proton" layers (float64), weights, idd, sigma (float32).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "physics/common.h"

static long long erf_calls = 0, exp_calls = 0;

namespace sfrt {
inline float counted_erf(float x) { ++erf_calls; return erf_fast(x); }
inline float counted_exp(float x) { ++exp_calls; return ::expf(x); }
}  // namespace sfrt

// the kernels below call the counters instead (common.h, already included, keeps the originals)
#define erf_fast counted_erf
#define expf counted_exp
#include "params.h"
#include "physics/photon.h"
#include "physics/proton.h"

template <class T>
std::vector<T> load(const char* path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    const size_t n = (size_t)f.tellg() / sizeof(T);
    f.seekg(0);
    std::vector<T> v(n > 0 ? n : 1);
    f.read((char*)v.data(), (std::streamsize)(n * sizeof(T)));
    return v;
}

int main(int argc, char** argv) {
    const bool photon = argc > 1 && std::strcmp(argv[1], "photon") == 0;
    const auto grid = load<double>("grid.bin"), beam = load<double>("beam.bin");
    const auto table = load<float>("table.bin"), weights = load<float>("weights.bin");
    const sfrt::GridParams g = sfrt::unpack_grid(grid.data());
    long long in_reach = 0;
    std::vector<float> a, b, c, d;
    std::vector<double> layers;
    if (photon) {
        a = load<float>("tdd.bin"); b = load<float>("cw.bin"); c = load<float>("cs.bin"); d = load<float>("scatter.bin");
    } else {
        layers = load<double>("layers.bin"); a = load<float>("idd.bin"); b = load<float>("sigma.bin");
    }
    const sfrt::PhotonBeamParams pb = sfrt::unpack_photon_beam(beam.data());
    const sfrt::ProtonBeamParams qb = sfrt::unpack_proton_beam(beam.data());
    for (int iz = 0; iz < g.nz; ++iz)
        for (int iy = 0; iy < g.ny; ++iy)
            for (int ix = 0; ix < g.nx; ++ix) {
                const double x = g.ox + ix * g.dx, y = g.oy + iy * g.dy, z = g.oz + iz * g.dz;
                double u, v, zs, depth;
                if (sfrt::bev_depth(pb, table.data(), x, y, z, u, v, zs, depth)) ++in_reach;
                if (photon) {
                    sfrt::photon_point_dose(pb, table.data(), weights.data(), a.data(), b.data(), c.data(), d.data(),
                                            x, y, z);
                } else {
                    sfrt::proton_point_dose(qb, table.data(), layers.data(), weights.data(), a.data(), b.data(), x,
                                            y, z);
                }
            }
    std::printf("%lld %lld %lld\n", in_reach, erf_calls, exp_calls);
    return 0;
}
