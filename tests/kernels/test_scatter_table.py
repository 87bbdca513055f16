"""The scatter table (DESIGN 9 fast path, ``sfrt_engine.kernels._task.ScatterTable``).

The wide lateral component's beamlet sum is read from a per-beam table instead of
being summed voxel by voxel. Checked here:

- the table's nodes hold the beamlet sum itself (against the closed form of one
  beamlet and of a modulated map, written out independently);
- its sigma ladder covers every sigma a voxel can ask for (no clamping);
- its parameters meet the documented worst-case error bound;
- the dose with the table departs from direct summation by at most 0.5 % of the
  maximum (DESIGN 9), on open, modulated, heterogeneous, non-coplanar and arc cases,
  in the reference and in the C++ kernels;
- the compiled kernels agree with the reference in both forms (parity, DESIGN 6);
- the bindings refuse a table of the wrong shape.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import erf

import sfrt_engine as se
from sfrt_engine.kernels import backend_numpy
from sfrt_engine.kernels._task import (
    SCATTER_TABLE_LEVEL_RATIO,
    SCATTER_TABLE_TOLERANCE,
    compiled_arguments,
    prepare_photon_tasks,
)

TABLE_TOL = 5e-3  # of the maximum dose: DESIGN 9's bound on the fast path's departure from direct summation
PARITY_TOL = 1e-4  # of the maximum dose (DESIGN 6)


@pytest.fixture(scope="module")
def machine():
    return se.load_machine("photon_6mv")


def _cpp_or_skip():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(reason)
    from sfrt_engine.kernels import _core

    return _core


def _doses(patient, beams):
    """(numpy with table, numpy direct, tasks with table, tasks direct) over the patient's grid."""
    tab = prepare_photon_tasks(beams, patient.grid)
    direct = prepare_photon_tasks(beams, patient.grid, tabulate_scatter=False)
    engine = backend_numpy.get()
    return (engine.photon_dose(patient.density(), patient.grid, tab),
            engine.photon_dose(patient.density(), patient.grid, direct), tab, direct)


def _box_profile(x, lo, hi, s):
    return 0.5 * (erf((x - lo) / (math.sqrt(2.0) * s)) - erf((x - hi) / (math.sqrt(2.0) * s)))


# -- the table itself ---------------------------------------------------------


def test_the_generic_machine_tabulates_its_scatter_not_its_primary(machine):
    for spacing in (2.5, 5.0):
        p = se.phantoms.water_box(size_xyz_mm=(200.0, 200.0, 200.0), spacing_xyz_mm=spacing)
        task, = prepare_photon_tasks([se.plan.open_field(machine, p, field_mm=(80.0, 80.0))], p.grid)
        assert task.scatter is not None and task.n_direct == 1
        assert task.pack()[36] == 1  # n_direct travels to the kernels


def test_nodes_hold_the_beamlet_sum_of_one_beamlet(machine):
    # one 10 x 20 mm beamlet of 2 MU: F(u, v, s) = 2 box(u) box(v), the closed form of an erf box
    p = se.phantoms.water_box(size_xyz_mm=(150.0, 150.0, 150.0), spacing_xyz_mm=3.0)
    beam = se.plan.open_field(machine, p, field_mm=(10.0, 20.0), beamlet_mm=10.0)
    beam = beam.with_weights(np.full(beam.weights_mu.shape, 2.0))
    task, = prepare_photon_tasks([beam], p.grid)
    t = task.scatter
    u = t.u0_mm + t.du_mm * np.arange(t.nu)
    v = t.v0_mm + t.dv_mm * np.arange(t.nv)
    s = t.s0_mm * np.exp(t.log_ratio * np.arange(t.n_levels))
    (u0, u1, v0, v1) = beam.open_extent_uv_mm()
    assert (u1 - u0, v1 - v0) == pytest.approx((10.0, 20.0))
    expected = 2.0 * _box_profile(v[None, :, None], v0, v1, s[:, None, None]) * \
        _box_profile(u[None, None, :], u0, u1, s[:, None, None])
    np.testing.assert_allclose(t.values, expected, rtol=0, atol=1e-13)


