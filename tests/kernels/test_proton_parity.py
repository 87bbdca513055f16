"""Proton dose of every backend against the NumPy reference (DESIGN 5.3, 6; STYLE 9 "parity").

Tolerance as in test_parity.py: the compiled kernels sum spots in float32 (with
expf), so DESIGN 6 asks for agreement within 1e-4 of the maximum dose; ray tables
accumulate in float64 from float32 stopping powers, 1e-4 relative with room to spare.
The cases have no symmetry to hide behind: oblique and couch-rotated beams, random
spot weights with holes (zero-weight spots), several energy layers (one behind a
range shifter), and bone and lung in the path, so that the Bragg peaks sit in
heterogeneous tissue.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.kernels._proton_task import prepare_proton_tasks
from sfrt_engine.plan.protons import ProtonBeam, SpotLayer

DOSE_TOL = 1e-4  # of the maximum reference dose (DESIGN 6)
DEPTH_RTOL = 1e-4
DEPTH_ATOL_MM = 1e-4  # ray-table entries just inside the grid are near zero


@functools.cache
def _machine():
    return se.load_machine("proton_generic")


def _layers(energies_mev, shape=(9, 11), spacing_mm=(4.0, 5.0), seed: int = 0,
            range_shifter_mm: float = 0.0) -> tuple[SpotLayer, ...]:
    """Spot layers with random weights in [0.5, 1.5) Gp and about one spot in six switched off; the
    first layer behind ``range_shifter_mm`` of water-equivalent range shifter."""
    rng = np.random.default_rng(seed)
    nv, nu = shape
    origin = (-0.5 * (nu - 1) * spacing_mm[0], -0.5 * (nv - 1) * spacing_mm[1])
    layers = []
    for k, energy in enumerate(energies_mev):
        w = rng.uniform(0.5, 1.5, shape)
        w[rng.uniform(size=shape) < 1.0 / 6.0] = 0.0
        layers.append(SpotLayer(energy, w, spacing_mm, origin, range_shifter_mm=range_shifter_mm if k == 0 else 0.0))
    return tuple(layers)


def _block_phantom() -> se.Patient:
    """Water box with an off-centre cortical-bone block and a lung block."""
    p = se.phantoms.water_box(size_xyz_mm=(80.0, 120.0, 50.0), spacing_xyz_mm=2.5)
    z, y, x = p.grid.coordinates_mm()
    shape = p.grid.shape_zyx
    bone = np.broadcast_to((np.abs(x - 12.0) < 10.0) & (np.abs(y + 15.0) < 8.0) & (np.abs(z - 4.0) < 12.0), shape)
    lung = np.broadcast_to((np.abs(x + 15.0) < 12.0) & (np.abs(y - 5.0) < 15.0) & (np.abs(z) < 18.0), shape)
    p.hu[bone] = 1300.0
    p.hu[lung] = -700.0
    return p


@functools.cache
def _case(name: str):
    """(patient, proton beams) of a named case; built once per session."""
    m = _machine()
    if name == "oblique":
        p = _block_phantom()
        return p, [ProtonBeam(m, (0.0, 0.0, 0.0), 35.0, _layers((100.0, 110.0), seed=1), name="oblique")]
    if name == "couch":
        p = _block_phantom()
        layers = _layers((95.0, 105.0, 115.0), shape=(7, 10), seed=2, range_shifter_mm=15.0)
        return p, [ProtonBeam(m, (0.0, 5.0, 0.0), 60.0, layers, couch_deg=30.0, collimator_deg=15.0, name="couch")]
    if name == "heterogeneous":
        p = se.phantoms.slab(size_xyz_mm=(60.0, 150.0, 40.0), spacing_xyz_mm=(3.0, 2.0, 3.0),
                             slabs=(("LUNG", 20.0, 50.0, -700.0), ("BONE", 60.0, 75.0, 1300.0)))
        return p, [ProtonBeam(m, (0.0, 0.0, 0.0), 0.0, _layers((110.0, 120.0, 130.0), seed=3), name="ap"),
                   ProtonBeam(m, (0.0, 0.0, 0.0), 20.0, _layers((125.0,), shape=(5, 6), seed=4), name="oblique")]
    raise KeyError(name)


@functools.cache
def _reference_dose(name: str) -> np.ndarray:
    patient, beams = _case(name)
    return se.compute_dose(beams, patient, backend="numpy").gy


CASES = ["oblique", "couch", "heterogeneous"]


@pytest.mark.parametrize("case", CASES)
def test_dose_matches_reference(backend, case):
    patient, beams = _case(case)
    ref = _reference_dose(case)
    got = se.compute_dose(beams, patient, backend=backend)
    assert got.backend == backend and got.gy.dtype == np.float64
    # the case is what it claims: a Bragg peak inside the grid, well above the entrance dose
    assert ref.max() > 0.0 and np.count_nonzero(ref > 0.5 * ref.max()) > 10
    err = np.abs(got.gy - ref).max() / ref.max()
    assert err <= DOSE_TOL, f"{backend} vs numpy on proton case {case}: max |diff| = {err:.2e} of the maximum dose"


@pytest.mark.parametrize("case", CASES)
def test_ray_tables_match_reference(backend, case):
    """Proton packs traced by the photon trace path (same frame and ray-lattice fields) give the reference."""
    patient, beams = _case(case)
    rsp = patient.stopping_power()
    engine, reference = se.get_backend(backend), se.get_backend("numpy")
    tasks = prepare_proton_tasks(beams, patient.grid)
    assert len(tasks) == len(beams)
    for task in tasks:
        ref = reference.radiological_depth(rsp, patient.grid, task)
        got = np.asarray(engine.radiological_depth(rsp, patient.grid, task))
        assert got.shape == task.ray_shape == ref.shape
        assert ref.max() > 10.0  # the rays do cross the patient
        np.testing.assert_allclose(got, ref, rtol=DEPTH_RTOL, atol=DEPTH_ATOL_MM, err_msg=f"{backend} {task.name}")


def test_repeated_runs_are_bit_identical(backend):
    patient, beams = _case("couch")
    first = se.compute_dose(beams, patient, backend=backend).gy
    assert np.array_equal(first, se.compute_dose(beams, patient, backend=backend).gy)


def test_beams_add(backend):
    """Two beams in one call give the sum of the two single-beam doses (float32 rounding only)."""
    patient, beams = _case("heterogeneous")
    both = se.compute_dose(beams, patient, backend=backend).gy
    parts = sum(se.compute_dose(b, patient, backend=backend).gy for b in beams)
    np.testing.assert_allclose(both, parts, rtol=0, atol=1e-6 * both.max())


def test_dose_scales_with_spot_weights(backend):
    patient, beams = _case("oblique")
    base = se.compute_dose(beams, patient, backend=backend).gy
    doubled = se.compute_dose([b.scaled(2.0) for b in beams], patient, backend=backend).gy
    np.testing.assert_allclose(doubled, 2.0 * base, rtol=0, atol=1e-6 * doubled.max())
