"""Read a DICOM RT Plan (photons) into the engine's beams; RT Ion Plans go to :mod:`.rtionplan_read`.

What is read (DICOM PS3.3 C.8.8.14 RT Beams, C.8.8.13 RT Fraction Scheme):

- per beam: Beam Meterset from the first fraction group (MU per fraction), treatment
  machine energy (NominalBeamEnergy and PrimaryFluenceModeSequence, FFF or not), source-axis
  distance, isocentre, gantry / collimator / patient support angles, gantry rotation direction,
  cumulative meterset weights, and the beam-limiting devices X, Y, ASYMX, ASYMY (jaws) and
  MLCX or MLCY with the LeafPositionBoundaries of the plan. Attributes a control point leaves
  out keep the previous control point's value (C.8.8.14.5);
- the beams become :class:`~sfrt_engine.plan.BeamDelivery` records, converted to engine beams
  by :func:`~sfrt_engine.plan.delivery.delivery_to_beams` (static / step-and-shoot / sliding
  window -> one :class:`~sfrt_engine.plan.Beam`; VMAT -> an :class:`~sfrt_engine.plan.Arc`).

Engine calibration: a beamlet of weight 1 MU in a broad field gives the machine's
``gy_per_mu`` (1 cGy/MU at d_max, 10 x 10 cm, SSD 100 cm for ``photon_6mv``), so the plan's MU
give dose in Gy for one fraction.

What the engine cannot model is an error naming the beam and the attribute: wedges,
blocks, compensators, boli, electrons or other radiation, an energy without a machine, FFF
without FFF machine data, a patient position other than HFS, a collimator or couch that
turns during a beam, a table-top eccentric rotation, an unknown beam-limiting device. Only
the first fraction group is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MachineDataError, PlanError
from ..machines import PhotonMachine, builtin_machines, load_machine
from ..machines.photon import mlc_model
from ..patient import Patient
from ..plan.delivery import BeamDelivery, delivery_to_beams
from ..plan.mlc import check_leaf_positions
from ._errors import DicomError
from .rtplan_types import RT_ION_PLAN_SOP_CLASS_UID, RT_PLAN_SOP_CLASS_UID, RTPlanData

__all__ = ["photon_machine_for", "read_rtplan"]

_JAWS = {"X": "X", "ASYMX": "X", "Y": "Y", "ASYMY": "Y"}
_MLCS = {"MLCX": "X", "MLCY": "Y"}


def photon_machine_for(energy_mev: float, fff: bool, where: str) -> PhotonMachine:
    """The built-in photon machine whose file declares this nominal energy and fluence mode.

    Raises
    ------
    DicomError
        Naming ``where`` and the energies available.
    """
    found = []
    for name in builtin_machines():
        try:
            machine = load_machine(name)
        except MachineDataError:  # a data file that is not a beam (e.g. a CT calibration)
            continue
        if isinstance(machine, PhotonMachine) and "nominal_energy_mev" in machine.metadata:
            e = float(machine.metadata["nominal_energy_mev"])
            mode = bool(machine.metadata.get("fff", False))
            found.append(f"{e:g} MV{' FFF' if mode else ''} ({name})")
            if abs(e - energy_mev) < 1e-6 and mode == fff:
                return machine
    kind = "flattening-filter-free " if fff else ""
    raise DicomError(f"{where}: NominalBeamEnergy {energy_mev:g} MV {kind}has no machine data; available: "
                     f"{', '.join(found) or 'none'}. Add a machine file for this beam to sfrt_engine/machines/data")


def _read(path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(path, pydicom.Dataset):
        return path, "RT Plan"
    p = Path(path)
    if not p.is_file():
        raise DicomError(f"{p}: no such RT Plan file")
    try:
        return pydicom.dcmread(p), str(p)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise DicomError(f"{p}: not a readable DICOM file ({exc})") from None


def _numbers(item, keyword: str) -> np.ndarray:
    """A multi-valued DS attribute as floats, parsed straight from the file's text when not yet converted."""
    element = item.get_item(keyword)
    value = element.value
    if isinstance(value, bytes):  # raw element: ``1.5\\-2\\...`` (much faster than pydicom's DSfloat per value)
        return np.array(value.decode("ascii").replace("\\", " ").split(), dtype=float)
    return np.asarray(value if isinstance(value, (list, tuple)) or hasattr(value, "__len__") else [value],
                      dtype=float)


