"""``sfrt recompute``: a plan on a DICOM CT, its RT Dose written with a plan reference, gamma and DVH checks,
and nothing written when reading fails."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

import sfrt_engine as se
from sfrt_engine import io
from sfrt_engine.cli import main
from sfrt_engine.io.rtplan_write import write_rtplan
from sfrt_engine.machines import load_machine
from sfrt_engine.phantoms import water_box
from sfrt_engine.plan import conformal_beams
from sfrt_engine.verification import gamma_index, resample_dose


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A water CT with a PTV structure set, a 3-beam conformal plan on it and the engine's RT Dose of it."""
    root = tmp_path_factory.mktemp("recompute")
    p = water_box((150.0, 120.0, 100.0), 5.0)
    x, y, z = np.meshgrid(p.grid.axis_mm("x"), p.grid.axis_mm("y"), p.grid.axis_mm("z"), indexing="ij")
    p.structures["PTV"] = np.ascontiguousarray((((x / 30.0) ** 2 + (y / 25.0) ** 2 + (z / 25.0) ** 2) <= 1.0)
                                               .transpose(2, 1, 0))
    ct = root / "CT"
    io.write_ct(ct, p)
    io.write_rtstruct(ct / "RS.dcm", p, ("PTV", "BODY"))
    patient = io.read_dicom(ct)
    beams = conformal_beams(patient, "PTV", load_machine("photon_6mv"), gantry_deg=(0.0, 120.0, 240.0),
                            weight_mu=40.0)
    plan = write_rtplan(root / "RP.dcm", beams, patient, plan_label="CONF", fractions=3)
    dose = se.compute_dose(beams, patient, backend="cpp").gy * 3
    rd = io.write_rtdose(root / "RD.dcm", dose, patient)
    return {"root": root, "ct": ct, "plan": plan, "rtdose": rd, "dose": dose, "patient": patient}


def test_recompute_matches_its_own_rtdose(case, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["recompute", "--dicom", str(case["ct"]), "--plan", str(case["plan"]), "--rtdose", str(case["rtdose"]),
               "--out", str(out), "--backend", "cpp", "--gamma", "2,2", "--gamma", "1,1"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["gamma_pass_rate_percent"] >= 99.0
    assert [g["criterion"] for g in report["gamma"]] == ["3%/2mm", "2%/2mm", "1%/1mm"]
    assert report["reference"]["references_this_plan"] is False
    ptv = report["dvh_differences"]["PTV"]
    assert abs(ptv["mean_difference_gy"]) < 0.01 * ptv["mean_reference_gy"]
    assert set(report["files"]) == {"RTDOSE_recomputed.dcm", "gamma_map.png", "report.json"}
    rd = pydicom.dcmread(out / "RTDOSE_recomputed.dcm")
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == pydicom.dcmread(case["plan"]).SOPInstanceUID
    assert rd.FrameOfReferenceUID == case["patient"].dicom["FrameOfReferenceUID"]
    dose = io.read_rtdose(out / "RTDOSE_recomputed.dcm").gy
    assert np.abs(dose - case["dose"]).max() < 0.01 * case["dose"].max()


def test_gamma_on_closed_forms():
    """Uniform dose: 2 % low passes 3 %/2 mm everywhere, 4 % low fails everywhere (no distance can help); on a
    ramp of g % per mm shifted by s mm, gamma = g s / sqrt(3^2 + (2 g)^2) (Low et al. 1998 for a linear
    gradient); points below 10 % of the maximum are left out."""
    grid = se.Grid((3, 3, 12), (2.0, 2.0, 2.0), (-11.0, -2.0, -2.0))
    ref = np.ones(grid.shape_zyx)
    assert gamma_index(ref, 0.98 * ref, grid).pass_rate_percent == 100.0
    assert gamma_index(ref, 0.96 * ref, grid, max_gamma=1.1).pass_rate_percent == 0.0
    x = grid.axis_mm("x")
    g = 2.5  # % of the maximum per mm
    ramp = np.broadcast_to(1.0 + g / 100.0 * (x - x.max()), grid.shape_zyx).copy()  # 100 % at the right end
    for shift_mm, passes in ((2.0, True), (3.0, False)):
        shifted = np.broadcast_to(1.0 + g / 100.0 * (x - shift_mm - x.max()), grid.shape_zyx)
        res = gamma_index(ramp, shifted, grid, 3.0, 2.0, 10.0)
        inner = res.gamma[:, :, 3:-3]  # away from the grid edge, where the search is cut off
        expected = g * shift_mm / np.sqrt(3.0 ** 2 + (2.0 * g) ** 2)
        np.testing.assert_allclose(inner, expected, atol=0.02)
        assert (expected <= 1.0) == passes
    low = np.where(np.arange(12) < 2, 0.05, 1.0) * np.ones(grid.shape_zyx)
    assert gamma_index(low, low, grid).n_points == 3 * 3 * 10


def test_resample_dose_is_trilinear():
    """A linear dose field is reproduced exactly by trilinear interpolation; outside the grid it is 0."""
    src = se.Grid((6, 7, 8), (4.0, 4.0, 4.0), (-14.0, -12.0, -10.0))
    dst = se.Grid((5, 5, 5), (3.0, 3.0, 3.0), (-6.0, -6.0, -6.0))
    z, y, x = np.meshgrid(src.axis_mm("z"), src.axis_mm("y"), src.axis_mm("x"), indexing="ij")
    out = resample_dose(2.0 + 0.1 * x - 0.05 * y + 0.02 * z, src, dst)
    z, y, x = np.meshgrid(dst.axis_mm("z"), dst.axis_mm("y"), dst.axis_mm("x"), indexing="ij")
    np.testing.assert_allclose(out, 2.0 + 0.1 * x - 0.05 * y + 0.02 * z, atol=1e-12)
    far = se.Grid((1, 1, 1), (3.0, 3.0, 3.0), (500.0, 0.0, 0.0))
    assert resample_dose(np.ones(src.shape_zyx), src, far).max() == 0.0


def test_bad_plan_writes_nothing(case, tmp_path, capsys):
    ds = pydicom.dcmread(case["plan"])
    ds.FrameOfReferenceUID = "1.2.3.999"
    bad = tmp_path / "RP_bad.dcm"
    ds.save_as(bad)
    out = tmp_path / "out"
    rc = main(["recompute", "--dicom", str(case["ct"]), "--plan", str(bad), "--out", str(out), "--backend", "cpp"])
    err = capsys.readouterr().err
    assert rc == 2 and "FrameOfReferenceUID 1.2.3.999 differs from the CT's" in err and "Traceback" not in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["RP_bad.dcm"]


def test_bad_gamma_option(case, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["recompute", "--dicom", str(case["ct"]), "--plan", str(case["plan"]), "--gamma", "3"])
    assert exc.value.code == 2 and "expected DOSE_PERCENT,DISTANCE_MM" in capsys.readouterr().err


def test_missing_pymedphys_is_a_clear_error(case, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pymedphys", None)
    out = tmp_path / "out"
    rc = main(["recompute", "--dicom", str(case["ct"]), "--plan", str(case["plan"]), "--rtdose", str(case["rtdose"]),
               "--out", str(out), "--backend", "cpp"])
    assert rc == 2 and "pip install 'sfrt-engine[gamma]'" in capsys.readouterr().err
    assert not out.exists()
