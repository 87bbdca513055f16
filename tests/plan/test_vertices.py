"""Vertex placement (plan/vertices.py) against its constraints, checked by brute force.

Issue 4 / DESIGN 5.5: centres lie at least ``gtv_margin_mm + radius`` inside the GTV surface
(from every voxel centre outside the GTV) and at least ``oar_margin_mm + radius`` from every
voxel centre of each avoided structure; centre-to-centre >= spacing; the lattice offset is
searched for the most vertices; the result is deterministic; VERTICES and VALLEY (GTV voxels
farther than radius + 5 mm from every centre) are added; if nothing fits, a PlanError names
the GTV size and the constraints.

The brute-force checks measure distances to *every* voxel centre of the grid, independent of
the nearest-boundary trees the implementation uses.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import sfrt_engine as se
from sfrt_engine import PlanError, StructureError
from sfrt_engine.plan import place_vertices
from sfrt_engine.plan.vertices import VALLEY_MARGIN_MM, lattice_points

# Distances are square roots of sums of three squared float64 differences of coordinates
# below 1 m: round-off is ~1e-13 mm. 1e-9 mm is far below any physical scale and far above it.
DIST_TOL_MM = 1e-9
# lattice points are integer combinations of spacing-sized vectors, shifted and rotated:
# pairwise distances equal the spacing to ~1e-13 mm; the issue allows 1e-6
SPACING_TOL_MM = 1e-6

GTV_CENTRE = (5.2, -3.7, 1.9)  # off the voxel grid, so nothing lines up by accident


def _ellipsoid_patient(semi_axes, voxel_mm, avoid_kind=None, avoid_pos=1.0, avoid_size_mm=10.0) -> se.Patient:
    """Ellipsoid GTV (and optionally a structure FEMUR along z) on a grid 15 mm larger than the GTV."""
    sa = np.asarray(semi_axes, float)
    grid = se.Grid.from_extent(2 * (sa + 15.0), voxel_mm, GTV_CENTRE)
    z, y, x = grid.coordinates_mm()
    cx, cy, cz = GTV_CENTRE
    gtv = ((x - cx) / sa[0]) ** 2 + ((y - cy) / sa[1]) ** 2 + ((z - cz) / sa[2]) ** 2 <= 1.0
    structures = {"GTV": gtv}
    if avoid_kind is not None:
        # centred avoid_pos semi-axes to the +x side: overlapping the GTV (< 1) or beside it (> 1)
        ax = cx + avoid_pos * sa[0]
        if avoid_kind == "cylinder":
            m = (x - ax) ** 2 + (y - cy) ** 2 <= avoid_size_mm ** 2
        else:  # box
            m = (np.abs(x - ax) <= avoid_size_mm) & (np.abs(y - cy) <= 0.5 * sa[1])
        structures["FEMUR"] = np.broadcast_to(m, grid.shape_zyx).copy()
    return se.Patient(grid, np.zeros(grid.shape_zyx), structures)


def _voxel_centres(grid: se.Grid, mask: np.ndarray) -> np.ndarray:
    iz, iy, ix = np.nonzero(mask)
    return np.stack([grid.axis_mm("x")[ix], grid.axis_mm("y")[iy], grid.axis_mm("z")[iz]], axis=1)


def _min_distance(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Brute force: distance from each point to its nearest target point (inf if no targets)."""
    if targets.shape[0] == 0:
        return np.full(points.shape[0], np.inf)
    return np.array([np.sqrt(((targets - p) ** 2).sum(axis=1)).min() for p in points])


