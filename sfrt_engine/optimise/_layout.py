"""Free weights of a beam set: which beamlets and spots an optimiser may change, in which order.

Order of the weight vector (``DoseOperator.n_weights`` entries): the beams in the order given (an
:class:`~sfrt_engine.plan.arcs.Arc` contributes its control-point beams in order); within a photon
beam, its free beamlets in row-major order of its weight map (``[iv, iu]``: v rows, u columns);
within a proton beam, its layers in order and each layer's free spots in row-major order.

Free beamlets of a photon beam are those inside its aperture: by default the beamlets with a
non-zero weight in the initial map; or those of a given boolean mask of the map's shape. Free
spots of a proton beam are likewise its spots with a non-zero weight, or a per-layer mask.

Each beam also gets the work order (``_task``) the kernels use, built once from the aperture
(weights 1 on the free entries): its footprint, ray lattice and scatter-table lattice therefore
cover every free beamlet whatever weights come later. The work order's weight map is the bounding
box of the free entries; :attr:`BeamSlot.packed_index` maps the free entries into that box
(photons: ``(nbv, nbu)`` raveled; protons: every kept layer's box raveled, back to back, the
layout of ``ProtonBeamTask.pack_layers``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import PlanError
from ..grid import Grid
from ..kernels import prepare_photon_tasks
from ..kernels._proton_task import prepare_proton_tasks
from ..plan.beam import Beam
from ..plan.protons import ProtonBeam, SpotLayer

__all__ = ["BeamSlot", "beam_slots", "beam_with", "flatten_beams", "voxel_points"]


@dataclass(frozen=True, eq=False)
class BeamSlot:
    """One beam of the operator: its free weights and its work order.

    Attributes
    ----------
    beam : Beam or ProtonBeam
        The beam as given (never modified).
    kind : str
        ``"photon"`` or ``"proton"``.
    task : PhotonBeamTask, ProtonBeamTask or None
        Work order built from the aperture; None when the beam misses the grid (its weights then
        give no dose and get a zero gradient).
    start, stop : int
        Slice of the operator's weight vector holding this beam's free weights.
    packed_index : ndarray of int64, shape (stop - start,)
        Position of each free weight in the work order's flat weight array.
    packed_size : int
        Length of that flat array.
    map_index : tuple of ndarray
        Where each free weight sits in the beam's own maps: photons ``(rows, cols)``; protons
        ``(layers, rows, cols)``.
    """

    beam: Beam | ProtonBeam
    kind: str
    task: object
    start: int
    stop: int
    packed_index: np.ndarray
    packed_size: int
    map_index: tuple

    @property
    def n_free(self) -> int:
        return self.stop - self.start

    def packed(self, w_beam: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The work order's flat weight array carrying this beam's free weights ``w_beam``."""
        out = np.zeros(self.packed_size, dtype=dtype)
        out[self.packed_index] = w_beam
        return out


def flatten_beams(beams) -> list:
    """Beams as a flat list: a Beam or ProtonBeam, or an iterable of them and of arcs (lists of beams)."""
    if isinstance(beams, (Beam, ProtonBeam)):
        return [beams]
    if not isinstance(beams, Iterable):
        raise TypeError(f"beams must be a Beam, a ProtonBeam or a list of them, got {type(beams).__name__}")
    out = []
    for i, b in enumerate(beams):
        if isinstance(b, (Beam, ProtonBeam)):
            out.append(b)
        elif isinstance(b, Iterable) and not isinstance(b, (str, bytes, np.ndarray)):
            out.extend(flatten_beams(b))  # an Arc: its control-point beams in order
        else:
            raise TypeError(f"beams[{i}] is a {type(b).__name__}, expected sfrt_engine.plan.Beam, ProtonBeam or "
                            "an Arc")
    if not out:
        raise PlanError("a dose operator needs at least one beam")
    return out


def _photon_mask(beam: Beam, mask) -> np.ndarray:
    if mask is None:
        return beam.weights_mu > 0
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != beam.weights_mu.shape:
        raise PlanError(f"beam {beam.name!r}: aperture mask must be a bool array of the weight map's shape "
                        f"{beam.weights_mu.shape}, got {m.dtype} {m.shape}")
    return m


def _proton_masks(beam: ProtonBeam, mask) -> list[np.ndarray]:
    if mask is None:
        return [layer.weights_gp > 0 for layer in beam.layers]
    masks = list(mask)
    if len(masks) != len(beam.layers):
        raise PlanError(f"beam {beam.name!r}: {len(masks)} layer masks for {len(beam.layers)} layers; give one bool "
                        "mask per layer")
    out = []
    for layer, m in zip(beam.layers, masks):
        m = np.asarray(m)
        if m.dtype != bool or m.shape != layer.weights_gp.shape:
            raise PlanError(f"beam {beam.name!r}, layer {layer.energy_mev:g} MeV: mask must be a bool array of shape "
                            f"{layer.weights_gp.shape}, got {m.dtype} {m.shape}")
        out.append(m)
    return out


