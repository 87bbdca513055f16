"""One call that exports a whole SFRT vs CRT run: RT Dose per arm (physical and EQD2), the lattice
RT Structure Set, the CT for patients that did not come from DICOM, and the HDF5 results file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ..patient import Patient
from ..rbe import RBE_SOURCE
from ._hdf5_save import save
from .dicom_write import write_ct, write_rtdose
from .rtstruct_write import write_rtstruct

__all__ = ["comparison_plans", "describe_alpha_beta", "export_comparison", "export_run"]


def describe_alpha_beta(alpha_beta_gy: Mapping) -> str:
    """``{"GTV": 4.0, "SKIN": 2.0}`` -> ``"GTV 4 Gy, SKIN 2 Gy"``.

    Mixed structures (lists of ``{"alpha_beta_gy", "voxel_fraction"}``, as in a report's
    ``alpha_beta_resolved_gy``) are written ``"BODY 3 Gy (91.2 %) / 4 Gy (8.8 %)"``.
    """
    from ..reporting import describe_resolved_alpha_beta

    return describe_resolved_alpha_beta(alpha_beta_gy)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "arm"


#: Series number of a run's first RT Dose; the others follow (the CT, when written, is series 1).
_RTDOSE_SERIES_START = 101


def _dose_labels(arm: str, boost_mode: str, rbe: float) -> tuple[str, str, str]:
    """(DoseType, description, SeriesDescription) of an arm's cumulative (RBE-weighted) dose."""
    if rbe == 1.0:
        return "PHYSICAL", f"{arm} physical dose; vertex boost {boost_mode}", f"{arm} physical dose [Gy]"
    description = (f"{arm} RBE-weighted dose [Gy(RBE)], proton dose x {rbe:g}, {RBE_SOURCE}; "
                   f"vertex boost {boost_mode}")
    return "EFFECTIVE", description, f"{arm} RBE-weighted dose, RBE {rbe:g} [Gy(RBE)]"


def _eqd2_labels(arm: str, boost_mode: str, rbe: float, alpha_beta: str) -> tuple[str, str, str]:
    """(DoseType, description, SeriesDescription) of an arm's cumulative EQD2."""
    basis = "" if rbe == 1.0 else f" of the RBE-weighted dose (RBE {rbe:g})"
    series = (f"{arm} EQD2 [Gy], boost {boost_mode}" if rbe == 1.0
              else f"{arm} EQD2 [Gy(RBE)], boost {boost_mode}, RBE {rbe:g}")
    return ("EFFECTIVE", f"{arm} EQD2{basis}, vertex boost {boost_mode}; alpha/beta {alpha_beta}", series)