def _check_patient(ds, patient: Patient, where: str) -> None:
    ident = getattr(patient, "dicom", None) or {}
    plan_for = str(ds.get("FrameOfReferenceUID", ""))
    ct_for = str(ident.get("FrameOfReferenceUID", ""))
    if ident.get("ct_sop_instance_uids") and ct_for and plan_for != ct_for:
        raise DicomError(f"{where}: FrameOfReferenceUID {plan_for} differs from the CT's {ct_for}; the plan was made "
                         "on another image set. Give the CT series the plan was made on")
    refs = ds.get("ReferencedStructureSetSequence") or []
    if refs and ident.get("ct_sop_instance_uids"):
        wanted = str(refs[0].get("ReferencedSOPInstanceUID", ""))
        have = str((ident.get("rtstruct") or {}).get("SOPInstanceUID", ""))
        if wanted != have:
            found = f"the folder's is {have}" if have else "the CT folder has none"
            raise DicomError(f"{where}: ReferencedStructureSetSequence names RT Structure Set {wanted}, but {found}. "
                             "Put the plan's structure set in the CT folder")
    for setup in ds.get("PatientSetupSequence") or []:
        position = str(setup.get("PatientPosition", "HFS") or "HFS")
        if position != "HFS":
            raise DicomError(f"{where}: PatientSetupSequence PatientPosition {position}; the engine handles head-first "
                             "supine (HFS) only")


def _meterset(ds, where: str) -> tuple[dict, int | None]:
    groups = ds.get("FractionGroupSequence") or []
    if not groups:
        raise DicomError(f"{where}: no FractionGroupSequence; the beam metersets (MU) are in the fraction group")
    group = groups[0]
    fractions = group.get("NumberOfFractionsPlanned")
    out = {}
    for ref in group.get("ReferencedBeamSequence") or []:
        number = int(ref.ReferencedBeamNumber)
        value = ref.get("BeamMeterset")
        out[number] = None if value in (None, "") else float(value)
    return out, None if fractions in (None, "") else int(fractions)


def _device_types(beam, where: str) -> tuple[dict, np.ndarray | None, str | None]:
    """Jaw axes present, MLC leaf boundaries and MLC axis of a beam."""
    jaws, boundaries, axis = {}, None, None
    for dev in beam.get("BeamLimitingDeviceSequence") or []:
        kind = str(dev.RTBeamLimitingDeviceType)
        if kind in _JAWS:
            jaws[_JAWS[kind]] = kind
        elif kind in _MLCS:
            if axis is not None:
                raise DicomError(f"{where}: two MLCs ({axis} and {kind}) in BeamLimitingDeviceSequence; one is "
                                 "supported")
            axis = _MLCS[kind]
            if "LeafPositionBoundaries" not in dev:
                raise DicomError(f"{where}: {kind} without LeafPositionBoundaries")
            boundaries = np.asarray(dev.LeafPositionBoundaries, dtype=float)
            n = int(dev.NumberOfLeafJawPairs)
            if boundaries.size != n + 1 or np.any(np.diff(boundaries) <= 0):
                raise DicomError(f"{where}: {kind} LeafPositionBoundaries must be {n + 1} increasing values, got "
                                 f"{boundaries.size}")
        else:
            raise DicomError(f"{where}: RTBeamLimitingDeviceType {kind!r} is not supported; expected X, Y, ASYMX, "
                             "ASYMY, MLCX or MLCY")
    return jaws, boundaries, axis


