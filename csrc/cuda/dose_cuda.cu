// CUDA drivers of the photon and proton dose: plan device memory, allocate, copy, launch
// the kernels of dose_kernels.cuh (which call csrc/physics), check every CUDA call.
// No physics here.
//
// Per beam, in order: upload its packed parameters and tables once, trace its ray
// table on the device, launch one dose kernel over the grid (or over the z-chunk).
// Photon and proton beams run through the same driver (run_dose); they differ only
// in their data (beamlet weights and depth tables; layers, spot weights, IDD and
// sigma tables) and their dose kernel.
// The dose stays on the device across beams. When the grid does not fit next to
// the density, all ray tables are traced first (kept on the host), the density is
// freed and the dose is computed in z-chunks; each voxel still adds the beams in
// the same order, so the result is bit-identical to a single pass.
#include "dose_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dose_kernels.cuh"

#ifndef SFRT_CUDA_ARCHS
#define SFRT_CUDA_ARCHS "unknown"
#endif

namespace sfrt {
namespace cuda {
namespace {

constexpr std::size_t kAlign = 512;                     // cudaMalloc returns >= 256-byte aligned blocks
constexpr std::size_t kHeadroom = std::size_t(64) << 20;  // context growth, fragmentation, other users
constexpr int kBlock = 256;
// sfrt_trace_rays unpacks every pack as a photon pack (dose_kernels.cuh): the buffer it reads must hold one.
static_assert(SFRT_PROTON_PACK_SIZE == SFRT_BEAM_PACK_SIZE,
              "proton packs are traced by sfrt_trace_rays as photon packs: keep SFRT_PROTON_PACK_SIZE == "
              "SFRT_BEAM_PACK_SIZE, or give protons their own trace kernel");

std::size_t aligned(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::string shape_text(const GridParams& g) {
    return "(nz, ny, nx) = (" + std::to_string(g.nz) + ", " + std::to_string(g.ny) + ", " + std::to_string(g.nx) + ")";
}

[[noreturn]] void throw_cuda(cudaError_t e, const std::string& what) {
    cudaGetLastError();  // clear a non-sticky error so later calls start clean
    const std::string msg = what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    if (e == cudaErrorMemoryAllocation) throw DeviceMemoryError("out of device memory while " + msg);
    throw std::runtime_error("CUDA error while " + msg);
}

void check(cudaError_t e, const std::string& what) {
    if (e != cudaSuccess) throw_cuda(e, what);
}

/// Launch errors (bad configuration) and execution errors (faults) both name the kernel.
void check_kernel(const std::string& what) {
    check(cudaGetLastError(), "launching " + what);
    check(cudaDeviceSynchronize(), "running " + what);
}

/// Owning device array; freed on scope exit, including when an error unwinds.
template <class T>
class DeviceBuffer {
  public:
    DeviceBuffer(std::size_t count, const std::string& what) {
        const cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&ptr_), std::max<std::size_t>(count, 1) * sizeof(T));
        if (e != cudaSuccess) {
            ptr_ = nullptr;
            throw_cuda(e, "allocating " + format_bytes(count * sizeof(T)) + " for " + what);
        }
    }
    ~DeviceBuffer() {
        if (ptr_) cudaFree(ptr_);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    T* get() const { return ptr_; }
    void upload(const T* host, std::size_t count, const std::string& what) const {
        check(cudaMemcpy(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice), "copying " + what + " to the device");
    }
    void download(T* host, std::size_t count, const std::string& what) const {
        check(cudaMemcpy(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost), "copying " + what + " to the host");
    }

  private:
    T* ptr_ = nullptr;
};

template <class Params>
std::size_t table_count(const Params& b) {
    return (std::size_t)b.ray_nv * b.ray_nu * b.ray_nz;
}
std::size_t scatter_count(const PhotonBeamParams& b) {
    return b.n_direct < b.ncomp ? (std::size_t)b.tab_nlev * b.tab_nv * b.tab_nu : 0;
}
std::size_t data_count(const PhotonBeamParams& b) {
    return (std::size_t)b.nbv * b.nbu + (std::size_t)b.ndepth * (1 + 2 * (std::size_t)b.ncomp) + scatter_count(b);
}

// What the generic driver (run_dose) needs to know about each kind of beam: its pack size,
// its float data (one upload), its float64 data (proton layers; none for photons), its dose kernel.
std::size_t pack_size(const PhotonBeamHost&) { return SFRT_BEAM_PACK_SIZE; }
std::size_t pack_size(const ProtonBeamHost&) { return SFRT_PROTON_PACK_SIZE; }
std::size_t float_count(const PhotonBeamHost& beam) { return data_count(beam.params); }
std::size_t float_count(const ProtonBeamHost& beam) {
    return beam.n_weights + 2 * (std::size_t)beam.params.n_energies * beam.params.ndepth;
}
std::size_t double_count(const PhotonBeamHost&) { return 0; }
std::size_t double_count(const ProtonBeamHost& beam) {
    return (std::size_t)beam.params.n_layers * SFRT_LAYER_PACK_SIZE;
}
const double* double_data(const PhotonBeamHost&) { return nullptr; }
const double* double_data(const ProtonBeamHost& beam) { return beam.layers; }
const char* data_label(const PhotonBeamHost&) { return "the beamlet weights, depth tables and scatter table"; }
const char* data_label(const ProtonBeamHost&) { return "the spot weights, IDD and sigma tables"; }

/// weights | tdd | comp_w | comp_s | scatter of one photon beam, contiguous, for a single upload.
void gather_floats(const PhotonBeamHost& beam, std::vector<float>& out) {
    const PhotonBeamParams& b = beam.params;
    const std::size_t nw = (std::size_t)b.nbv * b.nbu, nd = b.ndepth, nc = (std::size_t)b.ncomp * b.ndepth;
    const std::size_t ns = scatter_count(b);
    out.resize(nw + nd + 2 * nc + ns);
    std::memcpy(out.data(), beam.weights, nw * sizeof(float));
    std::memcpy(out.data() + nw, beam.tdd, nd * sizeof(float));
    std::memcpy(out.data() + nw + nd, beam.comp_w, nc * sizeof(float));
    std::memcpy(out.data() + nw + nd + nc, beam.comp_s, nc * sizeof(float));
    if (ns > 0) std::memcpy(out.data() + nw + nd + 2 * nc, beam.scatter, ns * sizeof(float));
}

/// weights | idd | sigma of one proton beam, contiguous, for a single upload.
void gather_floats(const ProtonBeamHost& beam, std::vector<float>& out) {
    const std::size_t nw = beam.n_weights, nt = (std::size_t)beam.params.n_energies * beam.params.ndepth;
    out.resize(nw + 2 * nt);
    std::memcpy(out.data(), beam.weights, nw * sizeof(float));
    std::memcpy(out.data() + nw, beam.idd, nt * sizeof(float));
    std::memcpy(out.data() + nw + nt, beam.sigma, nt * sizeof(float));
}

/// An environment variable read as a whole number in [lo, hi], or `fallback` when unset or empty.
int env_int(const char* name, int fallback, int lo, int hi, const char* meaning) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') return fallback;
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    if (*end != '\0' || value < lo || value > hi) {
        throw std::invalid_argument(std::string(name) + "=" + text + ": expected " + meaning + " (" +
                                    std::to_string(lo) + " to " + std::to_string(hi) + "); unset it for the default " +
                                    std::to_string(fallback));
    }
    return (int)value;
}

/// Launch shape of the grid-stride kernels over n items (csrc/README.md, "Launch configuration"):
/// SFRT_CUDA_BLOCK_THREADS threads per block (default kBlock, a multiple of 32), and at most
/// SFRT_CUDA_WAVES waves of the blocks the SMs hold at once (default 1: one resident wave, each thread
/// striding over several items; 0: no cap, one thread per item). Results do not depend on it: every
/// item is written by one thread.
struct LaunchShape {
    int blocks, threads;
};

LaunchShape launch_shape(const void* kernel, long long n) {
    const int threads = env_int("SFRT_CUDA_BLOCK_THREADS", kBlock, 32, 1024, "threads per block, a multiple of 32");
    if (threads % 32 != 0) {
        throw std::invalid_argument("SFRT_CUDA_BLOCK_THREADS=" + std::to_string(threads) +
                                    ": expected a multiple of 32 (the warp size)");
    }
    const int waves = env_int("SFRT_CUDA_WAVES", 1, 0, 1 << 16, "waves of resident blocks per launch, 0 for no cap");
    int device = 0, sms = 1, per_sm = 1;
    check(cudaGetDevice(&device), "querying the current device");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "querying the SM count");
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0), "querying kernel occupancy");
    const long long needed = std::max(1LL, (n + threads - 1) / threads);
    const long long cap = waves == 0 ? needed : (long long)waves * std::max(1, per_sm) * sms;
    return {(int)std::min(needed, std::min(cap, 0x7fffffffLL)), threads};
}

