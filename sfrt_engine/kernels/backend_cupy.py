"""The CuPy backend: the cuda backend's kernels, compiled at run time by NVRTC.

``cupy.RawModule`` compiles ``csrc/cuda/dose_kernels.cuh`` (which includes
``csrc/physics/*.h`` and ``csrc/params.h``) with ``-I`` pointing at the headers,
so compiler messages name the real files. The headers come from the package
data ``sfrt_engine/kernels/include/`` of an installed wheel, or from the source
tree's ``csrc/`` in an editable install (where the package has no ``include/``).
CuPy caches the compiled module on disk keyed by the source text, which only
``#include``s the headers; a digest of the headers in that text makes a header
change a new key.

The driver mirrors ``csrc/cuda/dose_cuda.cu``: per beam, upload its parameters
and tables once, trace its ray table on the device, launch one dose kernel
(``sfrt_photon_dose`` or ``sfrt_proton_dose``); the dose stays on the device
across beams. Device memory is planned first
(:func:`plan_memory`, the same policy and messages as ``_cuda.plan_memory``):
one pass when everything fits, else all ray tables first and the dose in
z-chunks (bit-identical), else :class:`~sfrt_engine.errors.DeviceMemoryError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from pathlib import Path

import numpy as np

from ..errors import DeviceMemoryError, GridError
from ..grid import Grid
from ._proton_task import LAYER_PACK_SIZE, ProtonBeamTask
from ._task import BEAM_PACK_SIZE, GRID_PACK_SIZE, PhotonBeamTask, pack_grid

__all__ = ["MEMORY_BUDGET_ENV", "NAME", "CupyBackend", "build_info", "devices", "format_bytes", "get",
           "kernel_include_dir", "kernel_source", "memory_budget_from_env", "nvrtc_options", "plan_memory", "probe"]

NAME = "cupy"
#: Environment variable capping the device memory the GPU backends plan with [MiB]; unset or empty: no cap.
MEMORY_BUDGET_ENV = "SFRT_GPU_MEMORY_BUDGET_MIB"
#: The kernel file, relative to the include directory; it includes physics/ and params.h.
KERNEL_HEADER = "cuda/dose_kernels.cuh"
KERNEL_NAMES = ("sfrt_trace_rays", "sfrt_photon_dose", "sfrt_proton_dose")
#: NVRTC options besides -I (CuPy adds -arch for the current device). No fast math: erf_fast relies on IEEE inf.
NVRTC_OPTIONS = ("-std=c++17",)
_ALIGN = 512  # allocation granularity assumed by the plan (as in dose_cuda.cu)
_HEADROOM = 64 << 20  # context growth, fragmentation, other users [bytes] (as in dose_cuda.cu)
_BLOCK = 256  # threads per block by default (SFRT_CUDA_BLOCK_THREADS)
#: Launch configuration, read at every launch as dose_cuda.cu reads it (csrc/README.md, "Launch configuration").
BLOCK_THREADS_ENV = "SFRT_CUDA_BLOCK_THREADS"
WAVES_ENV = "SFRT_CUDA_WAVES"
_OUT_OF_MEMORY = 2  # cudaErrorMemoryAllocation == CUDA_ERROR_OUT_OF_MEMORY


# --- kernel source ------------------------------------------------------------

def kernel_include_dir() -> Path:
    """Directory holding ``cuda/dose_kernels.cuh``, ``physics/`` and ``params.h``.

    The installed package data wins; an editable install falls back to the source tree.

    Raises
    ------
    FileNotFoundError
        If neither holds the kernel file.
    """
    installed = Path(__file__).with_name("include")
    if (installed / KERNEL_HEADER).is_file():
        return installed
    source = Path(__file__).resolve().parents[2] / "csrc"
    if (source / KERNEL_HEADER).is_file():
        return source
    raise FileNotFoundError(
        f"the GPU kernel sources are missing: neither {installed / KERNEL_HEADER} (package data) nor "
        f"{source / KERNEL_HEADER} (source tree) exists; reinstall sfrt-engine"
    )


def _header_digest(include_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(include_dir.rglob("*")):
        if path.suffix in (".h", ".cuh") and path.is_file():
            digest.update(path.relative_to(include_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def kernel_source(include_dir: Path) -> str:
    """The NVRTC translation unit: a digest of the headers (CuPy's cache key) and one ``#include``."""
    return (f"// sfrt-engine GPU kernels; headers in {include_dir.as_posix()}, sha256 {_header_digest(include_dir)}\n"
            f'#include "{KERNEL_HEADER}"\n')


def nvrtc_options(include_dir: Path) -> tuple[str, ...]:
    """NVRTC options: C++17 and the include path of the kernel and physics headers."""
    return (*NVRTC_OPTIONS, f"-I{include_dir}")


# --- device memory plan (same policy and messages as csrc/cuda/dose_cuda.cu) ---

def format_bytes(n: int) -> str:
    """Bytes for people: ``512 B``, ``3.2 KiB``, ``12.0 MiB``, ``1.5 GiB``."""
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024.0, 0
    units = ("KiB", "MiB", "GiB", "TiB")
    while value >= 1024.0 and unit < 3:
        value /= 1024.0
        unit += 1
    return f"{value:.1f} {units[unit]}"


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _shape_text(grid: Grid) -> str:
    nz, ny, nx = grid.shape_zyx
    return f"(nz, ny, nx) = ({nz}, {ny}, {nx})"


def _table_count(task) -> int:
    return task.ray_nv * task.ray_nu * task.ray_nz


def _task_kind(tasks) -> str:
    """``"photon"`` or ``"proton"``: the kind shared by every task (a dose call computes one kind)."""
    kinds = {"photon" if isinstance(t, PhotonBeamTask) else "proton" if isinstance(t, ProtonBeamTask) else
             type(t).__name__ for t in tasks}
    if not kinds <= {"photon", "proton"} or len(kinds) > 1:
        raise TypeError(f"tasks must be all PhotonBeamTask or all ProtonBeamTask, got {sorted(kinds)}")
    return kinds.pop() if kinds else "photon"


def _beam_data(task) -> tuple[np.ndarray, np.ndarray]:
    """(float32, float64) arrays of one beam, uploaded as they are: photons ``weights | tdd | comp_w |
    comp_s | scatter table`` and no float64 data; protons ``spot weights | idd | sigma`` and the packed layers."""
    if isinstance(task, ProtonBeamTask):
        layers, weights = task.pack_layers()
        floats = np.concatenate([weights, np.ravel(task.idd_gy_mm2_per_gp), np.ravel(task.sigma_mm)])
        return floats.astype(np.float32), np.ascontiguousarray(layers, dtype=np.float64).ravel()
    floats = np.concatenate([np.ravel(task.weights_mu), np.ravel(task.depth_dose_gy_per_mu),
                             np.ravel(task.component_weight), np.ravel(task.component_sigma_mm),
                             np.ravel(task.scatter_values())])
    return floats.astype(np.float32), np.zeros(0)


def _data_counts(task) -> tuple[int, int]:
    """(float32 count, float64 count) of :func:`_beam_data` without building it."""
    if isinstance(task, ProtonBeamTask):
        n_e, n_d = np.shape(task.idd_gy_mm2_per_gp)
        spots = sum(int(np.size(layer.weights_gp)) for layer in task.layers)
        return spots + 2 * n_e * n_d, len(task.layers) * LAYER_PACK_SIZE
    k, n = np.shape(task.component_weight)
    scatter = 0 if task.scatter is None else int(task.scatter.values.size)
    return int(np.size(task.weights_mu)) + n * (1 + 2 * k) + scatter, 0


def plan_memory(grid: Grid, tasks, available_bytes: int) -> dict:
    """How a photon- or proton-dose call uses ``available_bytes`` of device memory.

    Returns
    -------
    dict
        ``chunked`` (False: one pass; True: all ray tables first, then the dose in
        z-chunks of ``chunk_slices`` slices) and the sizes in bytes it was planned from:
        ``density_bytes``, ``dose_bytes``, ``slice_bytes``, ``table_bytes`` (largest),
        ``beam_bytes`` (packed grid and beam, and the largest beam's data: photon weights and
        depth tables; proton layers, spot weights, IDD and sigma tables), ``single_pass_bytes``,
        ``trace_bytes``, ``available_bytes``.

    Raises
    ------
    DeviceMemoryError
        If the density and the largest ray table do not fit, naming the sizes.
    TypeError
        If photon and proton tasks are mixed.
    """
    kind = _task_kind(tasks)
    nz, ny, nx = grid.shape_zyx
    voxels = nx * ny * nz
    table = max((_aligned(_table_count(t) * 4) for t in tasks), default=0)
    counts = [_data_counts(t) for t in tasks]
    if kind == "photon":
        data = max((_aligned(n * 4) for n, _ in counts), default=0)
    else:  # a float32 and a float64 buffer, each as large as the largest beam needs
        floats, doubles = max((n for n, _ in counts), default=0), max((m for _, m in counts), default=0)
        data = _aligned(floats * 4) + _aligned(doubles * 8)
    p = {"density_bytes": _aligned(voxels * 4), "dose_bytes": _aligned(voxels * 4), "slice_bytes": nx * ny * 4,
         "table_bytes": table, "beam_bytes": _aligned(GRID_PACK_SIZE * 8) + _aligned(BEAM_PACK_SIZE * 8) + data}
    p["single_pass_bytes"] = p["density_bytes"] + p["dose_bytes"] + p["table_bytes"] + p["beam_bytes"]
    p["trace_bytes"] = p["density_bytes"] + p["table_bytes"] + p["beam_bytes"]
    p["available_bytes"] = int(available_bytes)
    if p["single_pass_bytes"] <= available_bytes:
        return dict(p, chunked=False, chunk_slices=nz)
    fix = ": free device memory (other processes), use a coarser dose grid or crop it"
    f = format_bytes
    if p["trace_bytes"] > available_bytes:
        raise DeviceMemoryError(
            f"{kind} dose on the {_shape_text(grid)} grid needs {f(p['trace_bytes'])} of device memory even in "
            f"z-chunks (density {f(p['density_bytes'])} + largest ray table {f(p['table_bytes'])} + beam data "
            f"{f(p['beam_bytes'])}; {f(p['single_pass_bytes'])} in one pass), but {f(available_bytes)} is available"
            + fix)
    room = available_bytes - p["table_bytes"] - p["beam_bytes"]
    slices = (room - (_ALIGN - 1)) // p["slice_bytes"] if room >= _ALIGN - 1 else 0
    if slices < 1:
        raise DeviceMemoryError(
            f"{kind} dose on the {_shape_text(grid)} grid: one z-slice of dose ({f(p['slice_bytes'])}) next to the "
            f"largest ray table ({f(p['table_bytes'])}) and beam data ({f(p['beam_bytes'])}) does not fit in the "
            f"{f(available_bytes)} available" + fix)
    return dict(p, chunked=True, chunk_slices=int(min(slices, nz)))


def memory_budget_from_env() -> int:
    """Device memory cap [bytes] from ``SFRT_GPU_MEMORY_BUDGET_MIB``; 0 when unset (no cap).

    Raises
    ------
    ValueError
        If the variable is not a positive number of MiB.
    """
    text = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if not text:
        return 0
    try:
        mib = float(text)
    except ValueError:
        mib = math.nan
    if not (math.isfinite(mib) and mib > 0):
        raise ValueError(f"{MEMORY_BUDGET_ENV}={text!r}: expected a positive number of MiB (e.g. 4096), "
                         "or unset it for no cap")
    return int(mib * (1 << 20))


def _check_budget(memory_budget_bytes) -> int:
    """``memory_budget_bytes`` as an int >= 0; ``None`` reads the environment."""
    if memory_budget_bytes is None:
        return memory_budget_from_env()
    if isinstance(memory_budget_bytes, bool) or not isinstance(memory_budget_bytes, (int, np.integer)):
        raise TypeError(f"memory_budget_bytes must be an int (bytes, 0 for no cap), "
                        f"got {type(memory_budget_bytes).__name__}")
    if memory_budget_bytes < 0:
        raise ValueError(f"memory_budget_bytes={memory_budget_bytes}: expected >= 0 bytes (0 for no cap)")
    return int(memory_budget_bytes)


# --- registry protocol ----------------------------------------------------------

def probe() -> str | None:
    """None when CuPy, NVRTC, a CUDA device and the kernel sources are all here; else the reason."""
    try:
        import cupy  # imported lazily: importing sfrt_engine never touches CUDA
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); pip install 'sfrt-engine[cupy]'"
    except Exception as exc:  # noqa: BLE001 - a broken CuPy install must not break the registry
        return f"CuPy cannot be imported: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError without a driver or device, or worse
        return f"no CUDA device: {exc}"
    if count < 1:
        return "no CUDA device: cupy.cuda.runtime.getDeviceCount() found none"
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 - libnvrtc missing or unloadable
        return f"NVRTC cannot be loaded ({type(exc).__name__}: {exc}); pip install nvidia-cuda-nvrtc"
    try:
        kernel_include_dir()
    except FileNotFoundError as exc:
        return str(exc)
    return None


