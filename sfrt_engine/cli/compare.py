"""``sfrt compare``: the main job, SFRT versus CRT on the built-in sarcoma phantom or a DICOM case
(per-arm table, report.json and the figures of :mod:`sfrt_engine.plotting.comparison`, as --plots selects)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["TABLE_STRUCTURES", "print_arm_table", "print_optimisation", "register"]


def _write_json(path: Path, data) -> None:
    """Write JSON atomically (a failed write leaves an earlier file intact)."""
    from .._files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


TABLE_STRUCTURES = ("GTV", "VERTICES", "VALLEY", "PTV", "FEMUR", "SKIN", "NORMAL_TISSUE")


def print_arm_table(report: dict, out=None) -> None:
    """Per-arm table of structure volume [cc], cumulative dose (RBE-weighted for protons) and EQD2, then the
    SFRT metrics."""
    arms = report["arms"]
    volumes = report.get("structures", {})
    unit = report.get("settings", {}).get("dose_quantity", {}).get("unit", "Gy")
    dose = "phys [Gy]" if unit == "Gy" else f"RBE [{unit}]"
    print(f"\n{'':23s}" + "".join(f"{arm + ' ' + dose:>26s}{arm + f' EQD2 [{unit}]':>26s}" for arm in arms), file=out)
    print(f"{'structure':14s}{'vol [cc]':>9s}" + "".join(f"{'mean':>8s}{'D95':>9s}{'max':>9s}" * 2 for _ in arms),
          file=out)
    for name in TABLE_STRUCTURES:
        if name not in next(iter(arms.values()))["structures"]:
            continue
        volume = volumes.get(name, {}).get("volume_cc")
        row = f"{name:14s}" + (f"{volume:9.1f}" if volume is not None else f"{'':9s}")
        for arm in arms.values():
            for kind in ("physical", "eqd2"):
                st = arm["structures"][name][kind]
                row += f"{st['mean_gy']:8.1f}{st['d95_gy']:9.1f}{st['max_gy']:9.1f}"
        print(row, file=out)
    print(f"\n{'SFRT metrics':14s}" + "".join(f"{arm:>14s}" for arm in arms), file=out)
    for key, label in (("peak_gy", "peak [Gy]"), ("valley_gy", "valley [Gy]"), ("pvdr", "PVDR"),
                       ("d10_d90", "GTV D10/D90"), ("gtv_d50_gy", "GTV D50 [Gy]"), ("geud_gy", "gEUD EQD2")):
        print(f"{label:14s}" + "".join(f"{arm['sfrt_metrics'][key]:14.2f}" for arm in arms.values()), file=out)


def print_optimisation(report: dict, out=None) -> None:
    """One line per optimised component, the goals it did not meet, and the boost session's metrics."""
    for name, comp in report["components"].items():
        o = comp.get("optimisation")
        if not o:
            continue
        print(f"{name} optimisation: {o['iterations']} iterations, {o['seconds']:.1f} s ({o['backend']}, "
              f"{o['operator_mode']}), objective {o['initial_objective']:.4g} -> {o['final_objective']:.4g} "
              f"({o['stop_reason'].lower()})", file=out)
        seg = o.get("segment_stage")
        if seg:
            print(f"  deliverable: {seg['segments_kept']} MLC segments, weights re-optimised in {seg['iterations']} "
                  f"iterations, {seg['seconds']:.1f} s, objective {seg['initial_objective']:.4g} (as sequenced) -> "
                  f"{seg['final_objective']:.4g}", file=out)
        unmet = [g for g in o["goals"] if g["met"] is False]
        if unmet:
            print("  goals not met: " + "; ".join(f"{g['goal']} (short by {g['shortfall']:.3g})" for g in unmet),
                  file=out)
    b = report["arms"].get("SFRT", {}).get("boost_session")
    if b:
        for m, label in ((b, "boost session alone"), (b["as_delivered"], "boost session as delivered")):
            organs = ", ".join(f"{k[:-7]} max {v:.2f} Gy" for k, v in m.items() if k.endswith("_max_gy"))
            print(f"{label}: peak {m['peak_gy']:.2f} Gy, valley {m['valley_gy']:.2f} Gy, PVDR {m['pvdr']:.2f}, "
                  f"VERTICES D95 {m['vertices_d95_gy']:.2f} Gy" + (f", {organs}" if organs else ""), file=out)