def export_run(out_dir, patient: Patient, doses: Mapping, eqd2: Mapping, report: Mapping | None, settings,
               alpha_beta_description: str, boost_mode: str, vertex_names=("VERTICES", "VALLEY"), *,
               vertices=None, beams=None, unit_doses: Mapping | None = None, backend: str | None = None,
               export_ct: bool | None = None, hdf5_name: str = "results.h5",
               rbe: float = 1.0, plans: Mapping | None = None,
               dose_plans: Mapping | None = None) -> dict[str, Path | list[Path]]:
    """Write a run's DICOM and HDF5 files into ``out_dir`` (created if needed; each file atomically).

    Files, for each arm name ``A`` in ``doses`` (e.g. CRT, SFRT):

    - ``RTDOSE_A_PHYSICAL.dcm``: cumulative physical dose, DoseType PHYSICAL (photons, ``rbe=1``);
      for protons ``RTDOSE_A_RBE.dcm``: the RBE-weighted dose, DoseType EFFECTIVE, with the RBE stated;
    - ``RTDOSE_A_EQD2.dcm``: cumulative EQD2, DoseType EFFECTIVE, with the alpha/beta and the boost
      mode in DoseComment, ImageComments and SeriesDescription;

    Every RT Dose of the run is its own series, numbered 101, 102, ... in the order written,
    with a SeriesDescription naming the arm and the quantity.
    - ``RTSTRUCT_lattice.dcm``: ``vertex_names`` (one ROI per vertex, VERTICES and VALLEY);
    - ``CT/CT.nnnn.dcm``: the CT, when the patient did not come from DICOM (``export_ct=None``
      decides so), so the RT objects have images to sit on;
    - ``hdf5_name``: everything (:func:`sfrt_engine.io.save`).

    Parameters
    ----------
    out_dir : str or Path
    patient : Patient
    doses, eqd2 : dict of str to ndarray or Dose
        Per arm, [z, y, x] [Gy]; the same arm names in both.
    report : dict or None
    settings : dict or object with ``to_dict()``
    alpha_beta_description : str
        E.g. ``"GTV 4 Gy, SKIN 2 Gy, FEMUR 3 Gy"`` (:func:`describe_alpha_beta`).
    boost_mode : str
        "integrated" or "separate".
    vertex_names : sequence of str
        Structures for the RT Structure Set; ``"VERTICES"`` is split into per-vertex ROIs.
    vertices : VertexLattice, optional
        Vertex spheres (exact circles per slice, and stored in the HDF5 file).
    beams : dict of str to list of Beam, optional
    unit_doses : dict of str to ndarray, optional
    backend : str, optional
    export_ct : bool, optional
    hdf5_name : str
    rbe : float
        RBE already applied to ``doses`` and ``eqd2``: 1.0 for photons, 1.1 for protons
        (:mod:`sfrt_engine.rbe`); stated in the RT Dose descriptions.
    plans : dict of str to dict, optional
        ``{name: {"beams": [...], "fractions": n, "description": str}}``: one fraction's beams [MU or Gp]
        and the number of fractions of each plan, written as ``RTPLAN_<name>.dcm`` (RT Plan or RT Ion
        Plan, :func:`sfrt_engine.io.rtplan_write.write_rtplan`).
    dose_plans : dict of str to list of str, optional
        Per arm, the names in ``plans`` its dose is made of; its RT Dose files reference them.

    Returns
    -------
    dict
        ``{"rtdose": [paths], "rtstruct": path, "ct": [paths], "hdf5": path}``, and ``"rtplan": [paths]``
        when plans are written.
    """
    if not isinstance(patient, Patient):
        raise TypeError(f"patient must be a sfrt_engine.Patient, got {type(patient).__name__}")
    if set(doses) != set(eqd2):
        raise ValueError(f"doses has arms {sorted(doses)} but eqd2 has {sorted(eqd2)}; give both for every arm")
    out = Path(out_dir)
    written: dict = {"rtdose": [], "ct": []}
    if export_ct is None:
        export_ct = not (getattr(patient, "dicom", None) or {}).get("ct_sop_instance_uids")
    if export_ct:
        written["ct"] = write_ct(out / "CT", patient)
    plan_refs = _write_plans(out, patient, plans or {}, written)
    for arm in doses:
        refs = [plan_refs[name] for name in (dose_plans or {}).get(arm, ()) if name in plan_refs] or None
        for kind, values, (dose_type, description, series) in (
                ("PHYSICAL" if rbe == 1.0 else "RBE", doses[arm], _dose_labels(arm, boost_mode, rbe)),
                ("EQD2", eqd2[arm], _eqd2_labels(arm, boost_mode, rbe, alpha_beta_description))):
            written["rtdose"].append(write_rtdose(
                out / f"RTDOSE_{_safe(arm)}_{kind}.dcm", values, patient, dose_type=dose_type, description=description,
                series_description=series, series_number=_RTDOSE_SERIES_START + len(written["rtdose"]),
                referenced_rtplan_uid=refs))
    if vertex_names:
        written["rtstruct"] = write_rtstruct(out / "RTSTRUCT_lattice.dcm", patient, vertex_names,
                                             vertices=vertices)
    written["hdf5"] = save(out / hdf5_name, patient=patient, beams=beams, unit_doses=unit_doses, doses=doses,
                           eqd2=eqd2, vertices=vertices, report=report, settings=settings, backend=backend)
    return written


