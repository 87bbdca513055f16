"""Roofline tables for compare_backends.py: the machine's peaks, a case's counted work, and where each
timed run sits against them.

The work is :func:`sfrt_engine.kernels.work_model.dose_work` (a model of the compiled kernels, its
module docstring gives every formula and flop weight). A run's achieved rate is model flops / wall
time. Its "peak" is the peak for the case's own mix of float and double flops::

    t_min = flops_sp / peak_sp + flops_dp / peak_dp,    peak_mix = flops / t_min,    fraction = t_min / time

against the model peak (:func:`machine_peak.cpu_peak`) and against the attainable peak measured now
(BLAS matrix products). The GB/s column is ``bytes_streamed`` / time, to set against the measured copy
bandwidth. One-thread rows use one core's model peak and the attainable peak of one BLAS thread.
The cpp rows come from the thread-scaling runs (1 thread and every core, timed alternately), so
their times can differ a little from the main table's.
"""

from __future__ import annotations

import dataclasses
import os

import machine_peak
import numpy as np

import sfrt_engine as se

GPU_BACKENDS = ("cuda", "cupy")


def measure_machine(backends, blas_n: int = machine_peak.BLAS_SIZE) -> dict:
    """Model and attainable peaks of the CPU, and of the GPU when a GPU backend is among ``backends``."""
    cpu = machine_peak.cpu_peak()
    machine = {"cpu": cpu.as_dict() | {
        "attainable_sp_gflops": machine_peak.measure_blas_gflops(np.float32, blas_n),
        "attainable_dp_gflops": machine_peak.measure_blas_gflops(np.float64, blas_n),
        "attainable_sp_gflops_1thread": machine_peak.measure_blas_gflops(np.float32, blas_n, threads=1),
        "attainable_dp_gflops_1thread": machine_peak.measure_blas_gflops(np.float64, blas_n, threads=1),
        "attainable_note": f"NumPy BLAS {blas_n}^3 matrix products (float32, float64)",
        "copy_gbps": machine_peak.measure_copy_gbps(),
        "copy_note": "single-threaded NumPy copy of 64 MiB, read + write bytes",
        # other work on the machine slows the runs and the attainable peaks alike
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}}
    if "cpp" in backends:
        # the vector width the C++ kernels were compiled for (-march) caps what they can reach
        info = se.get_backend("cpp").describe()
        bits = min(int(info.get("simd_bits", 0)) or cpu.vector_bits, cpu.vector_bits)
        kernel = dataclasses.replace(cpu, vector_bits=bits, fma=cpu.fma and bool(info.get("fma", True)))
        machine["cpu"].update(kernel_simd_bits=int(info.get("simd_bits", 0)), kernel_fma=bool(info.get("fma")),
                              kernel_peak_sp_gflops=kernel.gflops(32), kernel_peak_dp_gflops=kernel.gflops(64))
    if any(b in GPU_BACKENDS for b in backends):
        gpu = machine_peak.gpu_peak()
        if gpu is not None:
            gpu["attainable_sp_gflops"] = machine_peak.measure_gpu_gflops()
            machine["gpu"] = gpu
    return machine


def machine_lines(machine: dict) -> list[str]:
    c = machine["cpu"]
    lines = [
        (f"machine: {c['model']}, {c['cores']} cores at {c['ghz']:.3f} GHz ({c['clock_source']}), "
         f"{c['isa_bits']}-bit ISA on {c['vector_bits']}-bit FMA units x {c['fma_units']}"),
        (f"  model peak      {c['peak_sp_gflops']:8.1f} GFLOP/s float32 {c['peak_dp_gflops']:8.1f} float64"
         "  (cores x GHz x lanes x 2 FMA x units)"),
        (f"  attainable peak {c['attainable_sp_gflops']:8.1f} GFLOP/s float32 {c['attainable_dp_gflops']:8.1f}"
         f" float64 ({c['attainable_note']}, default BLAS threads)"),
        (f"                  {c['attainable_sp_gflops_1thread']:8.1f} GFLOP/s float32 "
         f"{c['attainable_dp_gflops_1thread']:8.1f} float64 on 1 BLAS thread"),
        f"  copy bandwidth  {c['copy_gbps']:8.1f} GB/s ({c['copy_note']})",
    ]
    if c.get("load_average_1min") is not None:
        lines.append(f"  load average    {c['load_average_1min']:8.2f} (1 min, before the runs; other work shares "
                     "the cores)")
    if "kernel_simd_bits" in c:
        lines.append(f"  cpp kernels     compiled for {c['kernel_simd_bits']}-bit vectors"
                     f"{' with FMA' if c['kernel_fma'] else ''}: model peak {c['kernel_peak_sp_gflops']:.1f} float32, "
                     f"{c['kernel_peak_dp_gflops']:.1f} float64")
    lines += [f"  note: {n}" for n in c["notes"]]
    if "gpu" in machine:
        g = machine["gpu"]
        attained = g.get("attainable_sp_gflops")
        lines.append(f"gpu: {g['model']} (sm {g['compute_capability']}), {g['sms']} SMs at {g['ghz']:.3f} GHz: model "
                     f"peak {g['peak_sp_gflops']:.0f} GFLOP/s float32, {g['peak_dp_gflops']:.0f} float64, memory "
                     f"{g['memory_gbps']:.0f} GB/s; attainable float32 "
                     + (f"{attained:.0f} GFLOP/s (cupy matmul)" if attained else "not measured"))
    return lines