def _unsupported(beam, where: str) -> None:
    radiation = str(beam.get("RadiationType", "PHOTON"))
    if radiation != "PHOTON":
        raise DicomError(f"{where}: RadiationType {radiation}; only PHOTON beams are modelled")
    for attr, what in (("NumberOfWedges", "wedges"), ("NumberOfBlocks", "blocks"),
                       ("NumberOfCompensators", "compensators"), ("NumberOfBoli", "boli")):
        if int(beam.get(attr, 0) or 0) > 0:
            raise DicomError(f"{where}: {attr} = {beam.get(attr)}; {what} are not modelled by the engine")


def _fff(beam) -> bool:
    for mode in beam.get("PrimaryFluenceModeSequence") or []:
        if str(mode.get("FluenceMode", "STANDARD")) == "NON_STANDARD" and str(mode.get("FluenceModeID", "")) == "FFF":
            return True
    return False


def _delivery(beam, meterset_mu: float, patient: Patient, where: str, machine=None) -> BeamDelivery:
    _unsupported(beam, where)
    cps = beam.get("ControlPointSequence") or []
    if len(cps) < 2:
        raise DicomError(f"{where}: {len(cps)} control points; a beam needs at least 2")
    first = cps[0]
    if "NominalBeamEnergy" not in first:
        raise DicomError(f"{where}, control point 0: NominalBeamEnergy missing")
    energy = float(first.NominalBeamEnergy)
    if machine is None:
        machine = photon_machine_for(energy, _fff(beam), where)
    elif abs(float(machine.metadata.get("nominal_energy_mev", energy)) - energy) > 1e-6:
        raise DicomError(f"{where}: NominalBeamEnergy {energy:g} MV, but machine {machine.name!r} is "
                         f"{float(machine.metadata['nominal_energy_mev']):g} MV")
    sad = float(beam.get("SourceAxisDistance", machine.sad_mm))
    if abs(sad - machine.sad_mm) > 0.5:
        raise DicomError(f"{where}: SourceAxisDistance {sad:g} mm, but machine {machine.name!r} has "
                         f"{machine.sad_mm:g} mm")
    model = mlc_model(machine)
    jaws, boundaries, axis = _device_types(beam, where)
    if boundaries is None and not jaws:
        raise DicomError(f"{where}: no beam-limiting device; expected jaws (X/Y or ASYMX/ASYMY) and/or an MLC")
    n = len(cps)
    state = {"gantry": None, "coll": None, "couch": None, "iso": None, "dir": "NONE", "X": None, "Y": None,
             "MLC": None}
    limit = model.travel_limit_mm
    extent = (float(boundaries[0]), float(boundaries[-1])) if boundaries is not None else (-limit, limit)
    default = {"X": (-limit, limit), "Y": (-limit, limit)}
    if axis == "X":
        default["Y"] = extent
    elif axis == "Y":
        default["X"] = extent
    gantry, cum, jaw_u, jaw_v, leaves = np.empty(n), np.empty(n), np.empty((n, 2)), np.empty((n, 2)), []
    for k, cp in enumerate(cps):
        at = f"{where}, control point {k}"
        for key, attr in (("gantry", "GantryAngle"), ("coll", "BeamLimitingDeviceAngle"),
                          ("couch", "PatientSupportAngle")):
            if attr in cp:
                value = float(cp.get(attr))
                if key != "gantry" and state[key] is not None and abs(value - state[key]) > 1e-6:
                    raise DicomError(f"{at}: {attr} changes from {state[key]:g} to {value:g} deg during the beam; "
                                     "not supported")
                state[key] = value
            elif state[key] is None:
                raise DicomError(f"{at}: {attr} missing")
        eccentric = cp.get("TableTopEccentricAngle")
        if eccentric not in (None, "") and abs(float(eccentric) % 360.0) > 1e-6:
            raise DicomError(f"{at}: TableTopEccentricAngle {float(eccentric):g} deg; only 0 is modelled")
        if "IsocenterPosition" in cp:
            state["iso"] = tuple(float(c) for c in cp.IsocenterPosition)
        elif state["iso"] is None:
            raise DicomError(f"{at}: IsocenterPosition missing")
        if "GantryRotationDirection" in cp and k < n - 1:
            state["dir"] = str(cp.GantryRotationDirection)
            if k > 0 and state["dir"] not in ("NONE", "CW", "CC"):
                raise DicomError(f"{at}: GantryRotationDirection {state['dir']!r}, expected NONE, CW or CC")
        if "CumulativeMetersetWeight" not in cp or cp.CumulativeMetersetWeight in (None, ""):
            raise DicomError(f"{at}: CumulativeMetersetWeight missing")
        cum[k] = float(cp.CumulativeMetersetWeight)
        if k > 0 and cum[k] < cum[k - 1]:
            raise DicomError(f"{at}: CumulativeMetersetWeight {cum[k]:g} is below the previous {cum[k - 1]:g}; "
                             "cumulative meterset weights must not decrease")
        for pos in cp.get("BeamLimitingDevicePositionSequence") or []:
            kind = str(pos.RTBeamLimitingDeviceType)
            values = _numbers(pos, "LeafJawPositions")
            if kind in _JAWS:
                if kind not in jaws.values():
                    raise DicomError(f"{at}: positions for {kind}, which BeamLimitingDeviceSequence does not declare")
                if values.size != 2 or values[1] < values[0]:
                    raise DicomError(f"{at}: {kind} LeafJawPositions {values.tolist()}, expected two values lo <= hi")
                state[_JAWS[kind]] = (float(values[0]), float(values[1]))
            elif kind in _MLCS and boundaries is not None and _MLCS[kind] == axis:
                m = boundaries.size - 1
                if values.size != 2 * m:
                    raise DicomError(f"{at}: {kind} has {values.size} LeafJawPositions, expected {2 * m}")
                state["MLC"] = check_leaf_positions(np.stack([values[:m], values[m:]], axis=1), model,
                                                    f"{at}, {kind}")
            else:
                raise DicomError(f"{at}: RTBeamLimitingDeviceType {kind!r} in the positions is not declared for "
                                 "this beam")
        gantry[k] = state["gantry"]
        jaw_u[k] = state["X"] if state["X"] is not None else default["X"]
        jaw_v[k] = state["Y"] if state["Y"] is not None else default["Y"]
        if boundaries is not None:
            if state["MLC"] is None:
                raise DicomError(f"{at}: MLC{axis} leaf positions missing")
            leaves.append(state["MLC"])
    if cum[-1] <= 0:
        raise DicomError(f"{where}: final CumulativeMetersetWeight is {cum[-1]:g}; expected > 0")
    direction = str(cps[0].get("GantryRotationDirection", "NONE") or "NONE")
    if direction not in ("NONE", "CW", "CC"):
        raise DicomError(f"{where}, control point 0: GantryRotationDirection {direction!r}, expected NONE, CW or CC")
    iso = np.asarray(state["iso"])
    bounds = patient.grid.bounds_xyz_mm
    if np.any(iso < bounds[:, 0]) or np.any(iso > bounds[:, 1]):
        raise DicomError(f"{where}: IsocenterPosition {tuple(iso.tolist())} mm lies outside the CT "
                         f"({bounds[:, 0].tolist()} to {bounds[:, 1].tolist()} mm)")
    ssd = first.get("SourceToSurfaceDistance")
    return BeamDelivery(str(beam.get("BeamName", "") or f"beam{int(beam.BeamNumber)}"), int(beam.BeamNumber), machine,
                        tuple(iso), meterset_mu, gantry, direction, cum, float(state["coll"]), float(state["couch"]),
                        jaw_u, jaw_v, boundaries, np.array(leaves) if boundaries is not None else None,
                        axis or "X", None if ssd in (None, "") else float(ssd), float(first.NominalBeamEnergy))


