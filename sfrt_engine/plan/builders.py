"""Beam builders: open square fields and conformal beams around a structure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import PlanError
from ..machines import PhotonMachine
from ..patient import Patient
from .beam import Beam
from .geometry import beam_frame

__all__ = ["open_field", "conformal_beams", "body_entry_point", "structure_mask"]


def structure_mask(patient: Patient, structure, label: str = "target") -> tuple[np.ndarray, str]:
    """A target given by name (a structure of ``patient``) or as a bool mask [z, y, x]: ``(mask, name)``.

    Builders take either, so a caller with a target that is no structure of the patient (the
    vertex spheres of a lattice boost) passes its mask instead of adding a structure.
    """
    if isinstance(structure, str):
        return patient.structures[structure], structure
    mask = np.asarray(structure)
    if mask.dtype != bool or mask.shape != tuple(patient.grid.shape_zyx):
        raise PlanError(f"{label}: expected a structure name or a bool mask of the grid's shape "
                        f"{tuple(patient.grid.shape_zyx)}, got {mask.dtype} {mask.shape}")
    return mask, label


def _body_mask(patient: Patient) -> np.ndarray:
    if "BODY" in patient.structures:
        return patient.structures["BODY"]
    return patient.hu > -500.0


def body_entry_point(patient: Patient, point_xyz_mm, direction) -> np.ndarray:
    """Where a line travelling along ``direction`` through ``point_xyz_mm`` first enters BODY.

    BODY is taken voxel by voxel (a point belongs to the voxel whose centre is
    nearest); the entry is located to 1e-3 mm. Without a BODY structure, voxels
    above -500 HU count as body.

    Returns
    -------
    ndarray, shape (3,)
        Entry point [mm].
    """
    grid = patient.grid
    body = _body_mask(patient)
    p = np.asarray(point_xyz_mm, dtype=float)
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    lo, hi = grid.bounds_xyz_mm[:, 0], grid.bounds_xyz_mm[:, 1]
    half_diag = 0.5 * float(np.linalg.norm(hi - lo))
    centre = 0.5 * (lo + hi)
    start = float(np.dot(centre - p, d)) - half_diag - 1.0  # before the grid along the line
    origin = np.array(grid.origin_xyz_mm)
    spacing = np.array(grid.spacing_xyz_mm)
    shape = np.array(grid.shape_xyz)

    def inside(t: float) -> bool:
        q = p + t * d
        if np.any(q < lo) or np.any(q >= hi):
            return False
        i = np.clip(np.floor((q - origin) / spacing + 0.5).astype(int), 0, shape - 1)
        return bool(body[i[2], i[1], i[0]])

    step = 0.25 * float(spacing.min())
    n = int(np.ceil((2 * half_diag + 2.0) / step)) + 1
    t_prev = start
    for k in range(1, n):
        t = start + k * step
        if inside(t):
            a, b = t_prev, t
            while b - a > 1e-3:
                m = 0.5 * (a + b)
                a, b = (a, m) if inside(m) else (m, b)
            return p + b * d
        t_prev = t
    raise PlanError(
        f"patient {patient.name!r}: the line through {tuple(p.tolist())} mm along {tuple(d.tolist())} never enters BODY"
    )


def open_field(machine, patient: Patient, field_mm=(100.0, 100.0), gantry_deg: float = 0.0,
               ssd_mm: float = 1000.0, couch_deg: float = 0.0, collimator_deg: float = 0.0,
               beamlet_mm: float = 5.0, weight_mu: float = 1.0, name: str = "open", energy_mev: float | None = None,
               spot_spacing_mm: float | None = None, weight_gp: float = 0.01):
    """Open rectangular field with its central axis through the centre of the patient grid.

    The (virtual) source sits ``ssd_mm`` from where the central axis enters BODY, so the
    isocentre is ``SAD - SSD`` beyond the surface.

    Photons (a :class:`PhotonMachine`): ``field_mm`` is the field size at the isocentre
    plane, tiled exactly by beamlets close to ``beamlet_mm``, each of weight ``weight_mu``.
    With the default calibration a 10 x 10 cm field at SSD 100 cm gives
    ``0.01 * weight_mu`` Gy at d_max. Returns a :class:`Beam`.

    Protons (a :class:`ProtonMachine`, ``energy_mev`` required): a uniform mono-energetic
    layer of spots of ``weight_gp`` covering ``field_mm`` at the surface (spot centres from
    edge to edge), spaced by ``spot_spacing_mm`` at the surface, by default the spot sigma
    in air at that energy, and never more. Returns a :class:`ProtonBeam`.
    """
    from ..machines import ProtonMachine

    if isinstance(machine, ProtonMachine):
        return _open_proton_field(machine, patient, field_mm, gantry_deg, ssd_mm, couch_deg, collimator_deg, name,
                                  energy_mev, spot_spacing_mm, weight_gp)
    if energy_mev is not None:
        raise PlanError(f"energy_mev={energy_mev!r} applies to proton machines; {machine.name!r} is a photon machine")
    fu, fv = np.broadcast_to(np.asarray(field_mm, dtype=float), (2,))
    if not (np.isfinite(fu) and np.isfinite(fv) and fu > 0 and fv > 0):
        raise PlanError(f"field_mm={field_mm!r}: expected positive field sizes in mm")
    if not (np.isfinite(ssd_mm) and 0 < ssd_mm < machine.sad_mm * 2):
        raise PlanError(f"ssd_mm={ssd_mm!r}: expected a distance between 0 and {2 * machine.sad_mm:g} mm")
    if not (np.isfinite(beamlet_mm) and beamlet_mm > 0):
        raise PlanError(f"beamlet_mm={beamlet_mm!r}: expected a positive size in mm")
    if not (np.isfinite(weight_mu) and weight_mu >= 0):
        raise PlanError(f"weight_mu={weight_mu!r}: expected a finite weight >= 0 MU")
    centre = np.array(patient.grid.center_xyz_mm)
    frame = beam_frame(centre, machine.sad_mm, gantry_deg, couch_deg, collimator_deg)
    surface = body_entry_point(patient, centre, frame.direction)
    source = surface - ssd_mm * frame.direction
    iso = source + machine.sad_mm * frame.direction
    nu = max(1, int(round(fu / beamlet_mm)))
    nv = max(1, int(round(fv / beamlet_mm)))
    du, dv = fu / nu, fv / nv
    return Beam(machine, tuple(iso), float(gantry_deg), np.full((nv, nu), float(weight_mu)), (du, dv),
                (-0.5 * fu + 0.5 * du, -0.5 * fv + 0.5 * dv), couch_deg=float(couch_deg),
                collimator_deg=float(collimator_deg), name=name)


def _open_proton_field(machine, patient: Patient, field_mm, gantry_deg, ssd_mm, couch_deg, collimator_deg, name,
                       energy_mev, spot_spacing_mm, weight_gp):
    from .protons import ProtonBeam, SpotLayer

    if energy_mev is None:
        raise PlanError(f"open_field on proton machine {machine.name!r} needs energy_mev "
                        f"({machine.min_energy_mev:g}-{machine.max_energy_mev:g} MeV)")
    k = machine.energy_index(float(energy_mev), where="open_field")
    fu, fv = np.broadcast_to(np.asarray(field_mm, dtype=float), (2,))
    if not (np.isfinite(fu) and np.isfinite(fv) and fu > 0 and fv > 0):
        raise PlanError(f"field_mm={field_mm!r}: expected positive field sizes in mm")
    if not (np.isfinite(ssd_mm) and 0 < ssd_mm):
        raise PlanError(f"ssd_mm={ssd_mm!r}: expected a positive distance in mm")
    if not (np.isfinite(weight_gp) and weight_gp >= 0):
        raise PlanError(f"weight_gp={weight_gp!r}: expected a finite weight >= 0 Gp")
    sigma = float(machine.sigma_air_mm[k])
    spacing = sigma if spot_spacing_mm is None else float(spot_spacing_mm)
    if not (np.isfinite(spacing) and 0 < spacing <= sigma + 1e-9):
        raise PlanError(f"spot_spacing_mm={spot_spacing_mm!r}: expected > 0 and at most the spot sigma in air "
                        f"({sigma:.2f} mm at {energy_mev:g} MeV) for a uniform field")
    centre = np.array(patient.grid.center_xyz_mm)
    frame = beam_frame(centre, machine.sad_mm, gantry_deg, couch_deg, collimator_deg)
    surface = body_entry_point(patient, centre, frame.direction)
    source = surface - ssd_mm * frame.direction
    iso = source + machine.sad_mm * frame.direction
    to_iso = machine.sad_mm / ssd_mm  # surface-plane distances -> isocentre plane
    nu = int(np.ceil(fu / spacing - 1e-9)) + 1
    nv = int(np.ceil(fv / spacing - 1e-9)) + 1
    du, dv = fu / (nu - 1), fv / (nv - 1)
    layer = SpotLayer(float(energy_mev), np.full((nv, nu), float(weight_gp)), (du * to_iso, dv * to_iso),
                      (-0.5 * fu * to_iso, -0.5 * fv * to_iso))
    return ProtonBeam(machine, tuple(iso), float(gantry_deg), (layer,), couch_deg=float(couch_deg),
                      collimator_deg=float(collimator_deg), name=name)


def _as_angles(value, label: str) -> list[float]:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise PlanError(f"{label}={value!r}: expected one or more finite angles in degrees")
    return [float(a) for a in arr]


def conformal_beams(patient: Patient, structure, machine: PhotonMachine,
                    gantry_deg: Sequence[float] | float = (0.0, 72.0, 144.0, 216.0, 288.0),
                    couch_deg: Sequence[float] | float = 0.0, collimator_deg: float = 0.0,
                    beamlet_mm: float = 5.0, margin_mm: float = 5.0, isocenter_xyz_mm=None,
                    weight_mu: float = 1.0, name: str | None = None) -> list[Beam]:
    """Beams whose open beamlets cover the BEV projection of a structure plus a margin.

    A beamlet opens when its centre lies within ``margin_mm`` (plus half a
    projected voxel diagonal, the extent of the voxel itself) of the projection of
    a voxel centre of the structure, so the aperture edge is within half a beamlet
    of the projection plus margin. Open beamlets get ``weight_mu``.

    Parameters
    ----------
    patient : Patient
    structure : str or bool ndarray [z, y, x]
        Name of the target structure, or its mask.
    machine : PhotonMachine
    gantry_deg : float or sequence of float
        One beam per angle [deg].
    couch_deg : float or sequence of float
        One couch angle for all beams, or one per beam [deg].
    collimator_deg : float
    beamlet_mm : float
        Beamlet size at the isocentre plane [mm].
    margin_mm : float
        Margin around the projection [mm], at the isocentre plane.
    isocenter_xyz_mm : tuple of float, optional
        Defaults to the structure's centroid.
    name : str, optional
        Prefix of the beam names (default: the structure's name, or "target" for a mask).

    Returns
    -------
    list of Beam
    """
    from scipy.spatial import cKDTree  # on first use, not at import (STYLE 1)

    mask, structure = structure_mask(patient, structure, name or "target")
    if not mask.any():
        raise PlanError(f"structure {structure!r} is empty; a conformal beam needs at least one voxel")
    gantries = _as_angles(gantry_deg, "gantry_deg")
    couches = _as_angles(couch_deg, "couch_deg")
    if len(couches) == 1:
        couches = couches * len(gantries)
    if len(couches) != len(gantries):
        raise PlanError(f"couch_deg has {len(couches)} angles for {len(gantries)} gantry angles; give one or one per beam")
    if not (np.isfinite(beamlet_mm) and beamlet_mm > 0):
        raise PlanError(f"beamlet_mm={beamlet_mm!r}: expected a positive size in mm")
    if not (np.isfinite(margin_mm) and margin_mm >= 0):
        raise PlanError(f"margin_mm={margin_mm!r}: expected a margin >= 0 mm")
    grid = patient.grid
    points = grid.voxel_centres_mm(mask)
    iso = points.mean(axis=0) if isocenter_xyz_mm is None else np.asarray(isocenter_xyz_mm, dtype=float)
    half_diag = 0.5 * float(np.linalg.norm(grid.spacing_xyz_mm))
    beams = []
    for g, c in zip(gantries, couches):
        frame = beam_frame(iso, machine.sad_mm, g, c, collimator_deg)
        u, v, z = frame.to_bev(points)
        if np.any(z <= 0):
            raise PlanError(f"gantry {g:g} deg: the source lies inside or behind structure {structure!r}")
        reach = margin_mm + half_diag * machine.sad_mm / float(z.min())
        # beamlet lattice with an edge on the central axis
        i0 = int(np.floor((u.min() - reach) / beamlet_mm))
        i1 = int(np.ceil((u.max() + reach) / beamlet_mm))
        j0 = int(np.floor((v.min() - reach) / beamlet_mm))
        j1 = int(np.ceil((v.max() + reach) / beamlet_mm))
        cu = (np.arange(i0, i1) + 0.5) * beamlet_mm
        cv = (np.arange(j0, j1) + 0.5) * beamlet_mm
        centres = np.stack(np.meshgrid(cu, cv), axis=-1).reshape(-1, 2)
        dist, _ = cKDTree(np.stack([u, v], axis=1)).query(centres, distance_upper_bound=reach + 1e-9)
        open_ = (dist <= reach).reshape(cv.size, cu.size)
        rows, cols = np.nonzero(open_)
        open_ = open_[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        weights = np.where(open_, float(weight_mu), 0.0)
        beams.append(Beam(machine, tuple(iso), g, weights, (beamlet_mm, beamlet_mm),
                          (float(cu[cols.min()]), float(cv[rows.min()])), couch_deg=c,
                          collimator_deg=float(collimator_deg), name=f"{structure}_g{g:g}" + (f"_c{c:g}" if c else "")))
    return beams
