"""The C++ backend's row kernels (csrc/cpu/photon_rows.h) against the float64 NumPy reference.

The row kernels evaluate photon_point_dose's formula a whole x row of voxels at a time, in float32
after the geometry, and add the beams into a float32 dose in beam order. These tests bound the error
where it can accumulate (many beams) and exercise the row edges: footprints that cover part of a row,
rows shorter than and not a multiple of the 8-voxel blocks, oblique and non-coplanar beams.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sfrt_engine as se
from sfrt_engine.kernels import backend_numpy
from sfrt_engine.kernels._task import compiled_arguments, prepare_photon_tasks

DOSE_TOL = 1e-4  # of the maximum reference dose (DESIGN 6)


@pytest.fixture(autouse=True)
def _needs_cpp():
    ok, reason = se.available_backends()["cpp"]
    if not ok:
        pytest.skip(reason)


@pytest.mark.slow
def test_float32_accumulation_over_a_36_beam_arc_is_bounded():
    """36 control points (10 deg apart) on a 6 mm grid: every voxel's dose is a float32 sum of 36 beams.

    Bound: float32 addition of n positive terms errs by at most n 2^-24 of the sum (2.1e-6 for n = 36),
    and each beam's own float32 evaluation (erf_fast to 1.8e-6 absolute per profile edge, table reads)
    adds a few 1e-6 at most; 1e-5 of the local dose where the dose exceeds 10 % of its maximum leaves
    that margin, ten times inside the DESIGN tolerance (1e-4 of the maximum), which must hold everywhere.
    """
    p = se.phantoms.sarcoma_thigh(spacing_xyz_mm=6.0)
    arc = se.plan.conformal_arc(p, "PTV", se.load_machine("photon_6mv"), start_deg=181.0, stop_deg=179.0,
                                direction="cw", spacing_deg=10.0)
    assert len(list(arc)) == 36
    ref = se.compute_dose(arc, p, backend="numpy").gy
    got = se.compute_dose(arc, p, backend="cpp").gy
    err = np.abs(got - ref)
    assert err.max() <= DOSE_TOL * ref.max()
    high = ref > 0.1 * ref.max()
    assert (err[high] / ref[high]).max() <= 1e-5


@pytest.mark.parametrize("gantry_deg, couch_deg", [(0.0, 0.0), (35.0, 0.0), (300.0, 40.0)])
def test_part_rows_and_short_rows_match_the_reference(gantry_deg, couch_deg):
    """A 13 x 11 x 9 voxel box (rows of 13: one full 8-voxel block and a 5-voxel tail) with a 20 mm field
    aimed off-centre, so the footprint and the primary's reach end inside rows and whole rows get
    only scatter. Oblique and non-coplanar beams give lanes with different beamlet windows."""
    m = se.load_machine("photon_6mv")
    p = se.phantoms.water_box(size_xyz_mm=(65.0, 55.0, 45.0), spacing_xyz_mm=5.0)
    assert p.grid.shape_zyx == (9, 11, 13)
    # 4 x 4 beamlets of 5 mm centred on the isocentre, with a hot corner so no symmetry hides an error
    weights = np.ones((4, 4))
    weights[0, 3] = 3.0
    beam = se.plan.Beam(m, (12.0, -8.0, 6.0), gantry_deg, weights, (5.0, 5.0), (-7.5, -7.5), couch_deg=couch_deg)
    ref = se.compute_dose(beam, p, backend="numpy").gy
    got = se.compute_dose(beam, p, backend="cpp").gy
    assert ref.max() > 0.0
    # the field leaves voxels of some rows without primary dose: the row edges are exercised
    assert (ref < 0.02 * ref.max()).any()
    assert np.abs(got - ref).max() <= DOSE_TOL * ref.max()


def test_log_fast_matches_std_log(tmp_path):
    """log_fast (the scatter table's sigma level) against std::log from 1e-3 to 1e4: within 2e-7 absolute
    plus 1.2e-7 relative, i.e. about one float32 ulp of the result."""
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler (c++, g++, clang++) on PATH")
    csrc = Path(__file__).resolve().parents[2] / "csrc"
    if not (csrc / "cpu" / "photon_rows.h").is_file():
        pytest.skip(f"no source tree at {csrc}")
    source = tmp_path / "log_fast.cpp"
    source.write_text(
        '#include <cmath>\n#include <cstdio>\n#include "cpu/photon_rows.h"\n'
        "int main() {\n"
        "  double worst = 0.0;\n"
        "  for (int i = 0; i <= 700000; ++i) {\n"
        "    const float x = (float)std::pow(10.0, -3.0 + 7.0 * i / 700000.0);\n"
        "    const double exact = std::log((double)x);\n"
        "    const double err = std::fabs((double)sfrt::rows::log_fast(x) - exact) / (2e-7 + 1.2e-7 * std::fabs(exact));\n"
        "    worst = err > worst ? err : worst;\n"
        "  }\n"
        '  std::printf("%.6f\\n", worst);\n'
        "}\n")
    exe = tmp_path / "log_fast"
    subprocess.run([compiler, "-std=c++17", "-O2", f"-I{csrc}", str(source), "-o", str(exe)], check=True,
                   timeout=120, capture_output=True)
    worst = float(subprocess.run([str(exe)], check=True, timeout=60, capture_output=True, text=True).stdout)
    assert worst <= 1.0


def test_a_given_ray_table_is_the_one_used():
    """_core.photon_dose with a caller's ray table (the geometry cache's) computes the dose on that table:
    a table of depths 1.2 times the traced ones gives the reference's dose for that same table."""
    from sfrt_engine.kernels import _core  # the module may not be built: imported after the skip

    m = se.load_machine("photon_6mv")
    p = se.phantoms.water_box(size_xyz_mm=(60.0, 50.0, 40.0), spacing_xyz_mm=5.0)
    beam = se.plan.open_field(m, p, field_mm=(30.0, 20.0), gantry_deg=30.0)
    (task,) = prepare_photon_tasks([beam], p.grid)
    density = np.ascontiguousarray(p.density(), dtype=np.float32)
    args = compiled_arguments(density, p.grid, [task])
    table = 1.2 * _core.trace_rays(density, args[1], args[2][0])
    got = _core.photon_dose(*args, tables=[np.ascontiguousarray(table, dtype=np.float32)])
    ref = backend_numpy.beam_dose(density, p.grid, task, table=table.astype(np.float64))
    traced = _core.photon_dose(*args)
    assert np.abs(got - traced).max() > 100 * DOSE_TOL * ref.max()  # the table matters here
    assert np.abs(got - ref).max() <= DOSE_TOL * ref.max()
