"""Report fields that say what a comparison applied: alpha/beta per structure, volumes, dose quantity.

These helpers build the parts of ``report.json`` (and of the console summary) that a reader
needs to check a run: the alpha/beta each structure actually received once overlaps were
resolved (:func:`resolved_alpha_beta`), the structure volumes in cc, and what the prescribed
"vertex dose" means in the boost mode used (:func:`vertex_dose_meaning`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .patient import Patient

__all__ = ["describe_resolved_alpha_beta", "resolved_alpha_beta", "structure_volumes", "vertex_dose_meaning"]


def _public_names(patient: Patient) -> list[str]:
    return [n for n in patient.structures if not n.startswith("_")]


def resolved_alpha_beta(patient: Patient, alpha_beta_map_gy: np.ndarray) -> dict:
    """Alpha/beta each structure received, after the overlap precedence was applied.

    Parameters
    ----------
    patient : Patient
    alpha_beta_map_gy : ndarray [z, y, x] [Gy]
        Per-voxel alpha/beta (:func:`sfrt_engine.biology.alpha_beta_map`).

    Returns
    -------
    dict
        For every structure (names starting with ``_`` excepted): a float [Gy] where all its
        voxels share one value; otherwise a list of ``{"alpha_beta_gy", "voxel_fraction"}``,
        largest fraction first (fractions of the structure's voxels, summing to 1); ``None``
        for an empty structure.
    """
    out: dict = {}
    for name in _public_names(patient):
        values = alpha_beta_map_gy[patient.structures[name]]
        if values.size == 0:
            out[name] = None
            continue
        unique, counts = np.unique(values, return_counts=True)
        if unique.size == 1:
            out[name] = float(unique[0])
            continue
        order = np.argsort(-counts, kind="stable")
        out[name] = [{"alpha_beta_gy": float(unique[i]), "voxel_fraction": float(counts[i] / values.size)}
                     for i in order]
    return out


def describe_resolved_alpha_beta(resolved: Mapping) -> str:
    """One line: ``"GTV 4 Gy, SKIN 2 Gy, BODY 3 Gy (91.2 %) / 4 Gy (6.1 %) / 2 Gy (2.7 %)"``.

    Accepts the output of :func:`resolved_alpha_beta` or a plain ``{name: value}`` mapping;
    empty structures (``None``) are left out.
    """
    parts = []
    for name, value in resolved.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            mixed = " / ".join(f"{float(v['alpha_beta_gy']):g} Gy ({100 * float(v['voxel_fraction']):.1f} %)"
                               for v in value)
            parts.append(f"{name} {mixed}")
        else:
            parts.append(f"{name} {float(value):g} Gy")
    return ", ".join(parts)


def structure_volumes(patient: Patient) -> dict:
    """``{name: {"volume_cc", "voxels"}}`` for every structure (names starting with ``_`` excepted)."""
    voxel_cc = patient.grid.voxel_volume_mm3 / 1000.0
    out = {}
    for name in _public_names(patient):
        n = int(np.count_nonzero(patient.structures[name]))
        out[name] = {"volume_cc": round(n * voxel_cc, 3), "voxels": n}
    return out


def vertex_dose_meaning(boost_mode: str, vertex_dose_gy: float, crt_vertex_mean_gy: float,
                        unit: str = "Gy") -> str:
    """What the prescribed vertex dose per session means in ``boost_mode``, with the numbers of the run.

    Parameters
    ----------
    boost_mode : {"integrated", "separate"}
    vertex_dose_gy : float
        Prescribed vertex dose per vertex session.
    crt_vertex_mean_gy : float
        Mean dose over the vertices of one CRT fraction.
    unit : str
        "Gy" or "Gy(RBE)".
    """
    if boost_mode == "integrated":
        return (f"vertex dose {vertex_dose_gy:g} {unit} = mean over the vertices of the whole boost session, "
                f"including that day's CRT fraction ({crt_vertex_mean_gy:.2f} {unit} CRT + "
                f"{vertex_dose_gy - crt_vertex_mean_gy:.2f} {unit} boost)")
    return (f"vertex dose {vertex_dose_gy:g} {unit} = mean over the vertices of the extra boost session alone; "
            f"that day's CRT fraction ({crt_vertex_mean_gy:.2f} {unit} at the vertices) comes on top")
