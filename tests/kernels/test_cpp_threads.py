"""The cpp backend's per-call thread count (CppBackend.limit_threads): set, restored, checked, and
without effect on the result."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import sfrt_engine as se

pytestmark = pytest.mark.skipif(not se.available_backends()["cpp"][0], reason="cpp backend not built")


@pytest.fixture(scope="module")
def small_case():
    patient = se.phantoms.water_box(size_xyz_mm=60.0, spacing_xyz_mm=6.0)
    beam = se.plan.open_field(se.load_machine("photon_6mv"), patient, field_mm=(30.0, 30.0), gantry_deg=30.0)
    return patient, [beam]


def test_limit_threads_sets_and_restores_the_openmp_count():
    backend = se.get_backend("cpp")
    before = backend.describe()["threads"]
    with backend.limit_threads(1) as limited:
        assert limited is backend
        assert backend.describe()["threads"] == 1
        with backend.limit_threads(3):
            assert backend.describe()["threads"] == 3
        assert backend.describe()["threads"] == 1
    assert backend.describe()["threads"] == before


def test_limit_threads_restores_after_an_exception():
    backend = se.get_backend("cpp")
    before = backend.describe()["threads"]
    with pytest.raises(RuntimeError, match="inside"), backend.limit_threads(1):
        raise RuntimeError("inside")
    assert backend.describe()["threads"] == before


def test_limit_threads_applies_to_the_calling_thread_only():
    backend = se.get_backend("cpp")
    before = backend.describe()["threads"]
    seen = {}
    with backend.limit_threads(1):
        worker = threading.Thread(target=lambda: seen.update(threads=backend.describe()["threads"]))
        worker.start()
        worker.join()
    assert seen["threads"] == before


@pytest.mark.parametrize(("value", "error", "text"), [(0, ValueError, "threads = 0"), (-2, ValueError, ">= 1"),
                                                      (1.5, TypeError, "float"), (True, TypeError, "bool")])
def test_limit_threads_rejects_bad_counts(value, error, text):
    backend = se.get_backend("cpp")
    before = backend.describe()["threads"]
    with pytest.raises(error, match=text), backend.limit_threads(value):
        pass
    assert backend.describe()["threads"] == before


def test_core_rejects_a_zero_count():
    from sfrt_engine.kernels import _core

    with pytest.raises(ValueError, match="n = 0"):
        _core.set_max_threads(0)


def test_dose_does_not_depend_on_the_thread_count(small_case):
    patient, beams = small_case
    backend = se.get_backend("cpp")
    many = se.compute_dose(beams, patient, backend="cpp").gy
    with backend.limit_threads(1):
        one = se.compute_dose(beams, patient, backend="cpp").gy
    assert one.max() > 0
    np.testing.assert_array_equal(one, many)