template <class Params>
void launch_trace(const float* density, const double* grid_d, const double* beam_d, float* table, const Params& b,
                  const std::string& beam_name) {
    const long long n = (long long)b.ray_nv * b.ray_nu;
    const LaunchShape shape = launch_shape((const void*)sfrt_trace_rays, n);
    sfrt_trace_rays<<<shape.blocks, shape.threads>>>(density, grid_d, beam_d, table);
    check_kernel("kernel sfrt_trace_rays (" + beam_name + ", " + std::to_string(n) + " rays)");
}

std::string chunk_text(int z_begin, int z_count) {
    return "z-slices " + std::to_string(z_begin) + ".." + std::to_string(z_begin + z_count - 1);
}

void launch_dose(const double* grid_d, const double* beam_d, const float* table, const float* data, const double*,
                 const PhotonBeamHost& beam, float* dose, const GridParams& g, int z_begin, int z_count,
                 const std::string& beam_name) {
    const PhotonBeamParams& b = beam.params;
    const long long n = (long long)g.nx * g.ny * z_count;
    const float* weights = data;
    const float* tdd = weights + (std::size_t)b.nbv * b.nbu;
    const float* comp_w = tdd + b.ndepth;
    const float* comp_s = comp_w + (std::size_t)b.ncomp * b.ndepth;
    const float* scatter = comp_s + (std::size_t)b.ncomp * b.ndepth;
    const LaunchShape shape = launch_shape((const void*)sfrt_photon_dose, n);
    sfrt_photon_dose<<<shape.blocks, shape.threads>>>(
        grid_d, beam_d, table, weights, tdd, comp_w, comp_s, scatter, dose, z_begin, z_count);
    check_kernel("kernel sfrt_photon_dose (" + beam_name + ", " + chunk_text(z_begin, z_count) + ")");
}

