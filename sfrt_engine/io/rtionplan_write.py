"""The engine's proton beams as a DICOM RT Ion Plan (PS3.3 A.50: RT General Plan, RT Patient Setup,
RT Fraction Scheme, RT Ion Beams).

Each energy layer becomes a pair of control points (the usual convention of planning systems):
the first lists the layer's spots (ScanSpotPositionMap, in the IEC GANTRY system at the
isocentre plane = the engine's BEV u, v) with their meterset weights, the second the same
spots with zero weights; CumulativeMetersetWeight rises by the layer's weights between them.
Weights are the spots' MU (Gp / the machine's Gp per MU, as float32, the VR of the attribute);
BeamMeterset and FinalCumulativeMetersetWeight are both their sum, so the file reads back to
the same spots bit for bit (:func:`~sfrt_engine.io.rtionplan_read.read_rtionplan`). A layer with
a range shifter gets a RangeShifterSettingsSequence with its water-equivalent thickness
(one BINARY range shifter per beam). ScanningSpotSize is the machine's FWHM in air.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ..errors import PlanError
from ..machines import ProtonMachine
from ..patient import Patient
from ..plan.protons import ProtonBeam
from ._dicom_common import ds, fraction_group_sequence, identity, lo, new_dataset, set_plan_references, write_dataset
from .rtionplan_read import FWHM_PER_SIGMA, RT_ION_PLAN_STORAGE

__all__ = ["write_rtionplan"]

_RANGE_SHIFTER_NUMBER = 1


def _spots(layer) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved (x, y) positions and Gp of a layer's weighted spots, row by row."""
    rows, cols = np.nonzero(layer.weights_gp)
    pu, pv = layer.positions_uv_mm()
    xy = np.empty(2 * rows.size)
    xy[0::2], xy[1::2] = pu[cols], pv[rows]
    return xy, layer.weights_gp[rows, cols]


def _control_point(index: int, cumulative: float, energy: float, xy: np.ndarray, weights: np.ndarray,
                   spot_fwhm: float, shift_mm: float | None) -> Dataset:
    cp = Dataset()
    cp.ControlPointIndex = index
    cp.NominalBeamEnergy = ds(energy)
    cp.CumulativeMetersetWeight = ds(cumulative)
    cp.ScanSpotTuneID = f"{spot_fwhm:.1f}"
    cp.NumberOfScanSpotPositions = int(weights.size)
    cp.ScanSpotPositionMap = [float(v) for v in xy.astype(np.float32)]
    cp.ScanSpotMetersetWeights = [float(v) for v in weights]
    cp.ScanningSpotSize = [float(np.float32(spot_fwhm))] * 2
    cp.NumberOfPaintings = 1
    cp.ReferencedDoseReferenceSequence = Sequence()
    if shift_mm is not None:
        setting = Dataset()
        setting.ReferencedRangeShifterNumber = _RANGE_SHIFTER_NUMBER
        setting.RangeShifterSetting = "IN" if shift_mm > 0 else "OUT"
        setting.RangeShifterWaterEquivalentThickness = float(np.float32(shift_mm))
        cp.RangeShifterSettingsSequence = Sequence([setting])
    cp.ScanSpotReorderingAllowed = "NO"
    return cp


def _first_point(cp: Dataset, beam: ProtonBeam) -> None:
    """Attributes required at the first control point only (PS3.3 C.8.8.25.7)."""
    cp.GantryAngle = ds(beam.gantry_deg % 360.0)
    cp.GantryRotationDirection = "NONE"
    cp.GantryPitchAngle = 0.0
    cp.GantryPitchRotationDirection = "NONE"
    cp.BeamLimitingDeviceAngle = ds(0.0)
    cp.BeamLimitingDeviceRotationDirection = "NONE"
    cp.PatientSupportAngle = ds(beam.couch_deg % 360.0)
    cp.PatientSupportRotationDirection = "NONE"
    cp.TableTopPitchAngle = 0.0
    cp.TableTopPitchRotationDirection = "NONE"
    cp.TableTopRollAngle = 0.0
    cp.TableTopRollRotationDirection = "NONE"
    cp.TableTopVerticalPosition = None
    cp.TableTopLongitudinalPosition = None
    cp.TableTopLateralPosition = None
    cp.IsocenterPosition = [ds(c) for c in beam.isocenter_xyz_mm]
    cp.SnoutPosition = None


