"""IMPT plan builder: energy layers and spot grids covering a target, spot weights by an iterative SOBP method.

Geometry (per field):

1. Spots sit on a square lattice of ``spot_spacing_mm`` at the isocentre plane (the
   target centroid), wherever the lattice node lies within ``margin_mm`` plus one spot
   spacing (plus half a projected voxel) of the beam's-eye-view projection of the target.
2. Each spot's water-equivalent depth interval ``[d_min, d_max]`` is that of the target
   voxels in its column (within one spot spacing of its axis), widened by ``margin_mm``.
3. Energy layers step down in range from the deepest ``d_max`` to the shallowest
   ``d_min`` by ``layer_spacing_mm`` of water (default: 2.5 x the range straggling of the
   deepest layer, at least 3 mm); a spot is placed in every layer whose range falls in
   its interval (± half a layer spacing). Ranges below the lowest energy's use the
   machine's range shifter (a water-equivalent depth offset).

Weights: single-field uniform dose (SFUD). For each field, the dose per Gp of every spot
at a regular subsample of the target voxels (at most 8,000) forms a matrix ``A`` computed
with the kernels' model; the weights solve the non-negative, lightly regularised least
squares ``min ||A w - D/n||^2 + lambda ||w||^2, w >= 0`` (``n`` fields, ``D`` the
prescription) by FISTA. The summed fields are finally scaled so that the target's median
dose equals the prescription.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import PlanError
from ..machines import ProtonMachine
from ..patient import Patient
from .geometry import beam_frame
from .protons import ProtonBeam, SpotLayer

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["impt_beams"]

_MAX_SAMPLES = 8000  # target points in the least-squares fit (a regular subsample of the target voxels)
_CUTOFF_SIGMA2 = 16.0  # influence entries beyond 4 sigma are dropped
_SMOOTHING = 1e-3  # Tikhonov weight relative to ||A||^2 / n_spots: prefers even spot weights


def _wet_of_points(patient: Patient, frame, machine: ProtonMachine, points: np.ndarray, backend: str) -> np.ndarray:
    """Water-equivalent depth [mm] of points along their rays from the virtual source (ray table)."""
    from ..kernels import get_backend
    from ..kernels._task import ray_lattice
    from ..kernels.backend_numpy import _trilinear

    class _Probe:  # the footprint of a beam covering the points
        pass

    u, v, z = frame.to_bev(points)
    probe = _Probe()
    probe.frame, probe.name = frame, "impt_probe"
    probe.open_extent_uv_mm = lambda: (float(u.min()) - 5, float(u.max()) + 5, float(v.min()) - 5, float(v.max()) + 5)
    lattice = ray_lattice(probe, patient.grid, 0.0)
    from ..kernels._task import PhotonBeamTask

    task = PhotonBeamTask(**lattice, edge_u0_mm=0.0, beamlet_du_mm=1.0, edge_v0_mm=0.0, beamlet_dv_mm=1.0,
                          weights_mu=np.ones((1, 1)), depth_step_mm=1.0, depth_dose_gy_per_mu=np.zeros(2),
                          component_weight=np.ones((1, 2)), component_sigma_mm=np.ones((1, 2)))
    table = np.asarray(get_backend(backend).radiological_depth(patient.stopping_power(), patient.grid, task))
    return _trilinear(table.astype(np.float64), (v - task.ray_v0_mm) / task.ray_dv_mm,
                      (u - task.ray_u0_mm) / task.ray_du_mm, (z - task.ray_z0_mm) / task.ray_dz_mm)


def _field_geometry(patient: Patient, mask: np.ndarray, machine: ProtonMachine, iso, gantry: float, couch: float,
                    spot_spacing_mm: float, margin_mm: float, backend: str):
    from scipy.spatial import cKDTree  # on first use, not at import (STYLE 1)

    g = patient.grid
    pts = g.voxel_centres_mm(mask)
    frame = beam_frame(iso, machine.sad_mm, gantry, couch, 0.0)
    u, v, z = frame.to_bev(pts)
    wet = _wet_of_points(patient, frame, machine, pts, backend)
    half_diag = 0.5 * float(np.linalg.norm(g.spacing_xyz_mm)) * machine.sad_mm / float(z.min())
    # one extra ring of spots beyond the margin lets the edge spots shape the lateral penumbra
    reach = margin_mm + half_diag + spot_spacing_mm
    i0, i1 = int(np.floor((u.min() - reach) / spot_spacing_mm)), int(np.ceil((u.max() + reach) / spot_spacing_mm))
    j0, j1 = int(np.floor((v.min() - reach) / spot_spacing_mm)), int(np.ceil((v.max() + reach) / spot_spacing_mm))
    cu = np.arange(i0, i1 + 1) * spot_spacing_mm
    cv = np.arange(j0, j1 + 1) * spot_spacing_mm
    nodes = np.stack(np.meshgrid(cu, cv), axis=-1).reshape(-1, 2)
    tree = cKDTree(np.stack([u, v], axis=1))
    dist, _ = tree.query(nodes, distance_upper_bound=reach + 1e-9)
    active = dist <= reach
    # per spot column: WET interval of the target voxels within one spacing of its axis
    d_min = np.full(nodes.shape[0], np.inf)
    d_max = np.full(nodes.shape[0], -np.inf)
    for k, members in enumerate(tree.query_ball_point(nodes, r=spot_spacing_mm)):
        if members and active[k]:
            d_min[k] = wet[members].min()
            d_max[k] = wet[members].max()
    # active nodes without voxels in their column (margin ring) borrow the nearest column's interval
    empty = active & ~np.isfinite(d_min)
    if empty.any():
        filled = np.flatnonzero(active & np.isfinite(d_min))
        if filled.size == 0:
            raise PlanError("impt_beams: no spot column contains a target voxel")
        near = cKDTree(nodes[filled]).query(nodes[empty])[1]
        d_min[empty], d_max[empty] = d_min[filled[near]], d_max[filled[near]]
    return frame, cu, cv, active.reshape(cv.size, cu.size), d_min.reshape(cv.size, cu.size) - margin_mm, \
        d_max.reshape(cv.size, cu.size) + margin_mm, (u, v, wet)


def impt_beams(patient: Patient, structure, machine: ProtonMachine,
               gantry_deg: Sequence[float] | float = (90.0,), couch_deg: Sequence[float] | float = 0.0,
               spot_spacing_mm: float = 5.0, layer_spacing_mm: float | None = None, margin_mm: float = 5.0,
               prescription_gy: float = 1.0, iterations: int = 200, isocenter_xyz_mm=None,
               backend: str = "auto", weights: str = "sfud", name: str | None = None) -> list[ProtonBeam]:
    """IMPT fields whose Bragg peaks cover ``structure`` plus a margin (see the module docstring).

    Parameters
    ----------
    patient : Patient
    structure : str or bool ndarray [z, y, x]
        Target (normally the PTV), by name or as a mask.
    machine : ProtonMachine
    gantry_deg, couch_deg : float or sequence of float
        One field per gantry angle; one couch angle for all or one per field [deg].
    spot_spacing_mm : float
        Lateral spot spacing at the isocentre plane [mm].
    layer_spacing_mm : float, optional
        Range step between energy layers [mm of water].
    margin_mm : float
        Lateral and range margin around the target [mm].
    prescription_gy : float
        Median target dose of the summed fields [Gy].
    iterations : int
        Iterations of the non-negative least-squares solver (FISTA).
    backend : str
        Backend of the radiological-depth tables and the final normalisation.
    weights : {"sfud", "start"}
        ``"sfud"``: single-field uniform dose weights (module docstring); ``"start"``: the spot grid with its
        starting weights (deeper layers heavier), for a multi-field optimiser to take from there.
    name : str, optional
        Prefix of the field names (default: the structure's name, or "target" for a mask).
    """
    from .builders import structure_mask

    if weights not in ("sfud", "start"):
        raise PlanError(f"weights={weights!r}: expected 'sfud' or 'start'")
    if not isinstance(machine, ProtonMachine):
        raise PlanError(f"impt_beams needs a proton machine, got {type(machine).__name__}")
    from .builders import _as_angles

    gantries = _as_angles(gantry_deg, "gantry_deg")
    couches = _as_angles(couch_deg, "couch_deg")
    couches = couches * len(gantries) if len(couches) == 1 else couches
    if len(couches) != len(gantries):
        raise PlanError(f"couch_deg has {len(couches)} angles for {len(gantries)} fields")
    for label, value in (("spot_spacing_mm", spot_spacing_mm), ("prescription_gy", prescription_gy)):
        if not (np.isfinite(value) and value > 0):
            raise PlanError(f"{label}={value!r}: expected a positive number")
    if not (np.isfinite(margin_mm) and margin_mm >= 0):
        raise PlanError(f"margin_mm={margin_mm!r}: expected >= 0 mm")
    mask, structure = structure_mask(patient, structure, name or "target")
    if not mask.any():
        raise PlanError(f"structure {structure!r} is empty")
    g = patient.grid
    iz, iy, ix = np.nonzero(mask)
    centroid = np.array([g.axis_mm("x")[ix].mean(), g.axis_mm("y")[iy].mean(), g.axis_mm("z")[iz].mean()])
    iso = centroid if isocenter_xyz_mm is None else np.asarray(isocenter_xyz_mm, float)

    beams = []
    for gantry, couch in zip(gantries, couches):
        frame, cu, cv, active, d_lo, d_hi, _ = _field_geometry(patient, mask, machine, iso, gantry, couch,
                                                                 spot_spacing_mm, margin_mm, backend)
        deepest = float(np.nanmax(np.where(active, d_hi, np.nan)))
        shallowest = float(np.nanmin(np.where(active, d_lo, np.nan)))
        if deepest > machine.range_mm[-1]:
            raise PlanError(f"field at gantry {gantry:g} deg: the target reaches {deepest:.0f} mm water-equivalent "
                            f"depth, beyond the machine's {machine.range_mm[-1]:.0f} mm range")
        step = layer_spacing_mm
        if step is None:
            step = max(3.0, 2.5 * machine.range_straggling_mm(machine.energy_for_range(deepest)))
        if not (np.isfinite(step) and step > 0):
            raise PlanError(f"layer_spacing_mm={layer_spacing_mm!r}: expected a positive range step in mm")
        rs_mm = machine.range_shifter_mm
        lowest = float(machine.range_mm[0]) - rs_mm  # shallowest range reachable (with the shifter)
        if shallowest < lowest:
            shallowest = lowest
        ranges = np.arange(deepest, shallowest - 0.5 * step, -step)
        layers = []
        used = set()
        for r in ranges:
            shift = 0.0 if r >= machine.range_mm[0] else rs_mm
            energy = machine.energy_for_range(float(r) + shift)
            if (energy, shift) in used:
                continue
            used.add((energy, shift))
            r_e = float(machine.range_mm[machine.energy_index(energy)]) - shift
            on = active & (d_lo - 0.5 * step <= r_e) & (r_e <= d_hi + 0.5 * step)
            if not on.any():
                continue
            # weight start: deeper layers carry more (a pristine peak's plateau adds to shallower ones)
            w = np.where(on, (max(r_e, 1.0) / deepest) ** 2, 0.0)
            layers.append(SpotLayer(energy, w, (spot_spacing_mm, spot_spacing_mm), (float(cu[0]), float(cv[0])),
                                    range_shifter_mm=shift))
        if not layers:
            raise PlanError(f"field at gantry {gantry:g} deg: no energy layer covers {structure!r}")
        beams.append(ProtonBeam(machine, tuple(iso), gantry, tuple(layers), couch_deg=couch,
                                name=f"{structure}_p{gantry:g}" + (f"_c{couch:g}" if couch else "")))
    if weights == "start":
        return beams
    return _optimise(patient, mask, beams, prescription_gy, iterations, backend)


def _influence(beam: ProtonBeam, samples: np.ndarray, u, v, z, wet) -> tuple[sparse.csr_matrix, list]:
    """Dose per Gp of every weighted spot of ``beam`` at the sample points, sparse (n_samples, n_spots).

    The same model as the dose kernels (backend_numpy specification): IDD and sigma of the
    layer's energy at the point's water-equivalent depth, Gaussian in the isocentre plane,
    cut at 4 sigma (the omitted tail is below 3.4e-4 of a spot's peak).
    """
    from scipy import sparse  # on first use, not at import (STYLE 1)

    m = beam.machine
    nodes = m.depth_step_mm * np.arange(m.idd_gy_mm2_per_gp.shape[1])
    columns, index = [], []
    for k, lay in enumerate(beam.layers):
        e = m.energy_index(lay.energy_mev)
        idd = np.interp(wet + lay.range_shifter_mm, nodes, m.idd_gy_mm2_per_gp[e])
        sig = np.interp(wet + lay.range_shifter_mm, nodes, m.sigma_mm[e])
        s_iso = sig * m.sad_mm / z
        rows, cols = np.nonzero(lay.weights_gp)
        pu, pv = lay.positions_uv_mm()
        du = (u[:, None] - pu[cols][None, :]) / s_iso[:, None]
        dv = (v[:, None] - pv[rows][None, :]) / s_iso[:, None]
        r2 = du * du + dv * dv
        block = np.where(r2 < _CUTOFF_SIGMA2, (idd / (2 * np.pi * sig * sig))[:, None] * np.exp(-0.5 * r2), 0.0)
        columns.append(sparse.csc_matrix(block))
        index.extend((k, r, c) for r, c in zip(rows, cols))
    return sparse.hstack(columns, format="csr"), index


def _nonnegative_least_squares(a: np.ndarray, b: np.ndarray, w0: np.ndarray, iterations: int,
                               smoothing: float) -> np.ndarray:
    """min ||A w - b||^2 + smoothing * ||A|| ^2 ||w||^2 / n, w >= 0, by FISTA (accelerated projected gradient)."""
    lipschitz = 0.0
    x = np.ones(a.shape[1]) / np.sqrt(a.shape[1])
    for _ in range(30):  # power iteration for ||A||_2^2
        x = a.T @ (a @ x)
        lipschitz = float(np.linalg.norm(x))
        x /= max(lipschitz, 1e-30)
    lam = smoothing * lipschitz / a.shape[1]
    step = 1.0 / (lipschitz + lam)
    w = w0.copy()
    y, t = w.copy(), 1.0
    for _ in range(iterations):
        grad = a.T @ (a @ y - b) + lam * y
        w_next = np.maximum(y - step * grad, 0.0)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        y = w_next + ((t - 1.0) / t_next) * (w_next - w)
        w, t = w_next, t_next
    return w


def _optimise(patient: Patient, mask: np.ndarray, beams: list[ProtonBeam], prescription_gy: float, iterations: int,
              backend: str) -> list[ProtonBeam]:
    """Single-field uniform dose: each field's weights by non-negative least squares to prescription / n_fields."""
    from ..dose import compute_dose

    g = patient.grid
    pts = g.voxel_centres_mm(mask)
    stride = max(1, int(np.ceil(len(pts) / _MAX_SAMPLES)))
    pts = pts[::stride]
    target = prescription_gy / len(beams)
    out = []
    for beam in beams:
        u, v, z = beam.frame.to_bev(pts)
        wet = _wet_of_points(patient, beam.frame, beam.machine, pts, backend)
        a, index = _influence(beam, pts, u, v, z, wet)
        w0 = np.array([beam.layers[k].weights_gp[r, c] for k, r, c in index])
        w0 *= target / max(float(np.median(a @ w0)), 1e-30)
        w = _nonnegative_least_squares(a, np.full(a.shape[0], target), w0, iterations, _SMOOTHING)
        maps = [np.zeros_like(lay.weights_gp) for lay in beam.layers]
        for (k, r, c), value in zip(index, w):
            maps[k][r, c] = value
        out.append(beam.with_layers(SpotLayer(lay.energy_mev, wm, lay.spacing_mm, lay.origin_uv_mm, lay.range_shifter_mm)
                                    for lay, wm in zip(beam.layers, maps)))
    dose = compute_dose(out, patient, backend=backend).gy[mask]
    scale = prescription_gy / max(float(np.median(dose)), 1e-12)
    return [b.scaled(scale) for b in out]

