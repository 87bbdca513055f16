"""Dose of sequenced photon deliveries as a function of one weight per segment (aperture).

After a fluence map is sequenced into MLC segments (:func:`sfrt_engine.plan.segments.beams_to_deliveries`)
the delivered fluence differs from the optimised one: leaves average beamlet rows narrower than a leaf,
and closed leaves let their transmission through. Re-optimising the segments' weights with the apertures
fixed (direct aperture optimisation's weight step, Shepard et al., Med Phys 29:1007, 2002; the
aperture-weight step of Craft et al., Med Phys 39:686, 2012) recovers part of what sequencing lost.

With ``F`` the block-diagonal matrix whose column ``k`` is ``MU_k`` times segment ``k``'s fluence on the
beams' free beamlets (:func:`sfrt_engine.plan.segment_weights.segment_fluences`) and ``A`` the beamlet
dose operator of those beams, the dose is ``d = A F s``; ``s = 1`` is the delivery as sequenced.
"""

from __future__ import annotations

import numpy as np

from ..errors import PlanError

__all__ = ["SegmentOperator"]


class SegmentOperator:
    """``d = A F s``: the dose operator ``op`` of the beams composed with their segments' fluence.

    Parameters
    ----------
    op : DoseOperator
        Built on the beams of ``fluences`` in that order (free weights: their non-zero beamlets).
    fluences : sequence of SegmentFluence
        One per beam of ``op``; ``columns`` of shape (n_free_b, n_seg_b).
    """

    def __init__(self, op, fluences) -> None:
        blocks = [np.asarray(f.columns, dtype=np.float64) for f in fluences]
        if sum(b.shape[0] for b in blocks) != op.n_weights:
            raise PlanError(f"segment operator: the segments cover {sum(b.shape[0] for b in blocks)} beamlets but "
                            f"the operator has {op.n_weights} free weights; build it on the segments' beams")
        self._op = op
        self._blocks = blocks
        self._rows = np.cumsum([0] + [b.shape[0] for b in blocks])
        self._cols = np.cumsum([0] + [b.shape[1] for b in blocks])
        self.n_weights = int(self._cols[-1])
        self.weights0 = np.ones(self.n_weights)
        self.backend, self.mode = op.backend, f"{op.mode}, segment weights"

    def beamlet_weights(self, s) -> np.ndarray:
        """``F s``: the beams' free beamlet weights [MU] for segment weights ``s``, shape (op.n_weights,)."""
        s = np.asarray(s, dtype=np.float64)
        out = np.empty(self._rows[-1])
        for i, b in enumerate(self._blocks):
            out[self._rows[i]:self._rows[i + 1]] = b @ s[self._cols[i]:self._cols[i + 1]]
        return out

    def forward(self, s):
        return self._op.forward(self.beamlet_weights(s))

    def adjoint(self, r) -> np.ndarray:
        g = np.asarray(self._op.adjoint(r), dtype=np.float64)
        out = np.empty(self.n_weights)
        for i, b in enumerate(self._blocks):
            out[self._cols[i]:self._cols[i + 1]] = b.T @ g[self._rows[i]:self._rows[i + 1]]
        return out

    def split(self, s) -> list[np.ndarray]:
        """``s`` cut into one array per beam (its segments' weights)."""
        s = np.asarray(s, dtype=np.float64)
        return [s[self._cols[i]:self._cols[i + 1]] for i in range(len(self._blocks))]

    def describe(self) -> dict:
        return {**self._op.describe(), "segments": self.n_weights}
