"""Benchmark cases, generated in code with fixed geometry (no downloads, no randomness).

Shared by the pytest-benchmark suites, ``compare_backends.py`` and the GPU check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import sfrt_engine as se


@dataclass
class Case:
    name: str
    patient: se.Patient
    beams: list

    @property
    def n_beamlets(self) -> int:
        """Photon beamlets of the case (0 for proton beams)."""
        return sum(getattr(b, "n_beamlets", 0) for b in self.beams)

    @property
    def n_spots(self) -> int:
        """Proton spots of the case (0 for photon beams)."""
        return sum(getattr(b, "n_spots", 0) for b in self.beams)

    @property
    def units(self) -> str:
        """What the case's beams are made of, for tables: "beamlets" or "spots"."""
        return "spots" if self.n_spots and not self.n_beamlets else "beamlets"

    def describe(self) -> dict:
        d = {"case": self.name, "grid_zyx": list(self.patient.grid.shape_zyx),
             "spacing_mm": list(self.patient.grid.spacing_xyz_mm), "voxels": self.patient.grid.size,
             "beams": len(self.beams), "beamlets": self.n_beamlets}
        if self.n_spots:
            d["spots"] = self.n_spots
        return d


GANTRY_5 = [0.0, 72.0, 144.0, 216.0, 288.0]


def sarcoma_5beam(spacing_mm: float = 2.5) -> Case:
    """The default case: sarcoma thigh phantom, 5-beam conformal 6 MV plan on the PTV, 5 mm beamlets."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=spacing_mm)
    beams = se.plan.conformal_beams(patient, "PTV", se.load_machine("photon_6mv"), gantry_deg=GANTRY_5)
    return Case(f"sarcoma_5beam_{spacing_mm:g}mm", patient, beams)


def water_sphere_5beam(n: int = 100, spacing_mm: float = 3.0, radius_mm: float = 40.0) -> Case:
    """An n^3 water box at ``spacing_mm`` with a centred spherical target and 5 conformal beams."""
    patient = se.phantoms.water_box(size_xyz_mm=n * spacing_mm, spacing_xyz_mm=spacing_mm)
    z, y, x = patient.grid.coordinates_mm()
    patient.structures["PTV"] = (x * x + y * y + z * z) <= radius_mm ** 2
    beams = se.plan.conformal_beams(patient, "PTV", se.load_machine("photon_6mv"), gantry_deg=GANTRY_5)
    return Case(f"water{n}_sphere{radius_mm:g}_5beam", patient, beams)


def slab_9beam(n: int = 256, spacing_mm: float = 2.0) -> Case:
    """An n^3 slab phantom (lung and bone slabs) at ``spacing_mm``, 9 conformal beams on a central box."""
    size = n * spacing_mm
    patient = se.phantoms.slab(size_xyz_mm=size, spacing_xyz_mm=spacing_mm,
                               slabs=(("LUNG", 0.25 * size, 0.4 * size, -700.0), ("BONE", 0.6 * size, 0.65 * size, 1300.0)))
    z, y, x = patient.grid.coordinates_mm()
    patient.structures["PTV"] = (np.abs(x) <= 40) & (np.abs(y) <= 40) & (np.abs(z) <= 40)
    gantries = [i * 40.0 for i in range(9)]
    beams = se.plan.conformal_beams(patient, "PTV", se.load_machine("photon_6mv"), gantry_deg=gantries)
    return Case(f"slab{n}_9beam", patient, beams)


def small_check() -> Case:
    """A small heterogeneous case to check a backend against the reference before timing."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=6.0)
    beams = se.plan.conformal_beams(patient, "PTV", se.load_machine("photon_6mv"), gantry_deg=[30.0, 150.0, 270.0],
                                    couch_deg=[0.0, 20.0, 0.0])
    return Case("sarcoma_3beam_6mm", patient, beams)


def arc_90cp(spacing_mm: float = 2.5) -> Case:
    """The default sarcoma case with one conformal 6 MV arc: 181 -> 179 deg cw every 4 deg (90 control points)."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=spacing_mm)
    arc = se.plan.conformal_arc(patient, "PTV", se.load_machine("photon_6mv"), start_deg=181.0, stop_deg=179.0,
                                direction="cw", spacing_deg=4.0)
    return Case(f"sarcoma_arc90_{spacing_mm:g}mm", patient, arc)


def impt_3field(spacing_mm: float = 2.5, backend: str = "cpp") -> Case:
    """The default sarcoma case with a 3-field IMPT plan (gantry 0, 120, 240 deg, 5 mm spots), weights
    optimised once on ``backend`` (the plan build is not what the benchmarks time)."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=spacing_mm)
    beams = se.plan.impt_beams(patient, "PTV", se.load_machine("proton_generic"), gantry_deg=[0.0, 120.0, 240.0],
                               backend=backend)
    return Case(f"sarcoma_impt3_{spacing_mm:g}mm", patient, list(beams))


def small_proton_check() -> Case:
    """A small heterogeneous proton case (two oblique mono-energetic fields, one non-coplanar) to check
    a backend against the reference before timing."""
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=6.0)
    m = se.load_machine("proton_generic")
    beams = [se.plan.open_field(m, patient, field_mm=(50.0, 40.0), gantry_deg=30.0, energy_mev=140.0),
             se.plan.open_field(m, patient, field_mm=(40.0, 40.0), gantry_deg=250.0, couch_deg=15.0,
                                energy_mev=100.0)]
    return Case("sarcoma_proton2_6mm", patient, beams)


def operator_voxels(case: Case) -> np.ndarray:
    """The voxel subset a plan optimisation evaluates on a case: its BODY, or the whole grid without one."""
    if "BODY" in case.patient.structures:
        return case.patient.structures["BODY"]
    return np.ones(case.patient.grid.shape_zyx, dtype=bool)


def operator_parity(name: str, case: Case | None = None) -> float:
    """max over forward and adjoint of |``name`` - numpy| / max |numpy| of the dose operators on a small
    case (default :func:`small_check`), for random weights and voxel gradients (fixed seed)."""
    from sfrt_engine.optimise import dose_operator  # noqa: PLC0415

    case = case or small_check()
    voxels = operator_voxels(case)
    ref = dose_operator(case.beams, case.patient, voxels=voxels, backend="numpy", mode="matrix-free")
    op = dose_operator(case.beams, case.patient, voxels=voxels, backend=name, mode="matrix-free")
    rng = np.random.default_rng(0)
    w, r = rng.uniform(0.2, 1.8, ref.n_weights), rng.uniform(-0.5, 1.0, ref.n_voxels)
    d_ref, g_ref = ref.forward(w), ref.adjoint(r)
    d = op.forward(w)
    d = np.asarray(d.get() if hasattr(d, "get") else d)
    return float(max(np.abs(d - d_ref).max() / d_ref.max(),
                     np.abs(op.adjoint(r) - g_ref).max() / np.abs(g_ref).max()))


def require_backend(name: str) -> None:
    """Skip the calling pytest benchmark, with the registry's reason, when ``name`` cannot run here."""
    import pytest  # noqa: PLC0415 - the scripts that import this module run without pytest

    ok, reason = se.available_backends()[name]
    if not ok:
        pytest.skip(f"{name}: {reason}")


def max_rel_difference(case: Case, reference: np.ndarray, name: str) -> float:
    """max |dose on ``name`` - reference| / max reference over the case's grid."""
    got = se.compute_dose(case.beams, case.patient, backend=name).gy
    return float(np.abs(got - reference).max() / reference.max())
