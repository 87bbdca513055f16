"""Machine files, the loader and commissioning by fit_photon_machine (DESIGN 5.2)."""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources

import numpy as np
import pytest
from scipy.special import erf

import sfrt_engine as se
from sfrt_engine import MachineDataError, PhotonMachine, fit_photon_machine, load_machine
from sfrt_engine.machines import builtin_machines


def _builtin_json() -> dict:
    return json.loads((resources.files("sfrt_engine.machines") / "data" / "photon_6mv.json").read_text())


def test_load_builtin(machine):
    assert isinstance(machine, PhotonMachine)
    assert machine.name == "photon_6mv" and machine.modality == "photon"
    assert machine.sad_mm == 1000.0
    assert "photon_6mv" in builtin_machines()
    # lateral component weights are fractions of the broad-field dose (DESIGN 5.2)
    np.testing.assert_allclose(machine.component_weight.sum(axis=0), 1.0, atol=1e-9)
    assert np.all(machine.component_sigma_mm > 0)
    assert machine.max_depth_mm >= 400.0  # deep enough for any thigh or pelvis


def test_machine_tables_are_read_only(machine):
    with pytest.raises(ValueError):
        machine.depth_dose_gy_per_mu[0] = 1.0


def test_unknown_machine_lists_builtins():
    with pytest.raises(MachineDataError) as info:
        load_machine("photon_42mv")
    msg = str(info.value)
    assert "photon_42mv" in msg
    for name in builtin_machines():
        assert name in msg


def test_machine_from_user_file_matches_builtin(tmp_path, machine):
    raw = (resources.files("sfrt_engine.machines") / "data" / "photon_6mv.json").read_bytes()
    path = tmp_path / "my_linac.json"
    path.write_bytes(raw)
    user = load_machine(path)
    np.testing.assert_array_equal(user.depth_dose_gy_per_mu, machine.depth_dose_gy_per_mu)
    assert user.source_sha256 == hashlib.sha256(raw).hexdigest()


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x", "modality": ')
    with pytest.raises(MachineDataError, match="not valid JSON") as info:
        load_machine(path)
    assert str(path) in str(info.value)


def test_missing_key_names_the_file_and_key(tmp_path):
    data = _builtin_json()
    del data["sad_mm"]
    path = tmp_path / "nosad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(MachineDataError) as info:
        load_machine(path)
    assert str(path) in str(info.value) and "sad_mm" in str(info.value)


def test_bad_values_in_file_are_machine_data_errors(tmp_path):
    data = _builtin_json()
    data["sad_mm"] = "far"
    path = tmp_path / "badsad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(MachineDataError, match="badsad.json"):
        load_machine(path)


@pytest.mark.parametrize("top_level", ["[1, 2]", '{"name": "p", "modality": "proton"}'])
def test_unsupported_file_content(tmp_path, top_level):
    path = tmp_path / "other.json"
    path.write_text(top_level)
    with pytest.raises(MachineDataError, match="other.json"):
        load_machine(path)


def test_component_weights_must_sum_to_one(machine):
    w = np.array(machine.component_weight)
    w[0, 10] += 0.05
    with pytest.raises(MachineDataError, match="sum to 1"):
        PhotonMachine("bad", machine.sad_mm, machine.depth_step_mm, machine.depth_dose_gy_per_mu, w,
                      machine.component_sigma_mm, machine.component_names)


@pytest.mark.parametrize("sad", [0.0, -1000.0, np.nan])
def test_photon_machine_rejects_bad_sad(machine, sad):
    with pytest.raises(MachineDataError, match="sad_mm"):
        PhotonMachine("bad", sad, machine.depth_step_mm, machine.depth_dose_gy_per_mu, machine.component_weight,
                      machine.component_sigma_mm, machine.component_names)


# A user's 10 MV-like beam measured at a non-reference set-up (5 x 5 cm at SSD 90 cm), so the
# fit has to undo both the inverse-square law and the lateral integral of its own field.
USER_DEPTH_MM = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0, 200.0, 250.0, 300.0]
USER_PDD = [14.0, 60.0, 85.0, 95.0, 99.0, 100.0, 99.4, 96.5, 92.8, 83.5, 73.5, 57.5, 45.0, 35.0, 27.5]


@pytest.fixture(scope="module")
def user_machine() -> PhotonMachine:
    components = _builtin_json()["lateral"]["components"]
    return fit_photon_machine("user_10mv", sad_mm=1000.0, pdd_depth_mm=USER_DEPTH_MM, pdd_percent=USER_PDD,
                              field_mm=50.0, ssd_mm=900.0, components=components, gy_per_mu_at_dmax=0.008)


