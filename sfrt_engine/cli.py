"""The ``sfrt`` command line.

``sfrt info``   backends, build features and devices.
``sfrt dose``   5-beam conformal photon plan on the built-in sarcoma phantom: per-structure
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfrt", description="SFRT vs CRT dose engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the engine's choices")
    sub = parser.add_subparsers(dest="command", required=True)

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
