"""Photon machine model of the finite-size pencil beam (DESIGN 5.2).

A beamlet of width ``w`` (at the isocentre plane) and weight ``W`` [MU] gives, at a
voxel of radiological depth ``d`` and beam's-eye-view offset ``(u, v)`` from the
beamlet centre (projected to the isocentre plane)::

    D = W * T(d) * (SAD / z)^2 * sum_k A_k(d) * P(u; w, s_k) * P(v; w, s_k)
    P(u; w, s) = 1/2 [erf((u + w/2) / (sqrt(2) s)) - erf((u - w/2) / (sqrt(2) s))]

with ``z`` the voxel's distance from the source along the beam axis and
``s_k = sigma_k(d) * SAD / z`` the component width projected to the isocentre plane
(``sigma_k`` is physical, in the plane of the voxel). ``sum_k A_k = 1`` so that a
broad field gives ``T(d) (SAD/z)^2``.

``T`` is not stored: it is derived from a measured reference depth dose by
:func:`fit_photon_machine`, dividing out the inverse square law and the lateral
integral of the reference field. The same function commissions a user's beam.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import MachineDataError

__all__ = ["MlcModel", "PhotonMachine", "fit_photon_machine", "mlc_model", "reference_field_lateral_integral"]


def _readonly(a) -> np.ndarray:
    arr = np.array(a, dtype=np.float64, order="C", copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class PhotonMachine:
    """Tabulated photon pencil-beam data on a uniform radiological-depth grid.

    Attributes
    ----------
    name : str
    sad_mm : float
        Source-axis distance [mm].
    depth_step_mm : float
        Spacing of the depth tables [mm]; node ``i`` is at depth ``i * depth_step_mm``.
    depth_dose_gy_per_mu : ndarray, shape (n,)
        ``T(d)`` [Gy/MU] for a broad field at the isocentre distance.
    component_weight : ndarray, shape (K, n)
        ``A_k(d)``, dimensionless, summing to 1 over k.
    component_sigma_mm : ndarray, shape (K, n)
        ``sigma_k(d)`` [mm], physical width at the depth plane.
    component_names : tuple of str, length K
    source_sha256 : str
        Hash of the machine file the tables came from ("" if built in code).
    metadata : dict
        Description, calibration and sources, as read from the file.
    """

    name: str
    sad_mm: float
    depth_step_mm: float
    depth_dose_gy_per_mu: np.ndarray
    component_weight: np.ndarray
    component_sigma_mm: np.ndarray
    component_names: tuple[str, ...]
    source_sha256: str = ""
    metadata: dict = field(default_factory=dict)

    modality = "photon"

    def __post_init__(self) -> None:
        t = _readonly(self.depth_dose_gy_per_mu)
        a = _readonly(self.component_weight)
        s = _readonly(self.component_sigma_mm)
        where = f"photon machine '{self.name}'"
        if not (np.isfinite(self.sad_mm) and self.sad_mm > 0):
            raise MachineDataError(f"{where}: sad_mm={self.sad_mm}, expected a positive distance in mm")
        if not (np.isfinite(self.depth_step_mm) and self.depth_step_mm > 0):
            raise MachineDataError(f"{where}: depth_step_mm={self.depth_step_mm}, expected > 0")
        if t.ndim != 1 or t.size < 2:
            raise MachineDataError(f"{where}: depth dose table must be 1-D with >= 2 nodes, got shape {t.shape}")
        if a.ndim != 2 or a.shape != s.shape or a.shape[1] != t.size:
            raise MachineDataError(
                f"{where}: component tables have shapes {a.shape} and {s.shape}, expected (K, {t.size})"
            )
        if not 1 <= a.shape[0] <= MAX_COMPONENTS:
            raise MachineDataError(f"{where}: {a.shape[0]} lateral components, expected 1 to {MAX_COMPONENTS}")
        if len(self.component_names) != a.shape[0]:
            raise MachineDataError(f"{where}: {len(self.component_names)} component names for {a.shape[0]} components")
        if not (np.all(np.isfinite(t)) and np.all(t >= 0)):
            raise MachineDataError(f"{where}: depth dose must be finite and >= 0")
        if not (np.all(np.isfinite(a)) and np.all(a >= 0)):
            raise MachineDataError(f"{where}: component weights must be finite and >= 0")
        if not np.allclose(a.sum(axis=0), 1.0, atol=1e-6):
            worst = float(np.max(np.abs(a.sum(axis=0) - 1.0)))
            raise MachineDataError(f"{where}: component weights must sum to 1 at every depth (off by up to {worst:.3g})")
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            raise MachineDataError(f"{where}: component sigmas must be finite and > 0 mm")
        object.__setattr__(self, "depth_dose_gy_per_mu", t)
        object.__setattr__(self, "component_weight", a)
        object.__setattr__(self, "component_sigma_mm", s)
        object.__setattr__(self, "component_names", tuple(self.component_names))

    @property
    def n_components(self) -> int:
        return self.component_weight.shape[0]

    @property
    def max_depth_mm(self) -> float:
        return self.depth_step_mm * (self.depth_dose_gy_per_mu.size - 1)

    @property
    def depth_mm(self) -> np.ndarray:
        """Depth of each table node [mm]."""
        return self.depth_step_mm * np.arange(self.depth_dose_gy_per_mu.size)

    def max_sigma_mm(self) -> float:
        """Largest lateral width of any component at any depth [mm]."""
        return float(self.component_sigma_mm.max())


#: Upper bound on lateral components, shared with csrc/params.h (SFRT_MAX_COMPONENTS).
MAX_COMPONENTS = 4


def reference_field_lateral_integral(weight, sigma_mm, field_mm: float, ssd_mm: float, sad_mm: float, depth_mm):
    """Central-axis lateral factor ``L(d) = sum_k A_k erf(h / (sqrt(2) sigma_k))^2`` of a square field.

    Parameters
    ----------
    weight, sigma_mm : ndarray, shape (K, n)
        Component weights and physical widths [mm] at ``depth_mm``.
    field_mm : float
        Side of the square field at the isocentre plane [mm].
    ssd_mm, sad_mm : float
        Source-surface and source-axis distances [mm].
    depth_mm : ndarray, shape (n,)

    Returns
    -------
    ndarray, shape (n,)
        Fraction of the broad-field dose on the central axis.
    """
    from scipy.special import erf  # on first use, not at import (STYLE 1)

    half_width = 0.5 * field_mm * (ssd_mm + np.asarray(depth_mm)) / sad_mm  # physical, at depth
    p = erf(half_width / (np.sqrt(2.0) * sigma_mm))
    return np.sum(weight * p * p, axis=0)


def _component_tables(components, depth_nodes, where: str):
    names, weights, sigmas = [], [], []
    for c in components:
        try:
            name = str(c["name"])
            d = np.asarray(c["depth_mm"], dtype=float)
            w = np.asarray(c["weight"], dtype=float)
            s = np.asarray(c["sigma_mm"], dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            raise MachineDataError(f"{where}: lateral component {c!r} needs name, depth_mm, weight, sigma_mm ({exc})") from None
        if d.ndim != 1 or d.size < 2 or w.shape != d.shape or s.shape != d.shape or np.any(np.diff(d) <= 0):
            raise MachineDataError(
                f"{where}: lateral component '{name}' needs equal-length tables over strictly increasing depths"
            )
        names.append(name)
        weights.append(np.interp(depth_nodes, d, w))
        sigmas.append(np.interp(depth_nodes, d, s))
    if not names:
        raise MachineDataError(f"{where}: no lateral components")
    return tuple(names), np.array(weights), np.array(sigmas)


def fit_photon_machine(
    name: str,
    *,
    sad_mm: float,
    pdd_depth_mm,
    pdd_percent,
    field_mm: float,
    ssd_mm: float,
    components,
    gy_per_mu_at_dmax: float = 0.01,
    step_mm: float = 1.0,
    max_depth_mm: float = 500.0,
    source_sha256: str = "",
    metadata: dict | None = None,
) -> PhotonMachine:
    """Commission a photon pencil-beam machine from a measured square-field depth dose.

    The depth-dose table is ``T(d) = c * PDD(d) / ((SAD / (SSD + d))^2 * L(d))``, with
    ``L`` from :func:`reference_field_lateral_integral` and ``c`` chosen so that the
    reference field gives ``gy_per_mu_at_dmax`` at the depth of maximum dose. The
    measured PDD is interpolated with a monotone cubic (PCHIP) between its points.

    Parameters
    ----------
    name : str
    sad_mm : float
        Source-axis distance [mm].
    pdd_depth_mm, pdd_percent : sequence of float
        Central-axis percentage depth dose of the reference field in water.
    field_mm, ssd_mm : float
        Reference field side at the isocentre plane and its SSD [mm].
    components : sequence of dict
        Lateral components, each ``{"name", "depth_mm", "weight", "sigma_mm"}``.
    gy_per_mu_at_dmax : float
        Calibration [Gy/MU] of the reference field at d_max.
    step_mm, max_depth_mm : float
        Uniform depth grid of the tables [mm]; PDD beyond the last point is
        extrapolated with the attenuation of the last interval.

    Returns
    -------
    PhotonMachine
    """
    where = f"photon machine '{name}'"
    d = np.asarray(pdd_depth_mm, dtype=float)
    p = np.asarray(pdd_percent, dtype=float)
    if d.ndim != 1 or d.shape != p.shape or d.size < 4 or np.any(np.diff(d) <= 0) or d[0] < 0:
        raise MachineDataError(f"{where}: PDD needs >= 4 points over strictly increasing depths >= 0 mm")
    if not (np.all(np.isfinite(p)) and np.all(p > 0)):
        raise MachineDataError(f"{where}: PDD values must be finite and > 0 %")
    for label, value in (("sad_mm", sad_mm), ("field_mm", field_mm), ("ssd_mm", ssd_mm), ("step_mm", step_mm),
                         ("gy_per_mu_at_dmax", gy_per_mu_at_dmax)):
        if not (np.isfinite(value) and value > 0):
            raise MachineDataError(f"{where}: {label}={value}, expected a positive finite number")
    n = int(round(max_depth_mm / step_mm)) + 1
    nodes = step_mm * np.arange(n)
    pdd = np.empty(n)
    inside = nodes <= d[-1]
    from scipy.interpolate import PchipInterpolator  # on first use, not at import (STYLE 1)

    pdd[inside] = PchipInterpolator(d, p)(nodes[inside])
    mu = np.log(p[-2] / p[-1]) / (d[-1] - d[-2])  # attenuation of the last interval [1/mm]
    pdd[~inside] = p[-1] * np.exp(-mu * (nodes[~inside] - d[-1]))
    pdd[nodes < d[0]] = p[0]

    names, weight, sigma = _component_tables(components, nodes, where)
    lateral = reference_field_lateral_integral(weight, sigma, field_mm, ssd_mm, sad_mm, nodes)
    isq = (sad_mm / (ssd_mm + nodes)) ** 2
    # reference field on the central axis: T * isq * L = calibration * PDD / PDD(d_max)
    t = gy_per_mu_at_dmax * (pdd / pdd.max()) / (isq * lateral)
    return PhotonMachine(
        name=name,
        sad_mm=float(sad_mm),
        depth_step_mm=float(step_mm),
        depth_dose_gy_per_mu=t,
        component_weight=weight,
        component_sigma_mm=sigma,
        component_names=names,
        source_sha256=source_sha256,
        metadata=dict(metadata or {}),
    )


@dataclass(frozen=True, eq=False)
class MlcModel:
    """A multileaf collimator as the dose model sees it (all lengths at the isocentre plane).

    Attributes
    ----------
    name : str
    leaf_boundaries_mm : ndarray, shape (n_pairs + 1,)
        Edges of the leaf pairs across the leaf travel direction [mm], strictly increasing.
    leaf_transmission : float
        Fraction of the open fluence that passes a closed leaf (0 <= t < 1).
    dosimetric_leaf_gap_mm : float
        Extra opening of every open leaf pair that accounts for the rounded leaf ends [mm];
        half is added to each leaf of the pair.
    travel_limit_mm : float
        Largest allowed ``|leaf position|`` [mm].
    source : str
    """

    name: str
    leaf_boundaries_mm: np.ndarray
    leaf_transmission: float
    dosimetric_leaf_gap_mm: float
    travel_limit_mm: float = 200.0
    source: str = ""

    def __post_init__(self) -> None:
        b = _readonly(self.leaf_boundaries_mm)
        where = f"MLC '{self.name}'"
        if b.ndim != 1 or b.size < 2 or not np.all(np.isfinite(b)) or np.any(np.diff(b) <= 0):
            raise MachineDataError(f"{where}: leaf_boundaries_mm must be >= 2 strictly increasing finite values [mm]")
        if not (np.isfinite(self.leaf_transmission) and 0.0 <= self.leaf_transmission < 1.0):
            raise MachineDataError(f"{where}: leaf_transmission={self.leaf_transmission}, expected 0 <= t < 1")
        if not (np.isfinite(self.dosimetric_leaf_gap_mm) and 0.0 <= self.dosimetric_leaf_gap_mm < 10.0):
            raise MachineDataError(f"{where}: dosimetric_leaf_gap_mm={self.dosimetric_leaf_gap_mm}, "
                                   "expected 0 to 10 mm")
        if not (np.isfinite(self.travel_limit_mm) and self.travel_limit_mm > 0):
            raise MachineDataError(f"{where}: travel_limit_mm={self.travel_limit_mm}, expected a positive length")
        object.__setattr__(self, "leaf_boundaries_mm", b)
        for name in ("leaf_transmission", "dosimetric_leaf_gap_mm", "travel_limit_mm"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def n_pairs(self) -> int:
        return self.leaf_boundaries_mm.size - 1


def mlc_model(machine: PhotonMachine) -> MlcModel:
    """The MLC of a photon machine, from the ``"mlc"`` section of its machine file.

    Raises
    ------
    MachineDataError
        If the machine file has no MLC section or it is malformed.
    """
    data = machine.metadata.get("mlc")
    if not isinstance(data, dict):
        raise MachineDataError(f"photon machine '{machine.name}' has no 'mlc' section in its machine file; add "
                               "leaf_boundaries_mm, leaf_transmission, dosimetric_leaf_gap_mm and travel_limit_mm "
                               "(see the built-in photon_6mv.json)")
    try:
        return MlcModel(str(data.get("name", "MLC")), data["leaf_boundaries_mm"], float(data["leaf_transmission"]),
                        float(data["dosimetric_leaf_gap_mm"]), float(data.get("travel_limit_mm", 200.0)),
                        str(data.get("source", "")))
    except KeyError as exc:
        raise MachineDataError(f"photon machine '{machine.name}': MLC section misses key {exc}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, MachineDataError):
            raise
        raise MachineDataError(f"photon machine '{machine.name}': malformed MLC section ({exc})") from None
