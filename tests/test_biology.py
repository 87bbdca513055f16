"""Biology: BED/EQD2 over real sessions, alpha/beta maps and precedence, parse_alpha_beta, gEUD (DESIGN 5.4).

Every expected value is a hand calculation from the linear-quadratic formulas

    BED  = sum_k d_k (1 + d_k / (a/b))
    EQD2 = BED / (1 + 2 / (a/b))

on small synthetic unit-dose arrays, scheduled with the real Schedule builders.
"""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine import PlanError, StructureError
from sfrt_engine.biology import DEFAULT_ALPHA_BETA_GY, alpha_beta_map, bed, eqd2, geud, parse_alpha_beta, physical_dose
from sfrt_engine.plan import Schedule, Session, crt_schedule, sfrt_schedule

# The inputs are exact binary fractions (3, 1, 4, 12 ...) and the sums have at most a few
# dozen terms, so float64 round-off is ~1e-14 relative; 1e-12 leaves room for it and
# nothing else.
RTOL = 1e-12


def _line_patient(n: int, structures: dict[str, list[int]]) -> se.Patient:
    """A 1 x 1 x n grid (z, y, x) with structures given as lists of x indices."""
    grid = se.Grid((1, 1, n), 2.0)
    masks = {}
    for name, idx in structures.items():
        m = np.zeros((1, 1, n), bool)
        m[0, 0, idx] = True
        masks[name] = m
    return se.Patient(grid, np.zeros((1, 1, n)), masks)


# voxel 0: GTV outside the vertices (valley-like): CRT 3 Gy, no boost
# voxel 1: a vertex voxel: CRT 3 Gy and a BOOST unit dose of exactly 1 Gy
# voxel 2: skin, CRT 3 Gy, no boost (a/b 2)
# voxel 3: no structure (default a/b 3), CRT 1.5 Gy, BOOST 0.5 Gy
@pytest.fixture
def line() -> tuple[se.Patient, dict[str, np.ndarray]]:
    patient = _line_patient(4, {"GTV": [0, 1], "PTV": [0, 1], "VERTICES": [1], "SKIN": [2]})
    units = {"CRT": np.array([3.0, 3.0, 3.0, 1.5]).reshape(1, 1, 4),
             "BOOST": np.array([0.0, 1.0, 0.0, 0.5]).reshape(1, 1, 4)}
    return patient, units


# -- EQD2 and BED against hand calculations ----------------------------------------------------

def test_crt_3gy_x20_at_ab4_is_70gy(line):
    patient, units = line
    ab = alpha_beta_map(patient)
    e = eqd2(units, crt_schedule(20), ab)
    # BED = 20 * 3 * (1 + 3/4) = 105 Gy; EQD2 = 105 / (1 + 2/4) = 70 Gy
    assert e[0, 0, 0] == pytest.approx(70.0, rel=RTOL)
    assert e[0, 0, 1] == pytest.approx(70.0, rel=RTOL)
    assert bed(units, crt_schedule(20), ab)[0, 0, 0] == pytest.approx(105.0, rel=RTOL)
    # skin at a/b 2: BED = 60 * (1 + 3/2) = 150, EQD2 = 150 / 2 = 75 Gy
    assert e[0, 0, 2] == pytest.approx(75.0, rel=RTOL)
    # unlisted voxel at the default 3 Gy: BED = 20 * 1.5 * 1.5 = 45, EQD2 = 45 / (5/3) = 27 Gy
    assert e[0, 0, 3] == pytest.approx(27.0, rel=RTOL)
    assert physical_dose(units, crt_schedule(20))[0, 0, 0] == pytest.approx(60.0, rel=RTOL)


