"""DICOM RT Ion Plan (PS3.3 C.8.8.25) to the engine's proton beams.

Per beam (IonBeamSequence, treatment beams only), the control points (IonControlPointSequence)
give, each carried forward until changed (PS3.3 C.8.8.25.7):

- NominalBeamEnergy [MeV], within the machine's energies; energies off its table get depth-dose and
  spot-width rows of their own from the machine's model (:meth:`ProtonMachine.with_energies`);
- ScanSpotPositionMap (x, y pairs in the IEC GANTRY system at the isocentre plane = the engine's
  BEV u, v) and ScanSpotMetersetWeights; the spots of control point ``i`` are delivered between
  ``i`` and ``i + 1`` (in the usual pairs: the first of a pair holds the weights, the second zeros),
  so their sum must equal the rise of CumulativeMetersetWeight;
- RangeShifterSettingsSequence: the water-equivalent thickness (RangeShifterWaterEquivalentThickness,
  else 0 for a setting of "OUT" and the machine's range shifter otherwise);
- ScanningSpotSize (FWHM in air at the isocentre [mm]); where it differs from the machine's
  spot size by more than 0.01 mm, the beam gets a copy of the machine with that spot size in air
  at those energies (``sigma = FWHM / (2 sqrt(2 ln 2))``); x and y must agree within 5 %;
- SnoutPosition: checked, not modelled (the machine's spot size does not change along the beam);
- GantryAngle, PatientSupportAngle and IsocenterPosition, which must not change within a beam.

Meterset: a spot's MU is its weight times BeamMeterset (FractionGroupSequence) over
FinalCumulativeMetersetWeight, rounded to float32 (the precision of ScanSpotMetersetWeights, so
that a plan written by the engine reads back bit for bit); its protons are MU times the machine's
protons per MU (:meth:`ProtonMachine.protons_per_mu`). Spot positions become regular lattices
(:mod:`sfrt_engine.io._spot_lattice`).

Errors (DicomError) name the beam, the control point and the attribute.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..machines import ProtonMachine, load_machine
from ..patient import Patient
from ..plan.protons import ProtonBeam, SpotLayer
from ._errors import DicomError, malformed_dicom
from ._spot_lattice import fit_lattices
from .rtplan_types import RT_ION_PLAN_SOP_CLASS_UID, RTPlanData

__all__ = ["FWHM_PER_SIGMA", "RT_ION_PLAN_STORAGE", "read_rtionplan"]

RT_ION_PLAN_STORAGE = RT_ION_PLAN_SOP_CLASS_UID
#: FWHM of a Gaussian over its sigma, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = float(2.0 * np.sqrt(2.0 * np.log(2.0)))
_SPOT_SIZE_TOLERANCE_MM = 0.01
_ANGLE_TOLERANCE_DEG = 1e-6
#: Devices the pencil-beam model cannot represent: (count attribute, sequence attribute, what).
_UNSUPPORTED_DEVICES = (("NumberOfBlocks", "IonBlockSequence", "block (aperture)"),
                        ("NumberOfCompensators", "IonRangeCompensatorSequence", "range compensator"),
                        ("NumberOfWedges", "IonWedgeSequence", "wedge"),
                        ("NumberOfBoli", "ReferencedBolusSequence", "bolus"),
                        ("NumberOfLateralSpreadingDevices", "LateralSpreadingDeviceSequence", "lateral spreading device"),
                        ("NumberOfRangeModulators", "RangeModulatorSequence", "range modulator"))


def _name(path, dataset) -> str:
    return str(path or getattr(dataset, "filename", "") or "RT Ion Plan")


def _plan_checks(dataset, patient: Patient, where: str) -> tuple[str, str | None]:
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class != RT_ION_PLAN_STORAGE:
        raise DicomError(f"{where}: SOPClassUID {sop_class or 'missing'} is not RT Ion Plan ({RT_ION_PLAN_STORAGE})")
    ident = getattr(patient, "dicom", None) or {}
    ct_frame = str(ident.get("FrameOfReferenceUID", "") or "")
    frame = str(dataset.get("FrameOfReferenceUID", "") or "")
    if not ct_frame:
        raise DicomError(f"{where}: the patient has no DICOM frame of reference to check the plan's against; "
                         "read the CT with sfrt_engine.io.read_dicom")
    if frame != ct_frame:
        raise DicomError(f"{where}: FrameOfReferenceUID {frame or '(missing)'} differs from the CT's {ct_frame}; "
                         "the plan was made on another image set")
    referenced = None
    if "ReferencedStructureSetSequence" in dataset and len(dataset.ReferencedStructureSetSequence):
        referenced = str(dataset.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID)
        present = str((ident.get("rtstruct") or {}).get("SOPInstanceUID", "") or "")
        if referenced != present:
            raise DicomError(f"{where}: ReferencedStructureSetSequence names RT Structure Set {referenced}, but the "
                             + (f"CT's folder holds {present}" if present else "CT's folder holds none")
                             + "; put the plan's structure set beside the CT")
    return frame, referenced


def _fraction_group(dataset, where: str) -> tuple[int, dict[int, float]]:
    groups = dataset.get("FractionGroupSequence")
    if not groups:
        raise DicomError(f"{where}: no FractionGroupSequence: the beam metersets and fractions are unknown")
    if len(groups) > 1:
        raise DicomError(f"{where}: {len(groups)} fraction groups; the engine reads plans with one "
                         "(export each fraction group as its own plan)")
    group = groups[0]
    fractions = group.get("NumberOfFractionsPlanned")
    if fractions is None or int(fractions) < 1:
        raise DicomError(f"{where}: fraction group: NumberOfFractionsPlanned is {fractions!r}, expected >= 1")
    meterset = {}
    for ref in group.get("ReferencedBeamSequence", []):
        value = ref.get("BeamMeterset")
        meterset[int(ref.ReferencedBeamNumber)] = None if value in (None, "") else float(value)
    return int(fractions), meterset


def _check_devices(beam, label: str) -> None:
    for count, sequence, what in _UNSUPPORTED_DEVICES:
        n = beam.get(count)
        if (n not in (None, "") and int(n) > 0) or len(beam.get(sequence, []) or []) > 0:
            raise DicomError(f"{label}: {count}={n} / {sequence}: a {what} is not modelled by the engine's "
                             "pencil-beam scanning model; remove it from the plan or recompute elsewhere")
    radiation = str(beam.get("RadiationType", "PROTON"))
    if radiation != "PROTON":
        raise DicomError(f"{label}: RadiationType {radiation!r}; the engine models protons only")
    mode = str(beam.get("ScanMode", ""))
    kind = str(beam.get("ModulatedScanModeType", "") or "")
    if not (mode == "MODULATED" or (mode == "MODULATED_SPEC" and kind == "STATIONARY")):
        raise DicomError(f"{label}: ScanMode {mode!r}" + (f" with ModulatedScanModeType {kind!r}" if kind else "")
                         + "; only spot scanning (MODULATED, or MODULATED_SPEC STATIONARY) is modelled")


def _spot_machine(machine: ProtonMachine, spot_sigma: dict[int, float], label: str) -> ProtonMachine:
    """``machine`` with the spot sigma in air of some energies replaced (index -> sigma [mm])."""
    changed = {k: s for k, s in spot_sigma.items() if abs(s - machine.sigma_air_mm[k]) * FWHM_PER_SIGMA
               > _SPOT_SIZE_TOLERANCE_MM}
    if not changed:
        return machine
    sigma = machine.sigma_mm.copy()
    air = machine.sigma_air_mm.copy()
    for k, s in changed.items():
        sigma[k] = np.sqrt(np.maximum(sigma[k] ** 2 - air[k] ** 2 + s * s, 0.0))
        air[k] = s
    sigma.setflags(write=False)
    idd = machine.idd_gy_mm2_per_gp.copy()  # a table of its own: kernels cache float32 tables per IDD array
    idd.setflags(write=False)
    meta = dict(machine.metadata, spot_size_from_plan={"beam": label, "sigma_mm": {
        float(machine.energies_mev[k]): float(s) for k, s in changed.items()}})
    return dataclasses.replace(machine, sigma_mm=sigma, sigma_air_mm=air, idd_gy_mm2_per_gp=idd, metadata=meta)


def _floats(value, n: int, what: str, label: str, single: bool = False) -> np.ndarray:
    """``n`` finite numbers; ``single``: rounded to float32 first, as the FL values of a file are."""
    arr = np.atleast_1d(np.asarray(value if value is not None else [], dtype=np.float32 if single else np.float64))
    arr = arr.astype(np.float64)
    if arr.size != n or not np.all(np.isfinite(arr)):
        raise DicomError(f"{label}: {what} has {arr.size} values{'' if np.all(np.isfinite(arr)) else ' (not finite)'}"
                         f", expected {n} finite numbers")
    return arr


def _beam(beam, machine: ProtonMachine, patient: Patient, meterset_mu: float | None, label: str) -> ProtonBeam:
    _check_devices(beam, label)
    if meterset_mu is None:
        raise DicomError(f"{label}: BeamMeterset missing in the fraction group's ReferencedBeamSequence")
    if not (np.isfinite(meterset_mu) and meterset_mu >= 0):
        raise DicomError(f"{label}: BeamMeterset {meterset_mu!r} MU, expected >= 0")
    cps = beam.get("IonControlPointSequence") or []
    if len(cps) < 2:
        raise DicomError(f"{label}: IonControlPointSequence has {len(cps)} control points, expected at least 2")
    final = beam.get("FinalCumulativeMetersetWeight")
    if final in (None, "") or not float(final) > 0:
        raise DicomError(f"{label}: FinalCumulativeMetersetWeight {final!r}, expected > 0")
    final = float(final)
    shifters = {int(rs.RangeShifterNumber): str(rs.get("RangeShifterID", "")) for rs in
                beam.get("RangeShifterSequence", []) or []}
    state = {"energy": None, "gantry": None, "couch": 0.0, "iso": None, "shift": 0.0, "spot": None, "cum": None}
    mu_per_weight = meterset_mu / final
    layers, spot_sigma, pending = [], {}, None
    for i, cp in enumerate(cps):
        at = f"{label}, control point {i}"
        cum = cp.get("CumulativeMetersetWeight")
        if cum in (None, ""):
            raise DicomError(f"{at}: CumulativeMetersetWeight missing")
        cum = float(cum)
        if i == 0 and abs(cum) > 1e-9 * final:
            raise DicomError(f"{at}: CumulativeMetersetWeight {cum:g}, expected 0 at the first control point")
        if state["cum"] is not None and cum < state["cum"]:
            raise DicomError(f"{at}: CumulativeMetersetWeight {cum:g} is below the previous control point's "
                             f"{state['cum']:g}; cumulative meterset weights must not decrease")
        if i == len(cps) - 1 and abs(cum - final) > 1e-6 * final:
            raise DicomError(f"{at}: CumulativeMetersetWeight {cum:g} at the last control point differs from "
                             f"FinalCumulativeMetersetWeight {final:g}")
        if i > 0 and pending is not None:
            delivered = cum - state["cum"]
            if abs(delivered - pending[2].sum()) > 1e-3 * final:
                raise DicomError(f"{label}, control point {i - 1}: ScanSpotMetersetWeights sum to "
                                 f"{pending[2].sum():g}, but CumulativeMetersetWeight rises by {delivered:g} to the "
                                 "next control point")
        state["cum"] = cum
        for key, attr in (("gantry", "GantryAngle"), ("couch", "PatientSupportAngle")):
            if attr in cp and cp.get(attr) not in (None, ""):
                value = float(cp.get(attr))
                if state[key] is not None and i > 0 and abs(value - state[key]) > _ANGLE_TOLERANCE_DEG:
                    raise DicomError(f"{at}: {attr} changes from {state[key]:g} to {value:g} deg within the beam; "
                                     "only fixed-angle proton fields are modelled")
                state[key] = value
        if "IsocenterPosition" in cp and cp.IsocenterPosition not in (None, ""):
            iso = _floats(cp.IsocenterPosition, 3, "IsocenterPosition", at)
            if state["iso"] is not None and np.any(np.abs(iso - state["iso"]) > 1e-6):
                raise DicomError(f"{at}: IsocenterPosition changes within the beam")
            state["iso"] = iso
        if cp.get("NominalBeamEnergy") not in (None, ""):
            energy = float(cp.NominalBeamEnergy)
            if not machine.min_energy_mev <= energy <= machine.max_energy_mev:
                raise DicomError(f"{at}: NominalBeamEnergy {energy:g} MeV is outside machine '{machine.name}' "
                                 f"({machine.min_energy_mev:g}-{machine.max_energy_mev:g} MeV)")
            state["energy"] = energy
        if cp.get("SnoutPosition") not in (None, "") and not np.isfinite(float(cp.SnoutPosition)):
            raise DicomError(f"{at}: SnoutPosition {cp.SnoutPosition!r} is not a finite distance in mm")
        for setting in cp.get("RangeShifterSettingsSequence", []) or []:
            number = int(setting.ReferencedRangeShifterNumber)
            if number not in shifters:
                raise DicomError(f"{at}: RangeShifterSettingsSequence references range shifter {number}, "
                                 "absent from the beam's RangeShifterSequence")
            wet = setting.get("RangeShifterWaterEquivalentThickness")
            text = str(setting.get("RangeShifterSetting", "") or "").strip().upper()
            if wet not in (None, ""):
                state["shift"] = float(np.float32(wet))  # FL: what a file holds
            elif text == "OUT":
                state["shift"] = 0.0
            elif machine.range_shifter_mm > 0:
                state["shift"] = machine.range_shifter_mm
            else:
                raise DicomError(f"{at}: range shifter {shifters[number]!r} setting {text!r} without "
                                 f"RangeShifterWaterEquivalentThickness, and machine '{machine.name}' has none")
            if not (np.isfinite(state["shift"]) and state["shift"] >= 0):
                raise DicomError(f"{at}: RangeShifterWaterEquivalentThickness {wet!r}, expected >= 0 mm")
        if cp.get("ScanningSpotSize") not in (None, ""):
            size = _floats(cp.ScanningSpotSize, 2, "ScanningSpotSize", at, True)
            if np.any(size <= 0) or abs(size[0] - size[1]) > 0.05 * size.max():
                raise DicomError(f"{at}: ScanningSpotSize {size.tolist()} mm: the engine models round spots "
                                 "(x and y FWHM within 5 %)")
            state["spot"] = float(size.mean()) / FWHM_PER_SIGMA
        n = cp.get("NumberOfScanSpotPositions")
        pending = None
        if n not in (None, "") and int(n) > 0:
            n = int(n)
            xy = _floats(cp.get("ScanSpotPositionMap"), 2 * n, "ScanSpotPositionMap", at, True)
            w = _floats(cp.get("ScanSpotMetersetWeights"), n, "ScanSpotMetersetWeights", at, True)
            if np.any(w < 0):
                raise DicomError(f"{at}: ScanSpotMetersetWeights has negative values")
            if state["energy"] is None:
                raise DicomError(f"{at}: NominalBeamEnergy missing (none before this control point)")
            pending = (xy[0::2], xy[1::2], w)
            if w.sum() > 0:
                if i == len(cps) - 1:
                    raise DicomError(f"{at}: ScanSpotMetersetWeights are not zero at the last control point")
                k = machine.energy_index(state["energy"], where=at)  # on the table (with_energies)
                if state["spot"] is not None:
                    spot_sigma[k] = state["spot"]
                mu = (w * mu_per_weight).astype(np.float32).astype(np.float64)
                gp = mu * float(machine.gp_per_mu(state["energy"]))
                keep = gp > 0
                for grid, spacing, origin in fit_lattices(pending[0][keep], pending[1][keep], gp[keep]):
                    layers.append(SpotLayer(state["energy"], grid, spacing, origin, range_shifter_mm=state["shift"]))
    if state["gantry"] is None or state["iso"] is None:
        raise DicomError(f"{label}, control point 0: GantryAngle and IsocenterPosition are required")
    bounds = patient.grid.bounds_xyz_mm
    if np.any(state["iso"] < bounds[:, 0]) or np.any(state["iso"] > bounds[:, 1]):
        raise DicomError(f"{label}, control point 0: IsocenterPosition {np.round(state['iso'], 2).tolist()} mm is "
                         f"outside the CT ({np.round(bounds, 1).tolist()} mm); the plan belongs to another image set")
    if not layers:
        raise DicomError(f"{label}: no spot has a meterset weight above zero")
    beam_machine = _spot_machine(machine, spot_sigma, label)
    return ProtonBeam(beam_machine, tuple(state["iso"]), state["gantry"], tuple(layers), couch_deg=state["couch"],
                      name=str(beam.get("BeamName", "") or f"beam {int(beam.BeamNumber)}"))


def _energies_in_range(dataset, machine: ProtonMachine) -> list[float]:
    """The plan's nominal energies within the machine's range (those outside are reported per control point)."""
    out = set()
    for beam in dataset.get("IonBeamSequence", []) or []:
        for cp in beam.get("IonControlPointSequence", []) or []:
            value = cp.get("NominalBeamEnergy")
            if value not in (None, "") and machine.min_energy_mev <= float(value) <= machine.max_energy_mev:
                out.add(float(value))
    return sorted(out)


def read_rtionplan(dataset, patient: Patient, *, machine: ProtonMachine | str = "proton_generic",
                   path=None) -> RTPlanData:
    """Convert an RT Ion Plan (a pydicom Dataset already read) into the engine's proton beams.

    Parameters
    ----------
    dataset : pydicom.Dataset
        SOP Class RT Ion Plan.
    patient : Patient
        The CT the plan belongs to (``patient.dicom`` from :func:`~sfrt_engine.io.read_dicom`, or from the
        export of an engine plan): frame of reference, structure set and extent are checked against it.
    machine : ProtonMachine or str
        Machine whose energies, spot sizes and protons per MU the plan is read with.
    path : str or Path, optional
        File name for messages.

    Returns
    -------
    RTPlanData
        ``modality="proton"``; ``beams`` are :class:`~sfrt_engine.plan.ProtonBeam` with spot weights in Gp
        for one fraction.

    Raises
    ------
    DicomError
        Naming beam, control point and attribute: an energy outside the machine, non-monotonic
        cumulative meterset weights, a missing beam meterset, a frame of reference other than the
        CT's, an isocentre outside the CT, blocks, compensators, wedges, boli, scatterers or range
        modulators, a scan mode other than spot scanning, an absent referenced structure set.
    """
    where = _name(path, dataset)
    if isinstance(machine, str):
        machine = load_machine(machine)
    if not isinstance(machine, ProtonMachine):
        raise DicomError(f"{where}: an RT Ion Plan needs a proton machine, got {type(machine).__name__}")
    with malformed_dicom(where):
        frame, referenced = _plan_checks(dataset, patient, where)
        fractions, metersets = _fraction_group(dataset, where)
        machine = machine.with_energies(_energies_in_range(dataset, machine))
        beams, mus = [], []
        for beam in dataset.get("IonBeamSequence", []) or []:
            if str(beam.get("TreatmentDeliveryType", "TREATMENT")) != "TREATMENT":
                continue
            number = int(beam.BeamNumber)
            label = f"{where}: beam {number} ({str(beam.get('BeamName', '') or '')!r})"
            if number not in metersets:
                raise DicomError(f"{label}: not in the fraction group's ReferencedBeamSequence (BeamMeterset missing)")
            beams.append(_beam(beam, machine, patient, metersets[number], label))
            mus.append(float(metersets[number]))
        if not beams:
            raise DicomError(f"{where}: IonBeamSequence holds no treatment beam")
        return RTPlanData(beams=tuple(beams), beam_names=tuple(b.name for b in beams), fractions_planned=fractions,
                          plan_label=str(dataset.get("RTPlanLabel", "") or ""),
                          sop_instance_uid=str(dataset.get("SOPInstanceUID", "")), frame_of_reference_uid=frame,
                          referenced_structure_set_uid=referenced, modality="proton", beam_meterset_mu=tuple(mus))
