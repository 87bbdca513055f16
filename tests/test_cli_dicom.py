"""`sfrt compare --dicom FOLDER --target NAME --export-dicom` end to end on a synthetic DICOM case."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

import sfrt_engine as se
from sfrt_engine.cli import main


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("case")
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=4.0)
    patient.structures["GTV_1"] = patient.structures["GTV"]
    se.io.write_ct(folder, patient)
    se.io.write_rtstruct(folder / "RS.dcm", patient, names=("GTV_1", "BODY", "FEMUR", "SKIN"))
    return folder, patient


def test_compare_on_dicom_exports_rtdose_rtstruct_and_hdf5(dicom_case, tmp_path, capsys):
    folder, phantom = dicom_case
    out = tmp_path / "out"
    code = main(["compare", "--dicom", str(folder), "--target", "GTV_1", "--avoid", "FEMUR", "SKIN",
                 "--export-dicom", "--backend", "cpp", "--out", str(out), "-q", "--plots", "none",
                 "--optimiser-iterations", "3"])
    assert code == 0
    # what the folder holds is said first: the CT series with its slice count, the structure set with its ROIs
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"DICOM {folder}: CT series ") and f"({phantom.grid.shape_zyx[0]} slices)" in first
    assert "RT Structure Set RS.dcm (ROIs: GTV_1, BODY, FEMUR, SKIN)" in first
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["avoid"] == ["FEMUR", "SKIN"]
    # the ROI read back is the phantom's GTV voxel for voxel, so its volume matches
    gtv = report["arms"]["CRT"]["structures"]["GTV"]
    assert gtv["physical"]["d95_gy"] > 0
    for arm in ("CRT", "SFRT"):
        for kind in ("PHYSICAL", "EQD2"):
            ds = pydicom.dcmread(out / f"RTDOSE_{arm}_{kind}.dcm")
            assert ds.Modality == "RTDOSE" and ds.DoseUnits == "GY"
            assert ds.DoseType == ("PHYSICAL" if kind == "PHYSICAL" else "EFFECTIVE")
            # the RTDOSE shares the CT's frame of reference, so a planning system overlays it
            ct = pydicom.dcmread(next(folder.glob("CT*.dcm")))
            assert ds.FrameOfReferenceUID == ct.FrameOfReferenceUID
    rs = pydicom.dcmread(out / "RTSTRUCT_lattice.dcm")
    names = [roi.ROIName for roi in rs.StructureSetROISequence]
    assert "VERTICES" in names and "VALLEY" in names
    assert (out / "results.h5").exists()
    # the physical SFRT dose read back equals the cumulative physical dose within the scaling quantum
    dose = se.io.read_rtdose(out / "RTDOSE_SFRT_PHYSICAL.dcm")
    assert np.isclose(dose.gy.max(), report["arms"]["SFRT"]["structures"]["BODY"]["physical"]["max_gy"], rtol=1e-6)


def test_compare_on_dicom_names_a_missing_target(dicom_case, tmp_path, capsys):
    folder, _ = dicom_case
    code = main(["compare", "--dicom", str(folder), "--target", "TUMOUR", "--out", str(tmp_path), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "TUMOUR" in err and "GTV_1" in err
    assert not (tmp_path / "report.json").exists()
