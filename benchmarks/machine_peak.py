"""Peak floating-point rates of the machine a benchmark runs on, for roofline tables.

Two kinds of number, never to be confused:

* **Model peak** (:func:`cpu_peak`, :func:`gpu_peak`): what the hardware could issue if every cycle
  of every core retired its widest fused multiply-adds, from what the OS reports at run time::

      peak [GFLOP/s] = cores x GHz x (vector bits / element bits) x 2 (FMA) x FMA units

  CPU: physical cores available to this process (``os.sched_getaffinity`` and the ``core id`` /
  ``physical id`` of /proc/cpuinfo), the clock from cpufreq's ``cpuinfo_max_freq`` or else the
  highest ``cpu MHz`` of /proc/cpuinfo (in a virtual machine the nominal clock; turbo is not known),
  the vector width from the flags (avx512f 512, avx/avx2 256, sse2/asimd 128 bits) capped by the
  width of the FMA datapath where the vendor documents a narrower one, and two FMA units per core
  on x86 with ``fma`` (Intel since Haswell, AMD since Zen: Intel 64 and IA-32 Architectures
  Optimization Reference Manual, ch. 2; AMD Software Optimization Guides for families 17h and 19h).
  AMD family 17h models below 30h (Zen, Zen+) execute 256-bit operations on 128-bit units; family
  19h (Zen 3, Zen 4) on 256-bit units, so Zen 4 runs AVX-512 at the AVX2 rate (AMD pub. 57647,
  2.11). Intel parts with a single AVX-512 FMA unit cannot be told apart here: their model is
  twice too high. GPU: SMs x FP32 (FP64) lanes per SM for the compute capability (CUDA C++
  Programming Guide, "Arithmetic Instructions" throughput table) x 2 x the SM clock, from cupy's
  device attributes. Untested on a device in this repository's CI (no GPU there); every failure
  returns None.
* **Attainable peak** (:func:`measure_blas_gflops`, :func:`measure_copy_gbps`): measured now, in
  about a second: the GFLOP/s of a float32 (float64) matrix product by NumPy's BLAS on its default
  threads and on one (``2 n^3`` flops, best of a few), and the GB/s of a single-threaded NumPy copy
  (read + write bytes), a lower bound on the machine's memory bandwidth.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# FP32 and FP64 results per clock per SM by compute capability (CUDA C++ Programming Guide,
# Arithmetic Instructions, "32-bit floating-point add, multiply, multiply-add" and the 64-bit row).
_GPU_LANES = {(6, 0): (64, 32), (6, 1): (128, 4), (7, 0): (64, 32), (7, 2): (64, 32), (7, 5): (64, 2),
              (8, 0): (64, 32), (8, 6): (128, 2), (8, 7): (128, 2), (8, 9): (128, 2), (9, 0): (128, 64),
              (10, 0): (128, 64), (12, 0): (128, 2)}

#: Matrix size of the attainable-peak products: about 7 GFLOP per float32 product, large enough for
#: BLAS to reach its steady rate on a few cores, short enough to take well under a second.
BLAS_SIZE = 1536


@dataclass(frozen=True)
class CpuPeak:
    """Model peak of the CPU cores available to this process (module docstring)."""

    model: str
    cores: int
    ghz: float
    clock_source: str
    isa_bits: int       # widest vector ISA in the flags
    vector_bits: int    # width each FMA unit executes per cycle
    fma: bool
    fma_units: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def flops_per_cycle(self, element_bits: int) -> float:
        """Flops per core per cycle: lanes x 2 x FMA units (without FMA: one add and one multiply)."""
        lanes = self.vector_bits // element_bits
        return lanes * 2 * (self.fma_units if self.fma else 1)

    def gflops(self, element_bits: int, cores: int | None = None) -> float:
        """Model peak [GFLOP/s] of ``cores`` (default all) for 32- or 64-bit elements."""
        return (self.cores if cores is None else cores) * self.ghz * self.flops_per_cycle(element_bits)

    def as_dict(self) -> dict:
        return {"peak_formula": "cores x GHz x (vector bits / element bits) x 2 (FMA) x FMA units: a model",
                "model": self.model, "cores": self.cores, "ghz": self.ghz,
                "clock_source": self.clock_source, "isa_bits": self.isa_bits, "vector_bits": self.vector_bits,
                "fma": self.fma, "fma_units": self.fma_units, "peak_sp_gflops": self.gflops(32),
                "peak_dp_gflops": self.gflops(64), "notes": list(self.notes)}


def _cpuinfo(text: str) -> list[dict]:
    """/proc/cpuinfo as one dict per processor."""
    blocks = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        blocks.append(entry)
    return blocks


def _datapath_bits(vendor: str, family: int, model: int, isa_bits: int) -> tuple[int, str | None]:
    """FMA datapath width [bits] and a note when it is narrower than the ISA (module docstring)."""
    if vendor == "AuthenticAMD" and family == 0x17 and model < 0x30 and isa_bits > 128:
        return 128, "AMD Zen/Zen+: 256-bit operations run as two 128-bit halves"
    if vendor == "AuthenticAMD" and family in (0x17, 0x19) and isa_bits > 256:
        return 256, "AMD Zen 4: AVX-512 runs on 256-bit FMA units (two passes per 512-bit operation)"
    return isa_bits, None


def cpu_peak(cpuinfo_path: str = "/proc/cpuinfo", cpufreq_dir: str = "/sys/devices/system/cpu",
             allowed: set[int] | None = None) -> CpuPeak:
    """Model peak of the CPU from /proc/cpuinfo and cpufreq (module docstring); ``ghz`` is NaN if unknown.

    ``allowed``: the logical CPUs counted (default: those this process may run on).
    """
    try:
        procs = _cpuinfo(Path(cpuinfo_path).read_text())
    except OSError:
        procs = []
    if allowed is None:
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    mine = [p for p in procs if p.get("processor", "").isdigit() and int(p["processor"]) in allowed] or procs
    first = mine[0] if mine else {}
    cores_ids = {(p.get("physical id"), p.get("core id")) for p in mine if "core id" in p}
    cores = len(cores_ids) if cores_ids else len(allowed)
    flags = set((first.get("flags") or first.get("Features") or "").split())
    isa_bits = 512 if "avx512f" in flags else 256 if flags & {"avx", "avx2"} else 128
    fma = bool(flags & {"fma", "avx512f", "asimd"})
    vendor = first.get("vendor_id", "")
    family = int(first.get("cpu family", "0") or 0)
    model_no = int(first.get("model", "0") or 0) if first.get("model", "0").isdigit() else 0
    vector_bits, note = _datapath_bits(vendor, family, model_no, isa_bits)
    notes = [note] if note else []
    khz = []
    for cpu in sorted(allowed):
        try:
            khz.append(float((Path(cpufreq_dir) / f"cpu{cpu}" / "cpufreq" / "cpuinfo_max_freq").read_text()))
        except (OSError, ValueError):
            pass
    if khz:
        ghz, source = max(khz) / 1e6, "cpufreq cpuinfo_max_freq"
    else:
        mhz = [float(p["cpu MHz"]) for p in mine if p.get("cpu MHz")]
        ghz = max(mhz) / 1e3 if mhz else math.nan
        source = "/proc/cpuinfo cpu MHz (no cpufreq: nominal clock, turbo unknown)" if mhz else "unknown"
    if "avx512f" in flags and vendor == "GenuineIntel":
        notes.append("Intel AVX-512: counted with 2 FMA units; parts with one have half this peak")
    return CpuPeak(model=first.get("model name", os.uname().machine), cores=cores, ghz=ghz, clock_source=source,
                   isa_bits=isa_bits, vector_bits=vector_bits, fma=fma, fma_units=2 if fma else 1,
                   notes=tuple(notes))


def gpu_peak(device: int = 0) -> dict | None:
    """Model peak of CUDA device ``device`` from cupy's attributes, or None (no cupy, no device, unknown SM)."""
    try:
        import cupy

        dev = cupy.cuda.Device(device)
        attrs = dev.attributes
        text = str(dev.compute_capability)  # "90" for 9.0, "100" for 10.0
        cc = (int(text[:-1]), int(text[-1]))
        name = cupy.cuda.runtime.getDeviceProperties(device)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        sms, clock_khz = int(attrs["MultiProcessorCount"]), float(attrs["ClockRate"])
        mem_khz, bus_bits = float(attrs.get("MemoryClockRate", 0)), float(attrs.get("GlobalMemoryBusWidth", 0))
    except Exception:  # noqa: BLE001 - any failure means "no GPU peak here"
        return None
    if cc not in _GPU_LANES:
        return None
    sp, dp = _GPU_LANES[cc]
    ghz = clock_khz / 1e6
    return {"peak_formula": "SMs x lanes per SM x 2 (FMA) x GHz: a model", "model": name,
            "compute_capability": f"{cc[0]}.{cc[1]}", "sms": sms, "ghz": ghz,
            "clock_source": "cupy device attribute ClockRate", "peak_sp_gflops": sms * sp * 2 * ghz,
            "peak_dp_gflops": sms * dp * 2 * ghz, "memory_gbps": 2 * mem_khz * 1e3 * bus_bits / 8 / 1e9}