def work_lines(w) -> list[str]:
    """The counted work of a case (a KernelWork), for the table."""
    return [
        "  counted work (model of the compiled kernels: sfrt_engine/kernels/work_model.py)",
        (f"    voxel-beam pairs {w.voxel_beam_pairs:,}: in reach {w.pairs_in_reach:,}, outside (skipped) "
         f"{w.pairs_outside:,}, zero depth dose {w.pairs_zero_depth_dose:,}"),
        (f"    lateral sums {w.lateral_sums:,}, beamlet terms {w.beamlet_terms:,}, erf {w.erf_evaluations:,}, "
         f"exp {w.exp_evaluations:,}, scatter-table reads {w.scatter_reads:,}"),
        (f"    ray trace {w.rays:,} rays, {w.ray_samples:,} density samples" if w.rays else
         "    ray trace: none (the timed calls read the geometry cache's ray tables)"),
        (f"    flops {w.flops:.3e} (float32 {w.flops_sp:.3e}, float64 {w.flops_dp:.3e}); "
         f"bytes {w.bytes_operand:.3e} operand, {w.bytes_streamed:.3e} streamed"),
        (f"    arithmetic intensity {w.intensity_operand:.2f} flop/B (operand), "
         f"{w.intensity_streamed:.2f} flop/B (streamed)"),
    ]


def _mix_seconds(work, peak_sp: float, peak_dp: float) -> float:
    """Least time [s] at the given peaks [GFLOP/s] for the work's float32 and float64 flops."""
    return (work.flops_sp / peak_sp + work.flops_dp / peak_dp) / 1e9


def roofline_row(work, seconds: float, threads: int, peaks: dict, cores: int) -> dict:
    """Achieved GFLOP/s and GB/s of one run, and its fraction of the model and attainable peaks.

    ``peaks``: the machine's "cpu" or "gpu" entry; ``threads`` < ``cores`` scales the peaks by
    threads / cores, except that one thread is held against the attainable peak measured on one BLAS
    thread when the entry has it.
    """
    share = min(threads, cores) / cores
    model = _mix_seconds(work, peaks["peak_sp_gflops"] * share, peaks["peak_dp_gflops"] * share)
    row = {"threads": threads, "seconds": seconds, "gflops": work.flops / seconds / 1e9,
           "gbps_streamed": work.bytes_streamed / seconds / 1e9,
           "model_peak_gflops": work.flops / model / 1e9, "fraction_of_model_peak": model / seconds}
    sp, dp = peaks.get("attainable_sp_gflops"), peaks.get("attainable_dp_gflops")
    if threads == 1 and cores > 1 and "attainable_sp_gflops_1thread" in peaks:
        sp, dp, share = peaks["attainable_sp_gflops_1thread"], peaks["attainable_dp_gflops_1thread"], 1.0
    if sp and not dp:  # GPU: only float32 is measured; scale float64 by the model ratio
        dp = sp * peaks["peak_dp_gflops"] / peaks["peak_sp_gflops"]
    if sp and dp:
        attainable = _mix_seconds(work, sp * share, dp * share)
        row.update(attainable_peak_gflops=work.flops / attainable / 1e9,
                   fraction_of_attainable_peak=attainable / seconds)
    return row


def roofline_lines(rows: dict) -> list[str]:
    """``rows``: backend -> list of roofline_row dicts."""
    lines = [(f"  roofline   {'backend':8s} {'threads':>7s} {'time [s]':>10s} {'GFLOP/s':>8s} {'model peak':>10s} "
              f"{'of model':>8s} {'attainable':>10s} {'of att.':>8s} {'GB/s':>7s}"
              "   (peaks for this case's float32/float64 mix; GB/s streamed)")]
    for name, runs in rows.items():
        for r in runs:
            att = (f"{r['attainable_peak_gflops']:10.1f} {100 * r['fraction_of_attainable_peak']:7.2f}%"
                   if "attainable_peak_gflops" in r else f"{'n/a':>10s} {'n/a':>8s}")
            lines.append(f"  {'':10s} {name:8s} {r['threads']:7d} {r['seconds']:10.3f} {r['gflops']:8.2f} "
                         f"{r['model_peak_gflops']:10.1f} {100 * r['fraction_of_model_peak']:7.2f}% {att} "
                         f"{r['gbps_streamed']:7.2f}")
    return lines


def scaling_record(one: float, many: float, threads: int) -> dict:
    speedup = one / many
    return {"threads": threads, "seconds_1_thread": one, "seconds_all": many, "speedup": speedup,
            "parallel_efficiency": speedup / threads}


def scaling_line(s: dict) -> str:
    return (f"  thread scaling (cpp): 1 thread {s['seconds_1_thread']:.3f} s, {s['threads']} threads "
            f"{s['seconds_all']:.3f} s: speed-up {s['speedup']:.2f}x, parallel efficiency "
            f"{100 * s['parallel_efficiency']:.0f}%")