def read_rtplan(path, patient: Patient, *, arc_spacing_deg: float = 2.0, beamlet_mm: float = 2.5,
                machine=None) -> RTPlanData:
    """Read a DICOM RT Plan (or RT Ion Plan) into the engine's beams for ``patient``.

    Parameters
    ----------
    path : str or Path or pydicom.Dataset
    patient : Patient
        The CT the plan is recomputed on: its frame of reference and structure set (when
        read from DICOM) must be the plan's, and every isocentre must lie inside its grid.
    arc_spacing_deg : float
        Largest gantry travel between the static beams of a VMAT arc [deg].
    beamlet_mm : float
        Beamlet size of the fluence lattice [mm] (photons).
    machine : str or PhotonMachine, optional
        Photon machine (name, machine file or object) for every beam; by default the built-in
        machine whose file declares the beam's nominal energy and fluence mode.

    Returns
    -------
    RTPlanData
        Beams with weights in MU for one fraction; ``deliveries`` holds the control points.

    Raises
    ------
    DicomError
        For a malformed plan or anything the engine cannot model, naming the beam, the
        control point and the attribute.
    """
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    ds, where = _read(path)
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class == RT_ION_PLAN_SOP_CLASS_UID:
        from .rtionplan_read import read_rtionplan

        return read_rtionplan(ds, patient)
    if sop_class != RT_PLAN_SOP_CLASS_UID:
        raise DicomError(f"{where}: SOPClassUID {sop_class!r} is not RT Plan ({RT_PLAN_SOP_CLASS_UID}) or RT Ion Plan "
                         f"({RT_ION_PLAN_SOP_CLASS_UID})")
    if machine is not None and not isinstance(machine, PhotonMachine):
        machine = load_machine(machine)
        if not isinstance(machine, PhotonMachine):
            raise DicomError(f"{where}: machine {machine.name!r} is not a photon machine")
    try:
        _check_patient(ds, patient, where)
        metersets, fractions = _meterset(ds, where)
        deliveries, beams = [], []
        for beam in ds.get("BeamSequence") or []:
            number = int(beam.BeamNumber)
            name = str(beam.get("BeamName", "") or f"beam{number}")
            bwhere = f"{where}, beam {number} ({name})"
            if str(beam.get("TreatmentDeliveryType", "TREATMENT")) != "TREATMENT":
                continue  # set-up and verification beams deliver no dose
            meterset = metersets.get(number)
            if meterset is None:
                raise DicomError(f"{bwhere}: BeamMeterset missing from the fraction group's ReferencedBeamSequence")
            if not (np.isfinite(meterset) and meterset >= 0):
                raise DicomError(f"{bwhere}: BeamMeterset {meterset!r}, expected MU >= 0")
            d = _delivery(beam, meterset, patient, bwhere, machine)
            if meterset == 0:
                continue
            deliveries.append(d)
            try:
                beams.append(delivery_to_beams(d, arc_spacing_deg=arc_spacing_deg, beamlet_mm=beamlet_mm))
            except PlanError as exc:
                raise DicomError(f"{bwhere}: {exc}") from None
        if not beams:
            raise DicomError(f"{where}: no treatment beam with a positive BeamMeterset")
        refs = ds.get("ReferencedStructureSetSequence") or []
        return RTPlanData(
            beams=beams, beam_meterset_mu=[d.meterset_mu for d in deliveries], beam_names=[d.name for d in deliveries],
            fractions_planned=fractions, plan_label=str(ds.get("RTPlanLabel", "")),
            sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
            frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
            referenced_structure_set_uid=str(refs[0].ReferencedSOPInstanceUID) if refs else None,
            modality="photon", deliveries=deliveries)
    except PlanError as exc:
        if isinstance(exc, DicomError):
            raise
        raise DicomError(f"{where}: {exc}") from None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, DicomError):
            raise
        raise DicomError(f"{where}: malformed RT Plan ({type(exc).__name__}: {exc})") from None
