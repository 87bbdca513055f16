"""CT calibrations: the stoichiometric HU -> stopping power / electron density, and users' CSV curves.

References: NIST PSTAR (ICRU Report 49) mass stopping powers at 100 MeV [MeV cm^2/g]:
water 7.289, skeletal muscle 7.210, adipose tissue 7.495, cortical bone 6.536 (compositions of
ICRU Report 46 / ICRP); ICRU 49's mean excitation energy of water, 75 eV; stoichiometric
calibrations put cortical bone (about 1300 HU) at a stopping-power ratio of 1.5-1.55
(Schneider et al. 1996/2000).
"""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.calibration import (REQUIRED_HU_RANGE, _mass_stopping_power, composition_properties,
                                     read_calibration_csv, stoichiometric_density, stoichiometric_stopping_power)
from sfrt_engine.errors import MachineDataError

#: mass percent of the elements the calibration knows (ICRU 46 compositions, trace elements of < 1 % dropped)
TISSUES = {
    "water": ({"H": 11.1894, "O": 88.8106}, 7.289),
    "muscle": ({"H": 10.2926, "C": 14.4299, "N": 3.4309, "O": 71.6448, "P": 0.2018}, 7.210),
    "adipose": ({"H": 11.4343, "C": 59.9799, "N": 0.7021, "O": 27.8837}, 7.495),
    "cortical bone": ({"H": 3.4205, "C": 15.5936, "N": 4.2254, "O": 43.7626, "P": 10.3622, "Ca": 22.6358}, 6.536),
}


def test_water_mean_excitation_energy_is_icru49():
    _, i_ev = composition_properties(TISSUES["water"][0])
    assert abs(i_ev - 75.0) < 1.0


@pytest.mark.parametrize("tissue", sorted(TISSUES))
def test_stopping_power_ratio_to_water_matches_pstar(tissue):
    """Bethe with Bragg additivity against PSTAR: the ratio to water within 1.5 % (the dropped trace elements
    and PSTAR's own I-values make up the difference; cortical bone is the worst, 1.2 %)."""
    composition, pstar = TISSUES[tissue]
    ours = _mass_stopping_power(*composition_properties(composition), 100.0)
    water = _mass_stopping_power(*composition_properties(TISSUES["water"][0]), 100.0)
    assert abs((ours / water) / (pstar / 7.289) - 1.0) < 0.015


def test_stoichiometric_curve_at_landmarks():
    spr = stoichiometric_stopping_power()
    assert float(spr(-1000.0)) < 0.005  # air
    assert abs(float(spr(0.0)) - 1.0) < 0.02  # water-like soft tissue
    assert 1.48 < float(spr(1300.0)) < 1.56  # cortical bone: 1.5-1.55, not the bilinear 1.65
    assert float(se.DEFAULT_HU_TO_DENSITY(1300.0)) > 1.7  # the photon default is unchanged
    rho_e = stoichiometric_density()
    assert abs(float(rho_e(0.0)) - 1.0) < 0.02 and float(rho_e(-1000.0)) < 0.005


def test_stoichiometric_curves_are_monotonic_and_cover_the_ct_scale():
    for cal in (stoichiometric_stopping_power(), stoichiometric_density()):
        assert cal.hu[0] <= REQUIRED_HU_RANGE[0] and cal.hu[-1] >= REQUIRED_HU_RANGE[1]
        values = cal(np.linspace(-1000.0, 3000.0, 4001))
        assert np.all(np.diff(values) > 0.0)  # through the middle of each tissue interval: no steps, no dips


def test_patients_default_to_the_stoichiometric_stopping_power():
    patient = se.phantoms.water_box(size_xyz_mm=(30, 30, 30), spacing_xyz_mm=10.0)
    assert patient.stopping_power_calibration is stoichiometric_stopping_power()
    patient.hu[...] = 1300.0
    assert 1.48 < float(patient.stopping_power().max()) < 1.56


def _write(tmp_path, text: str):
    path = tmp_path / "cal.csv"
    path.write_text(text)
    return path


def test_user_csv_is_read(tmp_path):
    cal = read_calibration_csv(_write(tmp_path, "hu,spr\n-1000,0.001\n0,1.0\n1300,1.52\n3071,2.3\n"))
    assert float(cal(650.0)) == pytest.approx(0.5 * (1.0 + 1.52))
    patient = se.Patient(se.Grid((2, 2, 2), 5.0, (0, 0, 0)), np.zeros((2, 2, 2)), stopping_power_calibration=cal)
    assert float(patient.stopping_power()[0, 0, 0]) == pytest.approx(1.0)


@pytest.mark.parametrize(("text", "message"), [
    ("hu,spr\n-1000,0.001\n500,1.2\n400,1.3\n3000,2\n", "must increase strictly"),
    ("-1000,0.001\n0,1.0\n500,0.9\n3000,2\n", "must not decrease"),
    ("-500,0.5\n0,1.0\n3000,2\n", "must cover -1000 to 3000 HU"),
    ("-1000,0.001\n0,1.0\n1500,1.7\n", "must cover -1000 to 3000 HU"),
    ("-1000,0.001\n0,abc\n3000,2\n", "expected two numbers"),
    ("-1000,0.001\n0\n3000,2\n", "expected two columns"),
    ("-1000,-0.1\n3000,2\n", ">= 0"),
    ("-1000,0.001\n", "at least two"),
])
def test_bad_user_csv_names_the_row_and_the_fix(tmp_path, text, message):
    with pytest.raises(MachineDataError, match=message):
        read_calibration_csv(_write(tmp_path, text))


def test_missing_csv(tmp_path):
    with pytest.raises(MachineDataError, match="does not exist"):
        read_calibration_csv(tmp_path / "nope.csv")