void launch_dose(const double* grid_d, const double* beam_d, const float* table, const float* data,
                 const double* layers, const ProtonBeamHost& beam, float* dose, const GridParams& g, int z_begin,
                 int z_count, const std::string& beam_name) {
    const long long n = (long long)g.nx * g.ny * z_count;
    const float* weights = data;
    const float* idd = weights + beam.n_weights;
    const float* sigma = idd + (std::size_t)beam.params.n_energies * beam.params.ndepth;
    const LaunchShape shape = launch_shape((const void*)sfrt_proton_dose, n);
    sfrt_proton_dose<<<shape.blocks, shape.threads>>>(
        grid_d, beam_d, table, layers, weights, idd, sigma, dose, z_begin, z_count);
    check_kernel("kernel sfrt_proton_dose (" + beam_name + ", " + chunk_text(z_begin, z_count) + ")");
}

/// The kernels of this module (probe, local-memory reserve).
const void* const kKernels[] = {(const void*)sfrt_trace_rays, (const void*)sfrt_photon_dose,
                                (const void*)sfrt_proton_dose};

/// Local memory the driver reserves for a kernel: bytes per thread for every thread the device can hold.
std::size_t local_memory_reserve() {
    int device = 0, sms = 0, threads = 0;
    check(cudaGetDevice(&device), "querying the current device");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "querying the SM count");
    check(cudaDeviceGetAttribute(&threads, cudaDevAttrMaxThreadsPerMultiProcessor, device),
          "querying the threads per SM");
    std::size_t local = 0;
    for (const void* kernel : kKernels) {
        cudaFuncAttributes attr;
        check(cudaFuncGetAttributes(&attr, kernel), "querying kernel attributes");
        local = std::max(local, attr.localSizeBytes);
    }
    return local * (std::size_t)threads * (std::size_t)sms;
}