def cmd_compare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import sfrt_engine as se

    from ..biology import parse_alpha_beta
    from ..cases import prepare_dicom_case
    from ..compare import ComparisonSettings, run_comparison
    from ..io.result_set import ResultSet
    from ..plotting import save_comparison_figures
    from ._common import Stages
    from ._compare_checks import check_compare_memory, check_compare_options
    from ._summary import print_applied

    avoid = tuple(args.avoid) if args.avoid is not None else (("FEMUR", "SKIN") if not args.dicom else ())
    if (args.crt_plan or args.boost_plan) and not args.dicom:
        from ..errors import PlanError

        raise PlanError("--crt-plan/--boost-plan need --dicom CT_FOLDER, the CT the plans were made on")
    backend = check_compare_options(args)  # every option, before any work
    if args.dicom is None:
        check_compare_memory(args, se.phantoms.sarcoma_thigh_grid(args.spacing), backend, "the sarcoma phantom")
    # without a plan the protocol defaults; with one, None: from its fraction group (imported_plans)
    settings = ComparisonSettings(
        technique=args.technique,
        crt_fractions=args.crt_fractions if args.crt_fractions is not None or args.crt_plan else 20,
        vertex_dose_gy=args.vertex_dose if args.vertex_dose is not None or args.boost_plan else 12.0,
        vertex_sessions=args.vertex_sessions if args.vertex_sessions is not None or args.boost_plan else 4,
        boost_mode=args.boost_mode,
        alpha_beta_gy=parse_alpha_beta(args.alpha_beta) if args.alpha_beta else {}, lattice=args.lattice,
        backend=args.backend, avoid=avoid, crt_plan=args.crt_plan, boost_plan=args.boost_plan,
        vertex_diameter_mm=args.vertex_diameter, vertex_spacing_mm=args.vertex_spacing,
        gtv_margin_mm=args.gtv_margin, oar_margin_mm=args.oar_margin, off_protocol=args.off_protocol,
        goals=args.goals, optimiser_iterations=args.optimiser_iterations)
    stages = Stages("compare")
    # the whole set is written aside and swapped into place at the end (one consistent set, or nothing)
    with ResultSet(args.out, settings=settings.to_dict()) as result_set:
        out = result_set.path
        bar = tqdm(total=7 if args.export_dicom else 6, desc="sfrt compare", unit="step", disable=args.quiet,
                   file=sys.stderr)

        def progress(message: str) -> None:
            stages(message)
            bar.set_postfix_str(message)
            bar.update(1)

        if args.dicom:
            progress(f"reading DICOM from {args.dicom}")
            patient = prepare_dicom_case(args.dicom, args.target, avoid=avoid)
            check_compare_memory(args, patient.grid, backend, f"the DICOM case {args.dicom}")
        else:
            progress("building the sarcoma phantom")
            patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=args.spacing)
        result = run_comparison(patient, settings, progress=progress)
        settings = result.prepared.settings  # fractions and vertex dose the plans gave
        report = result.report
        report["settings"]["runtime_s"] = round(result.seconds, 2)
        result_set.settings = report["settings"]
        progress("writing report and plots")
        _write_json(out / "report.json", report)
        vertices = result.prepared.vertices
        mode = settings.boost_mode
        figures = save_comparison_figures(out, result, args.plots)
        exported = None
        if args.export_dicom:
            progress("exporting RTPLAN, RTDOSE, RTSTRUCT and HDF5")
            exported = se.io.export_comparison(out, result)
        bar.close()
    stages.done()
    final = result_set.final_path
    figures = [final / Path(f).relative_to(out) for f in figures]
    if settings.off_protocol:
        print("OFF-PROTOCOL: values outside protocol NCT06980259 allowed (--off-protocol); research use only")
    if args.dicom:
        print(f"DICOM {args.dicom}: {patient.dicom.get('inventory', '')}")
    crt = report["arms"]["CRT"]["schedule"]
    sfrt = report["arms"]["SFRT"]["schedule"]
    print(f"sfrt-engine {se.__version__} | technique {settings.technique} | backend {report['settings']['backend_used']}"
          f" | boost mode '{mode}'")
    print(f"vertices: {vertices.count} x {vertices.diameter_mm:g} mm on a {vertices.lattice} lattice "
          f"({vertices.spacing_mm:g} mm) in {settings.target}")
    unit = report["settings"]["dose_quantity"]["unit"]
    print(f"CRT arm: {crt['crt_fractions']} x {crt['crt_dose_per_fraction_gy']:g} {unit}; SFRT arm: same CRT + "
          f"{sfrt['vertex_sessions']} vertex sessions of {sfrt['vertex_dose_gy']:g} {unit} ({mode}), "
          f"{sfrt['n_sessions']} sessions")
    print_applied(report)
    print_arm_table(report)
    print()
    print_optimisation(report)
    print(f"\nwrote {', '.join(str(f) for f in [final / 'report.json', *figures])}  ({result.seconds:.1f} s)")
    if exported:
        files = [*exported.get("rtplan", []), *exported.get("rtdose", []), exported.get("rtstruct"),
                 exported.get("hdf5")]
        print("exported " + ", ".join(str(final / Path(f).relative_to(out)) for f in files if f))
    print(f"manifest: {final / 'manifest.json'} (every file with its SHA-256)")
    return 0


