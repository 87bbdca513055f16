"""Protons are RBE-weighted (constant RBE 1.1, ICRU Report 78); photons are not."""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.biology import alpha_beta_map, eqd2
from sfrt_engine.components import crt_component
from sfrt_engine.errors import PlanError
from sfrt_engine.evaluation import dose_statistics
from sfrt_engine.plan.techniques import get_technique
from sfrt_engine.rbe import PROTON_RBE, beams_rbe, dose_quantity

# the kernels accumulate in float32: recomputing a dose from the rescaled weights agrees to ~1e-6
# relative, far tighter than the 10 % that an RBE applied or missed would change
RTOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _cpp():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")


@pytest.fixture(scope="module")
def sphere_case():
    """Water box 100 x 100 x 80 mm at 5 mm with a GTV sphere (r 20 mm) and PTV (r 25 mm): room for one vertex."""
    patient = se.phantoms.water_box((100.0, 100.0, 80.0), 5.0)
    z, y, x = patient.grid.coordinates_mm()
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    patient.structures["GTV"] = r < 20.0
    patient.structures["PTV"] = r < 25.0
    return patient


def test_the_clinical_constant_is_1_1():
    assert PROTON_RBE == 1.1  # ICRU Report 78 (2007); Paganetti, Phys Med Biol 59:R419 (2014)


def test_rbe_by_modality(machine):
    photon = se.plan.Beam(machine, (0.0, 0.0, 0.0), 0.0, np.ones((2, 2)), 5.0, (0.0, 0.0), name="B")
    assert beams_rbe([photon]) == 1.0
    proton = get_technique("impt")
    patient = se.phantoms.water_box((60.0, 60.0, 40.0), 5.0)
    z, y, x = patient.grid.coordinates_mm()
    patient.structures["PTV"] = (np.abs(x) < 10) & (np.abs(y) < 10) & (np.abs(z) < 10)
    protons = proton.crt_beams(patient, "PTV")
    assert beams_rbe(protons) == PROTON_RBE
    with pytest.raises(PlanError, match="mixes photon and proton"):
        beams_rbe([photon, *protons])


def test_dose_quantity_entries():
    assert dose_quantity(1.0)["unit"] == "Gy"
    q = dose_quantity(1.1)
    assert q["unit"] == "Gy(RBE)" and q["rbe"] == 1.1 and "ICRU Report 78" in q["model"]
    assert "EQD2 computed on the RBE-weighted dose" in q["model"]


def test_proton_component_is_1_1_times_the_physical_dose_of_its_beams(sphere_case):
    component = crt_component(sphere_case, get_technique("impt"), "PTV", 3.0, backend="cpp")
    physical = se.compute_dose(component.beams, sphere_case, backend="cpp").gy
    assert component.rbe == 1.1
    np.testing.assert_allclose(component.dose_gy, 1.1 * physical, rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(component.physical_dose_gy, physical, rtol=RTOL, atol=1e-9)
    # the prescription (PTV D95 = 3 Gy per fraction) is met in Gy(RBE), so the absorbed dose is 3 / 1.1 Gy
    d95 = dose_statistics(physical, sphere_case.structures["PTV"])["d95_gy"]
    assert d95 == pytest.approx(3.0 / 1.1, rel=RTOL)
    assert "Gy(RBE)" in component.unit


def test_photon_component_is_not_weighted(sphere_case):
    component = crt_component(sphere_case, get_technique("imrt"), "PTV", 3.0, backend="cpp")
    physical = se.compute_dose(component.beams, sphere_case, backend="cpp").gy
    assert component.rbe == 1.0 and component.physical_dose_gy is component.dose_gy
    np.testing.assert_allclose(component.dose_gy, physical, rtol=RTOL, atol=1e-9)
    d95 = dose_statistics(physical, sphere_case.structures["PTV"])["d95_gy"]
    assert d95 == pytest.approx(3.0, rel=RTOL)


def test_proton_comparison_reports_rbe_and_computes_eqd2_on_the_weighted_dose(sphere_case):
    settings = se.ComparisonSettings(technique="impt", avoid=(), backend="cpp", optimiser_iterations=3)
    result = se.run_comparison(sphere_case, settings)
    s = result.report["settings"]
    assert s["dose_quantity"]["unit"] == "Gy(RBE)" and s["dose_quantity"]["rbe"] == 1.1
    assert {c["rbe"] for c in result.report["components"].values()} == {1.1}
    assert "RBE-weighted" in result.report["arms"]["SFRT"]["sfrt_metrics"]["definitions"]["basis"]
    # independent recomputation: RBE x the absorbed dose of each component's beams, then the schedule's EQD2
    units = {name: 1.1 * se.compute_dose(c.beams, sphere_case, backend="cpp").gy
             for name, c in result.prepared.components.items()}
    ab = alpha_beta_map(sphere_case, settings.alpha_beta_gy)
    for arm in ("CRT", "SFRT"):
        np.testing.assert_allclose(result.eqd2_gy[arm], eqd2(units, result.schedules[arm], ab), rtol=RTOL)
    # 20 CRT fractions of PTV D95 = 3 Gy(RBE)
    ptv = result.report["arms"]["CRT"]["structures"]["PTV"]["physical"]
    assert ptv["d95_gy"] == pytest.approx(60.0, rel=RTOL)


def test_mixed_components_state_each_rbe():
    from sfrt_engine.rbe import components_dose_quantity

    assert components_dose_quantity({"CRT": 1.0, "BOOST": 1.0}) == dose_quantity(1.0)
    mixed = components_dose_quantity({"CRT": 1.0, "BOOST": 1.1})
    assert mixed["unit"] == "Gy(RBE)" and mixed["rbe"] == 1.1
    assert mixed["rbe_by_component"] == {"CRT": 1.0, "BOOST": 1.1}
    assert "photon components absorbed dose (RBE 1)" in mixed["model"]
