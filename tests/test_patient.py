"""Patient, StructureSet and HUCalibration: validation at the boundary (DESIGN 8)."""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine import DEFAULT_HU_TO_DENSITY, Grid, GridError, HUCalibration, Patient, StructureError


@pytest.fixture
def grid() -> Grid:
    return Grid((2, 3, 4), spacing_xyz_mm=2.0)


def test_hu_is_stored_as_float32_copy(grid):
    src = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    p = Patient(grid, src)
    assert p.hu.dtype == np.float32 and p.hu.flags.c_contiguous
    src[0, 0, 0] = 999
    assert p.hu[0, 0, 0] == 0  # the patient holds its own copy


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_hu_rejected(grid, bad):
    hu = np.zeros(grid.shape_zyx)
    hu[1, 2, 3] = bad
    with pytest.raises(GridError, match="1 voxels are NaN or infinite"):
        Patient(grid, hu)


def test_hu_shape_mismatch_names_both_shapes(grid):
    with pytest.raises(GridError) as info:
        Patient(grid, np.zeros((4, 3, 2)))
    assert "(4, 3, 2)" in str(info.value) and "(2, 3, 4)" in str(info.value)


def test_hu_non_numeric_rejected(grid):
    with pytest.raises(TypeError, match="hu"):
        Patient(grid, np.full(grid.shape_zyx, "a"))


def test_hu_writable_in_place_changes_density(grid):
    p = Patient(grid, np.zeros(grid.shape_zyx))
    p.hu[0, 1, 2] = -1000.0
    rho = p.density()
    assert rho[0, 1, 2] == 0.0
    assert rho.sum() == pytest.approx(grid.size - 1)


def test_density_rejects_nan_written_in_place(grid):
    p = Patient(grid, np.zeros(grid.shape_zyx))
    p.hu[0, 0, 0] = np.nan
    with pytest.raises(GridError, match="NaN"):
        p.density()


def test_patient_needs_a_grid():
    with pytest.raises(TypeError, match="Grid"):
        Patient((2, 3, 4), np.zeros((2, 3, 4)))


def test_structures_validate_dtype_and_shape(grid):
    p = Patient(grid, np.zeros(grid.shape_zyx))
    with pytest.raises(TypeError, match="astype\\(bool\\)"):
        p.structures["PTV"] = np.ones(grid.shape_zyx, dtype=np.uint8)
    with pytest.raises(GridError, match="structure 'PTV'"):
        p.structures["PTV"] = np.ones((2, 3, 5), dtype=bool)
    with pytest.raises(TypeError):
        p.structures[""] = np.ones(grid.shape_zyx, dtype=bool)
    with pytest.raises(TypeError, match="structure 'GTV'"):
        Patient(grid, np.zeros(grid.shape_zyx), structures={"GTV": np.zeros(grid.shape_zyx)})


def test_structure_lookup_by_name_and_volume(grid):
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    mask[0, :2, :3] = True
    p = Patient(grid, np.zeros(grid.shape_zyx), structures={"GTV": mask})
    assert p.structures["GTV"].dtype == bool
    # 6 voxels of 2 mm cubed = 48 mm^3 = 0.048 cm^3
    assert p.structures.volume_cc("GTV") == pytest.approx(0.048)
    with pytest.raises(StructureError, match="known structures: GTV"):
        p.structures["PTV"]
    # StructureError is a KeyError, so `in` and .get keep working
    assert "PTV" not in p.structures
    del p.structures["GTV"]
    assert len(p.structures) == 0


def test_hu_calibration_interpolates_and_clamps():
    cal = HUCalibration(hu=(-1000.0, 0.0, 1000.0), density=(0.0, 1.0, 1.5))
    np.testing.assert_allclose(cal([-2000.0, -500.0, 0.0, 500.0, 3000.0]), [0.0, 0.5, 1.0, 1.25, 1.5])
    assert cal(np.zeros((2, 2))).shape == (2, 2)


def test_default_calibration_anchor_points():
    # air and water by definition; 1300 HU cortical bone -> 1.78 (ICRU 46 adult cortical bone);
    # -700 HU lung on the air-water line -> 0.3
    np.testing.assert_allclose(DEFAULT_HU_TO_DENSITY([-1000.0, 0.0, 1300.0, -700.0]), [0.0, 1.0, 1.78, 0.3],
                               rtol=1e-12)


@pytest.mark.parametrize(
    ("hu", "density", "match"),
    [
        ((0.0,), (1.0,), "equal length >= 2"),
        ((0.0, 1.0), (1.0,), "equal length"),
        ((0.0, 0.0), (1.0, 1.0), "strictly increasing"),
        ((0.0, 1.0), (1.0, -1.0), ">= 0"),
        ((0.0, np.nan), (1.0, 1.0), "finite"),
    ],
)
def test_hu_calibration_validation(hu, density, match):
    with pytest.raises(ValueError, match=match):
        HUCalibration(hu=hu, density=density, name="t")


def test_patient_uses_given_calibration(grid):
    cal = HUCalibration(hu=(-1.0, 1.0), density=(2.0, 2.0))
    p = Patient(grid, np.zeros(grid.shape_zyx), calibration=cal)
    assert np.all(p.density() == 2.0)
