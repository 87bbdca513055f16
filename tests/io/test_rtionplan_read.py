"""Reading RT Ion Plans built here with pydicom alone (independent of the engine's writer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import sfrt_engine as se

RT_ION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
STRUCT_UID = "1.2.826.0.1.3680043.8.498.1"
FRAME_UID = "1.2.826.0.1.3680043.8.498.2"


def water_patient(size_mm: float = 120.0, spacing_mm: float = 5.0) -> se.Patient:
    """A water box with a DICOM identity (frame of reference and structure set) and a central PTV sphere."""
    patient = se.phantoms.water_box((size_mm,) * 3, spacing_mm)
    g = patient.grid
    zz, yy, xx = np.meshgrid(g.axis_mm("z"), g.axis_mm("y"), g.axis_mm("x"), indexing="ij")
    patient.structures["PTV"] = xx ** 2 + yy ** 2 + zz ** 2 < 15.0 ** 2
    patient.dicom = {"PatientName": "Water", "PatientID": "W1", "StudyInstanceUID": generate_uid(),
                     "FrameOfReferenceUID": FRAME_UID, "rtstruct": {"SOPInstanceUID": STRUCT_UID}}
    return patient


@dataclass
class Layer:
    energy_mev: float
    x_mm: np.ndarray
    y_mm: np.ndarray
    weights: np.ndarray
    shifter: dict | None = None  # RangeShifterSettingsSequence item attributes
    spot_fwhm_mm: tuple | None = None


@dataclass
class BeamSpec:
    layers: list
    gantry_deg: float = 90.0
    couch_deg: float = 0.0
    iso_mm: tuple = (0.0, 0.0, 0.0)
    meterset_mu: float | None = 100.0
    final_weight: float | None = None  # default: the sum of the weights
    name: str = "F1"
    extra: dict = field(default_factory=dict)  # attributes set on the beam item
    range_shifters: int = 0


def plan_dataset(beams: list[BeamSpec], *, fractions: int = 20, frame_uid: str = FRAME_UID,
                 struct_uid: str | None = STRUCT_UID) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_ION_PLAN
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = RT_ION_PLAN
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTPLAN"
    ds.FrameOfReferenceUID = frame_uid
    ds.RTPlanLabel = "TEST"
    if struct_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
        ref.ReferencedSOPInstanceUID = struct_uid
        ds.ReferencedStructureSetSequence = Sequence([ref])
    items, refs = [], []
    for number, spec in enumerate(beams, start=1):
        total = float(sum(np.sum(lay.weights) for lay in spec.layers))
        final = total if spec.final_weight is None else spec.final_weight
        scale = final / total
        cps, cum = [], 0.0
        for k, lay in enumerate(spec.layers):
            for half in (0, 1):
                cp = Dataset()
                cp.ControlPointIndex = 2 * k + half
                cp.NominalBeamEnergy = lay.energy_mev
                cp.CumulativeMetersetWeight = round(cum, 9)
                cp.NumberOfScanSpotPositions = len(lay.weights)
                xy = np.empty(2 * len(lay.weights))
                xy[0::2], xy[1::2] = lay.x_mm, lay.y_mm
                cp.ScanSpotPositionMap = [float(v) for v in xy]
                w = np.asarray(lay.weights, float) * scale * (1 - half)
                cp.ScanSpotMetersetWeights = [float(v) for v in w]
                if lay.spot_fwhm_mm is not None:
                    cp.ScanningSpotSize = list(lay.spot_fwhm_mm)
                if lay.shifter is not None and half == 0:
                    setting = Dataset()
                    setting.ReferencedRangeShifterNumber = 1
                    for key, value in lay.shifter.items():
                        setattr(setting, key, value)
                    cp.RangeShifterSettingsSequence = Sequence([setting])
                if k == 0 and half == 0:
                    cp.GantryAngle = spec.gantry_deg
                    cp.PatientSupportAngle = spec.couch_deg
                    cp.IsocenterPosition = list(spec.iso_mm)
                    cp.SnoutPosition = 300.0
                cum += float(np.sum(w))
                cps.append(cp)
        cps[-1].CumulativeMetersetWeight = round(final, 9)
        item = Dataset()
        item.BeamNumber = number
        item.BeamName = spec.name
        item.RadiationType = "PROTON"
        item.ScanMode = "MODULATED"
        item.TreatmentDeliveryType = "TREATMENT"
        item.NumberOfRangeShifters = spec.range_shifters
        if spec.range_shifters:
            rs = Dataset()
            rs.RangeShifterNumber = 1
            rs.RangeShifterID = "RS45"
            rs.RangeShifterType = "BINARY"
            item.RangeShifterSequence = Sequence([rs])
        item.FinalCumulativeMetersetWeight = round(final, 9)
        item.NumberOfControlPoints = len(cps)
        item.IonControlPointSequence = Sequence(cps)
        for key, value in spec.extra.items():
            setattr(item, key, value)
        items.append(item)
        ref = Dataset()
        ref.ReferencedBeamNumber = number
        if spec.meterset_mu is not None:
            ref.BeamMeterset = spec.meterset_mu
        refs.append(ref)
    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = fractions
    group.NumberOfBeams = len(items)
    group.ReferencedBeamSequence = Sequence(refs)
    ds.FractionGroupSequence = Sequence([group])
    ds.IonBeamSequence = Sequence(items)
    return ds


def square_layer(energy_mev: float, n: int = 5, spacing_mm: float = 5.0, weight: float = 1.0, **kw) -> Layer:
    """n x n spots centred on the axis, all of one weight."""
    c = (np.arange(n) - (n - 1) / 2) * spacing_mm
    x, y = np.meshgrid(c, c)
    return Layer(energy_mev, x.ravel(), y.ravel(), np.full(n * n, weight), **kw)


def hex_layer(energy_mev: float, rows: int = 4, cols: int = 5, spacing_mm: float = 6.0) -> Layer:
    """Hexagonal lattice (odd rows shifted by half a spacing, rows sqrt(3)/2 apart), weights varying."""
    xs, ys = [], []
    for r in range(rows):
        for c in range(cols):
            xs.append(-12.0 + c * spacing_mm + (0.5 * spacing_mm if r % 2 else 0.0))
            ys.append(-9.0 + r * spacing_mm * np.sqrt(3) / 2)
    xs, ys = np.array(xs), np.array(ys)
    return Layer(energy_mev, xs, ys, 0.5 + np.arange(xs.size) / xs.size)


def _read(ds, patient=None, **kw):
    from sfrt_engine.io.rtionplan_read import read_rtionplan

    return read_rtionplan(ds, patient if patient is not None else water_patient(), **kw)


@pytest.fixture(scope="module")
def pmachine():
    return se.load_machine("proton_generic")


# -- meterset calibration ---------------------------------------------------------------------------------------

def test_protons_per_mu_follows_the_air_stopping_power_of_the_bethe_formula(pmachine):
    """The machine's polynomial S_air against Bethe for dry air (I = 85.7 eV, Z/A = 0.49919; ICRU 37/49), and
    N/MU = C K / (S_air rho e) with C = 3 nC/cm, K = 35.87 eV (MCsquare)."""
    from sfrt_engine.machines.proton import _bethe_stopping_power

    e = np.array([70.0, 100.0, 150.0, 200.0, 230.0])
    s_air = _bethe_stopping_power(e, 85.7, 0.49919)  # MeV cm^2/g
    expected = 3e-9 * 35.87 / (s_air * 1.20479e-3 * 1e6 * 1.602176634e-19)
    np.testing.assert_allclose(pmachine.protons_per_mu(e), expected, rtol=0.02)
    assert 8e7 < pmachine.protons_per_mu(100.0) < 9.5e7  # about 8.7e7 per MU at 100 MeV (MCsquare's generic BDL)
    np.testing.assert_allclose(pmachine.gp_per_mu(e), pmachine.protons_per_mu(e) * 1e-9)


# -- conversion --------------------------------------------------------------------------------------------------

def test_square_layers_become_lattices_with_weights_from_the_beam_meterset(pmachine):
    layers = [square_layer(120.0, n=5, weight=2.0), square_layer(110.0, n=3, spacing_mm=4.0, weight=1.0)]
    ds = plan_dataset([BeamSpec(layers, gantry_deg=90.0, couch_deg=10.0, iso_mm=(5.0, -5.0, 0.0),
                                meterset_mu=80.0, final_weight=1.0)], fractions=18)
    plan = _read(ds)
    assert plan.modality == "proton" and plan.fractions_planned == 18 and plan.beam_meterset_mu == (80.0,)
    assert plan.referenced_structure_set_uid == STRUCT_UID and plan.frame_of_reference_uid == FRAME_UID
    beam = plan.beams[0]
    assert (beam.gantry_deg, beam.couch_deg, beam.isocenter_xyz_mm) == (90.0, 10.0, (5.0, -5.0, 0.0))
    assert [lay.energy_mev for lay in beam.layers] == [120.0, 110.0]
    total = 25 * 2.0 + 9 * 1.0
    first, second = beam.layers
    assert first.weights_gp.shape == (5, 5) and first.spacing_mm == (5.0, 5.0) and first.origin_uv_mm == (-10, -10)
    assert second.weights_gp.shape == (3, 3) and second.spacing_mm == (4.0, 4.0)
    mu = 80.0 * 2.0 / total  # MU of one spot of the first layer
    np.testing.assert_allclose(first.weights_gp, mu * pmachine.gp_per_mu(120.0), rtol=1e-6)
    np.testing.assert_allclose(second.weights_gp, 80.0 / total * pmachine.gp_per_mu(110.0), rtol=1e-6)


def test_dose_of_a_read_plan_is_that_of_the_same_spots_built_directly_and_linear_in_meterset(pmachine):
    patient = water_patient()
    layers = [square_layer(100.0, n=4, spacing_mm=5.0, weight=1.0)]
    plan = _read(plan_dataset([BeamSpec(layers, meterset_mu=50.0)]), patient)
    gp = 50.0 / 16 * pmachine.gp_per_mu(100.0)
    direct = se.plan.ProtonBeam(pmachine, (0.0, 0.0, 0.0), 90.0,
                           (se.plan.SpotLayer(100.0, np.full((4, 4), gp), (5.0, 5.0), (-7.5, -7.5)),))
    d_read = se.compute_dose(list(plan.beams), patient, backend="numpy").gy
    d_direct = se.compute_dose([direct], patient, backend="numpy").gy
    np.testing.assert_allclose(d_read, d_direct, rtol=1e-6, atol=1e-9 * d_direct.max())
    double = _read(plan_dataset([BeamSpec(layers, meterset_mu=100.0)]), patient)
    d_double = se.compute_dose(list(double.beams), patient, backend="numpy").gy
    np.testing.assert_allclose(d_double, 2 * d_read, rtol=1e-6, atol=1e-9 * d_read.max())


def test_hexagonal_and_irregular_spot_maps_keep_every_spot_and_weight(pmachine):
    hexa = hex_layer(130.0)
    rng = np.random.default_rng(3)
    odd = Layer(125.0, rng.uniform(-20, 20, 7), rng.uniform(-20, 20, 7), rng.uniform(0.5, 1.5, 7))
    plan = _read(plan_dataset([BeamSpec([hexa, odd], meterset_mu=60.0)]))
    beam = plan.beams[0]
    hex_layers = [lay for lay in beam.layers if lay.energy_mev == 130.0]
    odd_layers = [lay for lay in beam.layers if lay.energy_mev == 125.0]
    assert len(hex_layers) == 1 and hex_layers[0].spacing_mm[0] == pytest.approx(3.0)  # half the spacing along x
    assert len(odd_layers) == 7  # no lattice fits: one layer per spot
    total = hexa.weights.sum() + odd.weights.sum()
    for layer_list, spec in ((hex_layers, hexa), (odd_layers, odd)):
        got = []
        for lay in layer_list:
            pu, pv = lay.positions_uv_mm()
            rows, cols = np.nonzero(lay.weights_gp)
            got += [(pu[c], pv[r], lay.weights_gp[r, c]) for r, c in zip(rows, cols)]
        got.sort()
        want = sorted(zip(spec.x_mm, spec.y_mm, spec.weights * 60.0 / total * pmachine.gp_per_mu(spec.energy_mev)))
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6, atol=0.011)


def test_range_shifter_thickness_from_the_plan_or_the_machine(pmachine):
    layers = [square_layer(80.0, n=2, shifter={"RangeShifterSetting": "IN",
                                               "RangeShifterWaterEquivalentThickness": 30.0}),
              square_layer(75.0, n=2, shifter={"RangeShifterSetting": "IN"}),
              square_layer(72.0, n=2),  # carried forward
              square_layer(90.0, n=2, shifter={"RangeShifterSetting": "OUT"})]
    plan = _read(plan_dataset([BeamSpec(layers, range_shifters=1)]))
    assert [lay.range_shifter_mm for lay in plan.beams[0].layers] == [30.0, pmachine.range_shifter_mm,
                                                                      pmachine.range_shifter_mm, 0.0]


def test_a_range_shifter_of_unknown_thickness_on_a_machine_without_one_is_refused(pmachine):
    import dataclasses

    bare = dataclasses.replace(pmachine, metadata={k: v for k, v in pmachine.metadata.items() if k != "range_shifter"})
    ds = plan_dataset([BeamSpec([square_layer(80.0, n=2, shifter={"RangeShifterSetting": "IN"})], range_shifters=1)])
    with pytest.raises(se.io.DicomError, match="control point 0: range shifter 'RS45'.*RangeShifterWaterEquivalent"):
        _read(ds, machine=bare)


def test_energies_off_the_machine_table_get_rows_of_the_same_model(pmachine):
    from sfrt_engine.machines.proton import _energy_tables

    assert pmachine.with_energies([120.0, 150.0]) is pmachine
    plan = _read(plan_dataset([BeamSpec([square_layer(150.3, n=2), square_layer(120.0, n=2)])]))
    m = plan.beams[0].machine
    assert m is not pmachine and 150.3 in m.energies_mev and m.energies_mev.size == pmachine.energies_mev.size + 1
    assert np.all(np.diff(m.energies_mev) > 0) and np.all(np.diff(m.range_mm) > 0)
    k = m.energy_index(150.3)
    assert pmachine.range_mm[pmachine.energy_index(150.0)] < m.range_mm[k] < pmachine.range_mm[
        pmachine.energy_index(151.0)]
    # the machine's own rows are untouched, and the model reproduces them (same code path as the build)
    np.testing.assert_array_equal(m.idd_gy_mm2_per_gp[m.energy_index(151.0)],
                                  pmachine.idd_gy_mm2_per_gp[pmachine.energy_index(151.0)])
    depth = pmachine.depth_step_mm * np.arange(pmachine.idd_gy_mm2_per_gp.shape[1])
    _, idd, sigma, _ = _energy_tables(np.array([150.0]), depth, pmachine.metadata)
    np.testing.assert_allclose(idd[0], pmachine.idd_gy_mm2_per_gp[pmachine.energy_index(150.0)], rtol=1e-12)
    np.testing.assert_allclose(sigma[0], pmachine.sigma_mm[pmachine.energy_index(150.0)], rtol=1e-12)
    # the Bragg peak of the 150.3 MeV row lies between those of 150 and 151 MeV
    peak = [depth[np.argmax(row)] for row in (pmachine.idd_gy_mm2_per_gp[pmachine.energy_index(150.0)],
                                              m.idd_gy_mm2_per_gp[k],
                                              pmachine.idd_gy_mm2_per_gp[pmachine.energy_index(151.0)])]
    assert peak[0] <= peak[1] <= peak[2] and peak[0] < peak[2]
    with pytest.raises(se.MachineDataError, match="250"):
        pmachine.with_energies([250.0])


def test_scanning_spot_size_replaces_the_machines_spot_size_in_air(pmachine):
    from sfrt_engine.io.rtionplan_read import FWHM_PER_SIGMA

    k = pmachine.energy_index(150.0)
    own = pmachine.sigma_air_mm[k] * FWHM_PER_SIGMA
    same = _read(plan_dataset([BeamSpec([square_layer(150.0, n=2, spot_fwhm_mm=(own, own))])]))
    assert same.beams[0].machine is pmachine
    wide = _read(plan_dataset([BeamSpec([square_layer(150.0, n=2, spot_fwhm_mm=(15.0, 15.0))])]))
    m = wide.beams[0].machine
    assert m is not pmachine and m.sigma_air_mm[k] == pytest.approx(15.0 / FWHM_PER_SIGMA)
    # total sigma: the in-air part replaced, multiple scattering kept
    mcs2 = pmachine.sigma_mm[k] ** 2 - pmachine.sigma_air_mm[k] ** 2
    np.testing.assert_allclose(m.sigma_mm[k], np.sqrt(mcs2 + (15.0 / FWHM_PER_SIGMA) ** 2))
    np.testing.assert_array_equal(m.sigma_mm[k + 1], pmachine.sigma_mm[k + 1])


def test_read_rtplan_file_round_trip_through_disk(tmp_path):
    ds = plan_dataset([BeamSpec([square_layer(120.0, n=2)])])
    path = tmp_path / "RP.dcm"
    ds.save_as(path, enforce_file_format=True)
    import pydicom

    plan = _read(pydicom.dcmread(path), path=path)
    assert plan.beams[0].n_spots == 4


# -- bad input ---------------------------------------------------------------------------------------------------

def _bad(case: str):
    """(dataset, patient, words the error must contain) for one bad case."""
    patient = water_patient()
    good = [square_layer(120.0, n=2), square_layer(110.0, n=2)]
    if case == "energy outside the machine":
        return plan_dataset([BeamSpec([square_layer(250.0, n=2)])]), patient, ["beam 1", "control point 0",
                                                                             "NominalBeamEnergy", "250"]
    if case == "non-monotonic cumulative meterset":
        ds = plan_dataset([BeamSpec(good)])
        ds.IonBeamSequence[0].IonControlPointSequence[2].CumulativeMetersetWeight = 1.0
        return ds, patient, ["beam 1", "control point 2", "CumulativeMetersetWeight"]
    if case == "missing beam meterset":
        return plan_dataset([BeamSpec(good, meterset_mu=None)]), patient, ["beam 1", "BeamMeterset"]
    if case == "frame of reference differs":
        return plan_dataset([BeamSpec(good)], frame_uid="1.2.3.4"), patient, ["FrameOfReferenceUID", "1.2.3.4"]
    if case == "isocentre outside the CT":
        return plan_dataset([BeamSpec(good, iso_mm=(0.0, 0.0, 500.0))]), patient, ["beam 1", "control point 0",
                                                                                 "IsocenterPosition"]
    if case == "block":
        return plan_dataset([BeamSpec(good, extra={"NumberOfBlocks": 1})]), patient, ["beam 1", "NumberOfBlocks"]
    if case == "compensator":
        return plan_dataset([BeamSpec(good, extra={"NumberOfCompensators": 1})]), patient, ["beam 1",
                                                                                           "NumberOfCompensators"]
    if case == "range modulator":
        return plan_dataset([BeamSpec(good, extra={"NumberOfRangeModulators": 1})]), patient, [
            "beam 1", "NumberOfRangeModulators"]
    if case == "uniform scanning":
        return plan_dataset([BeamSpec(good, extra={"ScanMode": "UNIFORM"})]), patient, ["beam 1", "ScanMode"]
    if case == "line scanning":
        return plan_dataset([BeamSpec(good, extra={"ScanMode": "MODULATED_SPEC",
                                                   "ModulatedScanModeType": "ONTHEFLY"})]), patient, [
            "beam 1", "ModulatedScanModeType"]
    if case == "absent structure set":
        return plan_dataset([BeamSpec(good)], struct_uid="1.2.3.99"), patient, ["ReferencedStructureSetSequence",
                                                                             "1.2.3.99"]
    if case == "carbon ions":
        return plan_dataset([BeamSpec(good, extra={"RadiationType": "ION"})]), patient, ["beam 1", "RadiationType"]
    if case == "gantry moves":
        ds = plan_dataset([BeamSpec(good)])
        ds.IonBeamSequence[0].IonControlPointSequence[2].GantryAngle = 95.0
        return ds, patient, ["beam 1", "control point 2", "GantryAngle"]
    if case == "weights disagree with the cumulative meterset":
        ds = plan_dataset([BeamSpec(good)])
        ds.IonBeamSequence[0].IonControlPointSequence[0].ScanSpotMetersetWeights = [5.0, 1.0, 1.0, 1.0]
        return ds, patient, ["beam 1", "control point 0", "ScanSpotMetersetWeights"]
    if case == "spot map of the wrong length":
        ds = plan_dataset([BeamSpec(good)])
        ds.IonBeamSequence[0].IonControlPointSequence[2].ScanSpotPositionMap = [0.0, 1.0, 2.0]
        return ds, patient, ["beam 1", "control point 2", "ScanSpotPositionMap"]
    if case == "not an ion plan":
        ds = plan_dataset([BeamSpec(good)])
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
        return ds, patient, ["SOPClassUID", "RT Ion Plan"]
    raise AssertionError(case)


BAD_CASES = ["energy outside the machine", "non-monotonic cumulative meterset", "missing beam meterset", "frame of reference differs",
             "isocentre outside the CT", "block", "compensator", "range modulator", "uniform scanning",
             "line scanning", "absent structure set", "carbon ions", "gantry moves",
             "weights disagree with the cumulative meterset", "spot map of the wrong length", "not an ion plan"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_plans_raise_a_dicom_error_naming_beam_control_point_and_attribute(case):
    ds, patient, words = _bad(case)
    with pytest.raises(se.io.DicomError) as info:
        _read(ds, patient)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


def test_a_patient_without_a_frame_of_reference_is_refused():
    patient = se.phantoms.water_box((60.0,) * 3, 5.0)
    with pytest.raises(se.io.DicomError, match="frame of reference"):
        _read(plan_dataset([BeamSpec([square_layer(120.0, n=2)])]), patient)


def test_rows_with_their_own_offsets_become_one_lattice_per_row():
    offsets = [0.0, 1.2345, 2.7183]  # no common lattice across rows, a regular one along each
    xs = np.concatenate([off + 5.0 * np.arange(6) for off in offsets])
    ys = np.repeat([-5.0, 0.0, 5.0], 6)
    plan = _read(plan_dataset([BeamSpec([Layer(120.0, xs, ys, np.ones(18))])]))
    layers = plan.beams[0].layers
    assert len(layers) == 3 and all(lay.weights_gp.shape == (1, 6) for lay in layers)
    starts = sorted(lay.origin_uv_mm[0] for lay in layers)
    np.testing.assert_allclose(starts, offsets, atol=1e-5)


def test_a_plan_of_clinical_size_reads_quickly():
    """3 fields x 30 layers x 500 spots (hexagonal lattices) in well under a few seconds."""
    import time

    beams = [BeamSpec([hex_layer(float(e), rows=20, cols=25, spacing_mm=5.0) for e in range(100, 130)],
                      gantry_deg=g, meterset_mu=300.0, final_weight=1.0) for g in (0.0, 120.0, 240.0)]
    ds = plan_dataset(beams)
    patient = water_patient(300.0, 10.0)
    start = time.perf_counter()
    plan = _read(ds, patient)
    seconds = time.perf_counter() - start
    assert sum(b.n_spots for b in plan.beams) == 3 * 30 * 500
    assert [len(b.layers) for b in plan.beams] == [30, 30, 30]
    assert seconds < 5.0
