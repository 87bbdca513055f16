"""Forward and adjoint dose operators (issue 12 item 1) on every backend that runs here.

What is tested, and against what:
- the adjoint is the transpose of the forward: the dot-product identity <A w, r> = <w, A^T r> to 1e-6
  relative, on oblique, couch-rotated, heterogeneous, arc and proton cases;
- the forward is compute_dose: on the same backend, with the beams the operator hands back for w;
- every fast backend equals the NumPy reference (forward and adjoint) to 1e-4 of the maximum
  (float32 kernels, DESIGN 6);
- the influence matrix (CSR) gives the matrix-free results;
- the adjoint of the reference against finite differences of compute_dose, per weight (an independent
  check of the reference itself, which the other backends are compared with).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.optimise import dose_operator
from sfrt_engine.plan.protons import ProtonBeam, SpotLayer

DOT_RTOL = 1e-6  # issue 12
PARITY = 1e-4  # of the maximum, float32 kernels against the float64 reference (DESIGN 6)
BACKENDS = ["numpy", "cpp", pytest.param("cuda", marks=pytest.mark.gpu), pytest.param("cupy", marks=pytest.mark.gpu)]


def _modulated(beam, seed: int):
    """The beam with random beamlet weights in [0.2, 1.8) MU on its open beamlets."""
    rng = np.random.default_rng(seed)
    open_ = beam.weights_mu > 0
    return beam.with_weights(np.where(open_, rng.uniform(0.2, 1.8, open_.shape), 0.0))


@functools.cache
def _case(name: str):
    """(patient, beams, voxel mask) of a small case (5-6 mm voxels, a few beams)."""
    m = se.load_machine("photon_6mv")
    if name == "oblique":
        p = se.phantoms.water_box(size_xyz_mm=(120.0, 120.0, 100.0), spacing_xyz_mm=5.0)
        beams = [_modulated(se.plan.open_field(m, p, field_mm=(50.0, 40.0), gantry_deg=30.0), 1)]
    elif name == "couch":
        p = se.phantoms.water_box(size_xyz_mm=(120.0, 100.0, 90.0), spacing_xyz_mm=(5.0, 4.0, 6.0))
        beams = [_modulated(se.plan.open_field(m, p, field_mm=(50.0, 40.0), gantry_deg=60.0, couch_deg=20.0,
                                               collimator_deg=10.0), 2)]
    elif name == "heterogeneous":
        p = se.phantoms.slab(size_xyz_mm=(100.0, 140.0, 80.0), spacing_xyz_mm=5.0,
                             slabs=(("LUNG", 30.0, 60.0, -700.0), ("BONE", 80.0, 95.0, 1300.0)))
        beams = [_modulated(se.plan.open_field(m, p, field_mm=(40.0, 40.0)), 3),
                 _modulated(se.plan.open_field(m, p, field_mm=(30.0, 30.0), gantry_deg=15.0, name="b2"), 4)]
    elif name == "arc":
        p = se.phantoms.sarcoma_thigh(spacing_xyz_mm=8.0)
        arc = se.plan.conformal_arc(p, "GTV", m, start_deg=181.0, stop_deg=179.0, spacing_deg=72.0)
        beams = [arc]  # an Arc in the list: its control points in order
    elif name == "proton":
        p = se.phantoms.slab(size_xyz_mm=(100.0, 140.0, 80.0), spacing_xyz_mm=5.0,
                             slabs=(("BONE", 30.0, 45.0, 1300.0),))
        mp = se.load_machine("proton_generic")
        rng = np.random.default_rng(5)
        layers = tuple(SpotLayer(e, rng.uniform(0.5, 1.5, (5, 6)) * (rng.uniform(size=(5, 6)) > 0.2), (6.0, 6.0),
                                 (-15.0, -12.0), range_shifter_mm=rs) for e, rs in ((100.0, 20.0), (110.0, 0.0)))
        beams = [ProtonBeam(mp, (0.0, 0.0, 0.0), 25.0, layers, couch_deg=10.0)]
    else:
        raise KeyError(name)
    body = p.structures["BODY"] if "BODY" in p.structures else np.ones(p.grid.shape_zyx, dtype=bool)
    return p, beams, body


CASES = ["oblique", "couch", "heterogeneous", "arc", "proton"]


def _available(name: str) -> None:
    """Skip with the registry's reason when ``name`` cannot run here (fail instead for a GPU backend under
    SFRT_REQUIRE_CUDA=1, as tests/conftest.py does)."""
    ok, reason = se.available_backends()[name]
    if not ok:
        if name in ("cuda", "cupy") and os.environ.get("SFRT_REQUIRE_CUDA") == "1":
            pytest.fail(f"SFRT_REQUIRE_CUDA=1 but backend {name!r} cannot run: {reason}", pytrace=False)
        pytest.skip(f"backend {name!r} unavailable: {reason}")


@functools.cache
def _operator(case: str, backend: str, mode: str = "matrix-free"):
    p, beams, body = _case(case)
    return dose_operator(beams, p, voxels=body, backend=backend, mode=mode)


def _host(a) -> np.ndarray:
    return np.asarray(a.get() if hasattr(a, "get") else a, dtype=np.float64)


def _vectors(op, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 1.8, op.n_weights), rng.uniform(-0.5, 1.0, op.n_voxels)


@functools.cache
def _reference(case: str) -> tuple[np.ndarray, np.ndarray]:
    op = _operator(case, "numpy")
    w, r = _vectors(op)
    return op.forward(w), op.adjoint(r)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dot_product_identity(case, backend):
    _available(backend)
    op = _operator(case, backend)
    for seed in range(3):
        w, r = _vectors(op, seed)
        lhs = float(_host(op.forward(w)) @ r)
        rhs = float(w @ op.adjoint(r))
        assert abs(lhs) > 0.0
        assert abs(lhs - rhs) <= DOT_RTOL * abs(lhs), f"{backend} {case}: <Aw,r>={lhs!r}, <w,A^T r>={rhs!r}"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_is_compute_dose(case, backend):
    _available(backend)
    p, _, body = _case(case)
    op = _operator(case, backend)
    w, _ = _vectors(op, 7)
    got = _host(op.forward(w))
    expected = se.compute_dose(op.beams_with(w), p, backend=backend).gy[body]
    assert got.shape == expected.shape and expected.max() > 0.0
    # same kernels, same discretisation: round-off only (float32 on the compiled backends; on the GPU the operator's
    # geometry comes from the host (cpp) while compute_dose traces on the device, where nvcc and NVRTC may contract
    # multiply-adds differently)
    tol = {"numpy": 1e-12, "cpp": 1e-6}.get(backend, 1e-5)
    assert np.abs(got - expected).max() <= tol * expected.max()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_fast_backends_match_the_reference(case, backend):
    _available(backend)
    op = _operator(case, backend)
    w, r = _vectors(op)
    ref_dose, ref_grad = _reference(case)
    assert np.abs(_host(op.forward(w)) - ref_dose).max() <= PARITY * ref_dose.max()
    grad = op.adjoint(r)
    assert grad.dtype == np.float64 and grad.shape == (op.n_weights,)
    assert np.abs(grad - ref_grad).max() <= PARITY * np.abs(ref_grad).max()


@pytest.mark.parametrize("case", ["heterogeneous", "proton"])
@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_csr_equals_matrix_free(case, backend):
    _available(backend)
    free = _operator(case, backend)
    csr = _operator(case, backend, "csr")
    assert csr.mode == "csr" and free.mode == "matrix-free" and csr.describe()["csr_nnz"] > 0
    w, r = _vectors(free, 3)
    d_free, d_csr = _host(free.forward(w)), _host(csr.forward(w))
    # the matrix holds float32 entries (relative round-off 6e-8); the compiled kernels sum in float32
    assert np.abs(d_csr - d_free).max() <= 1e-5 * d_free.max()
    g_free, g_csr = free.adjoint(r), csr.adjoint(r)
    assert np.abs(g_csr - g_free).max() <= 1e-5 * np.abs(g_free).max()
    assert abs(d_csr @ r - w @ g_csr) <= DOT_RTOL * abs(d_csr @ r)


def test_reference_adjoint_against_finite_differences():
    """Column f of A is the dose of weight f alone: compute_dose of beams carrying e_f, independent of the operator."""
    p, _, body = _case("heterogeneous")
    op = _operator("heterogeneous", "numpy")
    rng = np.random.default_rng(11)
    r = rng.uniform(-0.5, 1.0, op.n_voxels)
    grad = op.adjoint(r)
    for f in rng.choice(op.n_weights, 4, replace=False):
        w = np.full(op.n_weights, 1e-3)  # every beamlet open (the footprint of the operator), weight f dominant
        base = se.compute_dose(op.beams_with(w), p, backend="numpy").gy[body]
        w[f] += 1.0
        column = se.compute_dose(op.beams_with(w), p, backend="numpy").gy[body] - base
        assert abs(column @ r - grad[f]) <= 1e-9 * np.abs(column).sum()


def test_auto_mode_chooses_by_budget_and_says_why():
    p, beams, body = _case("heterogeneous")
    small = dose_operator(beams, p, voxels=body, backend="numpy", mode="auto", memory_budget_mib=1e-3)
    assert small.mode == "matrix-free" and "exceeds" in small.describe()["mode_reason"]
    large = dose_operator(beams, p, voxels=body, backend="numpy", mode="auto", memory_budget_mib=4096)
    assert large.mode == "csr" and "fits" in large.describe()["mode_reason"]
    info = large.describe()
    assert info["csr_nnz"] * 8 <= info["csr_bytes_estimate"]
    # a compiled backend takes the matrix only for beams with few free weights (<= 64 reaching each voxel)
    po, bo, vo = _case("oblique")  # 80 free beamlets
    cpp = dose_operator(bo, po, voxels=vo, backend="cpp", mode="auto", memory_budget_mib=4096)
    assert cpp.mode == "matrix-free" and "kernels are faster" in cpp.describe()["mode_reason"]
    few = dose_operator(beams[1:], p, voxels=body, backend="cpp", mode="auto", memory_budget_mib=4096)
    assert few.mode == "csr", few.describe()["mode_reason"]


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_results_are_deterministic(backend):
    _available(backend)
    op = _operator("heterogeneous", backend)
    w, r = _vectors(op, 4)
    assert np.array_equal(_host(op.forward(w)), _host(op.forward(w)))
    assert np.array_equal(op.adjoint(r), op.adjoint(r))


def test_weight_layout_and_beams_with():
    _, beams, body = _case("heterogeneous")
    op = _operator("heterogeneous", "numpy")
    expected = np.concatenate([b.weights_mu[b.weights_mu > 0] for b in beams])  # row-major, beams in order
    np.testing.assert_array_equal(op.weights0, expected)
    assert op.n_weights == sum(b.n_beamlets for b in beams)
    w = np.arange(1.0, op.n_weights + 1.0)
    new = op.beams_with(w)
    assert [b.name for b in new] == [b.name for b in beams]
    np.testing.assert_array_equal(np.concatenate([b.weights_mu[beams[i].weights_mu > 0] for i, b in enumerate(new)]),
                                  w)
    np.testing.assert_array_equal(beams[0].weights_mu, _case("heterogeneous")[1][0].weights_mu)  # untouched
    assert op.describe()["n_voxels"] == int(body.sum()) == op.n_voxels


def test_proton_weight_layout():
    beams = _case("proton")[1]
    op = _operator("proton", "numpy")
    expected = np.concatenate([layer.weights_gp[layer.weights_gp > 0] for layer in beams[0].layers])
    np.testing.assert_array_equal(op.weights0, expected)
    back = op.beams_with(op.weights0)[0]
    for a, b in zip(back.layers, beams[0].layers):
        np.testing.assert_array_equal(a.weights_gp, b.weights_gp)
        assert a.range_shifter_mm == b.range_shifter_mm


def test_voxel_subsets_by_mask_and_by_index():
    p, beams, body = _case("oblique")
    by_mask = dose_operator(beams, p, voxels=body, backend="numpy", mode="matrix-free")
    index = np.flatnonzero(body)[::7]
    by_index = dose_operator(beams, p, voxels=index, backend="numpy", mode="matrix-free")
    np.testing.assert_allclose(by_index.forward(by_index.weights0), by_mask.forward(by_mask.weights0)[::7],
                               rtol=1e-12, atol=0)
    whole = dose_operator(beams, p, backend="numpy", mode="matrix-free")
    assert whole.n_voxels == p.grid.size


def test_apertures_free_more_beamlets_than_the_initial_map():
    p, beams, body = _case("oblique")
    beam = beams[0]
    aperture = np.ones_like(beam.weights_mu, dtype=bool)
    op = dose_operator([beam], p, voxels=body, backend="numpy", mode="matrix-free", apertures=[aperture])
    assert op.n_weights == beam.weights_mu.size
    w = np.full(op.n_weights, 0.5)
    expected = se.compute_dose(op.beams_with(w), p, backend="numpy").gy[body]
    np.testing.assert_allclose(op.forward(w), expected, rtol=0, atol=1e-12 * expected.max())


def test_bad_input_is_refused_with_clear_errors():
    p, beams, body = _case("oblique")
    op = _operator("oblique", "numpy")
    with pytest.raises(se.PlanError, match=r"expected \(\d+,\) free weights"):
        op.forward(np.ones(op.n_weights + 1))
    with pytest.raises(se.PlanError, match="NaN or Inf"):
        op.forward(np.full(op.n_weights, np.nan))
    with pytest.raises(se.PlanError, match=">= 0"):
        op.beams_with(-np.ones(op.n_weights))
    with pytest.raises(se.GridError, match="expected"):
        op.adjoint(np.ones(op.n_voxels - 1))
    with pytest.raises(se.GridError, match="bool mask of shape"):
        dose_operator(beams, p, voxels=body[:-1], backend="numpy")
    with pytest.raises(se.GridError, match="empty"):
        dose_operator(beams, p, voxels=np.zeros_like(body), backend="numpy")
    with pytest.raises(se.GridError, match="flat indices must be in"):
        dose_operator(beams, p, voxels=np.array([p.grid.size]), backend="numpy")
    with pytest.raises(se.PlanError, match="mode='fast'"):
        dose_operator(beams, p, mode="fast")
    with pytest.raises(se.PlanError, match="no free beamlet"):
        dose_operator(beams, p, apertures=[np.zeros_like(beams[0].weights_mu, dtype=bool)])
    with pytest.raises(TypeError, match="expected sfrt_engine.plan.Beam"):
        dose_operator(["beam"], p)
    with pytest.raises(ValueError, match="unknown backend"):
        dose_operator(beams, p, backend="fortran")


@pytest.mark.parametrize("case", ["heterogeneous", "arc", "proton"])
def test_cpp_stored_factors_change_nothing(case, monkeypatch):
    """The cpp engine stores per-point factors within a memory budget; without them (budget 0) it evaluates
    the physics headers at every call. Both give the same dose bits and the same gradient (to summation order)."""
    _available("cpp")
    from sfrt_engine.optimise import _engine_cpp

    p, beams, body = _case(case)
    stored = dose_operator(beams, p, voxels=body, backend="cpp", mode="matrix-free")
    monkeypatch.setattr(_engine_cpp, "CACHE_BUDGET_MIB", 0.0)
    direct = dose_operator(beams, p, voxels=body, backend="cpp", mode="matrix-free")
    assert stored.describe()["cache_bytes"] > 0 and direct.describe()["cache_bytes"] == 0
    w, r = _vectors(stored, 9)
    np.testing.assert_array_equal(stored.forward(w), direct.forward(w))
    g_stored, g_direct = stored.adjoint(r), direct.adjoint(r)
    assert np.abs(g_stored - g_direct).max() <= 1e-12 * np.abs(g_direct).max()


_ADJOINT_PROBE = """
import sys, numpy as np, sfrt_engine as se
from sfrt_engine.optimise import dose_operator
p = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
beams = se.plan.conformal_beams(p, "PTV", se.load_machine("photon_6mv"), gantry_deg=[0, 120, 240])
op = dose_operator(beams, p, voxels=p.structures["BODY"], backend="cpp", mode="matrix-free")
r = np.random.default_rng(1).random(op.forward(op.weights0).shape)
np.save(sys.argv[1], op.adjoint(r))
"""


def test_cpp_adjoint_is_bit_identical_on_any_thread_count(tmp_path):
    """The partial sums run over fixed chunks, so 1 and 2 threads give the same bits (study runners rely on it)."""
    import subprocess
    import sys

    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")
    results = []
    for threads in ("1", "2"):
        path = tmp_path / f"adjoint_{threads}.npy"
        subprocess.run([sys.executable, "-c", _ADJOINT_PROBE, str(path)], check=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "OMP_NUM_THREADS": threads})
        results.append(np.load(path))
    assert np.array_equal(results[0], results[1])