def test_integrated_vertex_voxel_is_184gy(line):
    patient, units = line
    ab = alpha_beta_map(patient)
    # the CRT vertex mean of one fraction is 3 Gy, so the boost weight is 12 - 3 = 9 and the vertex
    # voxel (BOOST unit dose 1 Gy) gets 3 + 9 = 12 Gy on each vertex day
    sched = sfrt_schedule(20, 4, 12.0, "integrated", crt_vertex_mean_gy=3.0)
    e = eqd2(units, sched, ab)
    # issue 4 hand calculation: (16 * 3 * 7 + 4 * 12 * 16) / 6 = 184.0 Gy
    assert (16 * 3 * 7 + 4 * 12 * 16) / 6 == 184.0
    assert e[0, 0, 1] == pytest.approx(184.0, rel=RTOL)
    # BED = 16 * 3 * 1.75 + 4 * 12 * 4 = 84 + 192 = 276 Gy
    assert bed(units, sched, ab)[0, 0, 1] == pytest.approx(276.0, rel=RTOL)
    # physical: 16 * 3 + 4 * 12 = 96 Gy
    assert physical_dose(units, sched)[0, 0, 1] == pytest.approx(96.0, rel=RTOL)
    # the non-boosted GTV voxel sees only the CRT: still 70 Gy
    assert e[0, 0, 0] == pytest.approx(70.0, rel=RTOL)


def test_components_are_summed_before_squaring(line):
    patient, units = line
    ab = alpha_beta_map(patient)
    sched = sfrt_schedule(20, 4, 12.0, "integrated", crt_vertex_mean_gy=3.0)
    # squaring the components separately would give 16*3*1.75 + 4*(3*1.75 + 9*(1+9/4)) = 222 Gy BED,
    # not the 276 Gy of one 12 Gy session
    wrong = 16 * 3 * 1.75 + 4 * (3 * 1.75 + 9 * (1 + 9 / 4))
    assert bed(units, sched, ab)[0, 0, 1] != pytest.approx(wrong, rel=1e-3)


def test_separate_mode_adds_vertex_sessions(line):
    patient, units = line
    ab = alpha_beta_map(patient)
    sched = sfrt_schedule(20, 4, 12.0, "separate")
    # 20 sessions of 3 Gy plus 4 extra sessions of 12 Gy (BOOST unit 1 Gy x 12):
    # BED = 20 * 3 * 1.75 + 4 * 12 * 4 = 105 + 192 = 297 Gy; EQD2 = 297 / 1.5 = 198 Gy
    assert bed(units, sched, ab)[0, 0, 1] == pytest.approx(297.0, rel=RTOL)
    assert eqd2(units, sched, ab)[0, 0, 1] == pytest.approx(198.0, rel=RTOL)
    assert physical_dose(units, sched)[0, 0, 1] == pytest.approx(108.0, rel=RTOL)
    # unlisted voxel (a/b 3): 20 x 1.5 Gy + 4 x 6 Gy: BED = 20*1.5*1.5 + 4*6*3 = 45 + 72 = 117,
    # EQD2 = 117 / (5/3) = 70.2 Gy
    assert eqd2(units, sched, ab)[0, 0, 3] == pytest.approx(70.2, rel=RTOL)


def test_bed_on_hand_built_schedule():
    # two sessions of different doses on a scalar-like grid: 2 Gy and 5 Gy at a/b 10
    units = {"A": np.full((1, 1, 1), 1.0)}
    sched = Schedule("X", (Session(0, (("A", 2.0),)), Session(1, (("A", 5.0),))))
    # BED = 2 (1 + 0.2) + 5 (1 + 0.5) = 2.4 + 7.5 = 9.9 Gy; EQD2 = 9.9 / 1.2 = 8.25 Gy
    assert bed(units, sched, 10.0)[0, 0, 0] == pytest.approx(9.9, rel=RTOL)
    assert eqd2(units, sched, 10.0)[0, 0, 0] == pytest.approx(8.25, rel=RTOL)
    # 2 Gy fractions are the reference: EQD2 of n x 2 Gy is 2n whatever the a/b
    sched2 = crt_schedule(17)
    for ab in (0.4, 2.0, 4.0, 10.0):
        assert eqd2({"CRT": np.full((1, 1, 1), 2.0)}, sched2, ab)[0, 0, 0] == pytest.approx(34.0, rel=RTOL)


