"""The cuda and cupy backends (DESIGN 6): one kernel source, two compilers, planned device memory.

On a machine without a GPU (CI) this checks what can be checked there: the kernel
file and the physics headers compile under NVRTC (no device needed) with a small
per-thread local memory, the lateral sums give the same bits in the GPU's tiles as
in the CPU's single tile, the ``_cuda`` module imports and reports its build, both
backends give a clean "no CUDA device" reason, and the device-memory planner of
``_cuda`` and of the CuPy backend agree, for photon and proton beams. The tests
marked ``gpu`` run the kernels: parity with the NumPy reference in one pass and in
z-chunks, bit-identical chunked results, and out-of-memory errors that name the
sizes, for photon and proton beams. They skip with the registry's reason, or fail
under ``SFRT_REQUIRE_CUDA=1``.

Tolerances as in test_parity.py: float32 kernels agree with the float64 reference
within 1e-4 of the maximum dose (DESIGN 6); ray tables accumulate in float64 from
float32 densities, so 1e-4 relative holds with room to spare.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.kernels import backend_cuda, backend_cupy, prepare_photon_tasks
from sfrt_engine.kernels._proton_task import ProtonBeamTask, prepare_proton_tasks
from sfrt_engine.kernels._task import pack_grid
from sfrt_engine.plan.protons import ProtonBeam, SpotLayer

DOSE_TOL = 1e-4  # of the maximum reference dose (DESIGN 6)
DEPTH_RTOL = 1e-4
DEPTH_ATOL_MM = 1e-4  # ray-table entries just inside the grid are near zero
GPU_BACKENDS = {"cuda": backend_cuda, "cupy": backend_cupy}


def _cuda_module():
    """The built ``_cuda`` module, or a skip saying it was not built."""
    try:
        return importlib.import_module("sfrt_engine.kernels._cuda")
    except ModuleNotFoundError:
        pytest.skip("sfrt_engine.kernels._cuda was not built (no nvcc at build time, or SFRT_CUDA=OFF)")


# --- cases ----------------------------------------------------------------------

def _spot_layers(energies_mev, shape=(7, 9), spacing_mm=5.0, seed: int = 0) -> tuple[SpotLayer, ...]:
    """Centred spot layers, random weights in [0.5, 1.5) Gp with about one spot in six off."""
    rng = np.random.default_rng(seed)
    nv, nu = shape
    layers = []
    for energy in energies_mev:
        w = rng.uniform(0.5, 1.5, shape)
        w[rng.uniform(size=shape) < 1.0 / 6.0] = 0.0
        layers.append(SpotLayer(energy, w, (spacing_mm, spacing_mm),
                                (-0.5 * (nu - 1) * spacing_mm, -0.5 * (nv - 1) * spacing_mm)))
    return tuple(layers)


@functools.cache
def _case(name: str):
    """(patient, tasks) of a small case: 4-6 mm voxels, so the reference is quick. Photon cases give
    photon tasks, proton cases (``water_layer``, ``bone_oblique``) proton tasks."""
    if name in PROTON_CASES:
        m = se.load_machine("proton_generic")
        if name == "water_layer":  # one energy, a Bragg peak at 77 mm in a water box
            p = se.phantoms.water_box(size_xyz_mm=(80.0, 120.0, 60.0), spacing_xyz_mm=4.0)
            beams = [ProtonBeam(m, (0.0, 0.0, 0.0), 0.0, (SpotLayer(100.0, np.ones((5, 5)), (6.0, 6.0),
                                                                    (-12.0, -12.0)),))]
        else:  # three layers (one behind a 20 mm range shifter), oblique, through a cortical-bone slab
            p = se.phantoms.slab(size_xyz_mm=(100.0, 160.0, 80.0), spacing_xyz_mm=4.0,
                                 slabs=(("BONE", 30.0, 50.0, 1300.0),))
            layers = _spot_layers((110.0, 120.0, 130.0), seed=5)
            shifted = SpotLayer(layers[0].energy_mev, layers[0].weights_gp, layers[0].spacing_mm,
                                layers[0].origin_uv_mm, range_shifter_mm=20.0)
            beams = [ProtonBeam(m, (0.0, 0.0, 0.0), 25.0, (shifted, *layers[1:]), couch_deg=10.0)]
        return p, prepare_proton_tasks(beams, p.grid)
    m = se.load_machine("photon_6mv")
    if name == "oblique":
        p = se.phantoms.water_box(size_xyz_mm=(120.0, 120.0, 120.0), spacing_xyz_mm=5.0)
        beams = [se.plan.open_field(m, p, field_mm=(60.0, 60.0), gantry_deg=30.0)]
    elif name == "couch":
        p = se.phantoms.water_box(size_xyz_mm=(120.0, 100.0, 90.0), spacing_xyz_mm=(5.0, 4.0, 6.0))
        beams = [se.plan.open_field(m, p, field_mm=(60.0, 40.0), gantry_deg=60.0, couch_deg=20.0,
                                    collimator_deg=10.0)]
    elif name == "slab":
        p = se.phantoms.slab(size_xyz_mm=(100.0, 160.0, 80.0), spacing_xyz_mm=4.0,
                             slabs=(("LUNG", 30.0, 70.0, -700.0), ("BONE", 90.0, 110.0, 1300.0)))
        beams = [se.plan.open_field(m, p, field_mm=(50.0, 50.0)),
                 se.plan.open_field(m, p, field_mm=(40.0, 30.0), gantry_deg=15.0, name="oblique")]
    else:
        raise KeyError(name)
    return p, prepare_photon_tasks(beams, p.grid)


def _is_proton(tasks) -> bool:
    return isinstance(tasks[0], ProtonBeamTask)


def _density(p, tasks) -> np.ndarray:
    """What the kernels integrate: relative stopping power for protons, electron density for photons."""
    return p.stopping_power() if _is_proton(tasks) else p.density()


def _dose(engine, p, tasks) -> np.ndarray:
    """The engine's dose of the tasks, through proton_dose or photon_dose."""
    run = engine.proton_dose if _is_proton(tasks) else engine.photon_dose
    return np.asarray(run(_density(p, tasks), p.grid, tasks))