std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

}  // namespace

std::string format_bytes(std::size_t bytes) {
    if (bytes < 1024) return std::to_string(bytes) + " B";
    const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    double value = (double)bytes / 1024.0;
    int u = 0;
    while (value >= 1024.0 && u < 3) {
        value /= 1024.0;
        ++u;
    }
    char text[64];
    std::snprintf(text, sizeof(text), "%.1f %s", value, units[u]);
    return text;
}

namespace {

/// The plan of a dose call from its largest ray table and beam data [bytes]; kind names the
/// modality in the messages ("photon", "proton").
MemoryPlan plan_dose(const std::string& kind, const GridParams& g, std::size_t table_bytes, std::size_t beam_bytes,
                     std::size_t available_bytes) {
    MemoryPlan p{};
    const std::size_t voxels = (std::size_t)g.nx * g.ny * g.nz;
    p.density_bytes = aligned(voxels * sizeof(float));
    p.dose_bytes = aligned(voxels * sizeof(float));
    p.slice_bytes = (std::size_t)g.nx * g.ny * sizeof(float);
    p.table_bytes = table_bytes;
    p.beam_bytes = beam_bytes;
    p.single_pass_bytes = p.density_bytes + p.dose_bytes + p.table_bytes + p.beam_bytes;
    p.trace_bytes = p.density_bytes + p.table_bytes + p.beam_bytes;
    p.available_bytes = available_bytes;
    if (p.single_pass_bytes <= available_bytes) {
        p.chunked = false;
        p.chunk_slices = g.nz;
        return p;
    }
    const std::string fix = ": free device memory (other processes), use a coarser dose grid or crop it";
    if (p.trace_bytes > available_bytes) {
        throw DeviceMemoryError(
            kind + " dose on the " + shape_text(g) + " grid needs " + format_bytes(p.trace_bytes) +
            " of device memory even in z-chunks (density " + format_bytes(p.density_bytes) +
            " + largest ray table " + format_bytes(p.table_bytes) + " + beam data " + format_bytes(p.beam_bytes) +
            "; " + format_bytes(p.single_pass_bytes) + " in one pass), but " + format_bytes(available_bytes) +
            " is available" + fix);
    }
    const std::size_t room = available_bytes - p.table_bytes - p.beam_bytes;
    const std::size_t slices = room >= kAlign - 1 ? (room - (kAlign - 1)) / p.slice_bytes : 0;
    if (slices < 1) {
        throw DeviceMemoryError(kind + " dose on the " + shape_text(g) + " grid: one z-slice of dose (" +
                                format_bytes(p.slice_bytes) + ") next to the largest ray table (" +
                                format_bytes(p.table_bytes) + ") and beam data (" + format_bytes(p.beam_bytes) +
                                ") does not fit in the " + format_bytes(available_bytes) + " available" + fix);
    }
    p.chunked = true;
    p.chunk_slices = (int)std::min<std::size_t>(slices, (std::size_t)g.nz);
    return p;
}

/// The packed grid and one packed beam, as allocated by run_dose [bytes].
std::size_t pack_bytes(std::size_t beam_pack_size) {
    return aligned(SFRT_GRID_PACK_SIZE * sizeof(double)) + aligned(beam_pack_size * sizeof(double));
}

/// Dose of the beams in order into host dose[nz][ny][nx], following plan: one pass with the dose
/// resident on the device, or every ray table first and then the dose in z-chunks.
template <class Beam>
void run_dose(const float* density, const GridParams& g, const double* grid_packed, const std::vector<Beam>& beams,
              const MemoryPlan& plan, float* dose) {
    const std::size_t voxels = (std::size_t)g.nx * g.ny * g.nz, plane = (std::size_t)g.nx * g.ny;
    std::size_t max_table = 0, max_floats = 0, max_doubles = 0;
    for (const Beam& beam : beams) {
        max_table = std::max(max_table, table_count(beam.params));
        max_floats = std::max(max_floats, float_count(beam));
        max_doubles = std::max(max_doubles, double_count(beam));
    }
    const std::size_t n_pack = pack_size(beams.front());
    const char* label = data_label(beams.front());
    std::vector<float> floats;
    // uploads beam i's parameters and data into beam_d, floats_d, doubles_d
    auto upload_beam = [&](std::size_t i, const DeviceBuffer<double>& beam_d, const DeviceBuffer<float>& floats_d,
                           const DeviceBuffer<double>& doubles_d, const std::string& name) {
        gather_floats(beams[i], floats);
        beam_d.upload(beams[i].packed, n_pack, "the parameters of " + name);
        floats_d.upload(floats.data(), floats.size(), std::string(label) + " of " + name);
        if (double_count(beams[i]) > 0) {
            doubles_d.upload(double_data(beams[i]), double_count(beams[i]), "the energy layers of " + name);
        }
    };

    if (!plan.chunked) {
        DeviceBuffer<float> density_d(voxels, "the density grid");
        DeviceBuffer<float> dose_d(voxels, "the dose grid");
        DeviceBuffer<float> table_d(max_table, "the ray table");
        DeviceBuffer<float> floats_d(max_floats, label);
        DeviceBuffer<double> doubles_d(max_doubles, "the energy layers");
        DeviceBuffer<double> grid_d(SFRT_GRID_PACK_SIZE, "the grid parameters");
        DeviceBuffer<double> beam_d(n_pack, "the beam parameters");
        density_d.upload(density, voxels, "the density grid");
        grid_d.upload(grid_packed, SFRT_GRID_PACK_SIZE, "the grid parameters");
        check(cudaMemset(dose_d.get(), 0, voxels * sizeof(float)), "zeroing the dose grid");
        for (std::size_t i = 0; i < beams.size(); ++i) {
            const std::string name = "beam " + std::to_string(i);
            upload_beam(i, beam_d, floats_d, doubles_d, name);
            launch_trace(density_d.get(), grid_d.get(), beam_d.get(), table_d.get(), beams[i].params, name);
            launch_dose(grid_d.get(), beam_d.get(), table_d.get(), floats_d.get(), doubles_d.get(), beams[i],
                        dose_d.get(), g, 0, g.nz, name);
        }
        dose_d.download(dose, voxels, "the dose grid");
        return;
    }

    // Phase 1: every ray table, traced on the device and parked on the host.
    std::vector<std::vector<float>> tables(beams.size());
    {
        DeviceBuffer<float> density_d(voxels, "the density grid");
        DeviceBuffer<float> table_d(max_table, "the ray table");
        DeviceBuffer<double> grid_d(SFRT_GRID_PACK_SIZE, "the grid parameters");
        DeviceBuffer<double> beam_d(n_pack, "the beam parameters");
        density_d.upload(density, voxels, "the density grid");
        grid_d.upload(grid_packed, SFRT_GRID_PACK_SIZE, "the grid parameters");
        for (std::size_t i = 0; i < beams.size(); ++i) {
            const std::string name = "beam " + std::to_string(i);
            beam_d.upload(beams[i].packed, n_pack, "the parameters of " + name);
            launch_trace(density_d.get(), grid_d.get(), beam_d.get(), table_d.get(), beams[i].params, name);
            tables[i].resize(table_count(beams[i].params));
            table_d.download(tables[i].data(), tables[i].size(), "the ray table of " + name);
        }
    }
    // Phase 2: the dose in z-chunks, beams in order within each chunk.
    DeviceBuffer<float> dose_d((std::size_t)plan.chunk_slices * plane, "a z-chunk of the dose grid");
    DeviceBuffer<float> table_d(max_table, "the ray table");
    DeviceBuffer<float> floats_d(max_floats, label);
    DeviceBuffer<double> doubles_d(max_doubles, "the energy layers");
    DeviceBuffer<double> grid_d(SFRT_GRID_PACK_SIZE, "the grid parameters");
    DeviceBuffer<double> beam_d(n_pack, "the beam parameters");
    grid_d.upload(grid_packed, SFRT_GRID_PACK_SIZE, "the grid parameters");
    for (int z0 = 0; z0 < g.nz; z0 += plan.chunk_slices) {
        const int zc = std::min(plan.chunk_slices, g.nz - z0);
        check(cudaMemset(dose_d.get(), 0, (std::size_t)zc * plane * sizeof(float)), "zeroing a dose chunk");
        for (std::size_t i = 0; i < beams.size(); ++i) {
            const std::string name = "beam " + std::to_string(i);
            upload_beam(i, beam_d, floats_d, doubles_d, name);
            table_d.upload(tables[i].data(), tables[i].size(), "the ray table of " + name);
            launch_dose(grid_d.get(), beam_d.get(), table_d.get(), floats_d.get(), doubles_d.get(), beams[i],
                        dose_d.get(), g, z0, zc, name);
        }
        dose_d.download(dose + (std::size_t)z0 * plane, (std::size_t)zc * plane, "a dose chunk");
    }
}

}  // namespace

