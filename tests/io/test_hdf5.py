"""HDF5 results store: bit-identical round trips, attributes, atomic writes and clear load errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import h5py
import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine import io
from sfrt_engine.io import _hdf5_save
from sfrt_engine.plan.vertices import VertexLattice


@pytest.fixture
def run(machine):
    """A small run with every part the store holds."""
    rng = np.random.default_rng(7)
    patient = se.phantoms.water_box((30.0, 24.0, 18.0), (3.0, 2.0, 3.0))
    patient.hu[:] = rng.normal(0.0, 50.0, patient.grid.shape_zyx)
    patient.structures["GTV"] = rng.random(patient.grid.shape_zyx) < 0.3
    patient.structures["odd/name."] = rng.random(patient.grid.shape_zyx) < 0.1
    patient.structures["."] = rng.random(patient.grid.shape_zyx) < 0.1
    patient.structures["%2E"] = rng.random(patient.grid.shape_zyx) < 0.1
    patient.dicom = {"StudyInstanceUID": "1.2.3", "FrameOfReferenceUID": "1.2.4", "PatientID": "P1",
                     "ct_sop_instance_uids": [f"1.2.826.0.1.3680043.8.498.{10**40 + k}" for k in range(2000)]}
    beam = se.plan.Beam(machine, (0.0, 0.0, 0.0), 90.0, rng.random((3, 4)), (5.0, 2.5), (-7.5, -2.5),
                        couch_deg=10.0, collimator_deg=5.0, name="B1")
    beams = {"CRT": [beam, beam.with_weights(rng.random((3, 4)))], "BOOST": [beam]}
    shape = patient.grid.shape_zyx
    labels = np.zeros(shape, dtype=np.int16)
    labels[2, 3:5, 4:6] = 1
    vertices = VertexLattice(np.array([[1.0, 2.0, 3.0]]), 15.0, 30.0, "hcp", np.zeros(3), 0.0, labels, "GTV",
                             {"gtv_margin_mm": 5.0})
    return {
        "patient": patient, "beams": beams, "vertices": vertices,
        "unit_doses": {"CRT": rng.random(shape), "BOOST": rng.random(shape).astype(np.float32)},
        "doses": {"CRT": se.Dose(rng.random(shape), patient.grid, "cpp", 1.5, ("B1",)), "SFRT": rng.random(shape)},
        "eqd2": {"CRT": rng.random(shape) * 70, "SFRT/arm": rng.random(shape) * 180},
        "report": {"arms": {"CRT": {"mean_gy": np.float64(60.1), "d": np.arange(3)}}, "nan": float("nan")},
        "settings": {"crt_fractions": 20, "boost_mode": "integrated"},
    }


def test_round_trip_is_bit_identical(tmp_path, run):
    path = io.save(tmp_path / "run.h5", **run)
    res = io.load(path)
    p, q = run["patient"], res.patient
    assert q.grid == p.grid and q.name == p.name and q.dicom == p.dicom
    assert q.calibration == p.calibration
    assert q.hu.dtype == np.float32 and np.array_equal(q.hu, p.hu)
    assert list(q.structures) == list(p.structures)
    for name in p.structures:
        assert np.array_equal(q.structures[name], p.structures[name])
    for group in ("unit_doses", "doses", "eqd2"):
        assert list(getattr(res, group)) == list(run[group])
        for name, value in run[group].items():
            got = getattr(res, group)[name]
            if isinstance(value, se.Dose):
                assert isinstance(got, se.Dose) and got.grid == value.grid and got.backend == "cpp"
                assert got.beams == ("B1",) and got.seconds == 1.5
                got, value = got.gy, value.gy
            assert got.dtype == value.dtype and np.array_equal(got, value)
    assert list(res.beams) == ["CRT", "BOOST"]
    for name, beams in run["beams"].items():
        for a, b in zip(beams, res.beams[name], strict=True):
            assert np.array_equal(a.weights_mu, b.weights_mu)
            assert (a.name, a.gantry_deg, a.couch_deg, a.collimator_deg, a.beamlet_mm, a.origin_uv_mm,
                    a.isocenter_xyz_mm) == (b.name, b.gantry_deg, b.couch_deg, b.collimator_deg, b.beamlet_mm,
                                            b.origin_uv_mm, b.isocenter_xyz_mm)
            assert b.machine.source_sha256 == a.machine.source_sha256
    v = res.vertices
    assert np.array_equal(v.labels, run["vertices"].labels) and np.array_equal(v.centers_xyz_mm, [[1.0, 2.0, 3.0]])
    assert (v.diameter_mm, v.lattice, v.target, v.constraints) == (15.0, "hcp", "GTV", {"gtv_margin_mm": 5.0})
    assert res.report["arms"]["CRT"] == {"mean_gy": 60.1, "d": [0, 1, 2]} and np.isnan(res.report["nan"])
    assert res.settings == run["settings"]
    assert res.provenance["schema_version"] == io.SCHEMA_VERSION
    assert res.provenance["engine_version"] == se.__version__
    assert res.provenance["backend"] == "cpp"
    assert res.provenance["machines"] == {"photon_6mv": run["beams"]["CRT"][0].machine.source_sha256}
    assert res.machine_mismatches == []


def test_list_of_beams_and_partial_files(tmp_path, run):
    beams = run["beams"]["CRT"]
    res = io.load(io.save(tmp_path / "b.h5", beams=beams, settings=run["settings"]))
    assert isinstance(res.beams, list) and len(res.beams) == 2
    assert res.patient is None and res.doses == {} and res.report is None and res.vertices is None


def test_settings_object_with_to_dict(tmp_path):
    @dataclass
    class Settings:
        n: int = 3

        def to_dict(self):
            return {"n": self.n}

    assert io.load(io.save(tmp_path / "s.h5", settings=Settings())).settings == {"n": 3}


def test_every_dataset_has_units_and_axis_order_and_arrays_are_compressed(tmp_path, run):
    path = io.save(tmp_path / "run.h5", **run)
    seen = []

    def check(name, obj):
        if isinstance(obj, h5py.Dataset):
            seen.append(name)
            assert "units" in obj.attrs and "axis_order" in obj.attrs, name
            if obj.ndim == 3:
                assert obj.attrs["axis_order"] == "z,y,x" and obj.compression == "gzip", name

    with h5py.File(path, "r") as f:
        f.visititems(check)
        for key in ("schema_version", "engine_version", "created_utc", "backend", "machines", "settings"):
            assert key in f.attrs, key
        assert json.loads(f.attrs["settings"]) == run["settings"]
        assert f["doses/SFRT"].attrs["units"] == "Gy" and f["eqd2/SFRT%2Farm"].attrs["name"] == "SFRT/arm"
        assert f["patient/hu"].attrs["units"] == "HU"
    assert "patient/hu" in seen and "beams/CRT/0000/weights_mu" in seen


def test_interrupted_write_leaves_the_previous_file(tmp_path, run, monkeypatch):
    path = io.save(tmp_path / "run.h5", **run)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("simulated crash while writing doses")

    monkeypatch.setattr(_hdf5_save, "_write_doses", fail)
    with pytest.raises(RuntimeError, match="simulated crash"):
        io.save(path, patient=run["patient"], doses={"X": np.zeros(run["patient"].grid.shape_zyx)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]  # no temporary file left
    assert list(io.load(path).doses) == ["CRT", "SFRT"]


def test_saved_file_has_ordinary_permissions(tmp_path):
    path = io.save(tmp_path / "p.h5", settings={})
    assert path.stat().st_mode & 0o044  # readable by group/others under the usual umask, unlike mkstemp's 0600


def test_wrong_schema_version(tmp_path, run):
    path = io.save(tmp_path / "run.h5", settings={})
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(io.ResultsFileError, match=r"run\.h5': schema version 99, but this engine reads version 1"):
        io.load(path)


def test_missing_dataset(tmp_path, run):
    path = io.save(tmp_path / "run.h5", patient=run["patient"])
    with h5py.File(path, "r+") as f:
        del f["patient/hu"]
    with pytest.raises(io.ResultsFileError, match=r"run\.h5': missing dataset '/patient/hu'"):
        io.load(path)


def test_missing_units_attribute(tmp_path, run):
    path = io.save(tmp_path / "run.h5", doses={"CRT": np.zeros((2, 2, 2))})
    with h5py.File(path, "r+") as f:
        del f["doses/CRT"].attrs["units"]
    with pytest.raises(io.ResultsFileError, match="'/doses/CRT' lacks its 'units' attribute"):
        io.load(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "report.json"
    path.write_text('{"arms": {}}')
    with pytest.raises(io.ResultsFileError, match=r"report\.json' is not an HDF5 file"):
        io.load(path)


def test_not_a_results_file(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(io.ResultsFileError, match="not a sfrt-engine results file"):
        io.load(tmp_path / "other.h5")


def test_truncated_file(tmp_path, run):
    path = io.save(tmp_path / "run.h5", **run)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.ResultsFileError, match=r"run\.h5' is truncated"):
        io.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.load(tmp_path / "absent.h5")


def test_machine_hash_mismatch(tmp_path, run):
    path = io.save(tmp_path / "run.h5", beams=run["beams"])
    with h5py.File(path, "r+") as f:
        f["beams/BOOST/0000"].attrs["machine_sha256"] = "0" * 64
    with pytest.raises(io.MachineMismatchError, match="machine 'photon_6mv' of sha256 0000.*machine data changed"):
        io.load(path)
    res = io.load(path, allow_machine_mismatch=True)
    assert res.machine_mismatches == ["photon_6mv"] and len(res.beams["BOOST"]) == 1


def test_unknown_machine_can_be_passed_in(tmp_path, machine):
    custom = se.PhotonMachine(machine.name + "_custom", machine.sad_mm, machine.depth_step_mm,
                              machine.depth_dose_gy_per_mu, machine.component_weight, machine.component_sigma_mm,
                              machine.component_names)
    beam = se.plan.Beam(custom, (0.0, 0.0, 0.0), 0.0, np.ones((2, 2)), 5.0, (0.0, 0.0))
    path = io.save(tmp_path / "c.h5", beams=[beam])
    with pytest.raises(io.ResultsFileError, match="machine 'photon_6mv_custom', which cannot be loaded here"):
        io.load(path)
    assert io.load(path, machines={custom.name: custom}).beams[0].machine is custom


def test_save_validates_its_input(tmp_path, run):
    with pytest.raises(ValueError, match=r"doses\['D'\]: shape \(2, 2, 2\) differs from the patient grid"):
        io.save(tmp_path / "x.h5", patient=run["patient"], doses={"D": np.zeros((2, 2, 2))})
    with pytest.raises(TypeError, match=r"report: cannot store a object as JSON"):
        io.save(tmp_path / "x.h5", report={"x": object()})
    with pytest.raises(TypeError, match="beams"):
        io.save(tmp_path / "x.h5", beams=[1])
    assert not list(tmp_path.iterdir())


def test_proton_beams_round_trip(tmp_path, machine):
    protons = se.load_machine("proton_generic")
    rng = np.random.default_rng(3)
    layers = (se.plan.SpotLayer(150.0, rng.random((3, 4)), (5.0, 4.0), (-7.5, -6.0)),
              se.plan.SpotLayer(100.0, rng.random((2, 2)), 3.0, (0.0, 1.5), range_shifter_mm=40.0))
    beam = se.plan.ProtonBeam(protons, (1.0, 2.0, 3.0), 120.0, layers, couch_deg=10.0, name="P1")
    photon = se.plan.Beam(machine, (0.0, 0.0, 0.0), 90.0, rng.random((3, 4)), (5.0, 2.5), (-7.5, -2.5), name="B1")
    path = io.save(tmp_path / "p.h5", beams={"CRT": [beam], "MIXED": [photon, beam]})
    back = io.load(path).beams
    assert isinstance(back["MIXED"][0], se.plan.Beam)
    for b in (back["CRT"][0], back["MIXED"][1]):
        assert isinstance(b, se.plan.ProtonBeam) and b.machine.name == "proton_generic"
        assert (b.name, b.isocenter_xyz_mm, b.gantry_deg, b.couch_deg) == ("P1", (1.0, 2.0, 3.0), 120.0, 10.0)
        for got, want in zip(b.layers, layers, strict=True):
            assert (got.energy_mev, got.spacing_mm, got.origin_uv_mm, got.range_shifter_mm) == (
                want.energy_mev, want.spacing_mm, want.origin_uv_mm, want.range_shifter_mm)
            assert np.array_equal(got.weights_gp, want.weights_gp)