@functools.cache
def _reference(name: str) -> np.ndarray:
    p, tasks = _case(name)
    return _dose(se.get_backend("numpy"), p, tasks)


PHOTON_CASES = ["oblique", "couch", "slab"]
PROTON_CASES = ["water_layer", "bone_oblique"]
CASES = PHOTON_CASES + PROTON_CASES


# --- NVRTC: the kernel file and the physics headers compile without a GPU -----------

def _nvrtc():
    pytest.importorskip("cupy", reason="CuPy is not installed: the NVRTC compile check needs cupy.cuda.nvrtc")
    from cupy.cuda import nvrtc

    try:
        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 - libnvrtc missing or unloadable
        pytest.skip(f"NVRTC cannot be loaded: {exc}")
    return nvrtc


#: Options cupy.RawModule adds to ours (cupy/cuda/compiler.py, CuPy 13-14) besides -arch.
CUPY_EXTRA_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")


def _compile_ptx(include_dir: Path, arch: str, extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """(ptx, log) of the backend's own translation unit; raises AssertionError with the log on failure."""
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(backend_cupy.kernel_source(include_dir), "sfrt_kernels.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, [f"-arch={arch}", *backend_cupy.nvrtc_options(include_dir), *extra])
        except nvrtc.NVRTCError as exc:
            raise AssertionError(f"NVRTC ({arch}) failed: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        return nvrtc.getPTX(prog).decode(), nvrtc.getProgramLog(prog)
    finally:
        nvrtc.destroyProgram(prog)


def _include_dirs() -> list[Path]:
    """The include dir the backend uses, and the source tree's csrc/ when it is a different one."""
    dirs = [backend_cupy.kernel_include_dir()]
    source = Path(backend_cupy.__file__).resolve().parents[2] / "csrc"
    if (source / backend_cupy.KERNEL_HEADER).is_file() and source.resolve() != dirs[0].resolve():
        dirs.append(source)
    return dirs


@pytest.mark.parametrize("extra", [(), CUPY_EXTRA_OPTIONS], ids=["plain", "as_cupy"])
@pytest.mark.parametrize("arch", ["compute_75", "compute_90"])
def test_kernels_compile_under_nvrtc_without_a_gpu(arch, extra):
    for include_dir in _include_dirs():
        ptx, log = _compile_ptx(include_dir, arch, extra)
        for name in backend_cupy.KERNEL_NAMES:
            assert re.search(rf"\.entry\s+{name}\s*\(", ptx), f"{name} missing from the PTX of {include_dir}"
        assert "warning" not in log.lower(), log


def test_kernels_cover_both_modalities():
    assert set(backend_cupy.KERNEL_NAMES) == {"sfrt_trace_rays", "sfrt_photon_dose", "sfrt_proton_dose"}


def _local_depot_bytes(ptx: str) -> dict[str, int]:
    """Per-thread local memory (``__local_depot``) of each kernel in a PTX text [bytes]."""
    entries = list(re.finditer(r"\.entry\s+(\w+)\s*\(", ptx))
    out = {}
    for k, entry in enumerate(entries):
        body = ptx[entry.end():entries[k + 1].start() if k + 1 < len(entries) else len(ptx)]
        depot = re.search(r"__local_depot\d+\[(\d+)\]", body)
        out[entry.group(1)] = int(depot.group(1)) if depot else 0
    return out


def test_kernels_keep_per_thread_local_memory_small():
    """The lateral scratch arrays hold SFRT_LATERAL_TILE (64) beamlets on the GPU, not SFRT_MAX_BEAMLETS_1D
    (512): about 0.8 KB of local memory per thread instead of 6 KB, which the drivers reserve for every
    resident thread (1.6 GB on an H100 at 6 KB)."""
    ptx, _ = _compile_ptx(backend_cupy.kernel_include_dir(), "compute_90")
    depots = _local_depot_bytes(ptx)
    assert set(depots) == set(backend_cupy.KERNEL_NAMES)
    for name, size in depots.items():
        assert size <= 1024, f"{name}: {size} bytes of local memory per thread"


def test_lateral_tiles_do_not_change_the_dose(tmp_path):
    """The GPU runs the lateral sums in tiles of SFRT_LATERAL_TILE, the CPU in one: the photon and proton
    point doses of tests/kernels/lateral_tiles.cpp must be the same bits with tiles of 1 and 7 beamlets
    as with the CPU's single tile (host compiler, no OpenMP, no contraction: the order is what is tested)."""
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler (c++, g++, clang++) on PATH")
    source = Path(__file__).with_name("lateral_tiles.cpp")
    csrc = Path(__file__).resolve().parents[2] / "csrc"
    if not (csrc / "physics" / "photon.h").is_file():
        pytest.skip(f"no source tree at {csrc}")
    outputs = {}
    for tile in ("1", "7", "default"):
        exe = tmp_path / f"tiles_{tile}"
        define = [] if tile == "default" else [f"-DSFRT_LATERAL_TILE={tile}"]
        subprocess.run([compiler, "-std=c++17", "-O2", "-ffp-contract=off", *define, f"-I{csrc}", str(source),
                        "-o", str(exe)], check=True, timeout=120, capture_output=True)
        outputs[tile] = subprocess.run([str(exe)], check=True, timeout=60, capture_output=True, text=True).stdout
    lines = outputs["default"].split()
    assert len(lines) > 1000 and len(set(lines)) > 0.9 * len(lines)  # many distinct, non-trivial doses
    assert "00000000" not in lines
    assert outputs["1"] == outputs["default"] and outputs["7"] == outputs["default"]


def test_installed_headers_are_complete():
    """The package data the CuPy backend compiles holds every header the kernels include."""
    include_dir = backend_cupy.kernel_include_dir()
    for rel in (backend_cupy.KERNEL_HEADER, "params.h", "physics/common.h", "physics/raytrace.h",
                "physics/photon.h", "physics/proton.h"):
        assert (include_dir / rel).is_file(), f"{rel} missing from {include_dir}"


def test_nvrtc_errors_name_the_real_header(tmp_path):
    include_dir = tmp_path / "include"
    shutil.copytree(backend_cupy.kernel_include_dir(), include_dir)
    photon = include_dir / "physics" / "photon.h"
    photon.write_text(photon.read_text().replace("namespace sfrt {", "namespace sfrt {\nthis is not C++;", 1))
    with pytest.raises(AssertionError, match=r"physics/photon\.h"):
        _compile_ptx(include_dir, "compute_90")


def test_kernel_source_changes_with_the_headers(tmp_path):
    """CuPy caches by source text; the digest in it makes a header edit a new cache key."""
    include_dir = tmp_path / "include"
    shutil.copytree(backend_cupy.kernel_include_dir(), include_dir)
    before = backend_cupy.kernel_source(include_dir)
    common = include_dir / "physics" / "common.h"
    common.write_text(common.read_text() + "\n// edited\n")
    assert backend_cupy.kernel_source(include_dir) != before
    assert f'#include "{backend_cupy.KERNEL_HEADER}"' in before


# --- the _cuda module and the probes -----------------------------------------------

def test_cuda_module_reports_its_build():
    cuda = _cuda_module()
    info = cuda.build_info()
    assert info["module"] == "sfrt_engine.kernels._cuda" and info["version"] == se.__version__
    archs = info["cuda_architectures"]
    assert archs and all(re.fullmatch(r"\d+[af]?(-real|-virtual)?", a) for a in archs), archs
    assert re.fullmatch(r"\d+\.\d+", info["cuda_runtime_version"]), info
    assert info["cuda_runtime"] == "static"
    assert issubclass(cuda.DeviceMemoryError, MemoryError)


@pytest.mark.parametrize("name", ["cuda", "cupy"])
def test_probe_is_clean_and_registry_passes_it_on(name):
    if name == "cuda":
        _cuda_module()
    else:
        pytest.importorskip("cupy", reason="CuPy is not installed")
    reason = GPU_BACKENDS[name].probe()
    if reason is None:  # a usable GPU: the backend must come up
        assert se.get_backend(name).name == name
        return
    assert isinstance(reason, str) and "\n" not in reason
    assert reason.startswith("no CUDA device: ") or "rebuild with SFRT_CUDA_ARCHITECTURES" in reason, reason
    assert se.available_backends()[name] == (False, reason)
    with pytest.raises(se.BackendUnavailableError) as info:
        se.get_backend(name)
    assert reason in str(info.value)


def test_cuda_device_queries_without_a_device_say_so():
    cuda = _cuda_module()
    reason = cuda.probe()
    if reason is None or not reason.startswith("no CUDA device: "):
        pytest.skip(f"a CUDA device is present ({reason or 'usable'})")
    with pytest.raises(RuntimeError, match=r"^no CUDA device: "):
        cuda.devices()
    assert backend_cuda.build_info()["cuda_architectures"]  # build info needs no device


def test_cuda_probe_when_the_module_was_not_built(monkeypatch):
    def missing():
        raise ModuleNotFoundError("No module named 'sfrt_engine.kernels._cuda'", name="sfrt_engine.kernels._cuda")

    monkeypatch.setattr(backend_cuda, "_import", missing)
    assert backend_cuda.probe().startswith("built without CUDA: ")


# --- device-memory planning (pure host code, both backends) -----------------------------

def _budgets(plan: dict) -> dict[str, int]:
    return {"ample": 10 * plan["single_pass_bytes"], "exact": plan["single_pass_bytes"],
            "one_short": plan["single_pass_bytes"] - 1, "trace": plan["trace_bytes"],
            "too_small": plan["trace_bytes"] - 1, "none": 0}


@pytest.mark.parametrize("case", CASES)
def test_memory_plan_policy(case):
    p, tasks = _case(case)
    nz = p.grid.shape_zyx[0]
    plan = backend_cupy.plan_memory(p.grid, tasks, 1 << 40)
    assert not plan["chunked"] and plan["chunk_slices"] == nz
    assert plan["single_pass_bytes"] == plan["trace_bytes"] + plan["dose_bytes"]
    budgets = _budgets(plan)
    assert not backend_cupy.plan_memory(p.grid, tasks, budgets["exact"])["chunked"]
    for key in ("one_short", "trace"):
        chunked = backend_cupy.plan_memory(p.grid, tasks, budgets[key])
        assert chunked["chunked"] and 1 <= chunked["chunk_slices"] <= nz
        # what the chunked phase holds at once fits the budget
        assert chunked["chunk_slices"] * chunked["slice_bytes"] + chunked["table_bytes"] + chunked["beam_bytes"] \
            <= budgets[key]
    for key in ("too_small", "none"):
        with pytest.raises(se.DeviceMemoryError) as info:
            backend_cupy.plan_memory(p.grid, tasks, budgets[key])
        message = str(info.value)
        nz, ny, nx = p.grid.shape_zyx
        assert f"(nz, ny, nx) = ({nz}, {ny}, {nx})" in message
        assert "density" in message and "ray table" in message and "available" in message
        assert backend_cupy.format_bytes(plan["trace_bytes"]) in message
        assert isinstance(info.value, MemoryError)


def _cuda_plan(cuda, grid, tasks, budget: int) -> dict:
    packed = [t.pack() for t in tasks]
    if _is_proton(tasks):
        layers, weights = zip(*(t.pack_layers() for t in tasks))
        return dict(cuda.plan_proton_memory(pack_grid(grid), packed, list(layers), list(weights), budget))
    return dict(cuda.plan_memory(pack_grid(grid), packed, budget))


@pytest.mark.parametrize("case", CASES)
def test_memory_plan_is_the_same_in_cuda_and_cupy(case):
    cuda = _cuda_module()
    p, tasks = _case(case)
    for key, budget in _budgets(backend_cupy.plan_memory(p.grid, tasks, 1 << 40)).items():
        try:
            expected = backend_cupy.plan_memory(p.grid, tasks, budget)
        except se.DeviceMemoryError as exc:
            with pytest.raises(cuda.DeviceMemoryError) as info:
                _cuda_plan(cuda, p.grid, tasks, budget)
            assert str(info.value) == str(exc), key
        else:
            assert _cuda_plan(cuda, p.grid, tasks, budget) == expected, key


@pytest.mark.parametrize("case", PROTON_CASES)
def test_proton_memory_plan_counts_the_machine_tables(case):
    """A proton beam's data: its layers (float64), spot weights and the machine's IDD and sigma tables."""
    p, tasks = _case(case)
    plan = backend_cupy.plan_memory(p.grid, tasks, 1 << 40)
    task = tasks[0]
    layers, weights = task.pack_layers()
    tables = 2 * task.idd_gy_mm2_per_gp.size * 4
    assert plan["beam_bytes"] >= tables + weights.nbytes + layers.nbytes
    assert plan["beam_bytes"] < tables + weights.nbytes + layers.nbytes + 4 * 512  # four aligned buffers
    nz = p.grid.shape_zyx[0]
    with pytest.raises(se.DeviceMemoryError, match=r"^proton dose on the \(nz, ny, nx\) = \(" + str(nz)):
        backend_cupy.plan_memory(p.grid, tasks, plan["trace_bytes"] - 1)


def test_memory_plan_refuses_mixed_modalities():
    _, photons = _case("oblique")
    _, protons = _case("water_layer")
    with pytest.raises(TypeError, match="all PhotonBeamTask or all ProtonBeamTask"):
        backend_cupy.plan_memory(_case("oblique")[0].grid, [*photons, *protons], 1 << 40)


def test_cuda_checks_proton_arguments():
    """_cuda.proton_dose validates what it is given before any CUDA call (so this runs without a device)."""
    cuda = _cuda_module()
    p, tasks = _case("water_layer")
    task = tasks[0]
    layers, weights = task.pack_layers()
    idd = np.asarray(task.idd_gy_mm2_per_gp, dtype=np.float32)
    sigma = np.asarray(task.sigma_mm, dtype=np.float32)
    args = (p.stopping_power().astype(np.float32), pack_grid(p.grid), [task.pack()])
    with pytest.raises(ValueError, match="layer weights run past the weight array"):
        cuda.proton_dose(*args, [layers], [weights[:-1]], [idd], [sigma])
    with pytest.raises(ValueError, match="idd and sigma tables must be"):
        cuda.proton_dose(*args, [layers], [weights], [idd[:, :-1]], [sigma])
    with pytest.raises(ValueError, match="layers must be"):
        cuda.proton_dose(*args, [layers[:, :-1]], [weights], [idd], [sigma])
    bad = layers.copy()
    bad[0, 0] = idd.shape[0]
    with pytest.raises(ValueError, match="layer energy index out of range"):
        cuda.proton_dose(*args, [bad], [weights], [idd], [sigma])
    bad = layers.copy()
    bad[0, 8] = -1.0  # range shifter thickness
    with pytest.raises(ValueError, match="range shifter must be >= 0 mm"):
        cuda.proton_dose(*args, [bad], [weights], [idd], [sigma])


@pytest.mark.parametrize("n", [0, 1023, 1024, 5 << 19, 3 << 30])
def test_format_bytes(n):
    expected = {0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 19: "2.5 MiB", 3 << 30: "3.0 GiB"}[n]
    assert backend_cupy.format_bytes(n) == expected


def test_memory_budget_from_environment(monkeypatch):
    env = backend_cupy.MEMORY_BUDGET_ENV
    monkeypatch.delenv(env, raising=False)
    assert backend_cupy.memory_budget_from_env() == 0
    monkeypatch.setenv(env, "1.5")
    assert backend_cupy.memory_budget_from_env() == 3 << 19
    for bad in ("lots", "-4", "0", "nan"):
        monkeypatch.setenv(env, bad)
        with pytest.raises(ValueError, match=env):
            backend_cupy.memory_budget_from_env()
    with pytest.raises(TypeError, match="memory_budget_bytes"):
        backend_cupy._check_budget(1.5)
    with pytest.raises(ValueError, match="memory_budget_bytes"):
        backend_cupy._check_budget(-1)


def test_launch_configuration_from_environment(monkeypatch):
    monkeypatch.delenv(backend_cupy.BLOCK_THREADS_ENV, raising=False)
    monkeypatch.delenv(backend_cupy.WAVES_ENV, raising=False)
    assert backend_cupy.launch_config() == (256, 1)
    monkeypatch.setenv(backend_cupy.BLOCK_THREADS_ENV, "128")
    monkeypatch.setenv(backend_cupy.WAVES_ENV, "0")
    assert backend_cupy.launch_config() == (128, 0)
    for env, bad in ((backend_cupy.BLOCK_THREADS_ENV, "100"), (backend_cupy.BLOCK_THREADS_ENV, "2048"),
                     (backend_cupy.BLOCK_THREADS_ENV, "many"), (backend_cupy.WAVES_ENV, "-1")):
        monkeypatch.setenv(backend_cupy.BLOCK_THREADS_ENV, "128")
        monkeypatch.setenv(backend_cupy.WAVES_ENV, "0")
        monkeypatch.setenv(env, bad)
        with pytest.raises(ValueError, match=f"{env}={bad}: expected"):
            backend_cupy.launch_config()


# --- on a GPU ---------------------------------------------------------------------------

@pytest.fixture(params=[pytest.param(name, id=name) for name in GPU_BACKENDS])
def gpu(request):
    """Backend module of a GPU backend that can run here (skip, or fail under SFRT_REQUIRE_CUDA=1)."""
    name = request.param
    available, reason = se.available_backends()[name]
    if not available:
        if os.environ.get("SFRT_REQUIRE_CUDA") == "1":
            pytest.fail(f"SFRT_REQUIRE_CUDA=1 but backend {name!r} cannot run: {reason}", pytrace=False)
        pytest.skip(f"backend {name!r} unavailable: {reason}")
    return GPU_BACKENDS[name]


def _engine(module, budget: int = 0):
    return module.CudaBackend(budget) if module is backend_cuda else module.CupyBackend(budget)


def _chunking_budget(module, case: str) -> int:
    """A budget that forces the z-chunked path (the smallest the planner accepts)."""
    p, tasks = _case(case)
    return _engine(module).memory_plan(p.grid, tasks)["trace_bytes"]


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["one_pass", "z_chunks"])
@pytest.mark.parametrize("case", CASES)
def test_dose_matches_reference(gpu, case, mode):
    p, tasks = _case(case)
    engine = _engine(gpu, _chunking_budget(gpu, case) if mode == "z_chunks" else 0)
    assert engine.memory_plan(p.grid, tasks)["chunked"] == (mode == "z_chunks")
    got = _dose(engine, p, tasks)
    ref = _reference(case)
    assert got.dtype == np.float32 and got.shape == ref.shape and ref.max() > 0.0
    err = np.abs(got - ref).max() / ref.max()
    assert err <= DOSE_TOL, f"{engine.name} ({mode}) vs numpy on {case}: max |diff| = {err:.2e} of the max dose"


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_ray_tables_match_reference(gpu, case):
    p, tasks = _case(case)
    engine, reference = _engine(gpu), se.get_backend("numpy")
    for task in tasks:
        ref = reference.radiological_depth(_density(p, tasks), p.grid, task)
        got = np.asarray(engine.radiological_depth(_density(p, tasks), p.grid, task))
        assert got.shape == task.ray_shape and ref.max() > 10.0
        np.testing.assert_allclose(got, ref, rtol=DEPTH_RTOL, atol=DEPTH_ATOL_MM, err_msg=f"{engine.name} {case}")


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_z_chunks_are_bit_identical_to_one_pass(gpu, case):
    p, tasks = _case(case)
    one_pass = _dose(_engine(gpu), p, tasks)
    chunked_engine = _engine(gpu, _chunking_budget(gpu, case))
    chunked = _dose(chunked_engine, p, tasks)
    assert chunked_engine.memory_plan(p.grid, tasks)["chunk_slices"] < p.grid.shape_zyx[0]
    assert np.array_equal(one_pass, chunked)
    assert np.array_equal(one_pass, _dose(_engine(gpu), p, tasks))  # and repeatable


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [("64", "0"), ("128", "4"), ("1024", "1")], ids=["64x_all", "128x4", "1024x1"])
@pytest.mark.parametrize("case", ["couch", "bone_oblique"])
def test_launch_shape_never_changes_the_dose(gpu, case, shape, monkeypatch):
    p, tasks = _case(case)
    default = _dose(_engine(gpu), p, tasks)
    monkeypatch.setenv("SFRT_CUDA_BLOCK_THREADS", shape[0])
    monkeypatch.setenv("SFRT_CUDA_WAVES", shape[1])
    assert np.array_equal(_dose(_engine(gpu), p, tasks), default)


@pytest.mark.gpu
def test_bad_launch_shape_is_a_clear_error(gpu, monkeypatch):
    p, tasks = _case("couch")
    monkeypatch.setenv("SFRT_CUDA_BLOCK_THREADS", "100")
    with pytest.raises(ValueError, match="SFRT_CUDA_BLOCK_THREADS=100: expected"):
        _dose(_engine(gpu), p, tasks)


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["slab", "bone_oblique"])
def test_out_of_device_memory_names_the_sizes(gpu, case):
    p, tasks = _case(case)
    engine = _engine(gpu, 4096)
    nz, ny, nx = p.grid.shape_zyx
    with pytest.raises(se.DeviceMemoryError, match=re.escape(f"(nz, ny, nx) = ({nz}, {ny}, {nx})")) as info:
        _dose(engine, p, tasks)
    assert "density" in str(info.value) and "4.0 KiB is available" in str(info.value)
    assert ("proton dose" if _is_proton(tasks) else "photon dose") in str(info.value)
    with pytest.raises(se.DeviceMemoryError, match="ray table"):
        engine.radiological_depth(_density(p, tasks), p.grid, tasks[0])
    # the device is still usable afterwards
    assert _dose(_engine(gpu), p, tasks).max() > 0.0


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["couch", "bone_oblique"])
def test_cuda_and_cupy_run_the_same_kernels(case):
    """nvcc and NVRTC compile one source. They may differ in the last bits (CuPy adds -ftz=true;
    the two compiler versions may contract multiply-adds differently), far below the 1e-4 parity."""
    for name in GPU_BACKENDS:
        available, reason = se.available_backends()[name]
        if not available:
            if os.environ.get("SFRT_REQUIRE_CUDA") == "1":
                pytest.fail(f"SFRT_REQUIRE_CUDA=1 but backend {name!r} cannot run: {reason}", pytrace=False)
            pytest.skip(f"backend {name!r} unavailable: {reason}")
    p, tasks = _case(case)
    a = _dose(_engine(backend_cuda), p, tasks)
    b = _dose(_engine(backend_cupy), p, tasks)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(np.max(a)))


@pytest.mark.gpu
def test_backends_describe_the_device(gpu):
    info = _engine(gpu).describe()
    assert info["name"] in GPU_BACKENDS and info["device"] and info["device"] != "none"