def test_missing_unit_dose_is_an_error():
    sched = sfrt_schedule(20, 4, 12.0, "separate")
    with pytest.raises(PlanError, match="BOOST"):
        eqd2({"CRT": np.ones((1, 1, 1))}, sched, 4.0)


# -- alpha/beta maps and precedence ------------------------------------------------------------

def test_alpha_beta_defaults():
    assert DEFAULT_ALPHA_BETA_GY["GTV"] == 4.0
    assert DEFAULT_ALPHA_BETA_GY["PTV"] == 4.0
    assert DEFAULT_ALPHA_BETA_GY["VERTICES"] == 4.0
    assert DEFAULT_ALPHA_BETA_GY["VALLEY"] == 4.0
    assert DEFAULT_ALPHA_BETA_GY["SKIN"] == 2.0
    assert DEFAULT_ALPHA_BETA_GY["FEMUR"] == 3.0
    assert DEFAULT_ALPHA_BETA_GY["NORMAL_TISSUE"] == 3.0


def test_alpha_beta_precedence_where_structures_overlap():
    # voxel: 0 VERTICES+GTV+PTV, 1 GTV+PTV+SKIN, 2 PTV+SKIN+NORMAL_TISSUE, 3 SKIN+FEMUR,
    #        4 FEMUR+NORMAL_TISSUE, 5 NORMAL_TISSUE, 6 none
    patient = _line_patient(7, {"VERTICES": [0], "GTV": [0, 1], "PTV": [0, 1, 2], "SKIN": [1, 2, 3],
                                "FEMUR": [3, 4], "NORMAL_TISSUE": [2, 4, 5]})
    ab = alpha_beta_map(patient).ravel()
    # targets before organs at risk: tumour 4 wins over skin 2; skin 2 before femur 3
    np.testing.assert_array_equal(ab, [4.0, 4.0, 4.0, 2.0, 3.0, 3.0, 3.0])
    # a GTV override covers its parts (VERTICES, VALLEY) unless they are given too
    ab = alpha_beta_map(patient, {"GTV": 10.0, "SKIN": 1.5}).ravel()
    np.testing.assert_array_equal(ab, [10.0, 10.0, 4.0, 1.5, 3.0, 3.0, 3.0])
    # an override changes the value but not the rank: VERTICES still wins over GTV
    ab = alpha_beta_map(patient, {"GTV": 10.0, "VERTICES": 4.0, "SKIN": 1.5}).ravel()
    np.testing.assert_array_equal(ab, [4.0, 10.0, 4.0, 1.5, 3.0, 3.0, 3.0])
    # a structure named in the overrides but not in the precedence list ranks first
    patient.structures["NERVE"] = np.array([0, 1, 0, 0, 0, 1, 0], bool).reshape(1, 1, 7)
    ab = alpha_beta_map(patient, {"NERVE": 2.5}).ravel()
    np.testing.assert_array_equal(ab, [4.0, 2.5, 4.0, 2.0, 3.0, 2.5, 3.0])
    # default for voxels in no structure
    assert alpha_beta_map(patient, default_gy=7.0).ravel()[6] == 7.0
    # explicit precedence: FEMUR before SKIN flips voxel 3
    ab = alpha_beta_map(patient, precedence=("FEMUR", "SKIN")).ravel()
    assert ab[3] == 3.0 and ab[1] == 2.0


def test_alpha_beta_map_errors():
    patient = _line_patient(3, {"GTV": [0]})
    with pytest.raises(StructureError, match="TUMOUR"):
        alpha_beta_map(patient, {"TUMOUR": 4.0})
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(PlanError, match="GTV"):
            alpha_beta_map(patient, {"GTV": bad})
    with pytest.raises(PlanError):
        alpha_beta_map(patient, default_gy=0.0)


def test_parse_alpha_beta():
    assert parse_alpha_beta("GTV=4,SKIN=2") == {"GTV": 4.0, "SKIN": 2.0}
    assert parse_alpha_beta(" GTV = 3.5 , SKIN=2, ") == {"GTV": 3.5, "SKIN": 2.0}
    assert parse_alpha_beta("") == {}