def _clearly_allowed(patient, points, gtv_margin, oar_margin, radius, avoid=("FEMUR",)) -> np.ndarray:
    """Points that satisfy every constraint with DIST_TOL_MM to spare (and lie in a GTV voxel of the grid)."""
    grid = patient.grid
    gtv = patient.structures["GTV"]
    if points.shape[0] == 0:
        return np.zeros(0, bool)
    f = (points - np.array(grid.origin_xyz_mm)) / np.array(grid.spacing_xyz_mm)
    idx = np.rint(f).astype(int)
    in_grid = np.all((idx >= 0) & (idx < np.array(grid.shape_xyz)), axis=1)
    idx = np.clip(idx, 0, np.array(grid.shape_xyz) - 1)
    ok = in_grid & gtv[idx[:, 2], idx[:, 1], idx[:, 0]]
    inside = points[ok]  # measure distances only for points in a GTV voxel (the rest fail anyway)
    good = _min_distance(inside, _voxel_centres(grid, ~gtv)) >= gtv_margin + radius + DIST_TOL_MM
    for name in avoid:
        if name in patient.structures:
            good &= _min_distance(inside, _voxel_centres(grid, patient.structures[name])) >= (
                oar_margin + radius + DIST_TOL_MM)
    ok[ok] = good
    return ok


def _check_placement(patient, v, *, gtv_margin, oar_margin, diameter, spacing, avoid=("FEMUR",)):
    """Every constraint of the issue, by brute force over all voxel centres."""
    grid = patient.grid
    gtv = patient.structures["GTV"]
    c = v.centers_xyz_mm
    r = 0.5 * diameter
    assert c.ndim == 2 and c.shape[1] == 3 and v.count == c.shape[0] >= 1
    assert v.radius_mm == r and v.diameter_mm == diameter and v.spacing_mm == spacing
    # deep inside the GTV surface
    d_out = _min_distance(c, _voxel_centres(grid, ~gtv))
    assert np.all(d_out >= gtv_margin + r - DIST_TOL_MM), d_out.min()
    # away from each avoided structure
    for name in avoid:
        d_oar = _min_distance(c, _voxel_centres(grid, patient.structures[name]))
        assert np.all(d_oar >= oar_margin + r - DIST_TOL_MM), d_oar.min()
    # pairwise spacing
    if v.count > 1:
        pair = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
        pair = pair[np.triu_indices(v.count, 1)]
        assert pair.min() >= spacing - SPACING_TOL_MM
    # sorted by z, then y, then x
    assert np.array_equal(np.lexsort((c[:, 0], c[:, 1], c[:, 2])), np.arange(v.count))
    # masks: vertex i = voxel centres within the radius of centre i; VALLEY = GTV farther than r + 5 mm
    z, y, x = grid.coordinates_mm()
    dist = np.stack([np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) for cx, cy, cz in c])
    nearest = dist.min(axis=0)
    clear = (np.abs(nearest - r) > DIST_TOL_MM) & (np.abs(nearest - r - VALLEY_MARGIN_MM) > DIST_TOL_MM)
    vertices = nearest <= r
    valley = gtv & (nearest > r + VALLEY_MARGIN_MM)
    assert np.array_equal(v.mask[clear], vertices[clear])
    assert np.array_equal(patient.structures["VERTICES"][clear], vertices[clear])
    assert np.array_equal(patient.structures["VALLEY"][clear], valley[clear])
    assert VALLEY_MARGIN_MM == 5.0
    for i in range(v.count):
        own = v.vertex_mask(i)
        assert own.any(), f"vertex {i} has no voxel"
        assert np.all(dist[i][own] <= r + DIST_TOL_MM)
    assert not (v.mask & ~gtv).any()
    for name in avoid:
        assert not (v.mask & patient.structures[name]).any()
    assert not (patient.structures["VALLEY"] & patient.structures["VERTICES"]).any()


def _lattice_is_regular(v):
    """Layers along z are whole multiples of the layer distance (rotation is about z)."""
    a = v.spacing_mm
    layer = a * np.sqrt(2.0 / 3.0) if v.lattice == "hcp" else a
    k = (v.centers_xyz_mm[:, 2] - v.centers_xyz_mm[0, 2]) / layer
    np.testing.assert_allclose(k, np.rint(k), atol=1e-9)
    if v.lattice == "cubic" and v.rotation_deg == 0.0:
        k = (v.centers_xyz_mm - v.centers_xyz_mm[0]) / a
        np.testing.assert_allclose(k, np.rint(k), atol=1e-9)


