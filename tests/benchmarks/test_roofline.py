"""Machine peaks (benchmarks/machine_peak.py), roofline rows (benchmarks/roofline.py) and the roofline
output of benchmarks/compare_backends.py on a small case. No timing assertions."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from sfrt_engine.kernels.work_model import KernelWork

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    """A benchmarks/ module, imported by path (benchmarks/ is not a package and stays off sys.path)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


machine_peak = _load("machine_peak")
roofline = _load("roofline")


def cpuinfo(tmp_path, vendor, family, model, flags, n=4, mhz=2000.0, key="flags"):
    text = "\n\n".join(
        f"processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        f"model name\t: test cpu\ncpu MHz\t\t: {mhz}\nphysical id\t: 0\ncore id\t\t: {i}\n{key}\t\t: {flags}"
        for i in range(n))
    path = tmp_path / "cpuinfo"
    path.write_text(text + "\n")
    return str(path)


def test_model_peak_of_an_avx2_fma_cpu(tmp_path):
    # 4 cores x 3.0 GHz x 8 float32 lanes x 2 (FMA) x 2 units = 384 GFLOP/s; float64 half
    freq = tmp_path / "sys"
    for i in range(4):
        (freq / f"cpu{i}" / "cpufreq").mkdir(parents=True)
        (freq / f"cpu{i}" / "cpufreq" / "cpuinfo_max_freq").write_text("3000000\n")
    peak = machine_peak.cpu_peak(cpuinfo(tmp_path, "GenuineIntel", 6, 63, "sse2 avx avx2 fma"), str(freq),
                                 allowed={0, 1, 2, 3})
    assert (peak.cores, peak.isa_bits, peak.vector_bits, peak.fma_units) == (4, 256, 256, 2)
    assert peak.ghz == pytest.approx(3.0) and "cpufreq" in peak.clock_source
    assert peak.gflops(32) == pytest.approx(384.0)
    assert peak.gflops(64) == pytest.approx(192.0)
    assert peak.gflops(32, cores=1) == pytest.approx(96.0)


def test_model_peak_counts_only_the_allowed_cpus_and_reads_cpu_mhz_without_cpufreq(tmp_path):
    peak = machine_peak.cpu_peak(cpuinfo(tmp_path, "GenuineIntel", 6, 85, "avx avx2 fma avx512f", mhz=2500.0),
                                 str(tmp_path / "none"), allowed={1, 2})
    assert peak.cores == 2 and peak.ghz == pytest.approx(2.5) and "cpu MHz" in peak.clock_source
    assert peak.vector_bits == 512 and any("one have half" in n for n in peak.notes)
    assert peak.gflops(32) == pytest.approx(2 * 2.5 * 16 * 2 * 2)


@pytest.mark.parametrize(("family", "model", "flags", "bits"), [
    (25, 17, "avx avx2 fma avx512f", 256),  # Zen 4: AVX-512 on 256-bit units
    (25, 1, "avx avx2 fma", 256),  # Zen 3
    (23, 1, "avx avx2 fma", 128),  # Zen: 256-bit as two 128-bit halves
    (23, 49, "avx avx2 fma", 256),  # Zen 2
])
def test_amd_fma_datapath(tmp_path, family, model, flags, bits):
    peak = machine_peak.cpu_peak(cpuinfo(tmp_path, "AuthenticAMD", family, model, flags), str(tmp_path),
                                 allowed={0})
    assert peak.vector_bits == bits
    assert peak.flops_per_cycle(32) == bits // 32 * 2 * 2


def test_arm_features_and_missing_cpuinfo(tmp_path):
    arm = machine_peak.cpu_peak(cpuinfo(tmp_path, "", 0, 0, "fp asimd evtstrm", key="Features"), str(tmp_path),
                                allowed={0})
    assert (arm.isa_bits, arm.fma) == (128, True)
    nothing = machine_peak.cpu_peak(str(tmp_path / "absent"), str(tmp_path), allowed={0, 1})
    assert nothing.cores == 2 and math.isnan(nothing.ghz) and nothing.clock_source == "unknown"


def test_gpu_peak_is_none_without_a_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import fails
    assert machine_peak.gpu_peak() is None
    assert machine_peak.measure_gpu_gflops() is None