def _write_plans(out: Path, patient: Patient, plans: Mapping, written: dict) -> dict[str, tuple[str, str]]:
    """Write each plan; ``{name: (SOP Class UID, SOP Instance UID)}`` of the files written."""
    import pydicom

    from .rtplan_write import write_rtplan

    refs = {}
    if plans:
        written["rtplan"] = []
    for name, plan in plans.items():
        path = write_rtplan(out / f"RTPLAN_{_safe(name)}.dcm", plan["beams"], patient, plan_label=name,
                            fractions=plan["fractions"], description=plan.get("description", ""))
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        refs[name] = (str(header.SOPClassUID), str(header.SOPInstanceUID))
        written["rtplan"].append(path)
    return refs


def _deliverable(component) -> list:
    """What a component delivers: its control points when it has them (photons, written as they are, with no
    second sequencing), else its beams."""
    deliveries = getattr(component, "deliveries", None)
    return list(deliveries) if deliveries else list(component.beams)


def comparison_plans(comparison) -> tuple[dict, dict]:
    """The CRT and BOOST plans of a comparison, with the fractions of its schedules.

    CRT: the CRT component's beams (one fraction) for the CRT arm's number of CRT sessions.
    BOOST: the boost component's beams scaled by the BOOST weight of the SFRT arm's vertex
    sessions (all equal), for the number of those sessions. Returns ``(plans, dose_plans)`` for
    :func:`export_run`.
    """
    schedules = comparison.schedules
    components = comparison.prepared.components
    crt_sessions = [s.weight("CRT") for s in schedules["CRT"].sessions if s.weight("CRT") > 0]
    boost = [s.weight("BOOST") for s in schedules["SFRT"].sessions if s.weight("BOOST") > 0]
    if len(set(crt_sessions)) != 1 or (boost and max(boost) - min(boost) > 1e-9 * max(boost)):
        raise ValueError("the schedules give sessions of different weights; one plan per component cannot "
                         "represent them")
    plans = {"CRT": {"beams": _deliverable(components["CRT"]), "fractions": len(crt_sessions),
                     "description": "conventional fraction of the CRT and SFRT arms"}}
    dose_plans = {"CRT": ["CRT"], "SFRT": ["CRT"]}
    if boost:
        b = float(boost[0])
        plans["BOOST"] = {"beams": [beam.scaled(b) for beam in _deliverable(components["BOOST"])],
                          "fractions": len(boost),
                          "description": f"vertex boost: {b:.4g} x the 1 Gy vertex-mean unit per vertex session"}
        dose_plans["SFRT"].append("BOOST")
    return plans, dose_plans


def export_comparison(out_dir, comparison, vertex_names=("VERTICES", "VALLEY"), *, export_ct: bool | None = None,
                      hdf5_name: str = "results.h5", write_plans: bool = True) -> dict[str, Path | list[Path]]:
    """:func:`export_run` for the result of :func:`sfrt_engine.run_comparison` (what ``sfrt compare`` calls).

    With ``write_plans`` the CRT and BOOST components are written as RT (Ion) Plans with the
    fractions of the arms' schedules (:func:`comparison_plans`), and each arm's RT Dose files
    reference the plans it is made of.
    """
    prepared = comparison.prepared
    settings = prepared.settings
    resolved = comparison.report.get("settings", {}).get("alpha_beta_resolved_gy") or settings.alpha_beta_gy
    components = prepared.components
    return export_run(
        out_dir, prepared.patient, comparison.physical_gy, comparison.eqd2_gy, comparison.report, settings,
        describe_alpha_beta(resolved), settings.boost_mode, vertex_names, vertices=prepared.vertices,
        beams={name: list(c.beams) for name, c in components.items()},
        unit_doses={name: c.dose_gy for name, c in components.items()},
        backend=next((c.backend for c in components.values()), None), export_ct=export_ct, hdf5_name=hdf5_name,
        rbe=max(float(getattr(c, "rbe", 1.0)) for c in components.values()),
        **dict(zip(("plans", "dose_plans"), comparison_plans(comparison))) if write_plans else {})