def _photon_slot(beam: Beam, mask, grid: Grid, start: int) -> BeamSlot:
    m = _photon_mask(beam, mask)
    rows, cols = np.nonzero(m)
    if rows.size == 0:
        raise PlanError(f"beam {beam.name!r}: no free beamlet (its aperture is empty); drop the beam or give a mask")
    tasks = prepare_photon_tasks([beam.with_weights(m.astype(np.float64))], grid)
    task = tasks[0] if tasks else None
    r0, c0 = rows.min(), cols.min()
    nbu = cols.max() - c0 + 1
    nbv = rows.max() - r0 + 1
    packed_index = ((rows - r0) * nbu + (cols - c0)).astype(np.int64)
    return BeamSlot(beam, "photon", task, start, start + rows.size, packed_index, int(nbu * nbv), (rows, cols))


def _proton_slot(beam: ProtonBeam, mask, grid: Grid, start: int) -> BeamSlot:
    masks = _proton_masks(beam, mask)
    if not any(m.any() for m in masks):
        raise PlanError(f"beam {beam.name!r}: no free spot (every layer is empty); drop the beam or give masks")
    geometry = beam.with_layers(SpotLayer(layer.energy_mev, m.astype(np.float64), layer.spacing_mm,
                                          layer.origin_uv_mm, layer.range_shifter_mm)
                                for layer, m in zip(beam.layers, masks))
    tasks = prepare_proton_tasks([geometry], grid)
    task = tasks[0] if tasks else None
    packed, layer_ids, all_rows, all_cols, offset = [], [], [], [], 0
    for li, m in enumerate(masks):
        rows, cols = np.nonzero(m)
        if rows.size == 0:
            continue  # dropped from the work order, as prepare_proton_tasks does
        r0, c0 = rows.min(), cols.min()
        nu = cols.max() - c0 + 1
        packed.append(offset + (rows - r0) * nu + (cols - c0))
        offset += int(nu * (rows.max() - r0 + 1))
        layer_ids.append(np.full(rows.size, li))
        all_rows.append(rows)
        all_cols.append(cols)
    packed_index = np.concatenate(packed).astype(np.int64)
    return BeamSlot(beam, "proton", task, start, start + packed_index.size, packed_index, offset,
                    (np.concatenate(layer_ids), np.concatenate(all_rows), np.concatenate(all_cols)))


def beam_slots(beams: list, grid: Grid, apertures=None) -> list[BeamSlot]:
    """One :class:`BeamSlot` per beam, the free weights numbered in the module's order.

    Parameters
    ----------
    beams : list of Beam or ProtonBeam
    grid : Grid
    apertures : list or None
        None (every beam's non-zero weights are free) or one entry per beam: None, a bool mask of a
        photon beam's weight map, or a list of per-layer bool masks of a proton beam.
    """
    if apertures is None:
        apertures = [None] * len(beams)
    apertures = list(apertures)
    if len(apertures) != len(beams):
        raise PlanError(f"apertures has {len(apertures)} entries for {len(beams)} beams; give one per beam (or None)")
    slots, start = [], 0
    for beam, mask in zip(beams, apertures):
        make = _photon_slot if isinstance(beam, Beam) else _proton_slot
        slot = make(beam, mask, grid, start)
        slots.append(slot)
        start = slot.stop
    return slots


def beam_with(slot: BeamSlot, w_beam: np.ndarray) -> Beam | ProtonBeam:
    """A new beam like ``slot.beam`` whose free weights are ``w_beam`` and every other weight 0."""
    if slot.kind == "photon":
        rows, cols = slot.map_index
        weights = np.zeros_like(slot.beam.weights_mu)
        weights[rows, cols] = w_beam
        return slot.beam.with_weights(weights)
    layer_ids, rows, cols = slot.map_index
    layers = []
    for li, layer in enumerate(slot.beam.layers):
        weights = np.zeros_like(layer.weights_gp)
        sel = layer_ids == li
        weights[rows[sel], cols[sel]] = w_beam[sel]
        layers.append(SpotLayer(layer.energy_mev, weights, layer.spacing_mm, layer.origin_uv_mm,
                                layer.range_shifter_mm))
    return slot.beam.with_layers(layers)


def voxel_points(grid: Grid, index: np.ndarray) -> np.ndarray:
    """Voxel centres (n, 3) [mm] of flat indices [z, y, x]."""
    iz, iy, ix = np.unravel_index(index, grid.shape_zyx)
    o, s = np.asarray(grid.origin_xyz_mm), np.asarray(grid.spacing_xyz_mm)
    return np.stack([o[0] + ix * s[0], o[1] + iy * s[1], o[2] + iz * s[2]], axis=1)
