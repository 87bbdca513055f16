"""The numpy engine of :class:`~.operators.DoseOperator`: the reference operators of :mod:`._reference`."""

from __future__ import annotations

import numpy as np

from ._layout import voxel_points
from ._reference import PhotonReference, ProtonReference

__all__ = ["NumpyEngine"]


class NumpyEngine:
    """Per beam, a :class:`PhotonReference` or :class:`ProtonReference` on the subset; doses added in beam order."""

    def __init__(self, slots, patient, index: np.ndarray) -> None:
        self.slots = slots
        self.n_voxels = index.size
        points = voxel_points(patient.grid, index)
        density = stopping_power = None
        self.beams = []
        for slot in slots:
            if slot.task is None:
                self.beams.append(None)
            elif slot.kind == "photon":
                density = patient.density() if density is None else density
                self.beams.append(PhotonReference(slot.task, density, patient.grid, points))
            else:
                stopping_power = patient.stopping_power() if stopping_power is None else stopping_power
                self.beams.append(ProtonReference(slot.task, stopping_power, patient.grid, points))

    def hits_per_slot(self) -> list[int]:
        return [0 if ref is None else int(ref.hit.size) for ref in self.beams]

    def forward(self, w: np.ndarray) -> np.ndarray:
        dose = np.zeros(self.n_voxels)
        for slot, ref in zip(self.slots, self.beams):
            if ref is not None:
                dose[ref.hit] += ref.forward(slot.packed(w[slot.start:slot.stop]))
        return dose

    def adjoint(self, r) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        grad = np.zeros(self.slots[-1].stop)
        for slot, ref in zip(self.slots, self.beams):
            if ref is not None:
                grad[slot.start:slot.stop] = np.ravel(ref.adjoint(r[ref.hit]))[slot.packed_index]
        return grad
