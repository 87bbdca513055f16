"""Segment weights of sequenced deliveries: each segment's fluence as the reader converts it, re-weighted control
points, and the segment dose operator (checked against delivery_to_beams and the beamlet dose operator)."""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.errors import PlanError
from sfrt_engine.optimise import dose_operator
from sfrt_engine.optimise.segments import SegmentOperator
from sfrt_engine.plan import conformal_arc, conformal_beams
from sfrt_engine.plan.delivery import BeamDelivery, delivery_to_beams
from sfrt_engine.plan.segment_weights import segment_fluences, with_segment_weights
from sfrt_engine.plan.segments import beams_to_deliveries

MACHINE = se.load_machine("photon_6mv")


@pytest.fixture(scope="module")
def case():
    patient = se.phantoms.water_box((120.0, 120.0, 80.0), 5.0)
    z, y, x = patient.grid.coordinates_mm()
    patient.structures["PTV"] = ((x - 5.0) ** 2 / 35.0 ** 2 + y ** 2 / 25.0 ** 2 + z ** 2 / 20.0 ** 2) <= 1.0
    rng = np.random.default_rng(3)
    beams = [b.with_weights(np.where(b.weights_mu > 0, rng.uniform(0.5, 2.0, b.weights_mu.shape), 0.0))
             for b in conformal_beams(patient, "PTV", MACHINE, gantry_deg=(0.0, 135.0), beamlet_mm=5.0)]
    arc = conformal_arc(patient, "PTV", MACHINE, start_deg=181.0, stop_deg=179.0, spacing_deg=60.0,
                        leaf_width_mm=5.0, margin_mm=5.0)
    return patient, beams_to_deliveries(beams), beams_to_deliveries(arc, transmission_passes=0)[0]


def _weights(d):
    made = delivery_to_beams(d)
    return [b.weights_mu for b in ([made] if isinstance(made, se.plan.Beam) else list(made))]


def _rebuilt(parts, s):
    """The beams' weight maps from the segment columns and weights ``s`` (per part, in order)."""
    out, i = [], 0
    for f in parts:
        w = np.zeros_like(f.beam.weights_mu)
        w[f.beam.weights_mu != 0] = f.columns @ s[i:i + f.columns.shape[1]]
        out.append(w)
        i += f.columns.shape[1]
    return out


def test_segment_columns_are_linear_in_the_segment_mu(case):
    """Scaling each segment's MU and converting the new control points with delivery_to_beams (the reader's
    conversion) gives the columns' weighted sum."""
    _, static, arc = case
    rng = np.random.default_rng(11)
    for d in (*static, arc):
        parts = segment_fluences(d)
        n = sum(f.columns.shape[1] for f in parts)
        assert n == np.count_nonzero(d.segment_mu()) and n > 1
        for expected, w in zip(_rebuilt(parts, np.ones(n)), _weights(d)):
            np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-12)
        s = rng.uniform(0.2, 3.0, n)
        new = with_segment_weights(d, s)
        assert new.meterset_mu == pytest.approx(float(np.sum(s * d.segment_mu()[d.segment_mu() > 0])))
        got = _weights(new)
        assert len(got) == len(parts)
        for expected, w in zip(_rebuilt(parts, s), got):
            np.testing.assert_allclose(w, expected, rtol=1e-9, atol=1e-12)


def test_segments_with_no_mu_leave_with_their_control_points(case):
    d = case[1][0]
    n = np.count_nonzero(d.segment_mu())
    s = np.ones(n)
    s[[0, n - 1]] = 0.0  # the first and the last segment
    new = with_segment_weights(d, s)
    assert new.n_control_points == d.n_control_points - 4
    assert np.count_nonzero(new.segment_mu()) == n - 2
    assert new.cumulative_weight[0] == 0.0 and new.cumulative_weight[-1] == pytest.approx(1.0)
    parts = segment_fluences(d)
    np.testing.assert_allclose(_weights(new)[0][parts[0].beam.weights_mu != 0].sum(),
                               (parts[0].columns @ s).sum(), rtol=1e-9)
    assert with_segment_weights(d, np.zeros(n)) is None
    with pytest.raises(PlanError, match="segment weights"):
        with_segment_weights(d, -s)
    with pytest.raises(PlanError, match="segment weights"):
        with_segment_weights(d, s[:-1])


