"""Write the engine's photon beams as a DICOM RT Plan; proton beams go to :mod:`.rtionplan_write`.

The file holds the modules of the RT Plan IOD (DICOM PS3.3 A.20): Patient, General Study,
RT Series, Frame of Reference, General Equipment, RT General Plan, RT Patient Setup,
RT Fraction Scheme, RT Beams and SOP Common. Each beam has the jaws (ASYMX, ASYMY) and
the machine's MLC (MLCX with its leaf boundaries) at every control point, written in full
so that each control point stands on its own. Static beams and IMRT fluence maps are
sequenced into step-and-shoot segments, arcs into rotating beams
(:mod:`sfrt_engine.plan.segments`). Every number goes through the DICOM decimal string it
is stored as, so a plan read back and written again has identical control points.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from ..errors import PlanError
from ..patient import Patient
from ..plan.delivery import BeamDelivery
from ..plan.segments import beams_to_deliveries
from ._dicom_common import ds, fraction_group_sequence, identity, lo, new_dataset, set_plan_references, write_dataset
from .rtplan_types import RT_PLAN_SOP_CLASS_UID

__all__ = ["write_rtplan"]

_LEAF_JAW_POSITIONS = BaseTag(0x300A011C)


def _is_proton(beam) -> bool:
    from ..plan.protons import ProtonBeam

    return isinstance(beam, ProtonBeam)


def _device(kind: str, n_pairs: int, boundaries=None) -> Dataset:
    d = Dataset()
    d.RTBeamLimitingDeviceType = kind
    d.NumberOfLeafJawPairs = n_pairs
    if boundaries is not None:
        d.LeafPositionBoundaries = [ds(b) for b in boundaries]
    return d


@lru_cache(maxsize=65536)
def _ds_text(value: float) -> str:
    """The shortest decimal string of at most 16 characters (DICOM DS) that is nearest to ``value``."""
    text = repr(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0
    if len(text) <= 16:
        return text
    for digits in range(15, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"{value!r} does not fit a DICOM decimal string")


def _position(kind: str, values) -> Dataset:
    d = Dataset()
    d.RTBeamLimitingDeviceType = kind
    text = "\\".join(_ds_text(float(v)) for v in values).encode("ascii")
    text += b" " * (len(text) % 2)  # even length (PS3.5 7.1.1)
    # stored as text directly: pydicom's per-value DS conversion dominates the writing time of large plans
    d[_LEAF_JAW_POSITIONS] = RawDataElement(_LEAF_JAW_POSITIONS, "DS", len(text), text, 0, False, True)
    return d


def _beam_dataset(d: BeamDelivery, x_jaws: bool) -> Dataset:
    beam = Dataset()
    beam.BeamNumber = d.number
    beam.BeamName = lo(d.name)
    beam.BeamDescription = lo(d.name)
    beam.BeamType = "DYNAMIC" if d.n_control_points > 2 or np.any(d.gantry_deg != d.gantry_deg[0]) else "STATIC"
    beam.RadiationType = "PHOTON"
    beam.TreatmentMachineName = lo(d.machine.name, 16)
    beam.PrimaryDosimeterUnit = "MU"
    beam.SourceAxisDistance = ds(d.machine.sad_mm)
    beam.TreatmentDeliveryType = "TREATMENT"
    beam.NumberOfWedges = 0
    beam.NumberOfCompensators = 0
    beam.NumberOfBoli = 0
    beam.NumberOfBlocks = 0
    beam.ReferencedPatientSetupNumber = 1
    mode = Dataset()
    mode.FluenceMode = "STANDARD"
    beam.PrimaryFluenceModeSequence = Sequence([mode])
    devices = [_device("ASYMX", 1), _device("ASYMY", 1)] if x_jaws else [_device("ASYMY", 1)]
    if d.leaf_boundaries_mm is not None:
        devices.append(_device(f"MLC{d.mlc_axis}", d.leaf_boundaries_mm.size - 1, d.leaf_boundaries_mm))
    beam.BeamLimitingDeviceSequence = Sequence(devices)
    beam.FinalCumulativeMetersetWeight = ds(d.cumulative_weight[-1])
    beam.NumberOfControlPoints = d.n_control_points
    cps = []
    for k in range(d.n_control_points):
        cp = Dataset()
        cp.ControlPointIndex = k
        cp.CumulativeMetersetWeight = ds(d.cumulative_weight[k])
        cp.GantryAngle = ds(d.gantry_deg[k])
        positions = [_position("ASYMX", d.jaw_u_mm[k])] if x_jaws else []
        positions.append(_position("ASYMY", d.jaw_v_mm[k]))
        if d.leaf_positions_mm is not None:
            p = d.leaf_positions_mm[k]
            positions.append(_position(f"MLC{d.mlc_axis}", np.concatenate([p[:, 0], p[:, 1]])))
        cp.BeamLimitingDevicePositionSequence = Sequence(positions)
        if k == 0:
            cp.NominalBeamEnergy = ds(d.energy_mev)
            cp.GantryRotationDirection = d.direction
            cp.BeamLimitingDeviceAngle = ds(d.collimator_deg)
            cp.BeamLimitingDeviceRotationDirection = "NONE"
            cp.PatientSupportAngle = ds(d.couch_deg)
            cp.PatientSupportRotationDirection = "NONE"
            cp.TableTopEccentricAngle = ds(0.0)
            cp.TableTopEccentricRotationDirection = "NONE"
            cp.IsocenterPosition = [ds(c) for c in d.isocenter_xyz_mm]
            if d.ssd_mm is not None:
                cp.SourceToSurfaceDistance = ds(d.ssd_mm)
        cps.append(cp)
    beam.ControlPointSequence = Sequence(cps)
    return beam


def _as_dicom_values(d: BeamDelivery) -> BeamDelivery:
    """The record with every number replaced by the value its DICOM decimal string holds."""
    def r(a):
        if a is None:
            return None
        a = np.asarray(a, dtype=float)
        return np.array([float(_ds_text(float(v))) for v in a.reshape(-1)]).reshape(a.shape)

    return BeamDelivery(d.name, d.number, d.machine, tuple(float(ds(c)) for c in d.isocenter_xyz_mm),
                        float(ds(d.meterset_mu)), r(d.gantry_deg) % 360.0, d.direction, r(d.cumulative_weight),
                        float(ds(d.collimator_deg)), float(ds(d.couch_deg)), r(d.jaw_u_mm), r(d.jaw_v_mm),
                        r(d.leaf_boundaries_mm), r(d.leaf_positions_mm), d.mlc_axis, d.ssd_mm, d.energy_mev)


def write_rtplan(path, beams, patient: Patient, *, plan_label: str, fractions: int, description: str = "",
                 structure_set_uid: str | None = None, transmission_passes: int = 2, x_jaws: bool = True) -> Path:
    """Write beams as a DICOM RT Plan (photons) or RT Ion Plan (proton beams).

    Parameters
    ----------
    path : str or Path
        File to write (atomically).
    beams : sequence of Beam, Arc, BeamDelivery or ProtonBeam
        One fraction's beams [MU]; an all-proton list is written by
        :func:`sfrt_engine.io.rtionplan_write.write_rtionplan`.
    patient : Patient
        Its DICOM identity (study, frame of reference) is used (``patient.dicom``).
    plan_label : str
        RTPlanLabel (16 characters at most are kept).
    fractions : int
        NumberOfFractionsPlanned (>= 1).
    description : str
        RTPlanDescription.
    structure_set_uid : str, optional
        RT Structure Set to reference; defaults to the one the patient was read with. Without
        one, RTPlanGeometry is TREATMENT_DEVICE.
    transmission_passes : int
        Leaf-transmission corrections of the sequencer (:mod:`sfrt_engine.plan.segments`).
    x_jaws : bool
        Write the X jaws (ASYMX). False gives the MLCX + ASYMY device set of MLCs without
        X jaws, which some systems expect; the leaves' transmission then reaches to the MLC's
        extent along X.

    Returns
    -------
    Path
    """
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    beams = list(beams)
    if not beams:
        raise PlanError("write_rtplan: no beams to write")
    if isinstance(fractions, bool) or int(fractions) != fractions or int(fractions) < 1:
        raise PlanError(f"fractions={fractions!r}: expected a whole number of fractions >= 1")
    if all(_is_proton(b) for b in beams):
        from .rtionplan_write import write_rtionplan

        return write_rtionplan(path, beams, patient, plan_label=plan_label, fractions=fractions,
                               description=description)
    if any(_is_proton(b) for b in beams):
        raise PlanError("write_rtplan: photon and proton beams in one plan; write one plan per modality")
    deliveries = [_as_dicom_values(d) for d in beams_to_deliveries(beams, transmission_passes=transmission_passes)]
    ident = identity(patient)
    out = new_dataset(RT_PLAN_SOP_CLASS_UID, "RTPLAN", ident, series_number=300,
                      series_description=f"RT Plan {plan_label}")
    out.InstanceNumber = 1
    out.RTPlanLabel = lo(plan_label, 16)
    out.RTPlanName = lo(plan_label)
    out.RTPlanDescription = str(description)
    out.RTPlanDate, out.RTPlanTime = out.InstanceCreationDate, out.InstanceCreationTime
    out.OperatorsName = ""
    set_plan_references(out, structure_set_uid or (ident.get("rtstruct") or {}).get("SOPInstanceUID"))
    out.FractionGroupSequence = fraction_group_sequence(fractions, [(d.number, ds(d.meterset_mu)) for d in deliveries])
    out.BeamSequence = Sequence([_beam_dataset(d, x_jaws) for d in deliveries])
    out.ApprovalStatus = "UNAPPROVED"
    return write_dataset(out, path)
