// pybind11 plumbing of the forward and adjoint dose operators (sfrt_engine/optimise/_engine_cpp.py):
// argument checks, array plumbing, GIL release. Physics in csrc/physics, loops in csrc/cpu/operator_cpu.
#include "bind_operator.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "bind_checks.h"
#include "cpu/operator_cpu.h"

namespace py = pybind11;

namespace sfrt::bind {

namespace {

using i64 = py::array_t<long long, py::array::c_style | py::array::forcecast>;

SubsetGeometry subset_from(const i64& hit, const f64& geom, long long n_out, const std::string& where) {
    require(hit.ndim() == 1, where + ": hit must be a 1-D int64 array");
    require(geom.ndim() == 2 && (geom.shape(0) == hit.shape(0) || geom.shape(0) == 0) && geom.shape(1) == 4,
            where + ": geom must be (n_hit, 4) float64 matching hit (or (0, 4) with stored factors)");
    const long long* h = hit.data();
    for (py::ssize_t m = 0; m < hit.shape(0); ++m) {
        require(h[m] >= 0 && h[m] < n_out, where + ": hit index out of range of the subset");
    }
    return SubsetGeometry{h, geom.shape(0) ? geom.data() : nullptr, (long long)hit.shape(0)};
}

/// (hit positions int64 [m], geometry float64 [m, 4]) of the subset voxels a beam reaches.
template <class Beam, class Run>
std::tuple<py::array_t<long long>, py::array_t<double>> geometry(const GridParams& g, const Beam& b, const f32& table,
                                                                 const i64& voxels, const Run& run) {
    require(table.ndim() == 3 && table.shape(0) == b.ray_nv && table.shape(1) == b.ray_nu &&
                table.shape(2) == b.ray_nz,
            "table: shape does not match the beam's ray lattice (nv, nu, nz)");
    require(voxels.ndim() == 1, "voxels: expected 1-D int64 flat indices");
    const long long n = (long long)voxels.shape(0), size = (long long)g.nx * g.ny * g.nz;
    for (long long m = 0; m < n; ++m) require(voxels.data()[m] >= 0 && voxels.data()[m] < size,
                                              "voxels: flat index outside the grid");
    std::vector<unsigned char> flag((size_t)n);
    std::vector<double> all((size_t)n * 4);
    {
        py::gil_scoped_release release;
        run(g, b, table.data(), voxels.data(), n, flag.data(), all.data());
    }
    long long m = 0;
    for (long long k = 0; k < n; ++k) m += flag[(size_t)k];
    py::array_t<long long> hit(m);
    py::array_t<double> geom({(py::ssize_t)m, (py::ssize_t)4});
    long long* h = hit.mutable_data();
    double* o = geom.mutable_data();
    for (long long k = 0, j = 0; k < n; ++k) {
        if (!flag[(size_t)k]) continue;
        h[j] = k;
        for (int c = 0; c < 4; ++c) o[4 * j + c] = all[(size_t)(4 * k + c)];
        ++j;
    }
    return {hit, geom};
}

std::vector<PhotonOperatorBeam> photon_beams(const std::vector<f64>& params, const std::vector<f32>& weights,
                                             const std::vector<f32>& tdd, const std::vector<f32>& comp_w,
                                             const std::vector<f32>& comp_s, const std::vector<f32>& scatter,
                                             const std::vector<i64>& hits, const std::vector<f64>& geoms,
                                             long long n_out) {
    const size_t n = params.size();
    require(weights.size() == n && tdd.size() == n && comp_w.size() == n && comp_s.size() == n &&
                scatter.size() == n && hits.size() == n && geoms.size() == n,
            "photon operator: params, weights, tdd, comp_w, comp_s, scatter, hits and geoms need one entry per beam");
    std::vector<PhotonOperatorBeam> beams;
    for (size_t i = 0; i < n; ++i) {
        const std::string where = "beam " + std::to_string(i);
        PhotonOperatorBeam a;
        a.params = photon_beam_from(params[i], weights[i], tdd[i], comp_w[i], comp_s[i], scatter[i], where);
        a.weights = weights[i].data();
        a.tdd = tdd[i].data();
        a.comp_w = comp_w[i].data();
        a.comp_s = comp_s[i].data();
        a.scatter = scatter[i].data();
        a.at = subset_from(hits[i], geoms[i], n_out, where);
        beams.push_back(a);
    }
    return beams;
}

std::vector<ProtonOperatorBeam> proton_beams(const std::vector<f64>& params, const std::vector<f64>& layers,
                                             const std::vector<f32>& weights, const std::vector<f32>& idd,
                                             const std::vector<f32>& sigma, const std::vector<i64>& hits,
                                             const std::vector<f64>& geoms, long long n_out) {
    const size_t n = params.size();
    require(layers.size() == n && weights.size() == n && idd.size() == n && sigma.size() == n && hits.size() == n &&
                geoms.size() == n,
            "proton operator: params, layers, weights, idd, sigma, hits and geoms need one entry per beam");
    std::vector<ProtonOperatorBeam> beams;
    for (size_t i = 0; i < n; ++i) {
        const std::string where = "proton beam " + std::to_string(i);
        ProtonOperatorBeam a;
        a.params = proton_beam_from(params[i], layers[i], weights[i], where);
        check_proton_tables(a.params, idd[i], sigma[i], where);
        a.layers = layers[i].data();
        a.weights = weights[i].data();
        a.n_weights = (long long)weights[i].shape(0);
        a.idd = idd[i].data();
        a.sigma = sigma[i].data();
        a.at = subset_from(hits[i], geoms[i], n_out, where);
        beams.push_back(a);
    }
    return beams;
}

/// A cache array: the caller's own buffer (no conversion, so the pointer outlives this call), checked.
template <class T>
const T* cache_array(const py::handle& h, long long size, const std::string& where) {
    const std::string what = where + ": arrays do not match the beam's points (rebuild them with photon_cache)";
    require(py::isinstance<py::array>(h), what);
    const py::array a = py::reinterpret_borrow<py::array>(h);
    require(a.dtype().is(py::dtype::of<T>()) && (a.flags() & py::array::c_style) && (long long)a.size() == size, what);
    return static_cast<const T*>(a.data());
}

/// Attaches the stored factors of photon_cache (a tuple per beam, or None) to the beams, checking sizes.
void attach_caches(std::vector<PhotonOperatorBeam>& beams, const py::object& caches) {
    if (caches.is_none()) return;
    const py::list list = caches.cast<py::list>();
    require((size_t)py::len(list) == beams.size(), "caches: one entry (or None) per beam");
    for (size_t i = 0; i < beams.size(); ++i) {
        if (list[i].is_none()) continue;
        const py::tuple t = list[i].cast<py::tuple>();
        require(py::len(t) == 6, "caches: each entry is (fac, base, frac, win, offset, pool)");
        const PhotonBeamParams& b = beams[i].params;
        const long long n = beams[i].at.n_hit, nt = b.ncomp - b.n_direct;
        const std::string where = "caches: beam " + std::to_string(i);
        PhotonPointCache c;
        c.fac = cache_array<float>(t[0], n * (b.ncomp + 1), where);
        c.base = cache_array<long long>(t[1], n * nt, where);
        c.frac = cache_array<double>(t[2], 3 * n * nt, where);
        c.win = cache_array<int>(t[3], 4 * n * b.n_direct, where);
        c.offset = cache_array<long long>(t[4], n + 1, where);
        c.pool = cache_array<float>(t[5], c.offset[n], where);
        beams[i].cache = c;
    }
}

/// Attaches the stored entries of proton_cache (a tuple per beam, or None) to the beams, checking sizes.
void attach_proton_caches(std::vector<ProtonOperatorBeam>& beams, const py::object& caches) {
    if (caches.is_none()) return;
    const py::list list = caches.cast<py::list>();
    require((size_t)py::len(list) == beams.size(), "caches: one entry (or None) per beam");
    for (size_t i = 0; i < beams.size(); ++i) {
        if (list[i].is_none()) continue;
        const py::tuple t = list[i].cast<py::tuple>();
        require(py::len(t) == 6, "caches: each entry is (entry_offset, pool_offset, layer, q, win, pool)");
        const long long n = beams[i].at.n_hit;
        const std::string where = "caches: proton beam " + std::to_string(i);
        ProtonPointCache c;
        c.entry_offset = cache_array<long long>(t[0], n + 1, where);
        c.pool_offset = cache_array<long long>(t[1], n + 1, where);
        const long long n_entries = c.entry_offset[n];
        c.layer = cache_array<int>(t[2], n_entries, where);
        c.q = cache_array<float>(t[3], n_entries, where);
        c.win = cache_array<int>(t[4], 4 * n_entries, where);
        c.pool = cache_array<float>(t[5], c.pool_offset[n], where);
        for (long long e = 0; e < n_entries; ++e) {
            require(c.layer[e] >= 0 && c.layer[e] < beams[i].params.n_layers, where + ": layer index out of range");
        }
        beams[i].cache = c;
    }
}

/// Every beam must have its geometry, or stored factors in its place.
template <class Beam>
bool has_geometry(const Beam& a) {
    return a.at.n_hit == 0 || a.at.geom != nullptr;
}
inline bool has_geometry(const PhotonOperatorBeam& a) {
    return a.at.n_hit == 0 || a.at.geom != nullptr || a.cache.fac != nullptr;
}
inline bool has_geometry(const ProtonOperatorBeam& a) {
    return a.at.n_hit == 0 || a.at.geom != nullptr || a.cache.entry_offset != nullptr;
}

template <class Beam>
void require_geometry(const std::vector<Beam>& beams) {
    for (size_t i = 0; i < beams.size(); ++i) {
        require(has_geometry(beams[i]), "beam " + std::to_string(i) + ": geom is (0, 4) but no stored factors were "
                                        "given: pass its (n_hit, 4) geometry");
    }
}

long long check_n_out(long long n_out) {
    require(n_out >= 0, "n_out: expected the subset size >= 0");
    return n_out;
}

}  // namespace

void register_operators(py::module_& m) {
    m.def("photon_geometry",
          [](const f64& grid, const f64& beam, const f32& table, const i64& voxels) {
              const GridParams g = grid_from(grid);
              const PhotonBeamParams b = beam_from(beam, "beam");
              return geometry(g, b, table, voxels, photon_geometry_cpu);
          },
          py::arg("grid"), py::arg("beam"), py::arg("table"), py::arg("voxels"),
          "(hit int64 [m], geom float64 [m, 4] = u, v, zs, depth) of the subset voxels a photon beam reaches.");
    m.def("proton_geometry",
          [](const f64& grid, const f64& beam, const f32& table, const i64& voxels) {
              const GridParams g = grid_from(grid);
              require(beam.ndim() == 1 && beam.shape(0) == SFRT_PROTON_PACK_SIZE, "beam: expected a proton pack");
              const ProtonBeamParams b = unpack_proton_beam(beam.data());
              require(b.ray_nu > 0 && b.ray_nv > 0 && b.ray_nz > 0 && b.sad > 0, "beam: empty ray table or bad SAD");
              return geometry(g, b, table, voxels, proton_geometry_cpu);
          },
          py::arg("grid"), py::arg("beam"), py::arg("table"), py::arg("voxels"),
          "(hit int64 [m], geom float64 [m, 4] = u, v, zs, depth) of the subset voxels a proton beam reaches.");
    m.def("photon_forward",
          [](const std::vector<f64>& params, const std::vector<f32>& weights, const std::vector<f32>& tdd,
             const std::vector<f32>& comp_w, const std::vector<f32>& comp_s, const std::vector<f32>& scatter,
             const std::vector<i64>& hits, const std::vector<f64>& geoms, long long n_out, const py::object& caches) {
              auto beams = photon_beams(params, weights, tdd, comp_w, comp_s, scatter, hits, geoms, check_n_out(n_out));
              attach_caches(beams, caches);
              require_geometry(beams);
              py::array_t<float> out(n_out);
              float* o = out.mutable_data();
              {
                  py::gil_scoped_release release;
                  std::fill(o, o + n_out, 0.0f);
                  photon_forward_cpu(beams, o);
              }
              return out;
          },
          py::arg("params"), py::arg("weights"), py::arg("tdd"), py::arg("comp_w"), py::arg("comp_s"),
          py::arg("scatter"), py::arg("hits"), py::arg("geoms"), py::arg("n_out"), py::arg("caches") = py::none(),
          "Dose [Gy] float32 (n_out,) on the subset: the beams added in order at their hit positions.");
    m.def("photon_adjoint",
          [](const std::vector<f64>& params, const std::vector<f32>& weights, const std::vector<f32>& tdd,
             const std::vector<f32>& comp_w, const std::vector<f32>& comp_s, const std::vector<f32>& scatter,
             const std::vector<i64>& hits, const std::vector<f64>& geoms, const f64& r, const py::object& caches) {
              require(r.ndim() == 1, "r: expected a 1-D float64 array over the subset");
              auto beams = photon_beams(params, weights, tdd, comp_w, comp_s, scatter, hits, geoms,
                                        (long long)r.shape(0));
              attach_caches(beams, caches);
              require_geometry(beams);
              py::list out;
              for (const PhotonOperatorBeam& a : beams) {
                  const auto& b = a.params;
                  py::array_t<double> gw({(py::ssize_t)b.nbv, (py::ssize_t)b.nbu});
                  const bool table = b.n_direct < b.ncomp;
                  py::array_t<double> gt(table ? std::vector<py::ssize_t>{b.tab_nlev, b.tab_nv, b.tab_nu}
                                               : std::vector<py::ssize_t>{0, 1, 1});
                  const long long n_w = (long long)b.nbv * b.nbu, n_t = table ? (long long)gt.size() : 0;
                  {
                      py::gil_scoped_release release;
                      photon_adjoint_cpu(a, r.data(), gw.mutable_data(), n_w, gt.mutable_data(), n_t);
                  }
                  out.append(py::make_tuple(gw, gt));
              }
              return out;
          },
          py::arg("params"), py::arg("weights"), py::arg("tdd"), py::arg("comp_w"), py::arg("comp_s"),
          py::arg("scatter"), py::arg("hits"), py::arg("geoms"), py::arg("r"), py::arg("caches") = py::none(),
          "Per beam (grad_w float64 [nbv, nbu], grad_table float64 [nlev, nv, nu] or (0, 1, 1)): the adjoint of "
          "photon_forward applied to r (weights and scatter are only checked, not read).");
    m.def("photon_cache",
          [](const f64& params, const f32& weights, const f32& tdd, const f32& comp_w, const f32& comp_s,
             const f32& scatter, const i64& hit, const f64& geom, long long max_bytes) -> py::object {
              std::vector<PhotonOperatorBeam> beams =
                  photon_beams({params}, {weights}, {tdd}, {comp_w}, {comp_s}, {scatter}, {hit}, {geom},
                               hit.shape(0) ? (long long)(*std::max_element(hit.data(), hit.data() + hit.shape(0)) + 1)
                                            : 0);
              require_geometry(beams);
              const PhotonOperatorBeam& a = beams[0];
              const PhotonBeamParams& b = a.params;
              const long long n = a.at.n_hit, nt = b.ncomp - b.n_direct;
              py::array_t<long long> offset(n + 1);
              {
                  py::gil_scoped_release release;
                  photon_cache_offsets_cpu(a, offset.mutable_data());
              }
              const long long n_pool = offset.data()[n];
              const long long bytes = n * (4 * (b.ncomp + 1) + 8 * nt + 24 * nt + 16 * b.n_direct + 8) + 4 * n_pool;
              if (max_bytes >= 0 && bytes > max_bytes) return py::int_(bytes);
              py::array_t<float> fac({(py::ssize_t)n, (py::ssize_t)(b.ncomp + 1)});
              py::array_t<long long> base({(py::ssize_t)n, (py::ssize_t)nt});
              py::array_t<double> frac({(py::ssize_t)n, (py::ssize_t)nt, (py::ssize_t)3});
              py::array_t<int> win({(py::ssize_t)n, (py::ssize_t)b.n_direct, (py::ssize_t)4});
              py::array_t<float> pool(n_pool);
              {
                  py::gil_scoped_release release;
                  photon_cache_cpu(a, offset.data(), fac.mutable_data(), base.mutable_data(), frac.mutable_data(),
                                   win.mutable_data(), pool.mutable_data());
              }
              return py::make_tuple(fac, base, frac, win, offset, pool);
          },
          py::arg("params"), py::arg("weights"), py::arg("tdd"), py::arg("comp_w"), py::arg("comp_s"),
          py::arg("scatter"), py::arg("hit"), py::arg("geom"), py::arg("max_bytes") = -1,
          "Stored per-point factors (fac, base, frac, win, offset, pool) of one photon beam's points "
          "(csrc/physics/operator_cache.h), or their size in bytes (an int) when it exceeds max_bytes >= 0.");
    m.def("proton_forward",
          [](const std::vector<f64>& params, const std::vector<f64>& layers, const std::vector<f32>& weights,
             const std::vector<f32>& idd, const std::vector<f32>& sigma, const std::vector<i64>& hits,
             const std::vector<f64>& geoms, long long n_out, const py::object& caches) {
              auto beams = proton_beams(params, layers, weights, idd, sigma, hits, geoms, check_n_out(n_out));
              attach_proton_caches(beams, caches);
              require_geometry(beams);
              py::array_t<float> out(n_out);
              float* o = out.mutable_data();
              {
                  py::gil_scoped_release release;
                  std::fill(o, o + n_out, 0.0f);
                  proton_forward_cpu(beams, o);
              }
              return out;
          },
          py::arg("params"), py::arg("layers"), py::arg("weights"), py::arg("idd"), py::arg("sigma"), py::arg("hits"),
          py::arg("geoms"), py::arg("n_out"), py::arg("caches") = py::none(),
          "Proton dose [Gy] float32 (n_out,) on the subset, beams in order.");
    m.def("proton_adjoint",
          [](const std::vector<f64>& params, const std::vector<f64>& layers, const std::vector<f32>& weights,
             const std::vector<f32>& idd, const std::vector<f32>& sigma, const std::vector<i64>& hits,
             const std::vector<f64>& geoms, const f64& r, const py::object& caches) {
              require(r.ndim() == 1, "r: expected a 1-D float64 array over the subset");
              auto beams = proton_beams(params, layers, weights, idd, sigma, hits, geoms, (long long)r.shape(0));
              attach_proton_caches(beams, caches);
              require_geometry(beams);
              py::list out;
              for (const ProtonOperatorBeam& a : beams) {
                  py::array_t<double> gw(a.n_weights);
                  double* g = gw.mutable_data();
                  {
                      py::gil_scoped_release release;
                      std::fill(g, g + a.n_weights, 0.0);
                      proton_adjoint_cpu(a, r.data(), g, a.n_weights);
                  }
                  out.append(gw);
              }
              return out;
          },
          py::arg("params"), py::arg("layers"), py::arg("weights"), py::arg("idd"), py::arg("sigma"), py::arg("hits"),
          py::arg("geoms"), py::arg("r"), py::arg("caches") = py::none(),
          "Per beam the spot gradient float64 (n_spots,): adjoint of proton_forward.");
    m.def("proton_cache",
          [](const f64& params, const f64& layers, const f32& weights, const f32& idd, const f32& sigma, const i64& hit,
             const f64& geom, long long max_bytes) -> py::object {
              const long long n_out =
                  hit.shape(0) ? (long long)(*std::max_element(hit.data(), hit.data() + hit.shape(0)) + 1) : 0;
              std::vector<ProtonOperatorBeam> beams =
                  proton_beams({params}, {layers}, {weights}, {idd}, {sigma}, {hit}, {geom}, n_out);
              require_geometry(beams);
              const ProtonOperatorBeam& a = beams[0];
              const long long n = a.at.n_hit;
              py::array_t<long long> entry_offset(n + 1), pool_offset(n + 1);
              {
                  py::gil_scoped_release release;
                  proton_cache_offsets_cpu(a, entry_offset.mutable_data(), pool_offset.mutable_data());
              }
              const long long n_entries = entry_offset.data()[n], n_pool = pool_offset.data()[n];
              const long long bytes = 16 * (n + 1) + 24 * n_entries + 4 * n_pool;
              if (max_bytes >= 0 && bytes > max_bytes) return py::int_(bytes);
              py::array_t<int> layer(n_entries), win({(py::ssize_t)n_entries, (py::ssize_t)4});
              py::array_t<float> q(n_entries), pool(n_pool);
              {
                  py::gil_scoped_release release;
                  proton_cache_cpu(a, entry_offset.data(), pool_offset.data(), layer.mutable_data(), q.mutable_data(),
                                   win.mutable_data(), pool.mutable_data());
              }
              return py::make_tuple(entry_offset, pool_offset, layer, q, win, pool);
          },
          py::arg("params"), py::arg("layers"), py::arg("weights"), py::arg("idd"), py::arg("sigma"), py::arg("hit"),
          py::arg("geom"), py::arg("max_bytes") = -1,
          "Stored per-point entries (entry_offset, pool_offset, layer, q, win, pool) of one proton beam's points "
          "(csrc/physics/operator_cache.h), or their size in bytes (an int) when it exceeds max_bytes >= 0.");
}

}  // namespace sfrt::bind