def test_a_segment_delivered_while_the_gantry_turns_is_refused(case):
    d = case[2]
    n = d.n_control_points
    moving = BeamDelivery("ARC", 1, d.machine, d.isocenter_xyz_mm, 100.0, np.linspace(181.0, 181.0 + 40 * (n - 1), n)
                          % 360.0, "CW", np.linspace(0.0, 1.0, n), 0.0, 0.0, d.jaw_u_mm, d.jaw_v_mm,
                          d.leaf_boundaries_mm, d.leaf_positions_mm)
    with pytest.raises(PlanError, match="while the gantry turns"):
        segment_fluences(moving)


def test_scaled_delivery_scales_its_fluence(case):
    d = case[1][1]
    for a, b in zip(_weights(d.scaled(2.5)), _weights(d)):
        np.testing.assert_allclose(a, 2.5 * b, rtol=1e-12)
    with pytest.raises(PlanError, match="meterset factor"):
        d.scaled(-1.0)


def test_segment_operator_is_the_beamlet_operator_composed_with_the_segments(case):
    patient, static, arc = case
    parts = [f for d in (*static, arc) for f in segment_fluences(d)]
    voxels = np.flatnonzero(patient.structures["PTV"])
    base = dose_operator([f.beam for f in parts], patient, voxels=voxels, backend="numpy")
    op = SegmentOperator(base, parts)
    assert op.n_weights == sum(f.columns.shape[1] for f in parts)
    np.testing.assert_allclose(op.forward(op.weights0), base.forward(base.weights0), rtol=1e-10)
    rng = np.random.default_rng(2)
    s = rng.uniform(0, 2, op.n_weights)
    r = rng.normal(size=voxels.size)
    assert float(np.dot(op.forward(s), r)) == pytest.approx(float(np.dot(s, op.adjoint(r))), rel=1e-9)
    assert [x.size for x in op.split(s)] == [f.columns.shape[1] for f in parts]
    with pytest.raises(PlanError, match="free weights"):
        SegmentOperator(base, parts[:-1])


def test_an_opening_narrower_than_the_leaf_gap_is_an_error_or_closed():
    """A one-beamlet opening of 1 mm (the 1.25 mm beamlets of a 2.5 mm arc give such) cannot be given by leaf tips
    widened by the machine's 1.5 mm dosimetric leaf gap."""
    w = np.zeros((2, 6))
    w[0, 1:5] = 10.0  # leaf pair over v in [-5, 0) mm: 4 mm open
    w[1, 3] = 10.0  # leaf pair over v in [0, 5) mm: 1 mm open
    beam = se.plan.Beam(MACHINE, (0.0, 0.0, 0.0), 0.0, w, (1.0, 5.0), (-2.5, -2.5))
    with pytest.raises(PlanError, match="narrower than the dosimetric leaf gap"):
        beams_to_deliveries([beam])
    (d,) = beams_to_deliveries([beam], narrow_openings="close")
    lp = d.leaf_positions_mm
    pair = int(np.searchsorted(d.leaf_boundaries_mm, 2.5, side="right")) - 1  # the pair over v in [0, 5) mm
    assert np.all(lp[:, pair, 0] == lp[:, pair, 1])  # closed in every control point
    assert np.all(lp[:, pair - 1, 1] - lp[:, pair - 1, 0] == pytest.approx(4.0 - 1.5))  # the other one opens
    with pytest.raises(PlanError, match="narrow_openings"):
        beams_to_deliveries([beam], narrow_openings="widen")