def _best_seconds(fn, repeat: int) -> float:
    fn()  # warm-up: thread pools, page faults
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_blas_gflops(dtype=np.float32, n: int = BLAS_SIZE, repeat: int = 3, threads: int | None = None) -> float:
    """Attainable GFLOP/s of an ``n x n`` matrix product in ``dtype`` by NumPy's BLAS (``2 n^3`` flops), on
    its default threads or on ``threads`` (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    with threadpool_limits(limits=threads, user_api="blas"):
        return 2.0 * n ** 3 / _best_seconds(lambda: np.matmul(a, b, out=out), repeat) / 1e9


def measure_copy_gbps(nbytes: int = 1 << 26, repeat: int = 5) -> float:
    """Attainable GB/s of a single-threaded NumPy copy of ``nbytes`` (read + write counted)."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    return 2.0 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), repeat) / 1e9


def measure_gpu_gflops(n: int = 4096, repeat: int = 5) -> float | None:
    """Attainable float32 GFLOP/s of a cupy matrix product on the current device, or None without one."""
    try:
        import cupy

        a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        b = cupy.random.standard_normal((n, n), dtype=cupy.float32)

        def run():
            cupy.matmul(a, b)
            cupy.cuda.Device().synchronize()

        return 2.0 * n ** 3 / _best_seconds(run, repeat) / 1e9
    except Exception:  # noqa: BLE001 - any failure means "not measurable here"
        return None