MemoryPlan plan_photon_dose(const GridParams& g, const std::vector<PhotonBeamParams>& beams,
                            std::size_t available_bytes) {
    std::size_t table = 0, data = 0;
    for (const PhotonBeamParams& b : beams) {
        table = std::max(table, aligned(table_count(b) * sizeof(float)));
        data = std::max(data, aligned(data_count(b) * sizeof(float)));
    }
    return plan_dose("photon", g, table, pack_bytes(SFRT_BEAM_PACK_SIZE) + data, available_bytes);
}

MemoryPlan plan_proton_dose(const GridParams& g, const std::vector<ProtonBeamHost>& beams,
                            std::size_t available_bytes) {
    std::size_t table = 0, floats = 0, doubles = 0;
    for (const ProtonBeamHost& b : beams) {
        table = std::max(table, aligned(table_count(b.params) * sizeof(float)));
        floats = std::max(floats, float_count(b));
        doubles = std::max(doubles, double_count(b));
    }
    const std::size_t data = aligned(floats * sizeof(float)) + aligned(doubles * sizeof(double));
    return plan_dose("proton", g, table, pack_bytes(SFRT_PROTON_PACK_SIZE) + data, available_bytes);
}

MemoryInfo memory_info(std::size_t budget_bytes) {
    MemoryInfo m{};
    check(cudaMemGetInfo(&m.free_bytes, &m.total_bytes), "querying free device memory (cudaMemGetInfo)");
    m.reserve_bytes = local_memory_reserve() + kHeadroom;
    m.available_bytes = m.free_bytes > m.reserve_bytes ? m.free_bytes - m.reserve_bytes : 0;
    if (budget_bytes > 0) m.available_bytes = std::min(m.available_bytes, budget_bytes);
    return m;
}