def test_gpu_peak_of_an_h200_from_device_attributes(monkeypatch):
    """132 SMs at 1.98 GHz (sm 9.0: 128 float32 and 64 float64 lanes per SM): 66.9 and 33.5 TFLOP/s, NVIDIA's
    published H200 SXM figures being 67 (FP32) and 34 (FP64) TFLOPS (H200 Tensor Core GPU datasheet)."""
    device = types.SimpleNamespace(attributes={"MultiProcessorCount": 132, "ClockRate": 1_980_000,
                                               "MemoryClockRate": 2_619_000, "GlobalMemoryBusWidth": 6144},
                                   compute_capability="90")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        Device=lambda i: device, runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"NVIDIA H200"})))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    peak = machine_peak.gpu_peak()
    assert peak["model"] == "NVIDIA H200" and peak["compute_capability"] == "9.0"
    assert peak["peak_sp_gflops"] == pytest.approx(67e3, rel=0.01)
    assert peak["peak_dp_gflops"] == pytest.approx(34e3, rel=0.02)
    device.compute_capability = "100"  # parsed as 10.0, not 1.0
    assert machine_peak.gpu_peak()["compute_capability"] == "10.0"


def test_measured_peaks_are_positive():
    assert machine_peak.measure_blas_gflops(np.float32, n=128, repeat=1) > 0
    assert machine_peak.measure_blas_gflops(np.float64, n=128, repeat=1, threads=1) > 0
    assert machine_peak.measure_copy_gbps(nbytes=1 << 20, repeat=1) > 0


def test_roofline_row_uses_the_float32_float64_mix():
    work = KernelWork(flops_sp=10 ** 9, flops_dp=10 ** 9, bytes_streamed=10 ** 8)
    peaks = {"peak_sp_gflops": 100.0, "peak_dp_gflops": 50.0, "attainable_sp_gflops": 50.0,
             "attainable_dp_gflops": 25.0}
    row = roofline.roofline_row(work, 0.3, 2, peaks, 2)  # least time 1/100 + 1/50 = 0.03 s
    assert row["gflops"] == pytest.approx(2 / 0.3)
    assert row["model_peak_gflops"] == pytest.approx(2 / 0.03)
    assert row["fraction_of_model_peak"] == pytest.approx(0.1)
    assert row["fraction_of_attainable_peak"] == pytest.approx(0.2)
    assert row["gbps_streamed"] == pytest.approx(0.1 / 0.3)
    one = roofline.roofline_row(work, 0.3, 1, peaks, 2)  # one of two cores: half the peaks
    assert one["fraction_of_model_peak"] == pytest.approx(0.2)
    assert one["fraction_of_attainable_peak"] == pytest.approx(0.4)
    peaks.update(attainable_sp_gflops_1thread=40.0, attainable_dp_gflops_1thread=10.0)  # 0.025 + 0.1 s
    one = roofline.roofline_row(work, 0.3, 1, peaks, 2)
    assert one["fraction_of_attainable_peak"] == pytest.approx(0.125 / 0.3)
    scaling = roofline.scaling_record(1.0, 0.625, 2)
    assert (scaling["speedup"], scaling["parallel_efficiency"]) == (pytest.approx(1.6), pytest.approx(0.8))


def test_compare_backends_prints_the_roofline_of_a_small_case(tmp_path):
    out = tmp_path / "out.json"
    run = subprocess.run([sys.executable, str(BENCH / "compare_backends.py"), "--cases", "check", "--backends", "cpp",
                          "--repeat", "1", "--blas-size", "128", "--json-out", str(out)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    for words in ("model peak", "attainable peak", "voxel-beam pairs", "erf", "flops", "arithmetic intensity",
                  "GFLOP/s", "of model", "of att.", "thread scaling (cpp): 1 thread", "parallel efficiency"):
        assert words in text, words
    (row,) = json.loads(out.read_text())
    assert row["backend"] == "cpp"
    work = row["work"]
    assert work["voxel_beam_pairs"] == row["voxels"] * row["beams"]
    assert work["erf_evaluations"] > 0 and work["flops"] == work["flops_sp"] + work["flops_dp"]
    cores = row["machine"]["cpu"]["cores"]
    assert [r["threads"] for r in row["roofline"]] == [cores, 1]
    assert row["thread_scaling"]["threads"] == cores
    assert row["machine"]["cpu"]["peak_sp_gflops"] > 0
    assert row["machine"]["cpu"]["kernel_peak_sp_gflops"] <= row["machine"]["cpu"]["peak_sp_gflops"]
    for r in row["roofline"]:
        assert r["gflops"] == pytest.approx(work["flops"] / r["seconds"] / 1e9)