@st.composite
def vertex_cases(draw):
    diameter = draw(st.floats(10.0, 20.0))
    return {
        "semi_axes": tuple(draw(st.floats(25.0, 60.0)) for _ in range(3)),
        "voxel_mm": draw(st.sampled_from([3.0, 3.5, 4.0])),
        "diameter": diameter,
        "spacing": draw(st.floats(max(20.0, diameter), 40.0)),
        "gtv_margin": draw(st.floats(0.0, 8.0)),
        "oar_margin": draw(st.floats(0.0, 12.0)),
        "lattice": draw(st.sampled_from(["hcp", "cubic"])),
        "avoid_kind": draw(st.sampled_from(["box", "cylinder"])),
        "avoid_pos": draw(st.floats(0.3, 1.5)),
        "avoid_size": draw(st.floats(5.0, 20.0)),
        # a coarse offset search keeps each example well under a second; the constraints and the
        # zero-offset comparison below hold for any search resolution
        "offset_steps": draw(st.sampled_from([2, 3])),
        "search_rotation": draw(st.booleans()),
    }


def _place(case):
    patient = _ellipsoid_patient(case["semi_axes"], case["voxel_mm"], case["avoid_kind"], case["avoid_pos"],
                                 case["avoid_size"])
    v = place_vertices(patient, "GTV", diameter_mm=case["diameter"], spacing_mm=case["spacing"],
                       lattice=case["lattice"], gtv_margin_mm=case["gtv_margin"], oar_margin_mm=case["oar_margin"],
                       avoid=("FEMUR",), search_rotation=case["search_rotation"],
                       offset_steps=case["offset_steps"], rotation_steps=2)
    return patient, v


@settings(max_examples=15, deadline=None, database=None)
@given(case=vertex_cases())
def test_vertex_constraints_property(case):
    patient = _ellipsoid_patient(case["semi_axes"], case["voxel_mm"], case["avoid_kind"], case["avoid_pos"],
                                 case["avoid_size"])
    gtv = patient.structures["GTV"]
    r = 0.5 * case["diameter"]
    # the search includes the unshifted, unrotated lattice through the GTV centroid, so it must fit at
    # least as many vertices as that lattice allows
    centroid = _voxel_centres(patient.grid, gtv).mean(axis=0)
    bounds = patient.grid.bounds_xyz_mm
    candidates = lattice_points(case["lattice"], case["spacing"], bounds[:, 0], bounds[:, 1],
                                center_xyz=centroid)
    floor = int(_clearly_allowed(patient, candidates, case["gtv_margin"], case["oar_margin"], r).sum())
    try:
        patient, v = _place(case)
    except PlanError as exc:
        assert floor == 0, f"PlanError although {floor} unshifted lattice points fit: {exc}"
        assert "'GTV'" in str(exc)
        event("nothing fits")
        return
    _check_placement(patient, v, gtv_margin=case["gtv_margin"], oar_margin=case["oar_margin"],
                     diameter=case["diameter"], spacing=case["spacing"])
    _lattice_is_regular(v)
    event(f"placed {'1' if v.count == 1 else 'several'}; unshifted lattice fits {'0' if floor == 0 else 'some'}")
    assert v.count >= floor
    assert v.lattice == case["lattice"] and v.target == "GTV"
    # deterministic: the same input on a freshly built patient gives identical vertices
    patient2, v2 = _place(case)
    assert np.array_equal(v.centers_xyz_mm, v2.centers_xyz_mm)
    assert np.array_equal(v.offset_xyz_mm, v2.offset_xyz_mm) and v.rotation_deg == v2.rotation_deg
    assert np.array_equal(v.labels, v2.labels)
    assert np.array_equal(patient.structures["VALLEY"], patient2.structures["VALLEY"])


# -- the built-in phantom with the defaults ----------------------------------------------------

@pytest.fixture(scope="module")
def thigh_placement():
    # 5 mm voxels keep this fast; the constraints do not depend on the voxel size
    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    return patient, place_vertices(patient)