std::string probe() {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return std::string("no CUDA device: ") + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
    }
    if (count == 0) return "no CUDA device: cudaGetDeviceCount found none";
    int device = 0;
    cudaDeviceProp prop;
    e = cudaGetDevice(&device);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return std::string("CUDA device cannot be queried: ") + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
    }
    for (const void* kernel : kKernels) {
        cudaFuncAttributes attr;
        e = cudaFuncGetAttributes(&attr, kernel);
        if (e == cudaSuccess) continue;
        cudaGetLastError();
        const std::string cc = std::to_string(prop.major) + std::to_string(prop.minor);
        if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction ||
            e == cudaErrorUnsupportedPtxVersion) {
            return "the _cuda module has no kernels for device " + std::to_string(device) + " '" + prop.name +
                   "' (compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                   "; built for " + SFRT_CUDA_ARCHS + ", " + cudaGetErrorName(e) +
                   "): rebuild with SFRT_CUDA_ARCHITECTURES including " + cc + ", or use backend='cupy'";
        }
        return std::string("CUDA device ") + std::to_string(device) + " cannot load the kernels: " +
               cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
    }
    return "";
}

std::vector<DeviceInfo> devices() {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        throw std::runtime_error(std::string("no CUDA device: ") + cudaGetErrorString(e) + " (" +
                                 cudaGetErrorName(e) + ")");
    }
    std::vector<DeviceInfo> out;
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop;
        check(cudaGetDeviceProperties(&prop, i), "querying device " + std::to_string(i));
        out.push_back(DeviceInfo{i, prop.name, prop.major, prop.minor, prop.totalGlobalMem, prop.multiProcessorCount});
    }
    if (out.empty()) throw std::runtime_error("no CUDA device: cudaGetDeviceCount found none");
    return out;
}

