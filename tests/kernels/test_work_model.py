"""The work model of the compiled kernels (sfrt_engine.kernels.work_model) on cases counted by hand,
against a scalar transcription of the kernels' loops, and against the reference's footprint test."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.grid import Grid
from sfrt_engine.kernels import work_model as wm
from sfrt_engine.kernels._proton_task import (
    ProtonBeamTask,
    ProtonLayerTask,
    compiled_proton_arguments,
    prepare_proton_tasks,
)
from sfrt_engine.kernels._task import (
    CUTOFF_SIGMA,
    PhotonBeamTask,
    ScatterTable,
    compiled_arguments,
    prepare_photon_tasks,
)
from sfrt_engine.kernels.backend_numpy import _bev_depth, radiological_depth

W = wm.FLOP_WEIGHTS

# One plane of 13 x 13 voxels at 5 mm, x, y in -30 .. 30 mm, at the isocentre plane (z = 0) of a beam
# along -z with SAD 1000 mm: the source distance is 1000 mm everywhere, so u = x, v = y and s_iso = sigma.
GRID = Grid(shape_zyx=(1, 13, 13), spacing_xyz_mm=5.0, origin_xyz_mm=(-30.0, -30.0, 0.0))
NODES = 11  # machine tables on depths 0, 10, .., 100 mm
# The ray lattice covers |u|, |v| <= 25 mm: the 48 voxels with |x| or |y| = 30 are outside the beam's reach.
LATTICE = {"name": "b", "sad_mm": 1000.0, "isocenter_xyz_mm": np.zeros(3), "axis_u": np.array([1.0, 0.0, 0.0]),
           "axis_v": np.array([0.0, 1.0, 0.0]), "axis_source": np.array([0.0, 0.0, 1.0]),
           "ray_u0_mm": -25.0, "ray_du_mm": 5.0, "ray_nu": 11, "ray_v0_mm": -25.0, "ray_dv_mm": 5.0, "ray_nv": 11,
           "ray_z0_mm": 990.0, "ray_dz_mm": 5.0, "ray_nz": 5}
RAYS, SAMPLES, IN_REACH, OUTSIDE = 121, 605, 121, 48


def photon_task(tdd=1.0, weights=(1.0,), sigma_per_mm_depth=(0.04,), scatter=None) -> PhotonBeamTask:
    """4 x 4 beamlets of 5 mm, edges at -10, -5, .., 10 mm; component k: weight ``weights[k]``, sigma
    ``sigma_per_mm_depth[k] * depth`` [mm]."""
    depth = 10.0 * np.arange(NODES)
    return PhotonBeamTask(**LATTICE, edge_u0_mm=-10.0, beamlet_du_mm=5.0, edge_v0_mm=-10.0, beamlet_dv_mm=5.0,
                          weights_mu=np.ones((4, 4)), depth_step_mm=10.0,
                          depth_dose_gy_per_mu=np.full(NODES, tdd),
                          component_weight=np.array([np.full(NODES, w) for w in weights]),
                          component_sigma_mm=np.array([s * depth for s in sigma_per_mm_depth]), scatter=scatter)


def depth_table(depth_mm: float) -> np.ndarray:
    return np.full((11, 11, 5), depth_mm, dtype=np.float32)


# Beamlets within reach r = 6 sigma of a voxel at u = -25 .. 25 mm (kernel: i0 = floor((u - r + 10) / 5),
# i1 = floor((u + r + 10) / 5), clamped to 0 .. 3), counted by hand:
#   depth 50 mm, sigma 2 mm, r 12 mm: 0 1 2 3 4 4 4 3 2 1 0  (sum 24, 9 non-empty)
#   depth 25 mm, sigma 1 mm, r  6 mm: 0 0 1 2 3 4 3 2 1 0 0  (sum 16, 7 non-empty)
@pytest.mark.parametrize(("depth_mm", "per_axis", "non_empty"), [(50.0, 24, 9), (25.0, 16, 7)])
def test_photon_counts_of_one_beam_on_a_plane(depth_mm, per_axis, non_empty):
    w = wm.photon_work([photon_task()], [depth_table(depth_mm)], GRID)
    assert (w.voxel_beam_pairs, w.pairs_in_reach, w.pairs_outside) == (169, IN_REACH, OUTSIDE)
    assert w.pairs_zero_depth_dose == 0
    assert w.lateral_sums == non_empty ** 2
    assert w.beamlet_terms == per_axis ** 2
    # (ni + 1) edges along u and (nj + 1) along v per non-empty window (one tile on the CPU)
    assert w.erf_evaluations == 2 * non_empty * (per_axis + non_empty)
    assert (w.scatter_reads, w.exp_evaluations, w.rays, w.ray_samples) == (0, 0, RAYS, SAMPLES)


def test_photon_flops_and_bytes_of_one_beam_on_a_plane():
    w = wm.photon_work([photon_task()], [depth_table(50.0)], GRID)
    erf, cols, terms, sums = 594, 9 * 24, 24 * 24, 81
    assert w.flops_sp == (erf * (W["erf_fast_sp"] + W["erf_argument_sp"])
                          + 2 * cols * W["profile_difference_sp"]  # u and v profiles: 9 x 24 each
                          + (terms + cols + sums) * W["multiply_add_sp"]
                          + IN_REACH + 169)  # the final product, the dose +=
    assert w.flops_dp == (RAYS * W["ray_setup_dp"] + SAMPLES * W["ray_sample_dp"] + 169 * 2 + 13 * 4
                          + OUTSIDE * W["bev_footprint_dp"]
                          + IN_REACH * (W["bev_depth_dp"] + W["photon_depth_dp"] + W["photon_tail_dp"]
                                        + W["table_lerp_dp"] + W["photon_sigma_dp"] + W["photon_window_dp"])
                          + sums)  # 1 / s_iso per non-empty window
    f32 = 4
    tables = (3 * NODES + 16) * f32  # T, A, sigma, weights
    assert w.bytes_streamed == 169 * f32 + 2 * SAMPLES * f32 + 2 * 169 * f32 + tables + 169 * f32
    assert w.bytes_operand == (RAYS * 8 * f32 + SAMPLES * 9 * f32 + 2 * 169 * f32 + 169 * f32
                               + IN_REACH * (8 + 2 + 2 + 2) * f32 + terms * f32)
    assert w.intensity_streamed == pytest.approx(w.flops / w.bytes_streamed)


def test_a_call_on_cached_ray_tables_leaves_the_trace_out():
    traced = wm.photon_work([photon_task()], [depth_table(50.0)], GRID)
    cached = wm.photon_work([photon_task()], [depth_table(50.0)], GRID, ray_trace=False)
    assert (cached.rays, cached.ray_samples) == (0, 0)
    assert traced.flops_dp - cached.flops_dp == RAYS * W["ray_setup_dp"] + SAMPLES * W["ray_sample_dp"]
    assert traced.bytes_streamed - cached.bytes_streamed == (169 + SAMPLES) * 4  # density read, table written
    assert traced.bytes_operand - cached.bytes_operand == (RAYS * 8 + SAMPLES * 9) * 4
    assert (cached.erf_evaluations, cached.flops_sp) == (traced.erf_evaluations, traced.flops_sp)


def test_photon_pairs_with_zero_depth_dose_do_no_lateral_work():
    w = wm.photon_work([photon_task(tdd=0.0)], [depth_table(50.0)], GRID)
    assert (w.pairs_in_reach, w.pairs_zero_depth_dose) == (IN_REACH, IN_REACH)
    assert w.erf_evaluations == w.beamlet_terms == w.lateral_sums == 0


def test_photon_pairs_nearer_the_source_than_min_z_are_outside():
    near = Grid(shape_zyx=(1, 13, 13), spacing_xyz_mm=5.0, origin_xyz_mm=(-30.0, -30.0, 999.5))
    w = wm.photon_work([photon_task()], [depth_table(50.0)], near)
    assert (w.pairs_in_reach, w.pairs_outside) == (0, 169)


@pytest.mark.parametrize(("scatter_weight", "reads"), [(0.5, IN_REACH), (0.0, 0)])
def test_photon_scatter_component_reads_the_table_once_per_pair(scatter_weight, reads):
    table = ScatterTable(n_direct=1, u0_mm=-25.0, du_mm=5.0, nu=11, v0_mm=-25.0, dv_mm=5.0, nv=11, s0_mm=1.0,
                         log_ratio=math.log(1.05), values=np.ones((3, 11, 11)))
    task = photon_task(weights=(1.0, scatter_weight), sigma_per_mm_depth=(0.04, 0.4), scatter=table)
    w = wm.photon_work([task], [depth_table(50.0)], GRID)
    assert w.scatter_reads == reads
    assert w.beamlet_terms == 24 ** 2  # the direct component only
    direct = wm.photon_work([photon_task()], [depth_table(50.0)], GRID)
    assert w.bytes_operand - direct.bytes_operand == IN_REACH * 2 * 4 + reads * (2 + 8) * 4


def test_tiled_erf_count_matches_the_kernel_loops():
    """ni + n_i + n_i (nj + n_j) erf calls: the tiled loops of photon_bev_dose, transcribed."""
    def count(ni, nj, tile):
        calls = 0
        for ib in range(0, ni, tile):
            ti = min(tile, ni - ib)
            calls += ti + 1
            for jb in range(0, nj, tile):
                calls += min(tile, nj - jb) + 1
        return calls

    ni, nj = np.array([5, 1, 64, 65, 130, 0, 3]), np.array([3, 70, 64, 1, 129, 4, 0])
    for tile in (2, 64, 512):
        lat = wm._lateral(ni, nj, tile)
        live = (ni > 0) & (nj > 0)
        assert lat["u_edges"] + lat["v_edges"] == sum(count(a, b, tile) for a, b in zip(ni[live], nj[live]))
        assert lat["terms"] == int((ni * nj).sum())


# Spots at u = -10, -5, .., 10 mm within reach 12 mm (sigma 2 mm) of u = -25 .. 25 mm (kernel:
# i0 = ceil((u - 12 + 10) / 5), i1 = floor((u + 12 + 10) / 5), clamped to 0 .. 4): 0 1 2 3 4 5 4 3 2 1 0.
def proton_task(idd_rows=(1.0,)) -> ProtonBeamTask:
    layers = tuple(ProtonLayerTask(energy_index=e, energy_mev=100.0, u0_mm=-10.0, du_mm=5.0, v0_mm=-10.0, dv_mm=5.0,
                                   weights_gp=np.ones((5, 5))) for e in range(len(idd_rows)))
    return ProtonBeamTask(**LATTICE, layers=layers, depth_step_mm=10.0,
                          idd_gy_mm2_per_gp=np.array([np.full(NODES, v) for v in idd_rows]),
                          sigma_mm=np.full((len(idd_rows), NODES), 2.0))


def test_proton_counts_of_one_layer_on_a_plane():
    w = wm.proton_work([proton_task()], [depth_table(50.0)], GRID)
    assert (w.pairs_in_reach, w.pairs_outside, w.pairs_zero_depth_dose) == (IN_REACH, OUTSIDE, 0)
    assert (w.lateral_sums, w.beamlet_terms) == (81, 25 * 25)
    assert w.exp_evaluations == 2 * 9 * 25  # ni along u plus nj along v per non-empty window
    assert w.erf_evaluations == w.scatter_reads == 0
    assert w.flops_sp == (450 * (W["expf"] + W["gauss_argument_sp"]) + (625 + 9 * 25) * W["multiply_add_sp"]
                          + 81 * W["proton_layer_tail_sp"] + 169)


def test_proton_layer_with_zero_idd_at_the_depth_does_no_lateral_work():
    only_zero = wm.proton_work([proton_task(idd_rows=(0.0,))], [depth_table(50.0)], GRID)
    assert only_zero.pairs_zero_depth_dose == IN_REACH
    assert only_zero.exp_evaluations == 0
    both = wm.proton_work([proton_task(idd_rows=(1.0, 0.0))], [depth_table(50.0)], GRID)
    assert both.pairs_zero_depth_dose == 0
    assert both.exp_evaluations == 450


def _scalar_photon_counts(task, table, grid):
    """erf calls, beamlet terms and scatter reads of photon_point_dose, voxel by voxel (one CPU tile)."""
    table = np.asarray(table, dtype=np.float64)
    tdd, cw, cs = (np.asarray(a, dtype=np.float32)
                   for a in (task.depth_dose_gy_per_mu, task.component_weight, task.component_sigma_mm))

    def lerp(t, d):
        f = min(max(d / task.depth_step_mm, 0.0), t.size - 1.0)
        i = min(math.floor(f), t.size - 2)
        return np.float32((1.0 - (f - i)) * float(t[i]) + (f - i) * float(t[i + 1]))

    erf = terms = reads = 0
    z, y, x = grid.coordinates_mm()
    for pz in z.ravel():
        for py in y.ravel():
            for px in x.ravel():
                hit, u, v, zs, d = _bev_depth(task, table, np.array([[px, py, pz]]))
                if not hit[0] or lerp(tdd, d[0]) == 0:
                    continue
                for k in range(cw.shape[0]):
                    if lerp(cw[k], d[0]) == 0:
                        continue
                    if k >= task.n_direct:
                        reads += 1
                        continue
                    reach = CUTOFF_SIGMA * float(lerp(cs[k], d[0])) * task.sad_mm / zs[0]
                    nbv, nbu = task.weights_mu.shape
                    i0 = max(math.floor((u[0] - reach - task.edge_u0_mm) / task.beamlet_du_mm), 0)
                    i1 = min(math.floor((u[0] + reach - task.edge_u0_mm) / task.beamlet_du_mm), nbu - 1)
                    j0 = max(math.floor((v[0] - reach - task.edge_v0_mm) / task.beamlet_dv_mm), 0)
                    j1 = min(math.floor((v[0] + reach - task.edge_v0_mm) / task.beamlet_dv_mm), nbv - 1)
                    if i0 > i1 or j0 > j1:
                        continue
                    erf += (i1 - i0 + 2) + (j1 - j0 + 2)
                    terms += (i1 - i0 + 1) * (j1 - j0 + 1)
    return erf, terms, reads


def test_photon_counts_match_a_scalar_transcription_on_a_machine_beam():
    """A real 6 MV beam (primary summed directly, phantom scatter from the table) on a small water box."""
    patient = se.phantoms.water_box(size_xyz_mm=48.0, spacing_xyz_mm=6.0)
    beam = se.plan.open_field(se.load_machine("photon_6mv"), patient, field_mm=(20.0, 30.0), gantry_deg=30.0,
                              beamlet_mm=5.0)
    (task,) = prepare_photon_tasks([beam], patient.grid)
    assert task.scatter is not None and task.n_direct == 1
    table = radiological_depth(patient.density(), patient.grid, task)
    w = wm.photon_work([task], [table], patient.grid)
    assert (w.erf_evaluations, w.beamlet_terms, w.scatter_reads) == _scalar_photon_counts(task, table, patient.grid)
    assert w.beamlet_terms > 0 and w.scatter_reads > 0


def test_pairs_in_reach_match_the_reference_footprint_test():
    case_patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=8.0)
    beams = se.plan.conformal_beams(case_patient, "PTV", se.load_machine("photon_6mv"), gantry_deg=[0.0, 100.0])
    grid = case_patient.grid
    work = wm.dose_work(beams, case_patient, depth_backend="numpy")
    z, y, x = grid.coordinates_mm()
    pts = np.stack([np.broadcast_to(c, grid.shape_zyx).ravel() for c in (x, y, z)], axis=1)
    hits = 0
    for task in prepare_photon_tasks(beams, grid):
        table = radiological_depth(case_patient.density(), grid, task)
        hits += int(_bev_depth(task, table, pts)[0].sum())
    assert work.voxel_beam_pairs == 2 * grid.size
    assert work.pairs_in_reach == hits
    gpu = wm.dose_work(beams, case_patient, target="gpu", depth_backend="numpy")
    assert gpu.erf_evaluations >= work.erf_evaluations  # v edges recomputed per u tile
    assert gpu.beamlet_terms == work.beamlet_terms


def test_dose_work_rejects_an_unknown_target():
    patient = se.phantoms.water_box(size_xyz_mm=30.0, spacing_xyz_mm=6.0)
    beam = se.plan.open_field(se.load_machine("photon_6mv"), patient, field_mm=(10.0, 10.0))
    with pytest.raises(ValueError, match="'tpu'"):
        wm.dose_work([beam], patient, target="tpu")


def test_work_adds_up_over_fields():
    a, b = wm.KernelWork(erf_evaluations=2, flops_sp=3), wm.KernelWork(erf_evaluations=5, flops_dp=7)
    total = a + b
    assert (total.erf_evaluations, total.flops) == (7, 10)
    assert total.as_dict()["flops"] == 10


def test_counts_match_the_instrumented_kernels(tmp_path):
    """tests/kernels/work_counts.cpp runs csrc/physics over every voxel with erf_fast and expf counted:
    the pairs in reach and the erf and exp calls of the model must be the kernels' own, for a photon
    beam (whole-beam tile and tiles of 4 beamlets) and a proton beam."""
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")
    csrc = Path(__file__).resolve().parents[2] / "csrc"
    if compiler is None or not (csrc / "physics" / "photon.h").is_file():
        pytest.skip("needs a C++ compiler and the csrc tree")
    exes = {}
    for tile in (None, 4):
        exes[tile] = tmp_path / f"counts_{tile}"
        define = [f"-DSFRT_LATERAL_TILE={tile}"] if tile else []
        subprocess.run([compiler, "-std=c++17", "-O1", *define, f"-I{csrc}",
                        str(Path(__file__).with_name("work_counts.cpp")), "-o", str(exes[tile])],
                       check=True, timeout=120, capture_output=True)

    def kernel_counts(kind, arrays, tile=None):
        for name, array in arrays.items():
            np.ascontiguousarray(array).tofile(tmp_path / f"{name}.bin")
        out = subprocess.run([str(exes[tile]), kind], cwd=tmp_path, check=True, timeout=60, capture_output=True,
                             text=True).stdout
        return tuple(int(v) for v in out.split())

    cpp = se.get_backend("cpp")
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=8.0)
    machine = se.load_machine("photon_6mv")
    beam = se.plan.conformal_beams(patient, "PTV", machine, gantry_deg=[40.0], couch_deg=[15.0])[0]
    (task,) = prepare_photon_tasks([beam], patient.grid)
    density, grid_pack, params, weights, tdd, cw, cs, scatter = compiled_arguments(patient.density(), patient.grid,
                                                                                   [task])
    table = cpp.radiological_depth(density, patient.grid, task)
    arrays = {"grid": grid_pack, "beam": params[0], "table": table, "weights": weights[0], "tdd": tdd[0],
              "cw": cw[0], "cs": cs[0], "scatter": scatter[0]}
    for tile in (None, 4):
        w = wm.photon_work([task], [table], patient.grid, lateral_tile=tile)
        assert kernel_counts("photon", arrays, tile) == (w.pairs_in_reach, w.erf_evaluations, 0)
        assert w.erf_evaluations > 1000

    proton = se.plan.open_field(se.load_machine("proton_generic"), patient, field_mm=(40.0, 30.0), gantry_deg=250.0,
                                couch_deg=15.0, energy_mev=120.0)
    (ptask,) = prepare_proton_tasks([proton], patient.grid)
    rsp, grid_pack, params, layers, weights, idd, sigma = compiled_proton_arguments(patient.stopping_power(),
                                                                                   patient.grid, [ptask])
    table = cpp.radiological_depth(rsp, patient.grid, ptask)
    w = wm.proton_work([ptask], [table], patient.grid)
    arrays = {"grid": grid_pack, "beam": params[0], "table": table, "layers": layers[0], "weights": weights[0],
              "idd": idd[0], "sigma": sigma[0]}
    assert kernel_counts("proton", arrays) == (w.pairs_in_reach, 0, w.exp_evaluations)
    assert w.exp_evaluations > 1000