def test_default_placement_on_sarcoma_phantom(thigh_placement):
    patient, v = thigh_placement
    # defaults of the issue: 15 mm spheres, 30 mm hcp, 5 mm GTV and 10 mm OAR margins, avoiding FEMUR and SKIN
    assert (v.diameter_mm, v.spacing_mm, v.lattice) == (15.0, 30.0, "hcp")
    assert v.constraints["gtv_margin_mm"] == 5.0 and v.constraints["oar_margin_mm"] == 10.0
    assert v.constraints["avoid"] == ["FEMUR", "SKIN"]
    assert v.count >= 2  # a 9 x 8 x 12 cm tumour holds several 30 mm-spaced vertices
    _check_placement(patient, v, gtv_margin=5.0, oar_margin=10.0, diameter=15.0, spacing=30.0,
                     avoid=("FEMUR", "SKIN"))
    _lattice_is_regular(v)
    assert patient.structures["VALLEY"].any()
    d = v.to_dict()
    assert d["count"] == v.count and len(d["centers_xyz_mm"]) == v.count


def test_default_placement_is_deterministic(thigh_placement):
    _, v = thigh_placement
    again = place_vertices(se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0))
    assert np.array_equal(v.centers_xyz_mm, again.centers_xyz_mm)
    assert np.array_equal(v.labels, again.labels)


def test_rotation_search_fits_at_least_as_many():
    patient = _ellipsoid_patient((40.0, 30.0, 35.0), 4.0)
    plain = place_vertices(patient, avoid=(), offset_steps=3, add_structures=False)
    rotated = place_vertices(patient, avoid=(), offset_steps=3, search_rotation=True, rotation_steps=3,
                             add_structures=False)
    assert rotated.count >= plain.count  # rotation 0 is one of the angles searched
    assert rotated.rotation_deg in (0.0, 20.0, 40.0)  # hcp period 60 deg in 3 steps


def test_add_structures_false_leaves_patient_alone():
    patient = _ellipsoid_patient((30.0, 30.0, 30.0), 4.0)
    v = place_vertices(patient, avoid=(), spacing_mm=30.0, add_structures=False)
    assert v.count >= 1
    assert set(patient.structures) == {"GTV"}


# -- nothing fits, and argument errors ---------------------------------------------------------

def test_tiny_gtv_raises_plan_error_naming_its_size():
    # sphere of radius 8 mm at 2 mm voxels: centres need 5 + 7.5 = 12.5 mm of GTV around them
    grid = se.Grid.from_extent((62.0, 62.0, 62.0), 2.0, (1.0, 1.0, 1.0))  # 31 voxels: one centred
    z, y, x = grid.coordinates_mm()
    gtv = (x - 1.0) ** 2 + (y - 1.0) ** 2 + (z - 1.0) ** 2 <= 8.0 ** 2
    femur = np.zeros(grid.shape_zyx, bool)
    femur[:, :, :2] = True
    patient = se.Patient(grid, np.zeros(grid.shape_zyx), {"GTV": gtv, "FEMUR": femur})
    volume_cc = gtv.sum() * 8.0 / 1000.0
    with pytest.raises(PlanError) as info:
        place_vertices(patient, "GTV", avoid=("FEMUR",))
    msg = str(info.value)
    # voxel centres at -8..8 mm from the centre on each axis: 9 voxels of 2 mm = 18 mm across
    assert "'GTV'" in msg and "18 x 18 x 18 mm" in msg
    assert f"{volume_cc:.1f} cc" in msg
    assert "12.5 mm inside" in msg and "17.5 mm from FEMUR" in msg  # gtv and oar margin + radius
    assert "VERTICES" not in patient.structures


