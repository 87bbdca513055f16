"""``sfrt recompute``: a planning system's RT Plan recomputed on its CT, checked against its RT Dose by gamma.

Everything is read and computed before anything is written: a plan, CT or dose that cannot
be read leaves ``--out`` untouched. The files are written as one result set
(:mod:`sfrt_engine.io.result_set`: a temporary sibling folder with a manifest, swapped into place).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["recompute", "register"]

#: Gamma criterion always reported under ``gamma_pass_rate_percent`` (AAPM TG-218: global 3 %/2 mm, 10 % cut-off).
DEFAULT_GAMMA = (3.0, 2.0)
THRESHOLD_PERCENT = 10.0


def _criteria(values) -> list[tuple[float, float]]:
    out = [DEFAULT_GAMMA]
    for text in values or []:
        try:
            dose, dist = (float(v) for v in str(text).split(","))
        except ValueError:
            raise ValueError(f"--gamma {text!r}: expected DOSE_PERCENT,DISTANCE_MM such as 3,2") from None
        if not (dose > 0 and dist > 0):
            raise ValueError(f"--gamma {text!r}: both criteria must be positive")
        if (dose, dist) not in out:
            out.append((dose, dist))
    return out


def recompute(dicom_folder, plan_path, rtdose_path=None, out=None, backend: str = "auto", gamma=(),
              arc_spacing_deg: float = 2.0) -> dict:
    """Recompute a DICOM RT Plan on its CT; with a reference RT Dose, gamma and DVH differences.

    Returns the report (also written as ``report.json`` under ``out`` when given).
    """
    import sfrt_engine as se

    from ..io import DicomError, read_dicom, read_rtdose
    from ..io.rtplan_read import read_rtplan
    from ..verification import dvh_differences, gamma_index, resample_dose

    criteria = _criteria(gamma)
    patient = read_dicom(dicom_folder)
    plan = read_rtplan(plan_path, patient, arc_spacing_deg=arc_spacing_deg)
    reference = None
    if rtdose_path is not None:
        import pydicom

        reference = read_rtdose(rtdose_path)
        header = pydicom.dcmread(rtdose_path, stop_before_pixels=True)
        ref_for = str(header.get("FrameOfReferenceUID", ""))
        if ref_for and ref_for != plan.frame_of_reference_uid:
            raise DicomError(f"{rtdose_path}: FrameOfReferenceUID {ref_for} differs from the plan's "
                             f"{plan.frame_of_reference_uid}")
        summation = str(header.get("DoseSummationType", "PLAN"))
        ref_plans = [str(r.ReferencedSOPInstanceUID) for r in header.get("ReferencedRTPlanSequence") or []]
    fraction_dose = se.compute_dose(plan.all_beams(), patient, backend=backend)
    fractions = plan.fractions_planned or 1
    plan_gy = fraction_dose.gy * fractions
    report = {
        "plan": {"file": str(plan_path), "label": plan.plan_label, "sop_instance_uid": plan.sop_instance_uid,
                 "modality": plan.modality, "fractions_planned": plan.fractions_planned,
                 "beams": [{"name": n, "meterset_mu": m} for n, m in zip(plan.beam_names, plan.beam_meterset_mu)]},
        "ct": {"folder": str(dicom_folder), "grid_shape_zyx": list(patient.grid.shape_zyx),
               "spacing_xyz_mm": list(patient.grid.spacing_xyz_mm)},
        "backend": fraction_dose.backend, "dose_seconds": round(fraction_dose.seconds, 3),
        "recomputed": {"dose": "all fractions" if plan.fractions_planned else "one fraction (no fractions planned)",
                       "max_gy": float(plan_gy.max())},
    }
    results = []
    ref_gy = None
    if reference is not None:
        evaluated = fraction_dose.gy if summation == "FRACTION" else plan_gy
        ref_gy = resample_dose(reference.gy, reference.grid, patient.grid)
        report["reference"] = {"file": str(rtdose_path), "dose_summation_type": summation,
                               "max_gy": float(reference.gy.max()), "resampled_max_gy": float(ref_gy.max()),
                               "references_this_plan": plan.sop_instance_uid in ref_plans}
        for dose_pct, dist_mm in criteria:
            results.append(gamma_index(ref_gy, evaluated, patient.grid, dose_pct, dist_mm, THRESHOLD_PERCENT))
        report["gamma_pass_rate_percent"] = results[0].pass_rate_percent
        report["gamma"] = [{"criterion": r.label, "global": True, "threshold_percent": r.threshold_percent,
                            "points": r.n_points, "pass_rate_percent": r.pass_rate_percent,
                            "mean_gamma": float(np.nanmean(r.gamma)) if r.n_points else None} for r in results]
        if len(patient.structures):
            report["dvh_differences"] = dvh_differences(evaluated, ref_gy, patient.structures)
    if out is not None:
        report["files"] = _write(Path(out), patient, plan, plan_gy, report, results, ref_gy,
                                 fraction_dose.gy if reference is not None and summation == "FRACTION" else plan_gy)
    return report


def _write(out: Path, patient, plan, plan_gy, report, results, ref_gy, evaluated) -> list[str]:
    """Write the RT Dose, the gamma map and the report as one result set (io.result_set)."""
    from ..io import write_rtdose
    from ..io.result_set import ResultSet
    from ..verification import save_gamma_map

    with ResultSet(out, settings={"command": "recompute", "plan": report["plan"]["file"]}) as result_set:
        tmp = result_set.path
        names = ["RTDOSE_recomputed.dcm"]
        write_rtdose(tmp / names[0], plan_gy, patient, dose_type="PHYSICAL",
                     description=f"sfrt-engine recomputation of RT Plan {plan.plan_label}",
                     series_description=f"recomputed {plan.plan_label}", referenced_rtplan_uid=plan.sop_instance_uid)
        if results:
            names.append("gamma_map.png")
            save_gamma_map(tmp / names[-1], ref_gy, evaluated, results[0], patient.grid,
                           title=f"RT Plan {plan.plan_label}: reference vs sfrt-engine")
        names.append("report.json")
        (tmp / names[-1]).write_text(json.dumps(dict(report, files=names), indent=2))
    return names


def cmd_recompute(args: argparse.Namespace) -> int:
    from ..io.result_set import check_destination
    from ._common import check_backend

    check_backend(args.backend)
    check_destination(args.out)
    report = recompute(args.dicom, args.plan, args.rtdose, args.out, backend=args.backend,
                       gamma=[f"{d:g},{m:g}" for d, m in args.gamma or []], arc_spacing_deg=args.arc_spacing)
    plan = report["plan"]
    print(f"plan {plan['label']!r}: {len(plan['beams'])} beams, {plan['fractions_planned']} fractions; "
          f"backend {report['backend']}, {report['dose_seconds']:.2f} s; max {report['recomputed']['max_gy']:.3f} Gy")
    for g in report.get("gamma", []):
        print(f"gamma {g['criterion']} (global, {g['threshold_percent']:g} % threshold): "
              f"{g['pass_rate_percent']:.2f} % pass of {g['points']} points")
    for name, row in report.get("dvh_differences", {}).items():
        print(f"  {name:14s} mean {row['mean_difference_gy']:+.3f}  D95 {row['d95_difference_gy']:+.3f}  "
              f"D2 {row['d2_difference_gy']:+.3f} Gy (recomputed - reference)")
    print(f"wrote {', '.join(report['files'])} to {args.out}")
    return 0


def _gamma_arg(text: str) -> tuple[float, float]:
    try:
        return _criteria([text])[-1]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace(f"--gamma {text!r}: ", "")) from None


def register(sub) -> None:
    from ._common import common_options

    p = sub.add_parser("recompute", help="recompute a DICOM RT Plan on its CT and check it against its RT Dose",
                       parents=[common_options()])
    p.add_argument("--dicom", required=True, help="folder with the CT series (and its RT Structure Set)")
    p.add_argument("--plan", required=True, help="RT Plan file (RP*.dcm)")
    p.add_argument("--rtdose", help="reference RT Dose of the plan: gamma and DVH differences against it")
    p.add_argument("--out", default="sfrt_recompute", help="output folder (default ./sfrt_recompute)")
    p.add_argument("--backend", default="auto", help="auto | cuda | cupy | cpp | numpy (default auto)")
    p.add_argument("--gamma", action="append", metavar="DOSE%,MM", type=_gamma_arg,
                   help="extra gamma criterion, global, e.g. 2,2 (repeatable); 3,2 is always reported")
    p.add_argument("--arc-spacing", type=float, default=2.0, help="gantry spacing of VMAT sampling [deg] (default 2)")
    p.set_defaults(func=cmd_recompute)
