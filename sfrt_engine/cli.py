"""The ``sfrt`` command line.

``sfrt compare`` the main job: SFRT versus CRT on the built-in sarcoma phantom (per-arm table,
                 report.json, EQD2 slices and dose/EQD2-volume histograms).
``sfrt info``    backends, build features and devices.
``sfrt dose``    5-beam conformal photon plan on the built-in sarcoma phantom: per-structure
                 summary and a PNG dose slice.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _backend_details(name: str) -> dict:
    """Build information and devices a backend module reports, without needing it to run."""
    from .kernels import BACKENDS

    details: dict = {}
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        return {"error": str(exc)}
    for attr in ("build_info", "devices"):
        fn = getattr(module, attr, None)
        if fn is None:
            continue
        try:
            details[attr] = fn()
        except Exception as exc:  # report, do not fail: info must always print
            details[attr] = f"unavailable: {exc}"
    return details


def cmd_info(args: argparse.Namespace) -> int:
    import sfrt_engine as se

    backends = se.available_backends()
    report = {"version": se.__version__, "backends": {}}
    for name, (ok, reason) in backends.items():
        entry = {"available": ok, "reason": reason}
        entry.update(_backend_details(name))
        report["backends"][name] = entry
    try:
        report["auto"] = se.get_backend("auto").name
    except se.BackendUnavailableError as exc:
        report["auto"] = f"none ({exc})"
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"sfrt-engine {se.__version__}")
    print(f"backend 'auto' picks: {report['auto']}")
    for name, entry in report["backends"].items():
        state = "available" if entry["available"] else "unavailable"
        print(f"  {name:6s} {state:11s} {entry['reason'] if not entry['available'] else ''}".rstrip())
        info = entry.get("build_info")
        if isinstance(info, dict):
            keys = ("version", "openmp", "max_threads", "compiler", "cuda_architectures", "cuda_runtime_version")
            shown = ", ".join(f"{k}={info[k]}" for k in keys if k in info)
            print(f"         build: {shown}")
        elif info is not None:
            print(f"         build: {info}")
        devices = entry.get("devices")
        if devices is not None:
            if isinstance(devices, list):
                print(f"         devices: {', '.join(str(d.get('name', d)) for d in devices) or 'none'}")
            else:
                print(f"         devices: {devices}")
    return 0


def cmd_dose(args: argparse.Namespace) -> int:
    import sfrt_engine as se
    from .evaluation import dose_statistics
    from .plotting import save_dose_slice

    patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=args.spacing)
    machine = se.load_machine(args.machine)
    gantries = [i * 360.0 / args.beams for i in range(args.beams)]
    beams = se.plan.conformal_beams(patient, "PTV", machine, gantry_deg=gantries, beamlet_mm=args.beamlet,
                                    margin_mm=args.margin)
    dose = se.compute_dose(beams, patient, backend=args.backend)
    # normalise the plan so that PTV D95 = the prescribed dose per fraction
    ptv = dose_statistics(dose.gy, patient.structures["PTV"], "PTV")
    scale = args.prescription / ptv["d95_gy"]
    gy = dose.gy * scale
    n_beamlets = sum(b.n_beamlets for b in beams)
    print(f"patient: {patient.name}, grid {patient.grid.shape_zyx} (z, y, x) at {patient.grid.spacing_xyz_mm} mm")
    print(f"plan: {len(beams)} conformal {machine.name} beams at {', '.join(f'{g:g}' for g in gantries)} deg, "
          f"{n_beamlets} beamlets of {args.beamlet:g} mm, {scale:.1f} MU per beamlet")
    print(f"backend: {dose.backend}, dose computed in {dose.seconds:.2f} s; normalised to PTV D95 = "
          f"{args.prescription:g} Gy")
    header = f"{'structure':14s} {'vol [cc]':>9s} {'mean':>7s} {'min':>7s} {'max':>7s} {'D95':>7s} {'D5':>7s}  [Gy]"
    print(header)
    rows = {}
    for name in patient.structures:
        s = dose_statistics(gy, patient.structures[name], name)
        rows[name] = s
        print(f"{name:14s} {patient.structures.volume_cc(name):9.1f} {s['mean_gy']:7.3f} {s['min_gy']:7.3f} "
              f"{s['max_gy']:7.3f} {s['d95_gy']:7.3f} {s['d5_gy']:7.3f}")
    out = Path(args.out)
    iz = int(np.argmax(patient.structures["PTV"].sum(axis=(1, 2))))
    png = save_dose_slice(out / "dose_axial.png", gy, patient, iz,
                          title=f"{len(beams)}-beam conformal 6 MV, PTV D95 = {args.prescription:g} Gy")
    print(f"wrote {png}")
    return 0


def _write_json(path: Path, data) -> None:
    """Write JSON atomically (a failed write leaves an earlier file intact)."""
    from ._files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


TABLE_STRUCTURES = ("GTV", "VERTICES", "VALLEY", "PTV", "FEMUR", "SKIN", "NORMAL_TISSUE")


def print_arm_table(report: dict, out=None) -> None:
    """Per-arm table of cumulative physical dose and EQD2, then the SFRT metrics."""
    arms = report["arms"]
    print(f"\n{'':14s}" + "".join(f"{arm + ' phys [Gy]':>26s}{arm + ' EQD2 [Gy]':>26s}" for arm in arms), file=out)
    print(f"{'structure':14s}" + "".join(f"{'mean':>8s}{'D95':>9s}{'max':>9s}" * 2 for _ in arms), file=out)
    for name in TABLE_STRUCTURES:
        if name not in next(iter(arms.values()))["structures"]:
            continue
        row = f"{name:14s}"
        for arm in arms.values():
            for kind in ("physical", "eqd2"):
                st = arm["structures"][name][kind]
                row += f"{st['mean_gy']:8.1f}{st['d95_gy']:9.1f}{st['max_gy']:9.1f}"
        print(row, file=out)
    print(f"\n{'SFRT metrics':14s}" + "".join(f"{arm:>14s}" for arm in arms), file=out)
    for key, label in (("peak_gy", "peak [Gy]"), ("valley_gy", "valley [Gy]"), ("pvdr", "PVDR"),
                       ("d10_d90", "GTV D10/D90"), ("gtv_d50_gy", "GTV D50 [Gy]"), ("geud_gy", "gEUD EQD2")):
        print(f"{label:14s}" + "".join(f"{arm['sfrt_metrics'][key]:14.2f}" for arm in arms.values()), file=out)


def cmd_compare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import sfrt_engine as se
    from .biology import parse_alpha_beta
    from .compare import ComparisonSettings, run_comparison
    from .plotting import save_arm_slices, save_histograms

    avoid = tuple(args.avoid) if args.avoid is not None else (("FEMUR", "SKIN") if not args.dicom else ())
    settings = ComparisonSettings(
        technique=args.technique, crt_fractions=args.crt_fractions, vertex_dose_gy=args.vertex_dose,
        vertex_sessions=args.vertex_sessions, boost_mode=args.boost_mode,
        alpha_beta_gy=parse_alpha_beta(args.alpha_beta) if args.alpha_beta else {}, lattice=args.lattice,
        backend=args.backend, avoid=avoid)
    out = Path(args.out)
    bar = tqdm(total=7 if args.export_dicom else 6, desc="sfrt compare", unit="step", disable=args.quiet,
               file=sys.stderr)

    def progress(message: str) -> None:
        bar.set_postfix_str(message)
        bar.update(1)

    if args.dicom:
        progress(f"reading DICOM from {args.dicom}")
        patient = dicom_case(args.dicom, args.target)
    else:
        progress("building the sarcoma phantom")
        patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=args.spacing)
    result = run_comparison(patient, settings, progress=progress)
    report = result.report
    report["settings"]["runtime_s"] = round(result.seconds, 2)
    progress("writing report and plots")
    _write_json(out / "report.json", report)
    vertices = result.prepared.vertices
    z_counts = [np.sum(np.abs(vertices.centers_xyz_mm[:, 2] - z) < 1e-6) for z in vertices.centers_xyz_mm[:, 2]]
    z_best = float(vertices.centers_xyz_mm[int(np.argmax(z_counts)), 2])
    iz = int(np.argmin(np.abs(patient.grid.axis_mm("z") - z_best)))
    mode = settings.boost_mode
    slices = save_arm_slices(out / "eqd2_axial.png", result.eqd2_gy, patient, iz, vertices.centers_xyz_mm,
                             vertices.radius_mm, title=f"cumulative EQD2, boost mode '{mode}', "
                             f"{int(max(z_counts))} vertices in this slice")
    hist = save_histograms(out / "histograms.png", result.physical_gy, result.eqd2_gy, patient,
                           title=f"SFRT vs CRT ({settings.technique}, boost mode '{mode}')")
    exported = None
    if args.export_dicom:
        progress("exporting RTDOSE, RTSTRUCT and HDF5")
        exported = se.io.export_comparison(out, result)
    bar.close()
    crt = report["arms"]["CRT"]["schedule"]
    sfrt = report["arms"]["SFRT"]["schedule"]
    print(f"sfrt-engine {se.__version__} | technique {settings.technique} | backend {report['settings']['backend_used']}"
          f" | boost mode '{mode}'")
    print(f"vertices: {vertices.count} x {vertices.diameter_mm:g} mm on a {vertices.lattice} lattice "
          f"({vertices.spacing_mm:g} mm) in {settings.target}")
    print(f"CRT arm: {crt['crt_fractions']} x {crt['crt_dose_per_fraction_gy']:g} Gy; SFRT arm: same CRT + "
          f"{sfrt['vertex_sessions']} vertex sessions of {sfrt['vertex_dose_gy']:g} Gy ({mode}), "
          f"{sfrt['n_sessions']} sessions")
    print_arm_table(report)
    print(f"\nwrote {out / 'report.json'}, {slices}, {hist}  ({result.seconds:.1f} s)")
    if exported:
        files = [*exported.get("rtdose", []), exported.get("rtstruct"), exported.get("hdf5")]
        print("exported " + ", ".join(str(f) for f in files if f))
    return 0


def dicom_case(folder: str, target: str):
    """A DICOM CT + RTSTRUCT case ready for the comparison: ``target`` becomes GTV; PTV (GTV + 5 mm)
    and BODY (CT numbers above -500 HU) are derived when the structure set lacks them."""
    import sfrt_engine as se
    from .phantoms import _expand

    patient = se.io.read_dicom(folder)
    structures = patient.structures
    if target not in structures:
        raise se.StructureError(f"--target {target!r} is not an ROI of {folder}; ROIs: {', '.join(structures)}")
    if target != "GTV":
        structures["GTV"] = structures[target]
    if "BODY" not in structures:
        structures["BODY"] = patient.hu > -500.0
    if "PTV" not in structures:
        structures["PTV"] = _expand(structures["GTV"], patient.grid, 5.0) & structures["BODY"]
    return patient


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfrt", description="SFRT vs CRT dose engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the engine's choices")
    sub = parser.add_subparsers(dest="command", required=True)

    from .plan.schedule import BOOST_MODES
    from .plan.techniques import available_techniques

    p_cmp = sub.add_parser("compare", help="SFRT versus CRT on the built-in sarcoma phantom (the main job)")
    p_cmp.add_argument("--technique", default="imrt", choices=sorted(available_techniques()),
                       help="delivery technique (default imrt)")
    p_cmp.add_argument("--crt-fractions", type=int, default=20, help="CRT fractions of 3 Gy, 15-20 (default 20)")
    p_cmp.add_argument("--vertex-dose", type=float, default=12.0, help="vertex dose per session, 8-15 Gy (default 12)")
    p_cmp.add_argument("--vertex-sessions", type=int, default=4, help="weekly vertex sessions, 3-4 (default 4)")
    p_cmp.add_argument("--boost-mode", default="integrated", choices=BOOST_MODES, help="default integrated")
    p_cmp.add_argument("--alpha-beta", default="", help="per-structure alpha/beta in Gy, e.g. GTV=4,SKIN=2")
    p_cmp.add_argument("--lattice", default="hcp", choices=("hcp", "cubic"), help="vertex lattice (default hcp)")
    p_cmp.add_argument("--backend", default="auto", help="auto | cuda | cupy | cpp | numpy (default auto)")
    p_cmp.add_argument("--spacing", type=float, default=2.5, help="phantom voxel size [mm] (default 2.5)")
    p_cmp.add_argument("--out", default="sfrt_out", help="output folder (default ./sfrt_out)")
    p_cmp.add_argument("--dicom", default=None, metavar="FOLDER",
                       help="run on a DICOM case (axial HFS CT series + RTSTRUCT in FOLDER) instead of the phantom")
    p_cmp.add_argument("--target", default="GTV", help="ROI of the DICOM case to fill with vertices (default GTV)")
    p_cmp.add_argument("--avoid", nargs="*", default=None, metavar="NAME",
                       help="structures the vertices keep away from (default FEMUR SKIN on the phantom, none on DICOM)")
    p_cmp.add_argument("--export-dicom", action="store_true",
                       help="also write RTDOSE per arm (physical and EQD2), the vertex RTSTRUCT and results.h5")
    p_cmp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_cmp.set_defaults(func=cmd_compare)

    p_info = sub.add_parser("info", help="backends, build features and devices")
    p_info.add_argument("--json", action="store_true", help="machine-readable output")
    p_info.set_defaults(func=cmd_info)

    p_dose = sub.add_parser("dose", help="conformal photon plan on the built-in sarcoma phantom")
    p_dose.add_argument("--backend", default="auto", help="auto | cuda | cupy | cpp | numpy (default auto)")
    p_dose.add_argument("--machine", default="photon_6mv", help="built-in machine name or machine JSON file")
    p_dose.add_argument("--beams", type=int, default=5, help="number of equally spaced beams (default 5)")
    p_dose.add_argument("--beamlet", type=float, default=5.0, help="beamlet size at isocentre [mm] (default 5)")
    p_dose.add_argument("--margin", type=float, default=5.0, help="aperture margin around the PTV [mm] (default 5)")
    p_dose.add_argument("--spacing", type=float, default=2.5, help="phantom voxel size [mm] (default 2.5)")
    p_dose.add_argument("--prescription", type=float, default=3.0, help="PTV D95 per fraction [Gy] (default 3)")
    p_dose.add_argument("--out", default="sfrt_out", help="output folder (default ./sfrt_out)")
    p_dose.set_defaults(func=cmd_dose)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if getattr(args, "beams", 1) < 1:
        parser.error(f"--beams {args.beams}: expected at least 1")
    from .errors import SfrtError

    try:
        return args.func(args)
    except SfrtError as exc:
        print(f"sfrt: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
