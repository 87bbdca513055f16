"""RT Dose and CT export: attributes a planning system needs, and CT -> Patient -> RTDOSE -> read-back round trips."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.tag import Tag

import sfrt_engine as se
from sfrt_engine import io


def _gaussian_dose(grid, peak_gy=12.345):
    z, y, x = grid.coordinates_mm()
    return peak_gy * np.exp(-((x + 10) ** 2 + (y + 20) ** 2 + (z + 10) ** 2) / (2 * 15.0**2))


def test_ct_to_patient_to_rtdose_round_trip(dicom_factory, tmp_path):
    series = dicom_factory.ct()
    patient = io.read_dicom(series.folder)
    dose = _gaussian_dose(patient.grid)
    path = io.write_rtdose(tmp_path / "RD.dcm", dose, patient)

    rd = pydicom.dcmread(path)
    scaling = float(rd.DoseGridScaling)
    assert scaling == pytest.approx(dose.max() / (2**32 - 1), rel=1e-9)
    pixels = rd.pixel_array
    assert pixels.dtype == np.uint32 and pixels.shape == patient.grid.shape_zyx
    # every value within half a DoseGridScaling quantum
    assert np.max(np.abs(pixels * scaling - dose)) <= 0.5 * scaling * (1 + 1e-6)
    back = io.read_rtdose(path)
    assert back.grid == patient.grid
    assert np.max(np.abs(back.gy - dose)) <= 0.5 * scaling * (1 + 1e-6)

    # geometry
    assert [float(v) for v in rd.ImagePositionPatient] == list(series.origin_xyz_mm)
    assert [float(v) for v in rd.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in rd.PixelSpacing] == [2.0, 1.5]  # [row spacing (y), column spacing (x)]
    assert [float(v) for v in rd.GridFrameOffsetVector] == [2.5 * k for k in range(series.shape_zyx[0])]
    assert rd.FrameIncrementPointer == Tag(0x3004, 0x000C)
    assert int(rd.NumberOfFrames) == series.shape_zyx[0]
    # the CT's identity
    assert rd.StudyInstanceUID == series.study_uid and rd.FrameOfReferenceUID == series.frame_uid
    assert rd.PatientID == "SFRT-0001" and str(rd.PatientName) == "Test^Sarcoma"
    assert rd.SeriesInstanceUID != series.series_uid


def test_rtdose_attributes(tmp_path):
    patient = se.phantoms.water_box((20.0, 16.0, 12.0), (2.0, 4.0, 3.0))
    dose = se.Dose(np.full(patient.grid.shape_zyx, 3.0), patient.grid, "numpy")
    io.write_rtdose(tmp_path / "phys.dcm", dose, patient)
    io.write_rtdose(tmp_path / "eqd2.dcm", dose.gy * 2, patient, dose_type="EFFECTIVE",
                    description="SFRT EQD2, vertex boost integrated; alpha/beta GTV 4 Gy, SKIN 2 Gy, FEMUR 3 Gy, "
                                "NORMAL_TISSUE 3 Gy", series_description="SFRT EQD2")
    phys, eqd2 = pydicom.dcmread(tmp_path / "phys.dcm"), pydicom.dcmread(tmp_path / "eqd2.dcm")
    for rd in (phys, eqd2):
        assert rd.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.481.2" == rd.SOPClassUID
        assert rd.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert rd.Modality == "RTDOSE" and rd.DoseUnits == "GY" and rd.DoseSummationType == "PLAN"
        assert (rd.BitsAllocated, rd.BitsStored, rd.HighBit, rd.PixelRepresentation) == (32, 32, 31, 0)
        assert (rd.SamplesPerPixel, rd.PhotometricInterpretation) == (1, "MONOCHROME2")
        assert [float(v) for v in rd.PixelSpacing] == [4.0, 2.0]
    assert phys.DoseType == "PHYSICAL" and eqd2.DoseType == "EFFECTIVE"
    assert eqd2.DoseComment.startswith("SFRT EQD2, vertex boost integrated; alpha/beta GTV 4 Gy")
    assert len(eqd2.DoseComment) <= 64 and eqd2.ImageComments.endswith("NORMAL_TISSUE 3 Gy")
    assert eqd2.SeriesDescription == "SFRT EQD2"
    # a phantom gets fresh UIDs, shared by every file exported for it
    assert phys.StudyInstanceUID == eqd2.StudyInstanceUID == patient.dicom["StudyInstanceUID"]
    assert phys.FrameOfReferenceUID == eqd2.FrameOfReferenceUID == patient.dicom["FrameOfReferenceUID"]
    assert phys.SOPInstanceUID != eqd2.SOPInstanceUID
    assert io.read_rtdose(tmp_path / "eqd2.dcm").gy.max() == pytest.approx(6.0, abs=1e-8)


def test_zero_dose(tmp_path):
    patient = se.phantoms.water_box(10.0, 5.0)
    io.write_rtdose(tmp_path / "z.dcm", np.zeros(patient.grid.shape_zyx), patient)
    assert not io.read_rtdose(tmp_path / "z.dcm").gy.any()


def test_rtdose_rejects_bad_input(tmp_path):
    patient = se.phantoms.water_box(10.0, 5.0)
    shape = patient.grid.shape_zyx
    with pytest.raises(se.GridError, match=r"dose: shape \(1, 1, 1\) does not match"):
        io.write_rtdose(tmp_path / "x.dcm", np.zeros((1, 1, 1)), patient)
    with pytest.raises(ValueError, match="minimum -1 Gy is negative"):
        io.write_rtdose(tmp_path / "x.dcm", np.full(shape, -1.0), patient)
    with pytest.raises(ValueError, match="8 voxels are NaN or infinite"):
        io.write_rtdose(tmp_path / "x.dcm", np.full(shape, np.nan), patient)
    with pytest.raises(ValueError, match="EFFECTIVE' needs a description"):
        io.write_rtdose(tmp_path / "x.dcm", np.ones(shape), patient, dose_type="EFFECTIVE")
    with pytest.raises(ValueError, match="dose_type='BED'"):
        io.write_rtdose(tmp_path / "x.dcm", np.ones(shape), patient, dose_type="BED")
    other = se.Dose(np.ones((1, 1, 1)), se.Grid((1, 1, 1), 1.0), "numpy")
    with pytest.raises(ValueError, match="differs from the patient grid"):
        io.write_rtdose(tmp_path / "x.dcm", other, patient)
    assert not list(tmp_path.iterdir())


def test_phantom_ct_round_trip(tmp_path):
    patient = se.phantoms.water_box((20.0, 16.0, 12.0), (2.0, 4.0, 3.0))
    patient.hu[:] = np.arange(patient.hu.size).reshape(patient.grid.shape_zyx) - 1000.0
    files = io.write_ct(tmp_path / "CT", patient)
    assert len(files) == patient.grid.shape_zyx[0]
    back = io.read_dicom(tmp_path / "CT")
    assert back.grid == patient.grid and np.array_equal(back.hu, patient.hu)
    assert back.dicom["FrameOfReferenceUID"] == patient.dicom["FrameOfReferenceUID"]
    assert back.dicom["ct_sop_instance_uids"] == patient.dicom["ct_sop_instance_uids"]