def build_info() -> dict:
    """CuPy and NVRTC versions and where the kernel sources come from (no device needed)."""
    import cupy
    from cupy.cuda import nvrtc

    try:
        include_dir = str(kernel_include_dir())
    except FileNotFoundError as exc:
        include_dir = f"missing: {exc}"
    return {"module": "cupy.RawModule (NVRTC)", "cupy_version": cupy.__version__,
            "nvrtc_version": ".".join(map(str, nvrtc.getVersion())), "kernel_include_dir": include_dir,
            "nvrtc_options": list(NVRTC_OPTIONS)}


def devices() -> list[dict]:
    """Visible CUDA devices as CuPy sees them."""
    import cupy

    out = []
    for i in range(cupy.cuda.runtime.getDeviceCount()):
        prop = cupy.cuda.runtime.getDeviceProperties(i)
        name = prop["name"].decode() if isinstance(prop["name"], bytes) else str(prop["name"])
        out.append({"index": i, "name": name, "compute_capability": (prop["major"], prop["minor"]),
                    "total_memory_bytes": int(prop["totalGlobalMem"]),
                    "multiprocessors": int(prop["multiProcessorCount"])})
    return out


class CupyBackend:
    """float32 kernels of csrc/cuda/dose_kernels.cuh compiled by NVRTC; one thread per voxel.

    Parameters
    ----------
    memory_budget_bytes : int, optional
        Cap on the device memory planned with [bytes]; 0 means free memory only.
        Default: ``SFRT_GPU_MEMORY_BUDGET_MIB`` from the environment.
    """

    name = NAME
    dtype = np.float32

    def __init__(self, memory_budget_bytes: int | None = None) -> None:
        import cupy as cp

        self._cp = cp
        self.memory_budget_bytes = _check_budget(memory_budget_bytes)
        self.include_dir = kernel_include_dir()
        self._module = cp.RawModule(code=kernel_source(self.include_dir), options=nvrtc_options(self.include_dir))
        try:  # compiles (or loads from CuPy's cache) on first access to a kernel
            self._trace, self._dose, self._proton_dose = (self._module.get_function(n) for n in KERNEL_NAMES)
            functions = {kernel.name: kernel.kernel.ptr for kernel in (self._trace, self._dose, self._proton_dose)}
        except cp.cuda.compiler.CompileException as exc:
            raise RuntimeError(f"NVRTC could not compile the sfrt kernels from {self.include_dir}: {exc}") from exc
        attrs = cp.cuda.Device().attributes
        self._sm_count = int(attrs["MultiProcessorCount"])
        self._threads_per_sm = int(attrs["MaxThreadsPerMultiProcessor"])
        self._functions = functions
        self._blocks_per_sm: dict[tuple[str, int], int] = {}  # (kernel, threads per block) -> resident blocks
        #: The device-memory plan of the last photon_dose or proton_dose call (see plan_memory).
        self.last_memory_plan: dict | None = None

    # -- memory -------------------------------------------------------------
    def memory_info(self) -> dict:
        """Device memory [bytes]: free (CuPy's pool included), total, reserved (kernel local memory
        for every resident thread, plus headroom) and available to the plan (capped by the budget)."""
        cp = self._cp
        free, total = cp.cuda.runtime.memGetInfo()
        free += cp.get_default_memory_pool().free_bytes()
        local = max(k.local_size_bytes for k in (self._trace, self._dose, self._proton_dose))
        reserve = local * self._threads_per_sm * self._sm_count + _HEADROOM
        available = max(free - reserve, 0)
        if self.memory_budget_bytes:
            available = min(available, self.memory_budget_bytes)
        return {"free_bytes": int(free), "total_bytes": int(total), "reserve_bytes": int(reserve),
                "available_bytes": int(available)}

    def memory_plan(self, grid: Grid, tasks) -> dict:
        """How :meth:`photon_dose` or :meth:`proton_dose` would use the device now (raises
        DeviceMemoryError if it cannot)."""
        return plan_memory(grid, list(tasks), self.memory_info()["available_bytes"])

    @contextlib.contextmanager
    def _device_errors(self, what: str):
        cp = self._cp
        try:
            yield
        except cp.cuda.memory.OutOfMemoryError as exc:
            raise DeviceMemoryError(f"cupy backend: out of device memory while {what}: {exc}") from exc
        except (cp.cuda.runtime.CUDARuntimeError, cp.cuda.driver.CUDADriverError) as exc:
            if getattr(exc, "status", None) == _OUT_OF_MEMORY:
                raise DeviceMemoryError(f"cupy backend: out of device memory while {what}: {exc}") from exc
            raise

    def _launch(self, kernel, label: str, n: int, args: tuple) -> None:
        """Grid-stride launch over n items, synchronised so a fault names its kernel."""
        cp = self._cp
        threads, waves = launch_config()
        key = (kernel.name, threads)
        if key not in self._blocks_per_sm:
            self._blocks_per_sm[key] = max(1, cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
                self._functions[kernel.name], threads, 0))
        needed = max(1, -(-n // threads))
        blocks = int(needed if waves == 0 else min(needed, waves * self._blocks_per_sm[key] * self._sm_count))
        try:
            kernel((blocks,), (threads,), args)
            cp.cuda.get_current_stream().synchronize()
        except (cp.cuda.runtime.CUDARuntimeError, cp.cuda.driver.CUDADriverError) as exc:
            if getattr(exc, "status", None) == _OUT_OF_MEMORY:
                raise DeviceMemoryError(f"cupy backend: out of device memory running {label}: {exc}") from exc
            raise RuntimeError(f"CUDA error while running {label}: {exc}") from exc

    def _trace_into(self, d_density, d_grid, d_beam, d_table, task, label: str) -> None:
        n = task.ray_nv * task.ray_nu
        self._launch(self._trace, f"kernel sfrt_trace_rays ({label}, {n} rays)", n,
                     (d_density, d_grid, d_beam, d_table))

    def _dose_into(self, d_grid, d_beam, d_table, d_floats, d_doubles, task, d_dose, grid: Grid, z0: int,
                   zc: int, label: str) -> None:
        """One dose-kernel launch of one beam over z-slices z0 .. z0 + zc - 1 (data as laid out by _beam_data)."""
        _, ny, nx = grid.shape_zyx
        where = f"{label}, z-slices {z0}..{z0 + zc - 1}"
        if isinstance(task, ProtonBeamTask):
            nw = sum(int(np.size(layer.weights_gp)) for layer in task.layers)
            nt = int(np.size(task.idd_gy_mm2_per_gp))
            weights, idd, sigma = d_floats[:nw], d_floats[nw:nw + nt], d_floats[nw + nt:nw + 2 * nt]
            self._launch(self._proton_dose, f"kernel sfrt_proton_dose ({where})", nx * ny * zc,
                         (d_grid, d_beam, d_table, d_doubles, weights, idd, sigma, d_dose, np.int32(z0),
                          np.int32(zc)))
            return
        k, n = np.shape(task.component_weight)
        nw = int(np.size(task.weights_mu))
        weights, tdd = d_floats[:nw], d_floats[nw:nw + n]
        comp_w, comp_s = d_floats[nw + n:nw + n + k * n], d_floats[nw + n + k * n:nw + n + 2 * k * n]
        scatter = d_floats[nw + n + 2 * k * n:]  # empty, and unread, without a scatter table
        self._launch(self._dose, f"kernel sfrt_photon_dose ({where})", nx * ny * zc,
                     (d_grid, d_beam, d_table, weights, tdd, comp_w, comp_s, scatter, d_dose, np.int32(z0),
                      np.int32(zc)))

    # -- protocol ------------------------------------------------------------
    def radiological_depth(self, density, grid: Grid, task) -> np.ndarray:
        """Ray table of water-equivalent depth [mm], float32 ``task.ray_shape`` = (nv, nu, nz), of a photon or
        proton task (the trace kernel reads only the frame and ray lattice, laid out alike in both packs)."""
        cp = self._cp
        density = _density_f32(density, grid)
        need = (_aligned(density.nbytes) + _aligned(_table_count(task) * 4) + _aligned(GRID_PACK_SIZE * 8)
                + _aligned(BEAM_PACK_SIZE * 8))
        available = self.memory_info()["available_bytes"]
        if need > available:
            nv, nu, nzr = task.ray_shape
            raise DeviceMemoryError(
                f"ray table ({nv} x {nu} x {nzr}) on the {_shape_text(grid)} grid needs {format_bytes(need)} of "
                f"device memory (density {format_bytes(_aligned(density.nbytes))} + table "
                f"{format_bytes(_aligned(_table_count(task) * 4))}), but {format_bytes(available)} is available")
        with self._device_errors("tracing a ray table"):
            d_density = cp.asarray(density)
            d_grid = cp.asarray(pack_grid(grid))
            d_beam = cp.asarray(task.pack())
            d_table = cp.empty(task.ray_shape, dtype=cp.float32)
            self._trace_into(d_density, d_grid, d_beam, d_table, task, "beam")
            return d_table.get()

    def photon_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        """Sum of the beams' doses [Gy], float32 [z, y, x], beams added voxel by voxel in order."""
        return self._run_dose(density, grid, list(tasks))

    def proton_dose(self, density, grid: Grid, tasks) -> np.ndarray:
        """Sum of the proton beams' doses [Gy], float32 [z, y, x]; density is relative stopping power."""
        return self._run_dose(density, grid, list(tasks))

    def _run_dose(self, density, grid: Grid, tasks: list) -> np.ndarray:
        """The driver of both kinds (as run_dose in dose_cuda.cu): one pass with the dose on the device, or
        every ray table first and then the dose in z-chunks (bit-identical)."""
        cp = self._cp
        density = _density_f32(density, grid)
        nz, ny, nx = grid.shape_zyx
        if not tasks:
            return np.zeros(grid.shape_zyx, dtype=np.float32)
        kind = _task_kind(tasks)
        plan = self.memory_plan(grid, tasks)
        self.last_memory_plan = plan
        packed = [task.pack() for task in tasks]
        floats, doubles = zip(*(_beam_data(t) for t in tasks))
        max_table = max(_table_count(t) for t in tasks)
        with self._device_errors(f"computing {kind} dose on the {_shape_text(grid)} grid"):
            d_grid = cp.asarray(pack_grid(grid))
            d_beam = cp.empty(BEAM_PACK_SIZE, dtype=cp.float64)
            d_floats = cp.empty(max(f.size for f in floats), dtype=cp.float32)
            d_doubles = cp.empty(max(d.size for d in doubles), dtype=cp.float64)
            d_table = cp.empty(max_table, dtype=cp.float32)

            def upload(i: int) -> None:
                d_beam.set(packed[i])
                d_floats[:floats[i].size].set(floats[i])
                if doubles[i].size:
                    d_doubles[:doubles[i].size].set(doubles[i])

            if not plan["chunked"]:
                d_density = cp.asarray(density)
                d_dose = cp.zeros(grid.shape_zyx, dtype=cp.float32)
                for i, task in enumerate(tasks):
                    upload(i)
                    self._trace_into(d_density, d_grid, d_beam, d_table, task, f"beam {i}")
                    self._dose_into(d_grid, d_beam, d_table, d_floats, d_doubles, task, d_dose, grid, 0, nz,
                                    f"beam {i}")
                return d_dose.get()
            # phase 1: every ray table, traced on the device and parked on the host
            d_density = cp.asarray(density)
            tables = []
            for i, task in enumerate(tasks):
                d_beam.set(packed[i])
                self._trace_into(d_density, d_grid, d_beam, d_table, task, f"beam {i}")
                tables.append(d_table[:_table_count(task)].get())
            del d_density
            # phase 2: the dose in z-chunks, beams in order within each chunk
            chunk = plan["chunk_slices"]
            dose = np.empty(grid.shape_zyx, dtype=np.float32)
            d_dose = cp.empty((chunk, ny, nx), dtype=cp.float32)
            for z0 in range(0, nz, chunk):
                zc = min(chunk, nz - z0)
                d_dose.fill(0)
                for i, task in enumerate(tasks):
                    upload(i)
                    d_table[:tables[i].size].set(tables[i])
                    self._dose_into(d_grid, d_beam, d_table, d_floats, d_doubles, task, d_dose, grid, z0, zc,
                                    f"beam {i}")
                dose[z0:z0 + zc] = d_dose[:zc].get()
            return dose

    def describe(self) -> dict:
        cp = self._cp
        device = cp.cuda.Device()
        info = devices()[device.id]
        return {"name": NAME, "precision": "float32 (geometry and depth integrals in float64)", "threads": 1,
                "device": info["name"], "compute_capability": info["compute_capability"],
                "total_memory_bytes": info["total_memory_bytes"], "memory_budget_bytes": self.memory_budget_bytes,
                **build_info()}


def _env_int(name: str, default: int, lo: int, hi: int, meaning: str) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise ValueError(f"{name}={text}: expected {meaning} ({lo} to {hi}); unset it for the default {default}")
    return value


def launch_config() -> tuple[int, int]:
    """(threads per block, waves) of the grid-stride kernels, from ``SFRT_CUDA_BLOCK_THREADS`` (default 256, a
    multiple of 32) and ``SFRT_CUDA_WAVES`` (default 1: at most one wave of resident blocks, each thread striding
    over several items; 0: one thread per item). Results do not depend on them."""
    threads = _env_int(BLOCK_THREADS_ENV, _BLOCK, 32, 1024, "threads per block, a multiple of 32")
    if threads % 32:
        raise ValueError(f"{BLOCK_THREADS_ENV}={threads}: expected a multiple of 32 (the warp size)")
    return threads, _env_int(WAVES_ENV, 1, 0, 1 << 16, "waves of resident blocks per launch, 0 for no cap")


def _density_f32(density, grid: Grid) -> np.ndarray:
    density = np.ascontiguousarray(density, dtype=np.float32)
    if density.shape != tuple(grid.shape_zyx):
        raise GridError(f"density: shape {density.shape} does not match the grid (nz, ny, nx) = {grid.shape_zyx}")
    return density


def get() -> CupyBackend:
    return CupyBackend()
