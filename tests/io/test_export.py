"""export_run / export_comparison: one call writes every file of a run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pydicom
import pytest

import sfrt_engine as se
from sfrt_engine import io
from sfrt_engine.plan.vertices import VertexLattice


@pytest.fixture
def small_run(machine):
    patient = se.phantoms.water_box((40.0, 30.0, 24.0), 3.0)
    z, y, x = patient.grid.coordinates_mm()
    centre = np.array([0.0, 0.0, 0.0])
    labels = ((x**2 + y**2 + z**2) < 7.5**2).astype(np.int16)
    patient.structures["GTV"] = (np.abs(x) < 15) & (np.abs(y) < 12) & (np.abs(z) < 10)
    patient.structures["VERTICES"] = labels > 0
    patient.structures["VALLEY"] = patient.structures["GTV"] & ~patient.structures["VERTICES"]
    vertices = VertexLattice(centre[None], 15.0, 30.0, "hcp", np.zeros(3), 0.0, labels, "GTV", {})
    rng = np.random.default_rng(1)
    shape = patient.grid.shape_zyx
    beams = [se.plan.Beam(machine, (0.0, 0.0, 0.0), 0.0, np.ones((2, 2)), 5.0, (0.0, 0.0), name="B")]
    components = {"CRT": SimpleNamespace(beams=beams, dose_gy=rng.random(shape), backend="cpp"),
                  "BOOST": SimpleNamespace(beams=beams, dose_gy=rng.random(shape), backend="cpp")}
    settings = se.ComparisonSettings()
    schedules = {"CRT": se.plan.crt_schedule(20), "SFRT": se.plan.sfrt_schedule(20, 4, 12.0, "integrated", 3.0)}
    comparison = SimpleNamespace(schedules=schedules,
        prepared=SimpleNamespace(patient=patient, settings=settings, vertices=vertices, components=components),
        physical_gy={"CRT": 60 * rng.random(shape), "SFRT": 100 * rng.random(shape)},
        eqd2_gy={"CRT": 70 * rng.random(shape), "SFRT": 180 * rng.random(shape)},
        report={"settings": {"alpha_beta_resolved_gy": {"GTV": 4.0, "SKIN": 2.0}}, "arms": {}})
    return comparison


def test_export_comparison_writes_every_file(small_run, tmp_path):
    written = io.export_comparison(tmp_path / "out", small_run)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["CT", "RTDOSE_CRT_EQD2.dcm", "RTDOSE_CRT_PHYSICAL.dcm", "RTDOSE_SFRT_EQD2.dcm",
                     "RTDOSE_SFRT_PHYSICAL.dcm", "RTPLAN_BOOST.dcm", "RTPLAN_CRT.dcm", "RTSTRUCT_lattice.dcm",
                     "results.h5"]
    assert len(written["rtdose"]) == 4 and len(written["ct"]) == small_run.prepared.patient.grid.shape_zyx[0]
    eqd2 = pydicom.dcmread(out / "RTDOSE_SFRT_EQD2.dcm")
    assert eqd2.DoseType == "EFFECTIVE"
    assert eqd2.ImageComments == "SFRT EQD2, vertex boost integrated; alpha/beta GTV 4 Gy, SKIN 2 Gy"
    assert eqd2.DoseComment.startswith("SFRT EQD2, vertex boost integrated; alpha/beta GTV 4 Gy")
    assert pydicom.dcmread(out / "RTDOSE_CRT_PHYSICAL.dcm").DoseType == "PHYSICAL"
    dose = io.read_rtdose(out / "RTDOSE_SFRT_EQD2.dcm")
    assert np.max(np.abs(dose.gy - small_run.eqd2_gy["SFRT"])) <= 0.5 * float(eqd2.DoseGridScaling) * (1 + 1e-6)
    rs = pydicom.dcmread(out / "RTSTRUCT_lattice.dcm")
    assert [r.ROIName for r in rs.StructureSetROISequence] == ["VERTEX_01", "VERTICES", "VALLEY"]
    frames = {pydicom.dcmread(p).FrameOfReferenceUID for p in out.glob("RTDOSE_*.dcm")}
    assert frames == {rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID,
                      pydicom.dcmread(written["ct"][0]).FrameOfReferenceUID}
    crt, boost = (pydicom.dcmread(out / f"RTPLAN_{n}.dcm") for n in ("CRT", "BOOST"))
    assert crt.FractionGroupSequence[0].NumberOfFractionsPlanned == 20
    assert boost.FractionGroupSequence[0].NumberOfFractionsPlanned == 4
    # the boost plan delivers the SFRT schedule's boost weight per vertex session: 12 - 3 = 9 x the unit beams
    assert float(boost.FractionGroupSequence[0].ReferencedBeamSequence[0].BeamMeterset) == pytest.approx(
        9.0 * float(crt.FractionGroupSequence[0].ReferencedBeamSequence[0].BeamMeterset), rel=1e-9)
    refs = {kind: [r.ReferencedSOPInstanceUID for r in pydicom.dcmread(out / f"RTDOSE_{kind}.dcm")
                   .ReferencedRTPlanSequence] for kind in ("CRT_PHYSICAL", "SFRT_EQD2")}
    assert refs == {"CRT_PHYSICAL": [crt.SOPInstanceUID], "SFRT_EQD2": [crt.SOPInstanceUID, boost.SOPInstanceUID]}
    assert crt.FrameOfReferenceUID == pydicom.dcmread(written["ct"][0]).FrameOfReferenceUID
    res = io.load(out / "results.h5")
    assert list(res.doses) == ["CRT", "SFRT"] and list(res.unit_doses) == ["CRT", "BOOST"]
    assert np.array_equal(res.eqd2["SFRT"], small_run.eqd2_gy["SFRT"])
    assert res.settings["boost_mode"] == "integrated" and res.vertices.count == 1
    assert res.provenance["backend"] == "cpp"


def test_export_run_of_a_dicom_patient_writes_no_ct(dicom_factory, shapes, tmp_path):
    series = dicom_factory.ct()
    dicom_factory.rtstruct(series, {"VERTICES": [shapes.circle(-10, -20, 4, series.z_mm(3))]})
    patient = io.read_dicom(series.folder)
    dose = np.ones(patient.grid.shape_zyx)
    written = io.export_run(tmp_path / "out", patient, {"SFRT": dose}, {"SFRT": 2 * dose}, {"arms": {}},
                            {"boost_mode": "separate"}, "GTV 4 Gy", "separate", vertex_names=("VERTICES",))
    assert written["ct"] == []
    rd = pydicom.dcmread(written["rtdose"][1])
    assert rd.FrameOfReferenceUID == series.frame_uid and rd.StudyInstanceUID == series.study_uid
    assert "vertex boost separate" in rd.DoseComment
    rs = pydicom.dcmread(written["rtstruct"])
    images = rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert images.SeriesInstanceUID == series.series_uid


def test_export_run_needs_both_doses_per_arm(small_run, tmp_path):
    patient = small_run.prepared.patient
    with pytest.raises(ValueError, match=r"doses has arms \['CRT'\] but eqd2 has \[\]"):
        io.export_run(tmp_path, patient, {"CRT": np.zeros(patient.grid.shape_zyx)}, {}, None, {}, "", "integrated")


def test_public_names_resolve():
    for name in io.__all__:
        assert getattr(io, name) is not None, name
    assert set(io.__all__) == set(dir(io)) & set(io.__all__)


def test_rtdose_files_of_a_run_are_distinct_series(small_run, tmp_path):
    written = io.export_comparison(tmp_path / "out", small_run, export_ct=False)
    series = [pydicom.dcmread(p) for p in written["rtdose"]]
    assert [int(ds.SeriesNumber) for ds in series] == [101, 102, 103, 104]
    assert len({ds.SeriesInstanceUID for ds in series}) == 4
    assert [ds.SeriesDescription for ds in series] == ["CRT physical dose [Gy]", "CRT EQD2 [Gy], boost integrated",
                                                      "SFRT physical dose [Gy]", "SFRT EQD2 [Gy], boost integrated"]


def test_proton_rtdose_states_the_rbe(small_run, tmp_path):
    for component in small_run.prepared.components.values():
        component.rbe = 1.1
    written = io.export_comparison(tmp_path / "out", small_run, export_ct=False)
    names = [p.name for p in written["rtdose"]]
    assert names == ["RTDOSE_CRT_RBE.dcm", "RTDOSE_CRT_EQD2.dcm", "RTDOSE_SFRT_RBE.dcm", "RTDOSE_SFRT_EQD2.dcm"]
    rbe = pydicom.dcmread(written["rtdose"][2])
    # RBE-weighted dose is not absorbed dose: DoseType EFFECTIVE (DICOM PS3.3 C.8.8.3), with the RBE named
    assert rbe.DoseType == "EFFECTIVE" and rbe.SeriesDescription == "SFRT RBE-weighted dose, RBE 1.1 [Gy(RBE)]"
    assert "proton dose x 1.1" in rbe.ImageComments and "ICRU Report 78" in rbe.ImageComments
    eqd2 = pydicom.dcmread(written["rtdose"][3])
    assert eqd2.SeriesDescription == "SFRT EQD2 [Gy(RBE)], boost integrated, RBE 1.1"
    assert "EQD2 of the RBE-weighted dose (RBE 1.1)" in eqd2.ImageComments
    assert len({pydicom.dcmread(p).SeriesDescription for p in written["rtdose"]}) == 4
