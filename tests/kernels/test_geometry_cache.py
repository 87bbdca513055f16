"""The geometry cache (sfrt_engine/kernels/geometry_cache.py) never changes a result.

Cached and uncached runs are compared bit for bit; editing the CT in place, assigning a new CT or
changing a calibration must give the dose of a patient that never met the cache; the bound holds.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.errors import SfrtError
from sfrt_engine.kernels import geometry_cache
from sfrt_engine.patient import HUCalibration


@pytest.fixture(autouse=True)
def fresh_cache():
    limit = geometry_cache.limit_mib()
    geometry_cache.clear()
    yield
    geometry_cache.set_limit_mib(limit)
    geometry_cache.clear()


def _patient(spacing_mm: float = 6.0) -> se.Patient:
    return se.phantoms.sarcoma_thigh(spacing_xyz_mm=spacing_mm)


def _photon_beams(patient):
    # the 6 MV machine's phantom-scatter component is tabulated (a scatter table per beam)
    return se.plan.conformal_beams(patient, "PTV", se.load_machine("photon_6mv"), gantry_deg=[20.0, 140.0, 260.0])


def _proton_beams(patient):
    return se.plan.impt_beams(patient, "PTV", se.load_machine("proton_generic"), gantry_deg=[90.0], iterations=5,
                              spot_spacing_mm=10.0, backend="cpp")


def _uncached(beams, patient, backend):
    geometry_cache.set_limit_mib(0)
    geometry_cache.clear()
    try:
        return se.compute_dose(beams, patient, backend=backend).gy
    finally:
        geometry_cache.set_limit_mib(512)


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_cached_photon_dose_is_bit_identical(backend):
    p = _patient()
    beams = _photon_beams(p)
    assert all(t.scatter is not None for t in se.kernels.prepare_photon_tasks(beams, p.grid))
    plain = _uncached(beams, p, backend)
    first = se.compute_dose(beams, p, backend=backend).gy  # fills the cache
    before = geometry_cache.stats()
    second = se.compute_dose(beams, p, backend=backend).gy  # reads it
    after = geometry_cache.stats()
    assert after["hits"] > before["hits"] and after["misses"] == before["misses"]
    assert np.array_equal(plain, first) and np.array_equal(first, second)
    assert plain.dtype == np.float64


def test_cached_proton_dose_is_bit_identical():
    p = _patient()
    beams = _proton_beams(p)
    plain = _uncached(beams, p, "cpp")
    se.compute_dose(beams, p, backend="cpp")
    assert np.array_equal(plain, se.compute_dose(beams, p, backend="cpp").gy)


@pytest.mark.parametrize("edit", ["in_place", "assigned"])
def test_editing_the_ct_invalidates_the_density(edit):
    p = _patient()
    beams = _photon_beams(p)
    se.compute_dose(beams, p, backend="cpp")
    hu = p.hu.copy()
    hu[:, :, : hu.shape[2] // 2] = np.where(p.structures["BODY"][:, :, : hu.shape[2] // 2], 1300.0, -1000.0)
    if edit == "in_place":
        p.hu[...] = hu
    else:
        p.hu = hu
    edited = se.compute_dose(beams, p, backend="cpp").gy
    fresh = se.Patient(p.grid, hu, calibration=p.calibration)
    expected = _uncached(beams, fresh, "cpp")
    assert np.array_equal(edited, expected)
    assert not np.array_equal(edited, _uncached(beams, _patient(), "cpp"))


def test_a_single_voxel_edit_invalidates_the_density():
    p = _patient()
    beams = _photon_beams(p)
    ref = se.compute_dose(beams, p, backend="numpy").gy
    iz, iy, ix = (s // 2 for s in p.grid.shape_zyx)
    p.hu[iz, iy, ix] += 1.0  # one CT number, one HU
    got = se.compute_dose(beams, p, backend="numpy").gy
    assert not np.array_equal(got, ref)
    assert np.array_equal(got, _uncached(beams, p, "numpy"))


def test_changing_the_calibration_invalidates_the_density():
    p = _patient()
    beams = _photon_beams(p)
    se.compute_dose(beams, p, backend="cpp")
    p.calibration = HUCalibration(hu=(-1000.0, 0.0, 3000.0), density=(0.0, 1.0, 1.0), name="bone as water")
    changed = se.compute_dose(beams, p, backend="cpp").gy
    assert np.array_equal(changed, _uncached(beams, p, "cpp"))
    assert not np.array_equal(changed, _uncached(beams, _patient(), "cpp"))


def test_the_bound_holds_and_a_cache_too_small_still_gives_the_same_dose():
    p = _patient()
    beams = _photon_beams(p)
    plain = _uncached(beams, p, "cpp")
    geometry_cache.set_limit_mib(0.05)  # 52 kB: some profiles fit, the density does not
    for _ in range(2):
        assert np.array_equal(se.compute_dose(beams, p, backend="cpp").gy, plain)
        assert geometry_cache.stats()["bytes"] <= 0.05 * 2 ** 20
    geometry_cache.set_limit_mib(512)
    se.compute_dose(beams, p, backend="cpp")
    held = geometry_cache.stats()["bytes"]
    assert held > p.hu.nbytes  # density and its CT copy
    geometry_cache.set_limit_mib(held / 2 ** 20 / 4)  # shrinking drops entries at once
    assert geometry_cache.stats()["bytes"] <= held / 4


def test_least_recently_used_entries_go_first():
    geometry_cache.set_limit_mib(3 * 8 * 1000 / 2 ** 20)  # room for three arrays of 1000 float64
    made = []

    def maker(tag):
        def make():
            made.append(tag)
            return np.full(1000, float(tag))
        return make

    for tag in (1, 2, 3):
        geometry_cache.profiles(("lru", tag), maker(tag))
    geometry_cache.profiles(("lru", 1), maker(1))  # 1 is now the most recent
    geometry_cache.profiles(("lru", 4), maker(4))  # drops 2, the least recent
    geometry_cache.profiles(("lru", 1), maker(1))
    geometry_cache.profiles(("lru", 3), maker(3))
    geometry_cache.profiles(("lru", 2), maker(2))
    assert made == [1, 2, 3, 4, 2]
    value = geometry_cache.profiles(("lru", 2), maker(2))
    assert not value.flags.writeable and value[0] == 2.0


def test_density_entries_go_with_their_patient():
    p = _patient()
    se.compute_dose(_photon_beams(p), p, backend="cpp")
    with_patient = geometry_cache.stats()["bytes"]
    del p
    gc.collect()
    assert geometry_cache.stats()["bytes"] <= with_patient - _patient().hu.nbytes * 2


def test_cached_density_is_read_only():
    p = _patient()
    d = geometry_cache.density_for(p, p.calibration, p.density, np.float32)
    assert d.dtype == np.float32 and d.flags.c_contiguous and not d.flags.writeable
    assert geometry_cache.density_for(p, p.calibration, p.density, np.float32) is d


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf"])
def test_bad_limit_from_the_environment_is_a_clear_error(monkeypatch, text):
    monkeypatch.setenv("SFRT_GEOMETRY_CACHE_MIB", text)
    with pytest.raises(SfrtError, match="SFRT_GEOMETRY_CACHE_MIB.*expected"):
        geometry_cache._limit_from_env()


def test_bad_limit_is_a_clear_error():
    with pytest.raises(SfrtError, match="expected a .*number of MiB"):
        geometry_cache.set_limit_mib(-2)
    with pytest.raises(SfrtError, match="expected a number of MiB"):
        geometry_cache.set_limit_mib("lots")


def _ray_keys():
    return [k for k in geometry_cache._cache.entries if k[0] == "ray"]


def test_ray_tables_are_cached_per_density_and_go_with_it():
    p = _patient()
    beams = _photon_beams(p)
    se.compute_dose(beams, p, backend="cpp")
    first = _ray_keys()
    assert len(first) == len(beams)
    se.compute_dose(beams, p, backend="cpp")
    assert _ray_keys() == first  # reused, none added
    p.hu[0, 0, 0] += 1.0  # a new density: the old one's tables go with it
    se.compute_dose(beams, p, backend="cpp")
    now = _ray_keys()
    assert len(now) == len(beams) and not set(now) & set(first)


def test_ray_tables_given_to_the_driver_are_checked():
    from sfrt_engine.kernels import _core
    from sfrt_engine.kernels._task import compiled_arguments

    p = _patient()
    tasks = se.kernels.prepare_photon_tasks(_photon_beams(p), p.grid)
    args = compiled_arguments(p.density(), p.grid, tasks)
    good = [_core.trace_rays(args[0], args[1], pack) for pack in args[2]]
    assert np.array_equal(_core.photon_dose(*args, tables=good), _core.photon_dose(*args))
    with pytest.raises(ValueError, match="one entry .* per beam"):
        _core.photon_dose(*args, tables=good[:1])
    with pytest.raises(ValueError, match="beam 1: ray table shape does not match"):
        _core.photon_dose(*args, tables=[good[0], good[0][:, :-1], None])
