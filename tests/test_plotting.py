"""Figures: lazy matplotlib, display geometry, the figures asked for, and no overlapping text on any case."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.cases import prepare_dicom_case
from sfrt_engine.cli import main
from sfrt_engine.plotting import FIGURES, comparison_figure, parse_plots, plane, vertex_planes

FAST = ["--spacing", "5", "--backend", "cpp", "--optimiser-iterations", "3"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def _cpp():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(f"cpp backend unavailable: {reason}")


def test_importing_the_engine_does_not_import_matplotlib():
    code = "import sys, sfrt_engine, sfrt_engine.plotting; assert 'matplotlib' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parse_plots():
    assert parse_plots("all") == tuple(FIGURES)
    assert parse_plots("none") == ()
    assert parse_plots("dvh, dose") == ("dose", "dvh")  # in FIGURES order
    with pytest.raises(ValueError, match="'slices'.*dose, eqd2, difference, profile, dvh"):
        parse_plots("dose,slices")


def test_planes_follow_the_radiological_display_convention():
    grid = se.Grid((4, 3, 2), (2.0, 3.0, 5.0), (-1.0, -3.0, 10.0))  # shape z, y, x; spacing x, y, z
    volume = np.arange(24).reshape(4, 3, 2)
    axial, coronal, sagittal = plane(grid, "axial", 2), plane(grid, "coronal", 1), plane(grid, "sagittal", 0)
    np.testing.assert_array_equal(axial.cut(volume), volume[2])
    np.testing.assert_array_equal(coronal.cut(volume), volume[:, 1, :])
    np.testing.assert_array_equal(sagittal.cut(volume), volume[:, :, 0])
    # axial: patient right (-x) at the viewer's left, anterior (-y) at the top; y drawn downwards
    assert axial.orientation == ("R", "L", "A", "P") and axial.origin == "upper"
    assert axial.extent == (-2.0, 2.0, 4.5, -4.5)
    assert coronal.orientation == ("R", "L", "S", "I") and coronal.extent == (-2.0, 2.0, 7.5, 27.5)
    assert sagittal.orientation == ("A", "P", "S", "I") and sagittal.extent == (-4.5, 4.5, 7.5, 27.5)
    assert (axial.position_mm, coronal.position_mm, sagittal.position_mm) == (20.0, 0.0, -1.0)
    assert coronal.title == "coronal, y = 0.0 mm"
    # a sphere of radius 5 mm centred 3 mm off the plane cuts it in a circle of radius 4 mm
    assert axial.circle((1.0, 2.0, 23.0), 5.0) == pytest.approx((1.0, 2.0, 4.0))
    assert axial.circle((1.0, 2.0, 26.0), 5.0) is None


def test_vertex_planes_go_through_the_fullest_layer_and_row():
    grid = se.Grid((10, 10, 10), 5.0, (0.0, 0.0, 0.0))
    centres = np.array([[10.0, 10.0, 10.0], [20.0, 20.0, 25.0], [30.0, 20.0, 25.0], [40.0, 20.0, 25.0],
                        [10.0, 35.0, 25.0]])
    where = vertex_planes(SimpleNamespace(grid=grid), SimpleNamespace(centers_xyz_mm=centres))
    assert where == {"z": 5, "y": 4, "x": 6, "row_count": 3}


def _run(args):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(args)
    return code, stdout.getvalue(), stderr.getvalue()


def test_plots_option_writes_only_the_figures_asked_for(tmp_path):
    code, stdout, err = _run(["compare", "--out", str(tmp_path / "two"), *FAST, "-q", "--plots", "profile,dvh"])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["histograms.png", "manifest.json", "profile.png",
                                                                    "report.json"]
    for name in ("histograms.png", "profile.png"):
        data = (tmp_path / "two" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    # the console says what was applied
    assert "alpha/beta used: BODY 3 Gy (" in stdout and "including that day's CRT fraction" in stdout
    assert "vol [cc]" in stdout and "dose: physical dose [Gy]" in stdout
    code, _, err = _run(["compare", "--out", str(tmp_path / "none"), *FAST, "-q", "--plots", "none"])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["manifest.json", "report.json"]


def test_unknown_plot_name_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        _run(["compare", "--out", str(tmp_path / "x"), *FAST, "--plots", "slices"])
    assert info.value.code == 2
    assert not (tmp_path / "x").exists()


# --- no overlapping text, on every built-in case and the DICOM case ------------------------------------------

def _drawn_texts(fig):
    """Every visible, non-empty text of ``fig`` that is drawn, with its window extent."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tick_labels, drawn_ticks = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * max(1.0, hi - lo)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update({id(tick.label1), id(tick.label2)})
                if lo - tol <= tick.get_loc() <= hi + tol:
                    drawn_ticks += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    texts = [t for t in fig.findobj(Text) if id(t) not in tick_labels] + drawn_ticks
    return [(t, t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text().strip()]


def _overlaps(a, b, tol_px: float = 0.5) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol_px and min(a.y1, b.y1) - max(a.y0, b.y0) > tol_px


def _layout_problems(fig) -> list[str]:
    problems = []
    texts = _drawn_texts(fig)
    width, height = fig.canvas.get_width_height()
    for i, (t, box) in enumerate(texts):
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            problems.append(f"{t.get_text()!r} is cut off by the figure edge")
        for u, other in texts[i + 1:]:
            if _overlaps(box, other):
                problems.append(f"{t.get_text()!r} overlaps {u.get_text()!r}")
    renderer = fig.canvas.get_renderer()
    for legend in fig.legends:  # figure legends sit outside every axes, hiding no curve or map
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if _overlaps(box, ax.get_window_extent(renderer)):
                problems.append(f"legend {[t.get_text() for t in legend.get_texts()]} covers an axes")
    return problems


def _dicom_patient(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dicom_case")
    phantom = se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
    phantom.structures["GTV_1"] = phantom.structures["GTV"]
    se.io.write_ct(folder, phantom)
    se.io.write_rtstruct(folder / "RS.dcm", phantom, names=("GTV_1", "BODY", "FEMUR", "SKIN"))
    return prepare_dicom_case(folder, "GTV_1")


def test_the_layout_check_finds_overlapping_and_cut_off_text():
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_title("a title")
    fig.text(0.5, 0.5, "over the ticks", transform=ax.transAxes, fontsize=30)
    fig.text(0.99, 0.5, "beyond the edge")
    fig.legend(handles=ax.plot([0, 1], label="curve"), loc="center")
    try:
        problems = _layout_problems(fig)
    finally:
        plt.close(fig)
    assert any("overlaps" in p for p in problems)
    assert "'beyond the edge' is cut off by the figure edge" in problems
    assert any(p.startswith("legend ['curve'] covers an axes") for p in problems)


CASES = {
    "phantom_imrt_off_protocol": {"technique": "imrt", "off_protocol": True},
    "phantom_vmat": {"technique": "vmat"},
    "phantom_impt": {"technique": "impt"},
    "dicom_imrt": {"technique": "imrt", "dicom": True},
}


@pytest.fixture(scope="module")
def comparisons(tmp_path_factory):
    made = {}

    def get(technique: str, dicom: bool = False):
        key = (technique, dicom)
        if key not in made:
            patient = _dicom_patient(tmp_path_factory) if dicom else se.phantoms.sarcoma_thigh(spacing_xyz_mm=5.0)
            options = {"spacing_deg": 15.0} if technique == "vmat" else {}  # a coarse arc: figures, not plans
            made[key] = se.run_comparison(patient, se.ComparisonSettings(technique=technique, backend="cpp",
                                                                         optimiser_iterations=3,
                                                                         technique_options=options))
        return made[key]

    return get


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in ("phantom_vmat", "phantom_impt")
                                  else c for c in CASES])
def test_no_text_overlaps_or_is_cut_off_in_any_figure(comparisons, case):
    spec = dict(CASES[case])
    result = comparisons(spec.pop("technique"), spec.pop("dicom", False))
    if spec.get("off_protocol"):  # the flag a run beyond the trial's limits records in its settings
        settings = dict(result.report["settings"], off_protocol=True)
        result = SimpleNamespace(**{**vars(result), "report": dict(result.report, settings=settings)})
    plt = pytest.importorskip("matplotlib.pyplot")
    for name in FIGURES:
        fig = comparison_figure(name, result)
        try:
            assert _layout_problems(fig) == [], (case, name)
            title = fig.get_suptitle()
            assert ("OFF PROTOCOL" in title) == bool(spec.get("off_protocol")), (case, name)
            if result.report["settings"]["dose_quantity"]["rbe"] != 1.0:
                assert "RBE 1.1" in title, (case, name)
        finally:
            plt.close(fig)
