"""Beam: validation, beamlet lattice and weight maps (plan/beam.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sfrt_engine import PlanError
from sfrt_engine.plan import Beam


def _beam(photon_machine, **kwargs) -> Beam:
    args = {"machine": photon_machine, "isocenter_xyz_mm": (0.0, 0.0, 0.0), "gantry_deg": 0.0, "weights_mu": np.ones((2, 3)),
                "beamlet_mm": (4.0, 5.0), "origin_uv_mm": (-4.0, -2.5)}
    args.update(kwargs)
    return Beam(**args)


def test_beamlet_lattice(machine):
    b = _beam(machine)
    ue, ve = b.beamlet_edges_mm()
    np.testing.assert_allclose(ue, [-6.0, -2.0, 2.0, 6.0])
    np.testing.assert_allclose(ve, [-5.0, 0.0, 5.0])
    assert b.open_extent_uv_mm() == pytest.approx((-6.0, 6.0, -5.0, 5.0))
    assert b.n_beamlets == 6


def test_open_extent_ignores_closed_beamlets(machine):
    w = np.zeros((2, 3))
    w[1, 2] = 1.0
    b = _beam(machine, weights_mu=w)
    assert b.open_extent_uv_mm() == pytest.approx((2.0, 6.0, 0.0, 5.0))
    assert b.n_beamlets == 1
    with pytest.raises(PlanError, match="every beamlet weight is zero"):
        _beam(machine, weights_mu=np.zeros((2, 3))).open_extent_uv_mm()


def test_weights_are_a_read_only_copy(machine):
    w = np.ones((2, 3))
    b = _beam(machine, weights_mu=w)
    w[0, 0] = 5.0
    assert b.weights_mu[0, 0] == 1.0
    with pytest.raises(ValueError):
        b.weights_mu[0, 0] = 2.0


def test_scalar_beamlet_size_is_square(machine):
    assert _beam(machine, beamlet_mm=3.0).beamlet_mm == (3.0, 3.0)


def test_with_weights(machine):
    b = _beam(machine, couch_deg=10.0, collimator_deg=5.0, name="B1")
    b2 = b.with_weights(2.0 * np.ones((2, 3)))
    assert np.all(b2.weights_mu == 2.0)
    assert (b2.couch_deg, b2.collimator_deg, b2.name, b2.beamlet_mm) == (10.0, 5.0, "B1", b.beamlet_mm)
    with pytest.raises(PlanError, match=r"\(3, 2\)"):
        b.with_weights(np.ones((3, 2)))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"weights_mu": np.ones(3)}, PlanError, "weights_mu has shape"),
        ({"weights_mu": np.ones((0, 3))}, PlanError, "weights_mu has shape"),
        ({"weights_mu": -np.ones((2, 3))}, PlanError, ">= 0 MU"),
        ({"weights_mu": np.full((2, 3), np.nan)}, PlanError, "finite"),
        ({"beamlet_mm": (4.0, 0.0)}, PlanError, "beamlet_mm"),
        ({"origin_uv_mm": (0.0,)}, PlanError, "origin_uv_mm"),
        ({"gantry_deg": np.nan}, PlanError, "gantry_deg"),
        ({"isocenter_xyz_mm": (0.0, 0.0, np.inf)}, PlanError, "isocenter_xyz_mm"),
        ({"machine": "photon_6mv"}, TypeError, "PhotonMachine"),
    ],
)
def test_beam_validation(machine, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _beam(machine, **kwargs)


def test_frame_matches_angles(machine):
    b = _beam(machine, gantry_deg=90.0, isocenter_xyz_mm=(1.0, 2.0, 3.0))
    np.testing.assert_allclose(b.frame.source_xyz_mm, (1001.0, 2.0, 3.0), atol=1e-9)