def test_nodes_hold_the_beamlet_sum_of_a_modulated_map(machine):
    rng = np.random.default_rng(7)
    p = se.phantoms.water_box(size_xyz_mm=(150.0, 150.0, 150.0), spacing_xyz_mm=3.0)
    beam = se.plan.open_field(machine, p, field_mm=(40.0, 30.0), beamlet_mm=5.0)
    weights = rng.uniform(0.0, 2.0, beam.weights_mu.shape) * (beam.weights_mu > 0)
    task, = prepare_photon_tasks([beam.with_weights(weights)], p.grid)
    t = task.scatter
    nbv, nbu = task.weights_mu.shape
    a = task.edge_u0_mm + task.beamlet_du_mm * np.arange(nbu + 1)
    b = task.edge_v0_mm + task.beamlet_dv_mm * np.arange(nbv + 1)
    for level, iv, iu in [(0, 0, 0), (t.n_levels - 1, t.nv // 2, t.nu // 2), (t.n_levels // 3, t.nv // 3, t.nu - 5)]:
        s = t.s0_mm * math.exp(t.log_ratio * level)
        uu, vv = t.u0_mm + iu * t.du_mm, t.v0_mm + iv * t.dv_mm
        direct = sum(task.weights_mu[j, i] * _box_profile(uu, a[i], a[i + 1], s) * _box_profile(vv, b[j], b[j + 1], s)
                     for j in range(nbv) for i in range(nbu))
        assert t.values[level, iv, iu] == pytest.approx(direct, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("gantry, couch", [(0.0, 0.0), (50.0, 0.0), (300.0, 25.0)])
def test_the_sigma_ladder_covers_every_voxel(machine, gantry, couch):
    p = se.phantoms.water_box(size_xyz_mm=(160.0, 140.0, 180.0), spacing_xyz_mm=4.0)
    task, = prepare_photon_tasks([se.plan.open_field(machine, p, field_mm=(60.0, 60.0), gantry_deg=gantry,
                                                     couch_deg=couch)], p.grid)
    t = task.scatter
    z, y, x = p.grid.coordinates_mm()
    pts = np.stack(np.broadcast_arrays(x, y, z), axis=-1).reshape(-1, 3)
    zs = task.sad_mm - (pts - task.isocenter_xyz_mm) @ task.axis_source
    sig = task.component_sigma_mm[t.n_direct:]
    s_min, s_max = sig.min() * task.sad_mm / zs.max(), sig.max() * task.sad_mm / zs.min()
    assert t.s0_mm <= s_min * (1 + 1e-12)
    assert t.s0_mm * math.exp(t.log_ratio * (t.n_levels - 1)) >= s_max * (1 - 1e-12)
    assert t.log_ratio == pytest.approx(math.log(SCATTER_TABLE_LEVEL_RATIO))
    # the lattice covers the footprint: no voxel that gets dose reads a clamped node
    u_lo, u_hi, v_lo, v_hi = task.footprint_uv_mm
    assert t.u0_mm <= u_lo and t.u0_mm + (t.nu - 1) * t.du_mm >= u_hi
    assert t.v0_mm <= v_lo and t.v0_mm + (t.nv - 1) * t.dv_mm >= v_hi


def test_the_table_meets_its_documented_error_bound(machine):
    p = se.phantoms.water_box(size_xyz_mm=(200.0, 200.0, 200.0), spacing_xyz_mm=2.5)
    task, = prepare_photon_tasks([se.plan.open_field(machine, p, field_mm=(80.0, 80.0))], p.grid)
    t = task.scatter
    # L1 norms of the Gaussian's second derivatives, computed here by quadrature
    lateral = quad(lambda x: abs(x * x - 1.0) * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi), -np.inf, np.inf)[0]
    ladder = quad(lambda x: abs(4.0 * x * x - 12.0 * x + 4.0) * np.exp(-x), 0.0, np.inf)[0]
    assert lateral == pytest.approx(4.0 * 0.24197072451914337, rel=1e-9)  # 4 phi(1)
    z_far = task.ray_z0_mm + (task.ray_nz - 1) * task.ray_dz_mm
    for k in range(t.n_direct, task.component_weight.shape[0]):
        a, s = task.component_weight[k], task.component_sigma_mm[k] * task.sad_mm / z_far
        bound = np.max(a / s ** 2) * (t.du_mm ** 2 + t.dv_mm ** 2) / 8 * lateral + a.max() * t.log_ratio ** 2 / 8 * ladder
        assert bound <= SCATTER_TABLE_TOLERANCE * (1 + 1e-6)


# -- the dose with the table against direct summation -------------------------


def _random_field(machine, patient, rng, **kw):
    beam = se.plan.open_field(machine, patient, **kw)
    return beam.with_weights(rng.uniform(0.2, 1.8, beam.weights_mu.shape) * (beam.weights_mu > 0))


def _cases(machine):
    rng = np.random.default_rng(11)
    water = se.phantoms.water_box(size_xyz_mm=(200.0, 200.0, 200.0), spacing_xyz_mm=4.0)
    thigh = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    slab = se.phantoms.slab(size_xyz_mm=(100.0, 160.0, 80.0), spacing_xyz_mm=(4.0, 3.0, 4.0),
                            slabs=(("LUNG", 30.0, 70.0, -700.0), ("BONE", 80.0, 100.0, 1300.0)))
    return {
        "open 100x100": (water, [se.plan.open_field(machine, water, field_mm=(100.0, 100.0))]),
        "small 20x20": (water, [se.plan.open_field(machine, water, field_mm=(20.0, 20.0), beamlet_mm=2.5)]),
        "modulated, couch and collimator": (water, [_random_field(machine, water, rng, field_mm=(80.0, 60.0),
                                                                  gantry_deg=40.0, couch_deg=20.0,
                                                                  collimator_deg=30.0)]),
        "lung and bone slabs": (slab, [se.plan.open_field(machine, slab, field_mm=(60.0, 60.0), gantry_deg=10.0)]),
        "sarcoma, 3 beams": (thigh, se.plan.conformal_beams(thigh, "PTV", machine, gantry_deg=[0.0, 120.0, 240.0])),
        "sarcoma, 6-CP arc": (thigh, se.plan.conformal_arc(thigh, "PTV", machine, start_deg=181.0, stop_deg=179.0,
                                                           spacing_deg=60.0)),
    }


def test_table_dose_is_within_half_a_percent_of_direct_summation(machine):
    worst = {}
    for name, (patient, beams) in _cases(machine).items():
        tab, direct, tasks, _ = _doses(patient, beams)
        assert all(t.scatter is not None for t in tasks), name
        worst[name] = float(np.abs(tab - direct).max() / direct.max())
    print("table vs direct summation, max |diff| / max dose:", {k: f"{v:.2e}" for k, v in worst.items()})
    assert max(worst.values()) <= TABLE_TOL, worst


def test_compiled_kernels_match_the_reference_with_and_without_the_table(machine):
    _cpp_or_skip()
    cpp = se.kernels.get_backend("cpp")
    patient, beams = _cases(machine)["modulated, couch and collimator"]
    tab, direct, tasks_tab, tasks_direct = _doses(patient, beams)
    got_tab = cpp.photon_dose(patient.density(), patient.grid, tasks_tab)
    got_direct = cpp.photon_dose(patient.density(), patient.grid, tasks_direct)
    assert np.abs(got_tab - tab).max() <= PARITY_TOL * tab.max()
    assert np.abs(got_direct - direct).max() <= PARITY_TOL * direct.max()
    # and the two forms differ in the compiled kernels as they do in the reference
    assert np.abs(got_tab - got_direct).max() <= TABLE_TOL * direct.max()


def test_the_table_keeps_dose_linear_in_the_weights(machine):
    p = se.phantoms.water_box(size_xyz_mm=(120.0, 120.0, 120.0), spacing_xyz_mm=4.0)
    beam = se.plan.open_field(machine, p, field_mm=(40.0, 40.0), gantry_deg=20.0)
    one = se.compute_dose(beam, p, backend="numpy").gy
    three = se.compute_dose(beam.with_weights(3.0 * beam.weights_mu), p, backend="numpy").gy
    np.testing.assert_allclose(three, 3.0 * one, rtol=0, atol=1e-12 * three.max())


# -- bindings ----------------------------------------------------------------


def test_bindings_refuse_a_scatter_table_of_the_wrong_shape(machine):
    core = _cpp_or_skip()
    p = se.phantoms.water_box(size_xyz_mm=(60.0, 60.0, 60.0), spacing_xyz_mm=4.0)
    tasks = prepare_photon_tasks([se.plan.open_field(machine, p, field_mm=(30.0, 30.0))], p.grid)
    args = list(compiled_arguments(p.density(), p.grid, tasks))
    good = args[7][0]
    args[7] = [np.ascontiguousarray(good[:, :-1, :])]
    with pytest.raises(ValueError, match=r"beam 0: scatter table shape != \(tab_nlev, tab_nv, tab_nu\)"):
        core.photon_dose(*args)
    # a task without a tabulated component takes an empty table only
    direct = prepare_photon_tasks([se.plan.open_field(machine, p, field_mm=(30.0, 30.0))], p.grid,
                                  tabulate_scatter=False)
    args = list(compiled_arguments(p.density(), p.grid, direct))
    args[7] = [good]
    with pytest.raises(ValueError, match=r"no tabulated component"):
        core.photon_dose(*args)
    # a pack that claims a table without a lattice
    packed = tasks[0].pack()
    packed[38] = 0.0  # tab_du
    args = list(compiled_arguments(p.density(), p.grid, tasks))
    args[2] = [packed]
    with pytest.raises(ValueError, match=r"scatter table lattice"):
        core.photon_dose(*args)


def test_a_task_without_a_wide_component_has_no_table(machine):
    # a machine whose only component is narrow: every component is summed directly
    p = se.phantoms.water_box(size_xyz_mm=(60.0, 60.0, 60.0), spacing_xyz_mm=4.0)
    task, = prepare_photon_tasks([se.plan.open_field(machine, p, field_mm=(30.0, 30.0))], p.grid)
    narrow = dataclasses.replace(task, component_weight=task.component_weight[:1],
                                 component_sigma_mm=task.component_sigma_mm[:1], scatter=None)
    from sfrt_engine.kernels._task import scatter_table

    assert scatter_table(narrow) is None
    assert narrow.n_direct == 1 and narrow.scatter_values().shape == (0, 1, 1)
