"""One call that exports a whole SFRT vs CRT run: RT Dose per arm (physical and EQD2), the lattice
RT Structure Set, the CT for patients that did not come from DICOM, and the HDF5 results file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ..patient import Patient
from ._hdf5_save import save
from .dicom_write import write_ct, write_rtdose
from .rtstruct_write import write_rtstruct

__all__ = ["export_run", "export_comparison", "describe_alpha_beta"]


def describe_alpha_beta(alpha_beta_gy: Mapping[str, float]) -> str:
    """``{"GTV": 4.0, "SKIN": 2.0}`` -> ``"GTV 4 Gy, SKIN 2 Gy"``."""
    return ", ".join(f"{name} {float(value):g} Gy" for name, value in alpha_beta_gy.items())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "arm"


def export_run(out_dir, patient: Patient, doses: Mapping, eqd2: Mapping, report: Mapping | None, settings,
               alpha_beta_description: str, boost_mode: str, vertex_names=("VERTICES", "VALLEY"), *,
               vertices=None, beams=None, unit_doses: Mapping | None = None, backend: str | None = None,
               export_ct: bool | None = None, hdf5_name: str = "results.h5") -> dict[str, Path | list[Path]]:
    """Write a run's DICOM and HDF5 files into ``out_dir`` (created if needed; each file atomically).

    Files, for each arm name ``A`` in ``doses`` (e.g. CRT, SFRT):

    - ``RTDOSE_A_PHYSICAL.dcm``: cumulative physical dose, DoseType PHYSICAL;
    - ``RTDOSE_A_EQD2.dcm``: cumulative EQD2, DoseType EFFECTIVE, with the alpha/beta and the boost
      mode in DoseComment, ImageComments and SeriesDescription;
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

    Returns
    -------
    dict
        ``{"rtdose": [paths], "rtstruct": path, "ct": [paths], "hdf5": path}``.
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
    for arm in doses:
        written["rtdose"].append(write_rtdose(
            out / f"RTDOSE_{_safe(arm)}_PHYSICAL.dcm", doses[arm], patient, dose_type="PHYSICAL",
            description=f"{arm} physical dose; vertex boost {boost_mode}", series_description=f"{arm} physical"))
        written["rtdose"].append(write_rtdose(
            out / f"RTDOSE_{_safe(arm)}_EQD2.dcm", eqd2[arm], patient, dose_type="EFFECTIVE",
            description=f"{arm} EQD2, vertex boost {boost_mode}; alpha/beta {alpha_beta_description}",
            series_description=f"{arm} EQD2 ({boost_mode})"))
    if vertex_names:
        written["rtstruct"] = write_rtstruct(out / "RTSTRUCT_lattice.dcm", patient, vertex_names,
                                             vertices=vertices)
    written["hdf5"] = save(out / hdf5_name, patient=patient, beams=beams, unit_doses=unit_doses, doses=doses,
                           eqd2=eqd2, vertices=vertices, report=report, settings=settings, backend=backend)
    return written


def export_comparison(out_dir, comparison, vertex_names=("VERTICES", "VALLEY"), *, export_ct: bool | None = None,
                      hdf5_name: str = "results.h5") -> dict[str, Path | list[Path]]:
    """:func:`export_run` for the result of :func:`sfrt_engine.run_comparison` (what ``sfrt compare`` calls)."""
    prepared = comparison.prepared
    settings = prepared.settings
    resolved = comparison.report.get("settings", {}).get("alpha_beta_resolved_gy") or settings.alpha_beta_gy
    components = prepared.components
    return export_run(
        out_dir, prepared.patient, comparison.physical_gy, comparison.eqd2_gy, comparison.report, settings,
        describe_alpha_beta(resolved), settings.boost_mode, vertex_names, vertices=prepared.vertices,
        beams={name: list(c.beams) for name, c in components.items()},
        unit_doses={name: c.dose_gy for name, c in components.items()},
        backend=next((c.backend for c in components.values()), None), export_ct=export_ct, hdf5_name=hdf5_name)
