"""Arc sequencing: one opening per leaf pair per control point, leaf travel within the limit."""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.errors import PlanError
from sfrt_engine.optimise.vmat import MetersetOperator, _best_run, max_leaf_travel_mm_per_deg, sequence_arc
from sfrt_engine.plan.arcs import conformal_arc


@pytest.fixture(scope="module")
def arc_case():
    patient = se.phantoms.water_box(size_xyz_mm=(120.0, 120.0, 80.0), spacing_xyz_mm=5.0)
    z, y, x = patient.grid.coordinates_mm()
    patient.structures["PTV"] = (x ** 2 + y ** 2 + z ** 2) <= 30.0 ** 2
    arc = conformal_arc(patient, "PTV", se.load_machine("photon_6mv"), start_deg=181.0, stop_deg=179.0,
                        spacing_deg=20.0, leaf_width_mm=5.0, margin_mm=5.0)
    rng = np.random.default_rng(5)
    # an "optimised" fluence: random positive values inside each aperture, with holes
    fluence = [b.with_weights(np.where(b.weights_mu > 0, rng.uniform(0, 3, b.weights_mu.shape) ** 2, 0.0))
               for b in arc]
    return patient, arc, fluence


def _brute_run(p, t):
    best, ab = 0.0, None
    for a in range(len(p)):
        for b in range(a + 1, len(p) + 1):
            s = float(np.sum(p[a:b] - t))
            if s > best + 1e-12:
                best, ab = s, (a, b)
    return ab


def test_best_run_is_the_maximum_sum_run():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.uniform(0, 1, rng.integers(1, 12))
        t = float(rng.uniform(0.2, 0.8))
        assert _best_run(p, t) == _brute_run(p, t)


def _openings(beam, rows):
    """Per leaf pair of a sequenced beam: the open beamlet columns must form one contiguous run."""
    w = beam.weights_mu.reshape(-1, rows, beam.weights_mu.shape[1])
    assert np.all(w == w[:, :1, :])  # the rows under one pair are identical
    for row in w[:, 0, :]:
        nz = np.flatnonzero(row > 0)
        if nz.size:
            assert np.all(np.diff(nz) == 1), "more than one opening under a leaf pair"


@pytest.mark.parametrize("limit", [0.25, 1.0, 1000.0])
def test_sequenced_arc_is_deliverable(arc_case, limit):
    _, arc, fluence = arc_case
    seq = sequence_arc(arc, fluence, leaf_travel_mm_per_deg=limit)
    assert len(seq.control_points) == len(arc.control_points)
    assert max_leaf_travel_mm_per_deg(seq) <= limit * (1 + 1e-9)
    pairs = {cp.leaf_positions_mm.shape[0] for cp in seq.control_points}
    assert len(pairs) == 1  # the same leaf pairs at every control point
    for cp in seq.control_points:
        assert np.all(cp.leaf_positions_mm[:, 0] <= cp.leaf_positions_mm[:, 1])
        if cp.beam is not None:
            assert cp.mu > 0
            _openings(cp.beam, rows=round(seq.leaf_width_mm / cp.beam.beamlet_mm[1]))


def test_without_a_travel_limit_each_opening_is_the_best_run(arc_case):
    _, arc, fluence = arc_case
    seq = sequence_arc(arc, fluence, leaf_travel_mm_per_deg=1e9)
    cp = seq.control_points[3]
    beam = fluence[3]
    rows = round(arc.leaf_width_mm / beam.beamlet_mm[1])
    prof = beam.weights_mu.reshape(-1, rows, beam.weights_mu.shape[1]).mean(axis=1)
    ue, ve = beam.beamlet_edges_mm()
    j0 = round(ve[0] / arc.leaf_width_mm)
    jc = round(cp.leaf_edges_v_mm[0] / arc.leaf_width_mm)
    top = prof.max()
    for r, p in enumerate(prof):
        run = _brute_run(p, max(0.5 * p.max(), 0.1 * top)) if p.max() > 0 else None
        lo, hi = cp.leaf_positions_mm[j0 + r - jc]
        if run is None:
            assert lo == hi
        else:
            assert (lo, hi) == pytest.approx((ue[run[0]], ue[run[1]]))


def test_tight_limit_changes_the_openings(arc_case):
    _, arc, fluence = arc_case
    free = sequence_arc(arc, fluence, 1e9)
    tight = sequence_arc(arc, fluence, 0.25)
    assert max_leaf_travel_mm_per_deg(free) > 0.25  # the limit binds on this case
    assert not all(np.allclose(a.leaf_positions_mm, b.leaf_positions_mm)
                   for a, b in zip(free.control_points, tight.control_points))


def test_bad_limit(arc_case):
    _, arc, fluence = arc_case
    with pytest.raises(PlanError, match="leaf_travel_mm_per_deg"):
        sequence_arc(arc, fluence, 0.0)
    with pytest.raises(PlanError, match="beams for"):
        sequence_arc(arc, fluence[:-1], 5.0)


class _Matrix:
    def __init__(self, a, w0):
        self.a, self.weights0, self.n_weights = a, w0, a.shape[1]
        self.backend, self.mode = "numpy", "matrix"

    def forward(self, w):
        return self.a @ w

    def adjoint(self, r):
        return self.a.T @ r


def test_meterset_operator_is_the_transpose_of_itself(arc_case):
    _, arc, _ = arc_case
    beams = list(arc)
    n = sum(int(np.count_nonzero(b.weights_mu)) for b in beams)
    rng = np.random.default_rng(2)
    op = MetersetOperator(_Matrix(rng.uniform(0, 1, (50, n)), rng.uniform(0.5, 1.5, n)), beams)
    s = rng.uniform(0, 2, op.n_weights)
    r = rng.normal(size=50)
    assert np.dot(op.forward(s), r) == pytest.approx(np.dot(s, op.adjoint(r)), rel=1e-12)
    # scaling one control point scales exactly its beamlets
    e = np.zeros(op.n_weights)
    e[1] = 2.0
    w = op.beamlet_weights(e)
    k0 = int(np.count_nonzero(beams[0].weights_mu))
    k1 = int(np.count_nonzero(beams[1].weights_mu))
    assert np.all(w[:k0] == 0) and np.all(w[k0 + k1:] == 0) and np.all(w[k0:k0 + k1] > 0)
    with pytest.raises(PlanError, match="non-zero beamlets"):
        MetersetOperator(_Matrix(np.ones((3, n + 1)), np.ones(n + 1)), beams)
