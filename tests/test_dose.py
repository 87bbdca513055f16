"""compute_dose: input validation, the Dose result, and linearity on the reference backend."""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine import PlanError
from sfrt_engine.plan import Beam


@pytest.fixture(scope="module")
def box() -> se.Patient:
    # 4 mm voxels over 60 x 80 x 40 mm: a few thousand voxels, fast on the reference
    return se.phantoms.water_box(size_xyz_mm=(60.0, 80.0, 40.0), spacing_xyz_mm=4.0)


@pytest.fixture(scope="module")
def field(machine, box) -> Beam:
    return se.plan.open_field(machine, box, field_mm=(30.0, 30.0), beamlet_mm=10.0)


def test_result_is_float64_on_the_patient_grid(box, field):
    dose = se.compute_dose(field, box, backend="numpy")
    assert isinstance(dose, se.Dose)
    assert dose.gy.dtype == np.float64 and dose.gy.shape == box.grid.shape_zyx
    assert dose.grid is box.grid and dose.backend == "numpy"
    assert dose.beams == ("open",)
    assert dose.max_gy == dose.gy.max() > 0
    assert dose.seconds >= 0.0
    iz, iy, ix = np.unravel_index(np.argmax(dose.gy), dose.gy.shape)
    point = (box.grid.axis_mm("x")[ix], box.grid.axis_mm("y")[iy], box.grid.axis_mm("z")[iz])
    assert dose.at(point) == dose.max_gy


def test_compiled_backend_result_is_float64(box, field, backend):
    dose = se.compute_dose([field], box, backend=backend)
    assert dose.gy.dtype == np.float64 and dose.backend == backend


def test_empty_beam_list_rejected(box):
    with pytest.raises(PlanError, match="at least one beam"):
        se.compute_dose([], box, backend="numpy")


def test_wrong_types_rejected(box, field):
    with pytest.raises(TypeError, match=r"beams\[1\] is a str"):
        se.compute_dose([field, "beam"], box, backend="numpy")
    with pytest.raises(TypeError, match="patient"):
        se.compute_dose(field, box.hu, backend="numpy")
    with pytest.raises(ValueError, match="unknown backend"):
        se.compute_dose(field, box, backend="gpu-please")


def test_source_inside_grid_raises_plan_error(machine, box):
    # isocentre 1000 mm posterior of the origin: the gantry-0 source lands at the grid centre
    beam = Beam(machine, (0.0, 1000.0, 0.0), 0.0, np.ones((1, 1)), 10.0, (0.0, 0.0), name="inside")
    with pytest.raises(PlanError, match="'inside'.*inside or within") as info:
        se.compute_dose(beam, box, backend="numpy")
    # the message gives the source position as plain numbers, not numpy scalar reprs
    assert "source at (0.0, 0.0, 0.0) mm" in str(info.value)


def test_beam_missing_the_grid_gives_zero_dose(machine, box):
    # a 10 mm field 500 mm to the patient's left of the grid
    beam = Beam(machine, (500.0, 0.0, 0.0), 0.0, np.ones((1, 1)), 10.0, (0.0, 0.0))
    dose = se.compute_dose(beam, box, backend="numpy")
    assert dose.gy.shape == box.grid.shape_zyx and not dose.gy.any()


def test_dose_is_linear_in_weights_and_additive_over_beams(machine, box, field):
    # DESIGN 4: dose is linear in beamlet weights, so components can be recombined
    other = se.plan.open_field(machine, box, field_mm=(20.0, 40.0), gantry_deg=90.0, beamlet_mm=10.0)
    d1 = se.compute_dose(field, box, backend="numpy").gy
    d2 = se.compute_dose(other, box, backend="numpy").gy
    both = se.compute_dose([field, other.with_weights(3.0 * other.weights_mu)], box, backend="numpy").gy
    # float64 sums in a different order: 1e-12 of the maximum
    np.testing.assert_allclose(both, d1 + 3.0 * d2, rtol=0, atol=1e-12 * both.max())


def test_dose_is_finite_and_non_negative(machine, box):
    beam = se.plan.open_field(machine, box, field_mm=(30.0, 30.0), gantry_deg=35.0, couch_deg=20.0, beamlet_mm=10.0)
    dose = se.compute_dose(beam, box, backend="numpy").gy
    assert np.all(np.isfinite(dose)) and np.all(dose >= 0.0) and dose.max() > 0.0
