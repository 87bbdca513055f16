"""Up-front checks of ``sfrt compare``: every option is checked before any dose is computed.

:func:`check_compare_options` rejects options that do nothing in the mode chosen, empty or
impossible values and unknown backends, and fills in the mode-dependent defaults.
:func:`check_compare_memory` refuses a run whose estimated peak memory exceeds the budget.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import UsageError, check_backend, memory_budget

__all__ = ["DEFAULT_PHANTOM_SPACING_MM", "check_compare_options", "check_compare_memory", "technique_beam_count"]

#: Voxel size of the built-in phantom when --spacing is not given [mm].
DEFAULT_PHANTOM_SPACING_MM = 2.5


def check_compare_options(args: argparse.Namespace) -> str:
    """Check the options of ``sfrt compare`` and fill in defaults; returns the backend that will run.

    Raises
    ------
    UsageError, PlanError, BackendUnavailableError
        With the option, the value and what is expected.
    """
    from ..biology import parse_alpha_beta

    if args.dicom is not None:
        if args.spacing is not None:
            raise UsageError(f"--spacing {args.spacing:g} does nothing with --dicom (the CT's own voxels are "
                             "used); leave it out")
        folder = Path(args.dicom)
        if not str(args.dicom).strip():
            raise UsageError("--dicom is empty: expected a folder holding a CT series and an RT Structure Set")
        if not folder.exists():
            raise UsageError(f"--dicom {args.dicom}: no such folder")
        if not folder.is_dir():
            raise UsageError(f"--dicom {args.dicom}: is a file; expected the folder that holds the CT series "
                             "and the RT Structure Set")
        args.target = args.target if args.target is not None else "GTV"
    else:
        if args.target is not None:
            raise UsageError(f"--target {args.target} does nothing without --dicom (the phantom's target is GTV); "
                             "leave it out, or give --dicom FOLDER")
        args.spacing = args.spacing if args.spacing is not None else DEFAULT_PHANTOM_SPACING_MM
        if not (np.isfinite(args.spacing) and args.spacing > 0):
            raise UsageError(f"--spacing {args.spacing:g}: expected a voxel size above 0 mm, e.g. 2.5")
    for option in ("vertex_diameter", "vertex_spacing"):
        value = getattr(args, option)
        if not (np.isfinite(value) and value > 0):
            raise UsageError(f"--{option.replace('_', '-')} {value:g}: expected a length above 0 mm")
    for option in ("gtv_margin", "oar_margin"):
        value = getattr(args, option)
        if not (np.isfinite(value) and value >= 0):
            raise UsageError(f"--{option.replace('_', '-')} {value:g}: expected a margin of 0 mm or more")
    if args.avoid is not None and len(set(args.avoid)) != len(args.avoid):
        repeated = sorted({n for n in args.avoid if args.avoid.count(n) > 1})
        raise UsageError(f"--avoid names {', '.join(repeated)} more than once; give each structure once")
    if args.alpha_beta:
        parse_alpha_beta(args.alpha_beta)  # PlanError on malformed or repeated entries
    return check_backend(args.backend)


def technique_beam_count(technique) -> tuple[int, int]:
    """(photon beams or arc control points, proton fields) of a technique's CRT and boost field sets."""
    if hasattr(technique, "crt_beams_count"):
        return int(technique.crt_beams_count) + int(technique.boost_beams_count), 0
    if hasattr(technique, "crt_gantry_deg"):
        return 0, len(technique.crt_gantry_deg) + len(technique.boost_gantry_deg)
    if hasattr(technique, "spacing_deg"):
        return 2 * int(np.ceil(360.0 / float(technique.spacing_deg))), 0
    return 20, 0


def check_compare_memory(args: argparse.Namespace, grid, backend: str, where: str) -> None:
    """Refuse the run if its estimated peak memory on ``grid`` exceeds the budget (MemoryBudgetError)."""
    from ..memory import check_memory, estimate_peak_bytes
    from ..plan.techniques import get_technique

    photons, protons = technique_beam_count(get_technique(args.technique))
    fix = "use a coarser --spacing" if args.dicom is None else "resample the CT to larger voxels or crop it"
    check_memory(estimate_peak_bytes(grid.size, photons, protons, backend, "compare"), memory_budget(args),
                 f"sfrt compare on {where}, a {' x '.join(map(str, grid.shape_zyx))} grid "
                 f"({grid.size / 1e6:.1f} million voxels), {args.technique} with {photons + protons} beams on "
                 f"{backend},", fix)