def _plots(text: str) -> tuple[str, ...]:
    from ..plotting import parse_plots

    try:
        return parse_plots(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub) -> None:
    from ..compare import ComparisonSettings
    from ..plan.schedule import BOOST_MODES
    from ..plan.techniques import available_techniques
    from ._common import add_memory_option, add_out_option, common_options

    p = sub.add_parser("compare", help="SFRT versus CRT on the built-in sarcoma phantom (the main job)",
                       parents=[common_options()])
    p.add_argument("--technique", default="imrt", choices=sorted(available_techniques()),
                   help="delivery technique (default imrt: optimised fluence; 3dcrt: the same fields, uniform)")
    p.add_argument("--crt-fractions", type=int, default=None,
                   help="CRT fractions of 3 Gy, 15-20 (default 20, or the --crt-plan's fractions)")
    p.add_argument("--vertex-dose", type=float, default=None,
                   help="vertex dose per session, 8-15 Gy (default 12, or what the --boost-plan delivers)")
    p.add_argument("--vertex-sessions", type=int, default=None,
                   help="weekly vertex sessions, 3-4 (default 4, or the --boost-plan's fractions)")
    p.add_argument("--boost-mode", default="integrated", choices=BOOST_MODES, help="default integrated")
    p.add_argument("--alpha-beta", default="", help="per-structure alpha/beta in Gy, e.g. GTV=4,SKIN=2")
    p.add_argument("--lattice", default="hcp", choices=("hcp", "cubic"), help="vertex lattice (default hcp)")
    p.add_argument("--backend", default="auto", help="auto | cuda | cupy | cpp | numpy (default auto)")
    p.add_argument("--spacing", type=float, default=None,
                   help="phantom voxel size [mm] (default 2.5; not with --dicom)")
    add_out_option(p)
    p.add_argument("--dicom", default=None, metavar="FOLDER",
                   help="run on a DICOM case (axial HFS CT series + RTSTRUCT in FOLDER) instead of the phantom")
    p.add_argument("--target", default=None,
                   help="ROI of the DICOM case to fill with vertices (default GTV; only with --dicom)")
    p.add_argument("--avoid", nargs="*", default=None, metavar="NAME",
                   help="structures the vertices keep away from (default FEMUR SKIN on the phantom, none on DICOM)")
    p.add_argument("--export-dicom", action="store_true",
                   help="also write RTDOSE per arm (physical and EQD2), the vertex RTSTRUCT and results.h5")
    p.add_argument("--plots", default="all", type=_plots, metavar="LIST",
                   help="figures to write: all, none, or a comma-separated list of dose, eqd2, difference, "
                        "profile, dvh (default all)")
    p.add_argument("--crt-plan", default=None, metavar="RP.dcm",
                   help="RT Plan or RT Ion Plan of the CRT arm (needs --dicom): one fraction as planned replaces "
                        "the generated CRT fields; its fraction group gives --crt-fractions")
    p.add_argument("--boost-plan", default=None, metavar="RP.dcm",
                   help="RT Plan or RT Ion Plan of the vertex boost (needs --dicom): replaces the generated boost "
                        "fields; its fractions are the vertex sessions and its dose the vertex dose")
    p.add_argument("--vertex-diameter", type=float, default=ComparisonSettings.vertex_diameter_mm, metavar="MM",
                   help=f"vertex sphere diameter [mm] (default {ComparisonSettings.vertex_diameter_mm:g})")
    p.add_argument("--vertex-spacing", type=float, default=ComparisonSettings.vertex_spacing_mm, metavar="MM",
                   help=f"centre-to-centre vertex spacing [mm] (default {ComparisonSettings.vertex_spacing_mm:g})")
    p.add_argument("--gtv-margin", type=float, default=ComparisonSettings.gtv_margin_mm, metavar="MM",
                   help=f"vertex edge to target surface [mm] (default {ComparisonSettings.gtv_margin_mm:g})")
    p.add_argument("--oar-margin", type=float, default=ComparisonSettings.oar_margin_mm, metavar="MM",
                   help=f"vertex edge to --avoid structures [mm] (default {ComparisonSettings.oar_margin_mm:g})")
    p.add_argument("--off-protocol", action="store_true",
                   help="allow fractions, sessions and vertex doses outside protocol NCT06980259 (research use; "
                        "the report and the figures say so)")
    add_memory_option(p)
    p.add_argument("--goals", default=None, metavar="FILE.toml",
                   help="optimisation goals of the CRT and boost components (default: the built-in sarcoma goals, "
                        "sfrt_engine/machines/data/goals_sarcoma.toml)")
    p.add_argument("--optimiser-iterations", type=int, default=None, metavar="N",
                   help="L-BFGS-B iteration limit of every optimised component (default: the goal file's)")
    p.set_defaults(func=cmd_compare)
