"""Writing the engine's IMPT plans as RT Ion Plans: read back, recomputed, round-tripped, validated."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom import config
from pydicom.uid import generate_uid

import sfrt_engine as se
from sfrt_engine.io.rtionplan_read import read_rtionplan
from sfrt_engine.io.rtionplan_write import write_rtionplan

STRUCT_UID = "1.2.826.0.1.3680043.8.498.11"


def _patient() -> se.Patient:
    patient = se.phantoms.water_box((120.0,) * 3, 5.0)
    g = patient.grid
    zz, yy, xx = np.meshgrid(g.axis_mm("z"), g.axis_mm("y"), g.axis_mm("x"), indexing="ij")
    patient.structures["PTV"] = xx ** 2 + yy ** 2 + zz ** 2 < 20.0 ** 2
    patient.structures["V1"] = (xx - 8) ** 2 + yy ** 2 + zz ** 2 < 7.0 ** 2
    patient.dicom = {"PatientName": "Water", "PatientID": "W1", "StudyInstanceUID": generate_uid(),
                     "FrameOfReferenceUID": generate_uid(), "rtstruct": {"SOPInstanceUID": STRUCT_UID}}
    return patient


@pytest.fixture(scope="module")
def case():
    """A water patient with a CRT IMPT plan (2 fields) and a vertex-boost plan (1 field, 3 mm spots)."""
    patient = _patient()
    machine = se.load_machine("proton_generic")
    crt = se.plan.impt_beams(patient, "PTV", machine, gantry_deg=[90.0, 270.0], prescription_gy=3.0,
                             backend="numpy", iterations=60)
    boost = se.plan.impt_beams(patient, "V1", machine, gantry_deg=[0.0], spot_spacing_mm=3.0, margin_mm=2.0,
                               prescription_gy=12.0, backend="numpy", iterations=60)
    return patient, crt, boost


def _spot_arrays(beams):
    """Every layer's (energy, range shifter, spacing, origin, weights) of a beam list, for exact comparison."""
    return [(lay.energy_mev, lay.range_shifter_mm, lay.spacing_mm, lay.origin_uv_mm, lay.weights_gp)
            for b in beams for lay in b.layers]


def _assert_identical(a, b):
    sa, sb = _spot_arrays(a), _spot_arrays(b)
    assert len(sa) == len(sb)
    for la, lb in zip(sa, sb):
        assert la[:4] == lb[:4]
        assert la[4].shape == lb[4].shape and np.array_equal(la[4], lb[4])
    for ba, bb in zip(a, b):
        assert (ba.gantry_deg, ba.couch_deg, ba.isocenter_xyz_mm, ba.name) == \
               (bb.gantry_deg, bb.couch_deg, bb.isocenter_xyz_mm, bb.name)


@pytest.mark.parametrize("component, fractions", [("crt", 20), ("boost", 4)])
def test_written_plan_read_back_and_recomputed_reproduces_the_engine_dose(case, tmp_path, component, fractions):
    patient, crt, boost = case
    beams = crt if component == "crt" else boost
    path = write_rtionplan(tmp_path / f"RP_{component}.dcm", beams, patient, plan_label=component.upper(),
                           fractions=fractions, description="engine plan")
    plan = read_rtionplan(pydicom.dcmread(path), patient)
    assert plan.fractions_planned == fractions and plan.plan_label == component.upper()
    assert plan.referenced_structure_set_uid == STRUCT_UID
    assert len(plan.beams) == len(beams)
    engine = se.compute_dose(beams, patient, backend="numpy").gy
    recomputed = se.compute_dose(list(plan.beams), patient, backend="numpy").gy
    assert np.abs(recomputed - engine).max() <= 0.01 * engine.max()
    # MU per beam: the spots' Gp over the machine's Gp per MU
    for beam, mu in zip(beams, plan.beam_meterset_mu):
        expected = sum(float((lay.weights_gp / beam.machine.gp_per_mu(lay.energy_mev)).sum()) for lay in beam.layers)
        assert mu == pytest.approx(expected, rel=1e-6)


