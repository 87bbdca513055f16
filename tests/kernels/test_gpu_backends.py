"""The cuda and cupy backends (DESIGN 6): one kernel source, two compilers, planned device memory.

On a machine without a GPU (CI) this checks what can be checked there: the kernel
file and the physics headers compile under NVRTC (no device needed), the ``_cuda``
module imports and reports its build, both backends give a clean "no CUDA device"
reason, and the device-memory planner of ``_cuda`` and of the CuPy backend agree.
The tests marked ``gpu`` run the kernels: parity with the NumPy reference in one
pass and in z-chunks, bit-identical chunked results, and out-of-memory errors that
name the sizes. They skip with the registry's reason, or fail under
``SFRT_REQUIRE_CUDA=1``.

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
from pathlib import Path

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.kernels import backend_cuda, backend_cupy, prepare_photon_tasks
from sfrt_engine.kernels._task import pack_grid

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

@functools.cache
def _case(name: str):
    """(patient, tasks) of a small case: 4-6 mm voxels, so the reference is quick."""
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


@functools.cache
def _reference(name: str) -> np.ndarray:
    p, tasks = _case(name)
    return se.get_backend("numpy").photon_dose(p.density(), p.grid, tasks)


CASES = ["oblique", "couch", "slab"]


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


def test_installed_headers_are_complete():
    """The package data the CuPy backend compiles holds every header the kernels include."""
    include_dir = backend_cupy.kernel_include_dir()
    for rel in (backend_cupy.KERNEL_HEADER, "params.h", "physics/common.h", "physics/raytrace.h",
                "physics/photon.h"):
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


@pytest.mark.parametrize("case", CASES)
def test_memory_plan_is_the_same_in_cuda_and_cupy(case):
    cuda = _cuda_module()
    p, tasks = _case(case)
    packed = [t.pack() for t in tasks]
    for key, budget in _budgets(backend_cupy.plan_memory(p.grid, tasks, 1 << 40)).items():
        try:
            expected = backend_cupy.plan_memory(p.grid, tasks, budget)
        except se.DeviceMemoryError as exc:
            with pytest.raises(cuda.DeviceMemoryError) as info:
                cuda.plan_memory(pack_grid(p.grid), packed, budget)
            assert str(info.value) == str(exc), key
        else:
            assert dict(cuda.plan_memory(pack_grid(p.grid), packed, budget)) == expected, key


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
    got = np.asarray(engine.photon_dose(p.density(), p.grid, tasks))
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
        ref = reference.radiological_depth(p.density(), p.grid, task)
        got = np.asarray(engine.radiological_depth(p.density(), p.grid, task))
        assert got.shape == task.ray_shape and ref.max() > 10.0
        np.testing.assert_allclose(got, ref, rtol=DEPTH_RTOL, atol=DEPTH_ATOL_MM, err_msg=f"{engine.name} {case}")


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_z_chunks_are_bit_identical_to_one_pass(gpu, case):
    p, tasks = _case(case)
    one_pass = _engine(gpu).photon_dose(p.density(), p.grid, tasks)
    chunked_engine = _engine(gpu, _chunking_budget(gpu, case))
    chunked = chunked_engine.photon_dose(p.density(), p.grid, tasks)
    assert chunked_engine.memory_plan(p.grid, tasks)["chunk_slices"] < p.grid.shape_zyx[0]
    assert np.array_equal(one_pass, chunked)
    assert np.array_equal(one_pass, _engine(gpu).photon_dose(p.density(), p.grid, tasks))  # and repeatable


@pytest.mark.gpu
def test_out_of_device_memory_names_the_sizes(gpu):
    p, tasks = _case("slab")
    engine = _engine(gpu, 4096)
    nz, ny, nx = p.grid.shape_zyx
    with pytest.raises(se.DeviceMemoryError, match=re.escape(f"(nz, ny, nx) = ({nz}, {ny}, {nx})")) as info:
        engine.photon_dose(p.density(), p.grid, tasks)
    assert "density" in str(info.value) and "4.0 KiB is available" in str(info.value)
    with pytest.raises(se.DeviceMemoryError, match="ray table"):
        engine.radiological_depth(p.density(), p.grid, tasks[0])
    # the device is still usable afterwards
    assert np.asarray(_engine(gpu).photon_dose(p.density(), p.grid, tasks)).max() > 0.0


@pytest.mark.gpu
def test_cuda_and_cupy_run_the_same_kernels():
    """nvcc and NVRTC compile one source. They may differ in the last bits (CuPy adds -ftz=true;
    the two compiler versions may contract multiply-adds differently), far below the 1e-4 parity."""
    for name in GPU_BACKENDS:
        available, reason = se.available_backends()[name]
        if not available:
            if os.environ.get("SFRT_REQUIRE_CUDA") == "1":
                pytest.fail(f"SFRT_REQUIRE_CUDA=1 but backend {name!r} cannot run: {reason}", pytrace=False)
            pytest.skip(f"backend {name!r} unavailable: {reason}")
    p, tasks = _case("couch")
    a = _engine(backend_cuda).photon_dose(p.density(), p.grid, tasks)
    b = _engine(backend_cupy).photon_dose(p.density(), p.grid, tasks)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(np.max(a)))


@pytest.mark.gpu
def test_backends_describe_the_device(gpu):
    info = _engine(gpu).describe()
    assert info["name"] in GPU_BACKENDS and info["device"] and info["device"] != "none"
