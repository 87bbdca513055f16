"""The optimiser against a small explicit influence matrix (an independent, exact operator)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from sfrt_engine.errors import PlanError, StructureError
from sfrt_engine.optimise import (
    DvhMin,
    MaxDose,
    MeanDose,
    MinDose,
    OptimisationWarning,
    SquaredDeviation,
    Valley,
    optimise,
    voxel_subset,
)

SHAPE = (1, 6, 8)  # [z, y, x]


class MatrixOperator:
    """Dose = A w on a voxel subset: the reference any matrix-free operator must equal."""

    def __init__(self, a: np.ndarray, weights0=None, backend: str = "numpy", mode: str = "matrix"):
        self.a = np.asarray(a, float)
        self.n_weights = self.a.shape[1]
        self.weights0 = np.ones(self.n_weights) if weights0 is None else np.asarray(weights0, float)
        self.backend, self.mode = backend, mode
        self.calls = 0

    def forward(self, w):
        self.calls += 1
        return self.a @ w

    def adjoint(self, r):
        return self.a.T @ r


def _masks():
    target = np.zeros(SHAPE, bool)
    target[0, 2:4, 3:6] = True
    oar = np.zeros(SHAPE, bool)
    oar[0, 4:6, 0:3] = True
    return {"PTV": target, "OAR": oar}


def _operator(structures, seed=3, n=12):
    """A non-negative influence matrix on the objectives' voxels: beamlets with Gaussian footprints."""
    rng = np.random.default_rng(seed)
    union = structures["PTV"] | structures["OAR"]
    zyx = np.argwhere(union).astype(float)
    centres = rng.uniform([0, 0, 0], [0, SHAPE[1] - 1, SHAPE[2] - 1], (n, 3))
    d2 = ((zyx[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return MatrixOperator(0.5 * np.exp(-d2 / 4.0))


def test_least_squares_matches_nnls():
    """One squared-deviation objective on every voxel is non-negative least squares: compare with scipy's NNLS."""
    s = _masks()
    s["ALL"] = s["PTV"] | s["OAR"]
    op = _operator(s)
    ref = np.where(s["PTV"], 2.0, 0.2)[s["ALL"]]
    res = optimise(op, [SquaredDeviation("ALL", ref)], s, max_iterations=500, tolerance=1e-15)
    w_nnls, _ = nnls(op.a, ref)
    f_nnls = np.mean((op.a @ w_nnls - ref) ** 2)
    assert res.final_objective == pytest.approx(f_nnls, rel=1e-5, abs=1e-10)
    assert np.all(res.weights >= 0)
    assert res.final_objective < res.initial_objective
    assert res.history[0] >= res.history[-1] and len(res.history) == res.iterations + 1


def test_feasible_goals_are_met_and_recorded():
    s = _masks()
    op = _operator(s)
    objs = [DvhMin("PTV", 2.0, 95.0, weight=100.0), MaxDose("PTV", 2.6, weight=50.0), MeanDose("OAR", weight=1.0)]
    res = optimise(op, objs, s, max_iterations=200)
    d = op.a @ res.weights
    pos = np.searchsorted(voxel_subset(objs, s), np.flatnonzero(s["PTV"]))
    assert np.percentile(d[pos], 5) >= 2.0 * 0.99
    assert [g["met"] for g in res.goals] == [True, True, None]
    rec = res.to_dict()
    assert {"initial_objective", "final_objective", "iterations", "stop_reason", "seconds", "backend",
            "operator_mode"} <= set(rec)
    assert rec["backend"] == "numpy" and rec["operator_mode"] == "matrix"


def test_deterministic():
    s = _masks()
    objs = [DvhMin("PTV", 2.0, 95.0, weight=100.0), MeanDose("OAR")]
    a = optimise(_operator(s), objs, s, max_iterations=30)
    b = optimise(_operator(s), objs, s, max_iterations=30)
    assert np.array_equal(a.weights, b.weights) and a.history == b.history


def test_infeasible_goals_return_the_best_plan_with_a_warning():
    s = _masks()
    op = _operator(s)
    # the target needs 2 Gy everywhere but the organ next to it may get no more than 0.01 Gy
    objs = [MinDose("PTV", 2.0, weight=10.0), MaxDose("OAR", 0.01, weight=10.0)]
    with pytest.warns(OptimisationWarning, match=r"goals not met: .*(PTV min dose >= 2 Gy|OAR max dose <= 0.01 Gy)"
                                                 r".*short by"):
        res = optimise(op, objs, s, max_iterations=50)
    assert res.unmet and all(g["shortfall"] > 0 for g in res.unmet)
    assert np.all(np.isfinite(res.weights))
    res2 = optimise(op, objs, s, max_iterations=50, warn=False)  # same result, no warning
    assert np.array_equal(res.weights, res2.weights)


def test_valley_objective_lowers_the_ratio():
    s = _masks()
    s["VERTICES"], s["VALLEY"] = s["PTV"], s["OAR"]
    op = _operator(s)
    objs = [DvhMin("VERTICES", 1.0, 95.0, weight=10.0), Valley(weight=10.0)]
    res = optimise(op, objs, s, max_iterations=100, warn=False)
    d0 = op.a @ op.weights0
    d = op.a @ res.weights
    sub = voxel_subset(objs, s)
    pv = np.searchsorted(sub, np.flatnonzero(s["VALLEY"]))
    pp = np.searchsorted(sub, np.flatnonzero(s["VERTICES"]))
    assert d[pv].mean() / d[pp].mean() < 0.5 * d0[pv].mean() / d0[pp].mean()


class _NanOperator(MatrixOperator):
    def adjoint(self, r):
        g = super().adjoint(r)
        g[0] = np.nan
        return g


def test_nan_gradient_stops_with_a_clear_error():
    s = _masks()
    op = _operator(s)
    with pytest.raises(PlanError, match="non-finite"):
        optimise(_NanOperator(op.a), [DvhMin("PTV", 2.0, 95.0)], s, max_iterations=5)


def test_bad_input():
    s = _masks()
    op = _operator(s)
    with pytest.raises(PlanError, match="no positive weight"):
        optimise(op, [DvhMin("PTV", 2.0, 95.0)], s, weights0=np.zeros(op.n_weights))
    with pytest.raises(StructureError, match="'LUNG', which does not exist"):
        optimise(op, [MeanDose("LUNG")], s)
    s_empty = dict(s, EMPTY=np.zeros(SHAPE, bool))
    with pytest.raises(StructureError, match="'EMPTY', which is empty"):
        optimise(op, [MeanDose("EMPTY")], s_empty)
    with pytest.raises(PlanError, match="at least one objective"):
        optimise(op, [], s)
    with pytest.raises(PlanError, match="max_iterations"):
        optimise(op, [DvhMin("PTV", 2.0, 95.0)], s, max_iterations=0)
    # only 'as low as possible' goals: the best plan is no dose at all, which is not a plan
    with pytest.raises(PlanError, match="no objective asks for dose"):
        optimise(_operator(s), [MeanDose("OAR"), MeanDose("PTV")], s, max_iterations=50)


def test_sampled_structures_keep_every_kth_voxel():
    from sfrt_engine.optimise import sampled_structures

    big = np.zeros((4, 5, 5), bool)
    big[:, 1:, :] = True  # 80 voxels
    small = np.zeros((4, 5, 5), bool)
    small[0, 0, :3] = True
    objs = [MeanDose("BIG"), DvhMin("SMALL", 1.0, 50.0), MeanDose("HOT"), MaxDose("HOT", 1.0)]
    out = sampled_structures(objs, {"BIG": big, "SMALL": small, "OTHER": big, "HOT": big}, max_voxels=30)
    assert set(out) == {"BIG", "SMALL", "HOT"}
    assert np.array_equal(np.flatnonzero(out["BIG"]), np.flatnonzero(big)[::3])  # ceil(80 / 30) = 3
    assert np.array_equal(out["SMALL"], small)
    assert np.array_equal(out["HOT"], big)  # a max-dose goal needs every voxel
    assert np.array_equal(sampled_structures(objs, {"BIG": big, "SMALL": small, "HOT": big}, None)["BIG"], big)