def test_import_export_import_is_bit_identical_in_the_control_points(case, tmp_path):
    patient, crt, _ = case
    first = read_rtionplan(pydicom.dcmread(write_rtionplan(tmp_path / "a.dcm", crt, patient, plan_label="A",
                                                           fractions=20)), patient)
    path_b = write_rtionplan(tmp_path / "b.dcm", first.beams, patient, plan_label="A", fractions=20)
    second = read_rtionplan(pydicom.dcmread(path_b), patient)
    _assert_identical(first.beams, second.beams)
    assert first.beam_meterset_mu == second.beam_meterset_mu
    path_c = write_rtionplan(tmp_path / "c.dcm", second.beams, patient, plan_label="A", fractions=20)
    cps_b = [cp for b in pydicom.dcmread(path_b).IonBeamSequence for cp in b.IonControlPointSequence]
    cps_c = [cp for b in pydicom.dcmread(path_c).IonBeamSequence for cp in b.IonControlPointSequence]
    assert len(cps_b) == len(cps_c)
    for b, c in zip(cps_b, cps_c):
        for key in ("NominalBeamEnergy", "CumulativeMetersetWeight", "ScanSpotPositionMap",
                    "ScanSpotMetersetWeights", "NumberOfScanSpotPositions", "ScanningSpotSize"):
            assert b[key].value == c[key].value, key


