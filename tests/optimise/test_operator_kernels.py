"""The compiled operator kernels, checked where no GPU is needed.

- csrc/cuda/operator_kernels.cuh compiles under NVRTC (as the cupy engine compiles it) with every kernel
  in the PTX and little per-thread local memory;
- the nvcc-built ``_cuda`` module carries the operator launchers;
- the gather form of the adjoint the GPU runs equals the scatter form the CPU runs, on synthetic beams,
  with the GPU kernels' reach and range rejects (tests/optimise/gather_scatter.cpp, host compiler);
- the package data holds every header the kernels include.

The kernels themselves run in tests/optimise/test_operators.py on a GPU (marker ``gpu``).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sfrt_engine.kernels import backend_cupy
from sfrt_engine.optimise import _engine_gpu

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _nvrtc():
    pytest.importorskip("cupy", reason="CuPy is not installed: the NVRTC compile check needs cupy.cuda.nvrtc")
    from cupy.cuda import nvrtc

    try:
        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 - libnvrtc missing or unloadable
        pytest.skip(f"NVRTC cannot be loaded: {exc}")
    return nvrtc


def _ptx(include_dir: Path, arch: str, extra: tuple[str, ...] = ()) -> tuple[str, str]:
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(_engine_gpu.kernel_source(include_dir), "sfrt_operator_kernels.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, [f"-arch={arch}", *backend_cupy.nvrtc_options(include_dir), *extra])
        except nvrtc.NVRTCError as exc:
            raise AssertionError(f"NVRTC ({arch}) failed: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        return nvrtc.getPTX(prog).decode(), nvrtc.getProgramLog(prog)
    finally:
        nvrtc.destroyProgram(prog)


@pytest.mark.parametrize("extra", [(), ("-ftz=true", "--device-as-default-execution-space")], ids=["plain", "as_cupy"])
@pytest.mark.parametrize("arch", ["compute_75", "compute_90"])
def test_operator_kernels_compile_under_nvrtc(arch, extra):
    ptx, log = _ptx(backend_cupy.kernel_include_dir(), arch, extra)
    for name in _engine_gpu.KERNEL_NAMES:
        assert re.search(rf"\.entry\s+{name}\s*\(", ptx), f"{name} missing from the PTX"
    assert "warning" not in log.lower(), log
    # per-thread local memory of each kernel (__local_depot) stays small: no scratch arrays in the gathers
    entries = list(re.finditer(r"\.entry\s+(\w+)\s*\(", ptx))
    for k, entry in enumerate(entries):
        body = ptx[entry.end():entries[k + 1].start() if k + 1 < len(entries) else len(ptx)]
        depot = re.search(r"__local_depot\d+\[(\d+)\]", body)
        assert depot is None or int(depot.group(1)) <= 1024, f"{entry.group(1)}: {depot.group(1)} bytes local"


def test_operator_headers_are_installed():
    include_dir = backend_cupy.kernel_include_dir()
    for rel in (_engine_gpu.KERNEL_HEADER, "physics/adjoint.h", "physics/photon.h", "physics/proton.h", "params.h"):
        assert (include_dir / rel).is_file(), f"{rel} missing from {include_dir}"


def test_cuda_module_has_the_operator_launchers():
    try:
        cuda = importlib.import_module("sfrt_engine.kernels._cuda")
    except ModuleNotFoundError:
        pytest.skip("sfrt_engine.kernels._cuda was not built (no nvcc at build time, or SFRT_CUDA=OFF)")
    for name in ("photon_forward_device", "proton_forward_device", "photon_adjoint_weights_device",
                 "photon_adjoint_table_device", "proton_adjoint_spots_device", "sum_segments_device"):
        assert callable(getattr(cuda, name)), name
    with pytest.raises(ValueError, match="n_seg"):
        cuda.sum_segments_device(0, 1, 0, 0)  # refused before any CUDA call


def test_gather_form_equals_scatter_form(tmp_path):
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler (c++, g++, clang++) on PATH")
    if not (CSRC / "physics" / "adjoint.h").is_file():
        pytest.skip(f"no source tree at {CSRC}")
    exe = tmp_path / "gather_scatter"
    subprocess.run([compiler, "-std=c++17", "-O2", f"-I{CSRC}", str(Path(__file__).with_name("gather_scatter.cpp")),
                    "-o", str(exe)], check=True, timeout=120, capture_output=True)
    out = subprocess.run([str(exe)], check=True, timeout=60, capture_output=True, text=True).stdout.split()
    err_w, err_t, err_p, max_w, max_t, max_p = map(float, out)
    assert min(max_w, max_t, max_p) > 0.0  # every form has gradient to compare
    # the same float32 profiles and float64 products, summed in another order
    assert err_w < 1e-12 and err_t < 1e-12 and err_p < 1e-12, out


def test_adjoint_thread_target_from_environment(monkeypatch):
    from sfrt_engine.optimise import _engine_gpu

    monkeypatch.delenv(_engine_gpu.ADJOINT_THREADS_ENV, raising=False)
    assert _engine_gpu.adjoint_threads_target() == 1 << 16
    monkeypatch.setenv(_engine_gpu.ADJOINT_THREADS_ENV, "262144")
    assert _engine_gpu.adjoint_threads_target() == 262144
    assert _engine_gpu._segments(500, 10**6) == 512  # capped by the segment limit
    assert _engine_gpu._segments(500, 640) == 20  # at least 32 points per segment
    for bad in ("12", "lots", str(1 << 27)):
        monkeypatch.setenv(_engine_gpu.ADJOINT_THREADS_ENV, bad)
        with pytest.raises(ValueError, match=f"{_engine_gpu.ADJOINT_THREADS_ENV}={bad}: expected"):
            _engine_gpu.adjoint_threads_target()