def test_fit_reproduces_its_input_pdd(user_machine):
    """Compute the commissioning field with the reference backend and read its PDD back."""
    # 1 mm along depth, 3 mm laterally with an odd count so a voxel centre is on the axis
    patient = se.phantoms.water_box(size_xyz_mm=(33.0, 352.0, 33.0), spacing_xyz_mm=(3.0, 1.0, 3.0))
    g = patient.grid
    beam = se.plan.open_field(user_machine, patient, field_mm=(50.0, 50.0), ssd_mm=900.0)
    dose = se.compute_dose(beam, patient, backend="numpy")
    nz, _, nx = g.shape_zyx
    assert g.axis_mm("x")[nx // 2] == 0.0 and g.axis_mm("z")[nz // 2] == 0.0
    cax = dose.gy[nz // 2, :, nx // 2]
    depth = g.axis_mm("y") - g.bounds_xyz_mm[1, 0]
    # absolute calibration: 0.008 Gy/MU at d_max; 0.2 % for reading the peak on a 1 mm grid
    assert cax.max() == pytest.approx(0.008, rel=2e-3)
    assert depth[np.argmax(cax)] == pytest.approx(25.0, abs=1.0)
    # PDD at the measured depths (the surface itself has no voxel centre). 0.5 percentage
    # points: linear interpolation between 1 mm voxel centres of the curved build-up
    # (h^2/8 * |PDD''|, PDD'' up to ~2 %/mm^2 near 5 mm) is the largest error.
    d = np.array(USER_DEPTH_MM[1:])
    pdd = 100.0 * np.interp(d, depth, cax) / 0.008
    np.testing.assert_allclose(pdd, USER_PDD[1:], atol=0.5)


def test_fit_extrapolates_beyond_last_point(user_machine):
    """Beyond the last measured depth the PDD continues with the attenuation of the last interval."""
    m = user_machine
    mu = np.log(USER_PDD[-2] / USER_PDD[-1]) / (USER_DEPTH_MM[-1] - USER_DEPTH_MM[-2])  # [1/mm]
    d = m.depth_mm
    # invert the documented model: reference field on axis = T(d) (SAD/(SSD+d))^2 L(d) with
    # L = sum_k A_k erf(h / (sqrt2 sigma_k))^2, h the physical half-width of the field at depth
    h = 0.5 * 50.0 * (900.0 + d) / 1000.0
    lateral = np.sum(m.component_weight * erf(h / (np.sqrt(2.0) * m.component_sigma_mm)) ** 2, axis=0)
    pdd = m.depth_dose_gy_per_mu * (1000.0 / (900.0 + d)) ** 2 * lateral / 0.008 * 100.0
    deep = d >= 300.0
    np.testing.assert_allclose(pdd[deep], USER_PDD[-1] * np.exp(-mu * (d[deep] - 300.0)), rtol=1e-9)
    # and at the measured points it is the input itself
    np.testing.assert_allclose(np.interp(USER_DEPTH_MM, d, pdd), USER_PDD, rtol=1e-9)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"pdd_depth_mm": [0.0, 10.0, 5.0, 20.0], "pdd_percent": [50.0, 100.0, 90.0, 80.0]}, "increasing"),
        ({"pdd_depth_mm": [0.0, 10.0, 20.0], "pdd_percent": [50.0, 100.0, 90.0]}, ">= 4 points"),
        ({"pdd_percent": [50.0, 100.0, -1.0, 80.0]}, "> 0"),
        ({"field_mm": 0.0}, "field_mm"),
        ({"ssd_mm": np.nan}, "ssd_mm"),
        ({"components": []}, "no lateral components"),
        ({"components": [{"name": "p", "depth_mm": [0.0, 10.0]}]}, "needs name, depth_mm"),
    ],
)
def test_fit_validation(change, match):
    kwargs = {"sad_mm": 1000.0, "pdd_depth_mm": [0.0, 10.0, 20.0, 30.0], "pdd_percent": [50.0, 100.0, 90.0, 80.0],
                  "field_mm": 100.0, "ssd_mm": 1000.0,
                  "components": [{"name": "p", "depth_mm": [0.0, 100.0], "weight": [1.0, 1.0], "sigma_mm": [2.0, 3.0]}]}
    kwargs.update(copy.deepcopy(change))
    with pytest.raises(MachineDataError, match=match):
        fit_photon_machine("t", **kwargs)