def test_a_foreign_plan_round_trips_bit_identically_after_its_first_import(tmp_path):
    """Hexagonal spots, a range shifter, energies off the 1 MeV table and weights not in MU, as other systems write."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    patient = _patient()
    ds = pydicom.dcmread(write_rtionplan(tmp_path / "seed.dcm", se.plan.impt_beams(
        patient, "V1", se.load_machine("proton_generic"), gantry_deg=[45.0], backend="numpy", iterations=5),
        patient, plan_label="SEED", fractions=3))
    beam = ds.IonBeamSequence[0]
    rng = np.random.default_rng(7)
    total = 0.0
    for k, cp in enumerate(beam.IonControlPointSequence):
        xs = [-9.0 + c * 4.2 + (2.1 if r % 2 else 0.0) for r in range(3) for c in range(4)]
        ys = [-5.0 + r * 4.2 * np.sqrt(3) / 2 for r in range(3) for c in range(4)]
        cp.NumberOfScanSpotPositions = 12
        cp.ScanSpotPositionMap = [v for xy in zip(xs, ys) for v in xy]
        w = rng.uniform(0.1, 1.0, 12) if k % 2 == 0 else np.zeros(12)
        cp.ScanSpotMetersetWeights = [float(np.float32(v)) for v in w]
        cp.CumulativeMetersetWeight = total
        cp.NominalBeamEnergy = float(cp.NominalBeamEnergy) + 0.3  # off the machine's 1 MeV table
        total += float(np.sum(np.float32(w)))
    beam.FinalCumulativeMetersetWeight = total
    beam.NumberOfRangeShifters = 1
    rs = Dataset()
    rs.RangeShifterNumber, rs.RangeShifterID, rs.RangeShifterType = 1, "RS", "BINARY"
    beam.RangeShifterSequence = Sequence([rs])
    setting = Dataset()
    setting.ReferencedRangeShifterNumber, setting.RangeShifterSetting = 1, "IN"
    setting.RangeShifterWaterEquivalentThickness = 37.3
    beam.IonControlPointSequence[0].RangeShifterSettingsSequence = Sequence([setting])
    ds.FractionGroupSequence[0].ReferencedBeamSequence[0].BeamMeterset = 123.4
    first = read_rtionplan(ds, patient)
    assert all(lay.range_shifter_mm == pytest.approx(37.3) for lay in first.beams[0].layers)
    assert first.beam_meterset_mu == (123.4,)
    assert all(round(lay.energy_mev % 1.0, 6) == 0.3 for lay in first.beams[0].layers)
    second = read_rtionplan(pydicom.dcmread(write_rtionplan(tmp_path / "again.dcm", first.beams, patient,
                                                            plan_label="X", fractions=3)), patient)
    _assert_identical(first.beams, second.beams)
    assert second.beam_meterset_mu[0] == pytest.approx(123.4, rel=1e-6)


#: Type 1 attributes of the RT Ion Plan IOD's modules (PS3.3 A.50, C.8.8.9, C.8.8.13, C.8.8.25, C.12.1).
_TYPE1_TOP = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
              "Modality", "RTPlanLabel", "RTPlanGeometry", "PatientSetupSequence", "FractionGroupSequence",
              "IonBeamSequence")
_TYPE1_BEAM = ("BeamNumber", "BeamType", "RadiationType", "ScanMode", "PrimaryDosimeterUnit",
               "TreatmentDeliveryType", "NumberOfWedges", "NumberOfCompensators", "NumberOfBoli", "NumberOfBlocks",
               "NumberOfRangeShifters", "NumberOfLateralSpreadingDevices", "NumberOfRangeModulators",
               "PatientSupportType", "NumberOfControlPoints", "IonControlPointSequence",
               "FinalCumulativeMetersetWeight", "VirtualSourceAxisDistances")
_TYPE1_CP0 = ("ControlPointIndex", "CumulativeMetersetWeight", "NominalBeamEnergy", "GantryAngle",
              "GantryRotationDirection", "BeamLimitingDeviceAngle", "BeamLimitingDeviceRotationDirection",
              "PatientSupportAngle", "PatientSupportRotationDirection", "ScanSpotTuneID",
              "NumberOfScanSpotPositions", "ScanSpotPositionMap", "ScanSpotMetersetWeights", "ScanningSpotSize",
              "NumberOfPaintings", "TableTopPitchAngle", "TableTopRollAngle")


def test_written_plan_passes_pydicom_validation_and_the_iod_type1_attributes(case, tmp_path):
    patient, crt, _ = case
    old_w, old_r = config.settings.writing_validation_mode, config.settings.reading_validation_mode
    config.settings.writing_validation_mode = config.RAISE
    config.settings.reading_validation_mode = config.RAISE
    try:
        path = write_rtionplan(tmp_path / "RP.dcm", crt, patient, plan_label="a label longer than 16",
                               fractions=20)
        ds = pydicom.dcmread(path)
        ds.walk(lambda dataset, elem: elem.value)  # every value decoded under RAISE
    finally:
        config.settings.writing_validation_mode, config.settings.reading_validation_mode = old_w, old_r
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.8"
    for key in _TYPE1_TOP:
        assert ds.get(key) not in (None, ""), key
    for beam in ds.IonBeamSequence:
        for key in _TYPE1_BEAM:
            assert beam.get(key) not in (None, ""), key
        cps = beam.IonControlPointSequence
        assert len(cps) == beam.NumberOfControlPoints
        for key in _TYPE1_CP0:
            assert cps[0].get(key) not in (None, ""), key
        for cp in cps:
            assert len(cp.ScanSpotPositionMap) == 2 * cp.NumberOfScanSpotPositions
            assert len(cp.ScanSpotMetersetWeights) == cp.NumberOfScanSpotPositions
            assert cp["ScanSpotPositionMap"].VR == "FL" and cp["ScanSpotMetersetWeights"].VR == "FL"
        assert float(cps[-1].CumulativeMetersetWeight) == float(beam.FinalCumulativeMetersetWeight)
    group = ds.FractionGroupSequence[0]
    assert group.NumberOfFractionsPlanned == 20 and group.NumberOfBeams == len(ds.IonBeamSequence)


def test_written_plan_loads_in_gdcm(case, tmp_path):
    gdcm = pytest.importorskip("gdcm")
    patient, _, boost = case
    path = write_rtionplan(tmp_path / "RP.dcm", boost, patient, plan_label="BOOST", fractions=4)
    reader = gdcm.Reader()
    reader.SetFileName(str(path))
    assert reader.Read()
    file = reader.GetFile()
    storage = gdcm.MediaStorage()
    storage.SetFromFile(file)
    assert storage.GetString() == "1.2.840.10008.5.1.4.1.1.481.8"
    beams = file.GetDataSet().GetDataElement(gdcm.Tag(0x300A, 0x03A2)).GetValueAsSQ()
    assert beams.GetNumberOfItems() == len(boost)
    cps = beams.GetItem(1).GetNestedDataSet().GetDataElement(gdcm.Tag(0x300A, 0x03A8)).GetValueAsSQ()
    assert cps.GetNumberOfItems() == 2 * sum(1 for lay in boost[0].layers if lay.weights_gp.any())


def test_bad_requests_write_nothing(case, tmp_path):
    patient, crt, _ = case
    zero = crt[0].scaled(0.0)
    with pytest.raises(se.PlanError, match="every spot weight is zero"):
        write_rtionplan(tmp_path / "RP.dcm", [zero], patient, plan_label="Z", fractions=1)
    with pytest.raises(se.PlanError, match="fractions"):
        write_rtionplan(tmp_path / "RP.dcm", crt, patient, plan_label="Z", fractions=0)
    photon = se.plan.open_field(se.load_machine("photon_6mv"), patient, (50.0, 50.0))
    with pytest.raises(se.PlanError, match="not a ProtonBeam"):
        write_rtionplan(tmp_path / "RP.dcm", [photon], patient, plan_label="Z", fractions=1)
    assert list(tmp_path.iterdir()) == []