@pytest.mark.parametrize("kwargs, match", [
    ({"diameter_mm": 0.0}, "diameter_mm"),
    ({"diameter_mm": float("nan")}, "diameter_mm"),
    ({"spacing_mm": -30.0}, "spacing_mm"),
    ({"spacing_mm": 10.0, "diameter_mm": 15.0}, "overlap"),
    ({"gtv_margin_mm": -1.0}, "gtv_margin_mm"),
    ({"oar_margin_mm": float("inf")}, "oar_margin_mm"),
    ({"lattice": "fcc"}, "lattice"),
    ({"offset_steps": 0}, "offset_steps"),
])
def test_argument_errors(kwargs, match):
    patient = _ellipsoid_patient((30.0, 30.0, 30.0), 4.0)
    with pytest.raises(PlanError, match=match):
        place_vertices(patient, avoid=(), **kwargs)


def test_missing_or_empty_structures():
    patient = _ellipsoid_patient((30.0, 30.0, 30.0), 4.0)
    with pytest.raises(StructureError, match="FEMUR"):
        place_vertices(patient, avoid=("FEMUR",))
    with pytest.raises(StructureError, match="CTV"):
        place_vertices(patient, "CTV", avoid=())
    patient.structures["EMPTY"] = np.zeros(patient.grid.shape_zyx, bool)
    with pytest.raises(PlanError, match="'EMPTY' is empty"):
        place_vertices(patient, "EMPTY", avoid=())


# -- lattice_points ----------------------------------------------------------------------------

@pytest.mark.parametrize("lattice, neighbours", [("hcp", 12), ("cubic", 6)])
def test_lattice_points_geometry(lattice, neighbours):
    a = 20.0
    lo, hi = np.array([-70.0, -60.0, -50.0]), np.array([70.0, 60.0, 50.0])
    pts = lattice_points(lattice, a, lo, hi)
    assert np.all((pts >= lo) & (pts <= hi))
    assert np.isclose(np.abs(pts).sum(axis=1), 0.0).any()  # centre point (offset 0) is a lattice point
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    assert d.min() == pytest.approx(a, abs=SPACING_TOL_MM)
    # points farther than a from every face have all their nearest neighbours inside the box
    interior = np.all((pts - lo > a + 1) & (hi - pts > a + 1), axis=1)
    assert interior.any()
    assert np.all(np.sum(np.abs(d[interior] - a) < SPACING_TOL_MM, axis=1) == neighbours)
    if lattice == "hcp":
        # ABAB stacking: each point has a twin two layers up, 2 a sqrt(2/3) directly above
        up = pts[interior] + np.array([0.0, 0.0, 2 * a * np.sqrt(2.0 / 3.0)])
        ok = up[:, 2] <= hi[2]
        assert ok.any()
        assert np.all(np.min(np.sqrt(((up[ok][:, None] - pts[None]) ** 2).sum(-1)), axis=1) < SPACING_TOL_MM)
    # no hole in the box: random points lie within the covering radius of the lattice
    # (a sqrt(3)/2 for the cubic lattice; a is a loose bound for hcp)
    probe = np.random.default_rng(7).uniform(lo + a, hi - a, size=(200, 3))
    gap = np.sqrt(((probe[:, None] - pts[None]) ** 2).sum(-1)).min(axis=1)
    assert gap.max() <= (a * np.sqrt(3.0) / 2 if lattice == "cubic" else a) + 1e-9


def test_lattice_points_offset_and_rotation():
    a, offset, centre = 25.0, (3.0, 4.0, 5.0), (10.0, -5.0, 2.0)
    t = np.deg2rad(30.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    for lattice in ("hcp", "cubic"):
        pts = lattice_points(lattice, a, (-80, -80, -80), (80, 80, 80), offset, 30.0, centre)
        # the lattice origin moves to centre + R offset; spacing is unchanged by the rotation
        anchor = np.array(centre) + rot @ np.array(offset)
        assert np.sqrt(((pts - anchor) ** 2).sum(1)).min() < SPACING_TOL_MM
        d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        assert d.min() == pytest.approx(a, abs=SPACING_TOL_MM)
    with pytest.raises(PlanError, match="lattice"):
        lattice_points("bcc", a, (-1, -1, -1), (1, 1, 1))