void trace_rays_cuda(const float* density, const GridParams& g, const double* grid_packed,
                     const double* beam_packed, float* table, std::size_t budget_bytes) {
    const PhotonBeamParams b = unpack_photon_beam(beam_packed);  // the frame and ray-lattice fields
    const std::size_t voxels = (std::size_t)g.nx * g.ny * g.nz, n_table = table_count(b);
    const MemoryInfo mem = memory_info(budget_bytes);
    const std::size_t need = aligned(voxels * sizeof(float)) + aligned(n_table * sizeof(float)) +
                             pack_bytes(SFRT_BEAM_PACK_SIZE);
    if (need > mem.available_bytes) {
        throw DeviceMemoryError("ray table (" + std::to_string(b.ray_nv) + " x " + std::to_string(b.ray_nu) + " x " +
                                std::to_string(b.ray_nz) + ") on the " + shape_text(g) + " grid needs " +
                                format_bytes(need) + " of device memory (density " +
                                format_bytes(aligned(voxels * sizeof(float))) + " + table " +
                                format_bytes(aligned(n_table * sizeof(float))) + "), but " +
                                format_bytes(mem.available_bytes) + " is available");
    }
    DeviceBuffer<float> density_d(voxels, "the density grid");
    DeviceBuffer<float> table_d(n_table, "the ray table");
    DeviceBuffer<double> grid_d(SFRT_GRID_PACK_SIZE, "the grid parameters");
    DeviceBuffer<double> beam_d(SFRT_BEAM_PACK_SIZE, "the beam parameters");
    density_d.upload(density, voxels, "the density grid");
    grid_d.upload(grid_packed, SFRT_GRID_PACK_SIZE, "the grid parameters");
    beam_d.upload(beam_packed, SFRT_BEAM_PACK_SIZE, "the beam parameters");
    launch_trace(density_d.get(), grid_d.get(), beam_d.get(), table_d.get(), b, "beam");
    table_d.download(table, n_table, "the ray table");
}

MemoryPlan photon_dose_cuda(const float* density, const GridParams& g, const double* grid_packed,
                            const std::vector<PhotonBeamHost>& beams, float* dose, std::size_t budget_bytes) {
    if (beams.empty()) {
        std::fill(dose, dose + (std::size_t)g.nx * g.ny * g.nz, 0.0f);
        return MemoryPlan{};
    }
    std::vector<PhotonBeamParams> params;
    for (const PhotonBeamHost& beam : beams) params.push_back(beam.params);
    const MemoryPlan plan = plan_photon_dose(g, params, memory_info(budget_bytes).available_bytes);
    run_dose(density, g, grid_packed, beams, plan, dose);
    return plan;
}

MemoryPlan proton_dose_cuda(const float* density, const GridParams& g, const double* grid_packed,
                            const std::vector<ProtonBeamHost>& beams, float* dose, std::size_t budget_bytes) {
    if (beams.empty()) {
        std::fill(dose, dose + (std::size_t)g.nx * g.ny * g.nz, 0.0f);
        return MemoryPlan{};
    }
    const MemoryPlan plan = plan_proton_dose(g, beams, memory_info(budget_bytes).available_bytes);
    run_dose(density, g, grid_packed, beams, plan, dose);
    return plan;
}

std::string runtime_version() { return version_text(CUDART_VERSION); }

std::string driver_version() {
    int v = 0;
    if (cudaDriverGetVersion(&v) != cudaSuccess || v == 0) {
        cudaGetLastError();
        return "none";
    }
    return version_text(v);
}

}  // namespace cuda
}  // namespace sfrt
