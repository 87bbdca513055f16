"""Report fields that say what was applied: resolved alpha/beta with voxel fractions, volumes, vertex dose."""

from __future__ import annotations

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.biology import alpha_beta_map
from sfrt_engine.reporting import (
    describe_resolved_alpha_beta,
    resolved_alpha_beta,
    structure_volumes,
    vertex_dose_meaning,
)


@pytest.fixture
def overlapping():
    """A box whose BODY holds a GTV block, a SKIN block and a FEMUR block that overlaps the GTV."""
    patient = se.phantoms.water_box((40.0, 40.0, 20.0), 2.0)  # 20 x 20 x 10 voxels of 8 mm^3
    shape = patient.grid.shape_zyx
    s = patient.structures
    s["BODY"] = np.ones(shape, bool)
    gtv = np.zeros(shape, bool)
    gtv[:, 2:8, 2:8] = True  # 10 * 36 = 360 voxels
    skin = np.zeros(shape, bool)
    skin[:, 15:20, :] = True  # 10 * 5 * 20 = 1000 voxels
    femur = np.zeros(shape, bool)
    femur[:, 6:10, 6:10] = True  # 160 voxels, 40 of them in the GTV (rows 6-7, columns 6-7)
    s["GTV"], s["SKIN"], s["FEMUR"] = gtv, skin, femur
    s["EMPTY"] = np.zeros(shape, bool)
    return patient


def test_every_structure_is_listed_with_the_fractions_of_its_values(overlapping):
    resolved = resolved_alpha_beta(overlapping, alpha_beta_map(overlapping))
    # the box's own structures plus ours; EMPTY has no voxel, so no value
    assert set(resolved) == set(overlapping.structures) and resolved["EMPTY"] is None
    assert resolved["GTV"] == 4.0 and resolved["SKIN"] == 2.0
    # FEMUR: GTV wins the 40 shared voxels (targets before organs at risk), 120 keep FEMUR's 3 Gy
    assert resolved["FEMUR"] == [{"alpha_beta_gy": 3.0, "voxel_fraction": 0.75},
                                 {"alpha_beta_gy": 4.0, "voxel_fraction": 0.25}]
    # BODY (4000 voxels): 360 GTV at 4 Gy, 1000 SKIN at 2 Gy, the other 2640 at BODY's 3 Gy
    body = {v["alpha_beta_gy"]: v["voxel_fraction"] for v in resolved["BODY"]}
    assert body == pytest.approx({3.0: 2640 / 4000, 2.0: 1000 / 4000, 4.0: 360 / 4000}, abs=1e-15)
    assert [v["alpha_beta_gy"] for v in resolved["BODY"]] == [3.0, 2.0, 4.0]  # largest fraction first


def test_user_values_are_what_the_report_resolves(overlapping):
    resolved = resolved_alpha_beta(overlapping, alpha_beta_map(overlapping, {"FEMUR": 1.5, "GTV": 10.0}))
    assert resolved["GTV"] == 10.0
    assert resolved["FEMUR"] == [{"alpha_beta_gy": 1.5, "voxel_fraction": 0.75},
                                 {"alpha_beta_gy": 10.0, "voxel_fraction": 0.25}]


def test_description_names_mixed_values_with_percentages():
    text = describe_resolved_alpha_beta({"GTV": 4.0, "EMPTY": None, "BODY": [
        {"alpha_beta_gy": 3.0, "voxel_fraction": 0.66}, {"alpha_beta_gy": 2.0, "voxel_fraction": 0.34}]})
    assert text == "GTV 4 Gy, BODY 3 Gy (66.0 %) / 2 Gy (34.0 %)"
    assert se.io.describe_alpha_beta({"GTV": 4.0, "SKIN": 2.0}) == "GTV 4 Gy, SKIN 2 Gy"


def test_volumes_are_voxel_counts_times_the_voxel_volume(overlapping):
    volumes = structure_volumes(overlapping)
    assert volumes["GTV"] == {"volume_cc": 360 * 8 / 1000, "voxels": 360}
    assert volumes["EMPTY"] == {"volume_cc": 0.0, "voxels": 0}


def test_vertex_dose_meaning_states_the_crt_share_in_integrated_mode():
    integrated = vertex_dose_meaning("integrated", 12.0, 3.2, "Gy")
    assert "including that day's CRT fraction" in integrated and "3.20 Gy CRT + 8.80 Gy boost" in integrated
    separate = vertex_dose_meaning("separate", 12.0, 3.2, "Gy(RBE)")
    assert "boost session alone" in separate and "12 Gy(RBE)" in separate


@pytest.fixture(scope="module")
def phantom_run():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    return se.run_comparison(patient, se.ComparisonSettings(backend="cpp", optimiser_iterations=3))


def test_report_of_a_run_lists_what_was_applied(phantom_run):
    report = phantom_run.report
    s = report["settings"]
    patient = phantom_run.prepared.patient
    resolved = s["alpha_beta_resolved_gy"]
    assert set(resolved) == {n for n in patient.structures if not n.startswith("_")}
    assert resolved["GTV"] == 4.0 and resolved["VERTICES"] == 4.0
    # BODY holds every other structure: its fractions are the voxel shares that precedence gives them
    n_body = int(patient.structures["BODY"].sum())
    body = {v["alpha_beta_gy"]: v["voxel_fraction"] for v in resolved["BODY"]}
    skin_only = patient.structures["SKIN"] & ~patient.structures["PTV"]
    assert body[2.0] == pytest.approx(skin_only.sum() / n_body, abs=1e-12)
    assert sum(body.values()) == pytest.approx(1.0, abs=1e-12)
    assert report["structures"]["GTV"]["volume_cc"] == pytest.approx(patient.structures.volume_cc("GTV"), abs=1e-3)
    assert s["dose_quantity"] == {"quantity": "physical dose", "unit": "Gy", "rbe": 1.0,
                                  "model": "photons: absorbed dose, no RBE"}
    crt_mean = phantom_run.prepared.crt_vertex_mean_gy()
    assert f"{crt_mean:.2f} Gy CRT" in s["vertex_dose_meaning"]
    assert report["components"]["CRT"]["rbe"] == 1.0
