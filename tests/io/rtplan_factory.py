"""RT Plan test files built with pydicom alone (independent of the engine's writer).

:func:`rt_plan` makes a dataset from plain beam descriptions; each control point is a dict
of the DICOM attributes to set, so a test can write exactly the device convention (X/Y or
ASYMX/ASYMY jaws, MLCX or MLCY, attributes carried over or repeated) it wants to read.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"

#: 120-leaf boundaries: 10 x 10 mm, 40 x 5 mm, 10 x 10 mm (Millennium 120 layout).
MLC120 = [-200.0 + 10 * i for i in range(10)] + [-100.0 + 5 * i for i in range(40)] + \
         [100.0 + 10 * i for i in range(11)]


def leaves(lo, hi, n=60):
    """MLC LeafJawPositions: bank A then bank B (scalars broadcast to every pair)."""
    a = np.broadcast_to(np.asarray(lo, dtype=float), (n,))
    b = np.broadcast_to(np.asarray(hi, dtype=float), (n,))
    return [float(x) for x in a] + [float(x) for x in b]


def field_leaves(half_u, half_v, boundaries=MLC120, park=0.0):
    """Leaves opening ``+-half_u`` over the pairs inside ``+-half_v``; the other pairs closed at ``park``."""
    b = np.asarray(boundaries)
    inside = (b[:-1] >= -half_v - 1e-9) & (b[1:] <= half_v + 1e-9)
    return leaves(np.where(inside, -half_u, park), np.where(inside, half_u, park), b.size - 1)


def control_point(index, weight, *, gantry=None, positions=None, iso=None, energy=None, coll=None, couch=None,
                  direction=None, extra=None):
    cp = Dataset()
    cp.ControlPointIndex = index
    cp.CumulativeMetersetWeight = weight
    if energy is not None:
        cp.NominalBeamEnergy = energy
    if gantry is not None:
        cp.GantryAngle = gantry
    if direction is not None:
        cp.GantryRotationDirection = direction
    if coll is not None:
        cp.BeamLimitingDeviceAngle = coll
    if couch is not None:
        cp.PatientSupportAngle = couch
    if iso is not None:
        cp.IsocenterPosition = list(iso)
    if positions:
        items = []
        for kind, values in positions.items():
            p = Dataset()
            p.RTBeamLimitingDeviceType = kind
            p.LeafJawPositions = [float(v) for v in values]
            items.append(p)
        cp.BeamLimitingDevicePositionSequence = Sequence(items)
    for key, value in (extra or {}).items():
        setattr(cp, key, value)
    return cp


def first_cp(positions, *, iso=(0.0, 0.0, 0.0), gantry=0.0, energy=6.0, coll=0.0, couch=0.0, direction="NONE"):
    return control_point(0, 0.0, gantry=gantry, positions=positions, iso=iso, energy=energy, coll=coll, couch=couch,
                         direction=direction)


def beam(number, cps, *, devices=("ASYMX", "ASYMY", "MLCX"), boundaries=MLC120, name=None, extra=None):
    b = Dataset()
    b.BeamNumber = number
    b.BeamName = name or f"B{number}"
    b.BeamType = "DYNAMIC" if len(cps) > 2 else "STATIC"
    b.RadiationType = "PHOTON"
    b.TreatmentDeliveryType = "TREATMENT"
    b.SourceAxisDistance = 1000.0
    b.NumberOfWedges = 0
    b.NumberOfBlocks = 0
    b.NumberOfCompensators = 0
    b.NumberOfBoli = 0
    items = []
    for kind in devices:
        d = Dataset()
        d.RTBeamLimitingDeviceType = kind
        if kind.startswith("MLC"):
            d.NumberOfLeafJawPairs = len(boundaries) - 1
            d.LeafPositionBoundaries = list(boundaries)
        else:
            d.NumberOfLeafJawPairs = 1
        items.append(d)
    b.BeamLimitingDeviceSequence = Sequence(items)
    b.NumberOfControlPoints = len(cps)
    b.FinalCumulativeMetersetWeight = cps[-1].CumulativeMetersetWeight
    b.ControlPointSequence = Sequence(cps)
    for key, value in (extra or {}).items():
        setattr(b, key, value)
    return b


def rt_plan(beams, metersets, *, frame_uid=None, fractions=5, structure_set_uid=None):
    """An RT Plan dataset; ``metersets`` maps beam number -> BeamMeterset (None leaves it out)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_PLAN
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = RT_PLAN
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTPLAN"
    ds.PatientID = "TEST"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = frame_uid or generate_uid()
    ds.RTPlanLabel = "TEST"
    ds.RTPlanGeometry = "PATIENT" if structure_set_uid else "TREATMENT_DEVICE"
    if structure_set_uid:
        r = Dataset()
        r.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
        r.ReferencedSOPInstanceUID = structure_set_uid
        ds.ReferencedStructureSetSequence = Sequence([r])
    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = "HFS"
    ds.PatientSetupSequence = Sequence([setup])
    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = fractions
    group.NumberOfBeams = len(beams)
    refs = []
    for number, mu in metersets.items():
        r = Dataset()
        r.ReferencedBeamNumber = number
        if mu is not None:
            r.BeamMeterset = mu
        refs.append(r)
    group.ReferencedBeamSequence = Sequence(refs)
    ds.FractionGroupSequence = Sequence([group])
    ds.BeamSequence = Sequence(beams)
    return ds


def static_mlc_field(half_u=50.0, half_v=50.0, mu=100.0, gantry=0.0, iso=(0.0, 0.0, 0.0), jaws="ASYM", **kw):
    """A one-beam plan: a static MLC-shaped rectangle with jaws on it."""
    x, y = ("ASYMX", "ASYMY") if jaws == "ASYM" else ("X", "Y")
    pos = {x: [-half_u, half_u], y: [-half_v, half_v], "MLCX": field_leaves(half_u, half_v)}
    cps = [first_cp(pos, gantry=gantry, iso=iso), control_point(1, 1.0)]
    return rt_plan([beam(1, cps, devices=(x, y, "MLCX"))], {1: mu}, **kw)