def _ion_beam(beam: ProtonBeam, number: int) -> tuple[Dataset, float]:
    machine = beam.machine
    if abs(beam.collimator_deg) > 1e-9:
        raise PlanError(f"beam {beam.name!r}: collimator_deg={beam.collimator_deg:g}; RT Ion Plan spot maps are "
                        "written in the gantry system, for beams with a collimator angle of 0")
    layers = [lay for lay in beam.layers if np.any(lay.weights_gp > 0)]
    uses_shifter = any(lay.range_shifter_mm > 0 for lay in layers)
    points, cumulative, shift_now = [], 0.0, None
    for k, lay in enumerate(layers):
        xy, gp = _spots(lay)
        mu = (gp / float(machine.gp_per_mu(lay.energy_mev))).astype(np.float32)
        spot_fwhm = FWHM_PER_SIGMA * float(machine.sigma_air_mm[machine.energy_index(lay.energy_mev)])
        shift = lay.range_shifter_mm if uses_shifter and lay.range_shifter_mm != shift_now else None
        shift_now = lay.range_shifter_mm
        first = _control_point(2 * k, cumulative, lay.energy_mev, xy, mu, spot_fwhm, shift)
        cumulative += float(np.sum(mu, dtype=np.float64))
        second = _control_point(2 * k + 1, cumulative, lay.energy_mev, xy, np.zeros_like(mu), spot_fwhm, None)
        points += [first, second]
    if not points or cumulative <= 0:
        raise PlanError(f"beam {beam.name!r}: every spot weight is zero; nothing to write")
    total = ds(cumulative)
    points[-1].CumulativeMetersetWeight = total
    _first_point(points[0], beam)
    out = Dataset()
    out.BeamNumber = number
    out.BeamName = lo(beam.name)
    out.BeamDescription = f"{len(layers)} energy layers, {sum(int(np.count_nonzero(lay.weights_gp)) for lay in layers)}" \
                          " spots"
    out.BeamType = "STATIC"
    out.RadiationType = "PROTON"
    out.ScanMode = "MODULATED"
    out.TreatmentMachineName = lo(machine.name, 16)
    out.PrimaryDosimeterUnit = "MU"
    out.TreatmentDeliveryType = "TREATMENT"
    out.VirtualSourceAxisDistances = [float(machine.sad_mm)] * 2
    for attr in ("NumberOfWedges", "NumberOfCompensators", "NumberOfBoli", "NumberOfBlocks",
                 "NumberOfLateralSpreadingDevices", "NumberOfRangeModulators"):
        setattr(out, attr, 0)
    out.NumberOfRangeShifters = 1 if uses_shifter else 0
    if uses_shifter:
        rs = Dataset()
        rs.RangeShifterNumber = _RANGE_SHIFTER_NUMBER
        rs.RangeShifterID = "RS"
        rs.RangeShifterType = "BINARY"
        out.RangeShifterSequence = Sequence([rs])
    out.PatientSupportType = "TABLE"
    out.ReferencedPatientSetupNumber = 1
    out.FinalCumulativeMetersetWeight = total
    out.NumberOfControlPoints = len(points)
    out.IonControlPointSequence = Sequence(points)
    return out, float(total)


def write_rtionplan(path, beams, patient: Patient, *, plan_label: str, fractions: int, description: str = "",
                    structure_set_uid: str | None = None) -> Path:
    """Write proton beams as an RT Ion Plan with one fraction group.

    Parameters
    ----------
    path : str or Path
        File to write (atomically).
    beams : sequence of ProtonBeam
        Spot weights [Gp] for one fraction.
    patient : Patient
        Its DICOM identity (``patient.dicom``; created if absent) gives patient, study and frame of reference.
    plan_label : str
        RTPlanLabel (cut to 16 characters); also the RTPlanName.
    fractions : int
        NumberOfFractionsPlanned (each fraction delivers ``beams``).
    description : str
        RTPlanDescription.
    structure_set_uid : str, optional
        Structure set the plan references; default the one the CT was read with (``patient.dicom["rtstruct"]``),
        if any. Without one the plan geometry is TREATMENT_DEVICE.

    Returns
    -------
    Path
    """
    beams = list(beams)
    if not beams:
        raise PlanError("write_rtionplan: no beams")
    for b in beams:
        if not isinstance(b, ProtonBeam) or not isinstance(b.machine, ProtonMachine):
            raise PlanError(f"write_rtionplan: {b!r} is not a ProtonBeam; photon beams go to an RT Plan")
    if isinstance(fractions, bool) or int(fractions) != fractions or int(fractions) < 1:
        raise PlanError(f"write_rtionplan: fractions={fractions!r}, expected an integer >= 1")
    ident = identity(patient)
    out = new_dataset(RT_ION_PLAN_STORAGE, "RTPLAN", ident, series_description=f"RT Ion Plan {plan_label}")
    now = datetime.now()
    out.RTPlanLabel = lo(plan_label, 16)
    out.RTPlanName = lo(plan_label)
    out.RTPlanDescription = str(description)
    out.RTPlanDate = now.strftime("%Y%m%d")
    out.RTPlanTime = now.strftime("%H%M%S")
    out.OperatorsName = ""
    set_plan_references(out, structure_set_uid or (ident.get("rtstruct") or {}).get("SOPInstanceUID"))
    items = [_ion_beam(beam, number)[0] for number, beam in enumerate(beams, start=1)]
    out.FractionGroupSequence = fraction_group_sequence(
        fractions, [(number, item.FinalCumulativeMetersetWeight) for number, item in enumerate(items, start=1)])
    out.IonBeamSequence = Sequence(items)
    out.ApprovalStatus = "UNAPPROVED"
    return write_dataset(out, path)