@pytest.mark.parametrize("text", ["GTV", "GTV=", "=4", "GTV=x", "GTV=0", "GTV=-2", "GTV=nan", "GTV=inf",
                                  "GTV=4,SKIN"])
def test_parse_alpha_beta_errors(text):
    with pytest.raises(PlanError, match="NAME=VALUE"):
        parse_alpha_beta(text)


# -- gEUD closed forms -------------------------------------------------------------------------

@pytest.fixture
def spread():
    # 1000 voxels with doses from 1 to 10 Gy, in a 10 x 10 x 10 cube, all in the mask
    dose = np.linspace(1.0, 10.0, 1000).reshape(10, 10, 10)
    return dose, np.ones(dose.shape, bool)


def test_geud_a1_is_mean(spread):
    dose, mask = spread
    assert geud(dose, mask, 1.0) == pytest.approx(5.5, rel=RTOL)  # mean of a symmetric ramp 1..10
    sub = np.zeros_like(mask)
    sub[:5] = True  # first half: 1 .. 5.5-ish, mean = (1 + dose[4, 9, 9]) / 2
    assert geud(dose, sub, 1.0) == pytest.approx(0.5 * (1.0 + dose[4, 9, 9]), rel=RTOL)


def test_geud_a2_is_rms():
    dose = np.array([3.0, 4.0]).reshape(1, 1, 2)
    # sqrt((9 + 16) / 2) = sqrt(12.5)
    assert geud(dose, np.ones_like(dose, bool), 2.0) == pytest.approx(np.sqrt(12.5), rel=RTOL)
    # a = -1 is the harmonic mean: 2 / (1/3 + 1/4) = 24/7
    assert geud(dose, np.ones_like(dose, bool), -1.0) == pytest.approx(24.0 / 7.0, rel=RTOL)


@pytest.mark.parametrize("a", [-40.0, -10.0, -1.0, 0.5, 1.0, 3.0, 40.0])
def test_geud_of_uniform_dose_is_that_dose(a):
    dose = np.full((3, 4, 5), 7.25)
    assert geud(dose, np.ones(dose.shape, bool), a) == pytest.approx(7.25, rel=RTOL)


@pytest.mark.parametrize("a", [50.0, 1000.0])
def test_geud_large_a_tends_to_max(spread, a):
    dose, mask = spread
    # closed bounds: mean((D/Dmax)^a) lies in [1/N, 1], so gEUD lies in [Dmax N^(-1/a), Dmax]
    n = mask.sum()
    g = geud(dose, mask, a)
    assert 10.0 * n ** (-1.0 / a) <= g <= 10.0 * (1 + 1e-12)


@pytest.mark.parametrize("a", [-50.0, -1000.0])
def test_geud_negative_a_tends_to_min(spread, a):
    dose, mask = spread
    # closed bounds: mean((D/Dmin)^a) lies in [1/N, 1] for a < 0, so gEUD lies in [Dmin, Dmin N^(1/|a|)];
    # at a = -1000 the doses span a factor 10, so (Dmax/Dmin)^|a| = 1e1000 must not overflow
    n = mask.sum()
    g = geud(dose, mask, a)
    assert 1.0 * (1 - 1e-12) <= g <= 1.0 * n ** (1.0 / abs(a))


def test_geud_of_zero_dose_is_zero():
    # an organ outside every field has zero dose; its gEUD (here the mean, a = 1) is 0 Gy
    dose = np.zeros((2, 2, 2))
    assert geud(dose, np.ones(dose.shape, bool), 1.0) == 0.0
    assert geud(dose, np.ones(dose.shape, bool), -10.0) == 0.0


def test_geud_errors():
    dose = np.ones((2, 2, 2))
    for a in (0.0, float("nan"), float("inf")):
        with pytest.raises(PlanError):
            geud(dose, np.ones(dose.shape, bool), a)
    with pytest.raises(StructureError):
        geud(dose, np.zeros(dose.shape, bool), 1.0)
