"""``sfrt dose``: a conformal photon plan on the built-in sarcoma phantom, per-structure summary
and a PNG dose slice."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["register"]


def cmd_dose(args: argparse.Namespace) -> int:
    import sfrt_engine as se

    from ..evaluation import dose_statistics
    from ..plotting import save_dose_slice

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


def register(sub) -> None:
    p = sub.add_parser("dose", help="conformal photon plan on the built-in sarcoma phantom")
    p.add_argument("--backend", default="auto", help="auto | cuda | cupy | cpp | numpy (default auto)")
    p.add_argument("--machine", default="photon_6mv", help="built-in machine name or machine JSON file")
    p.add_argument("--beams", type=int, default=5, help="number of equally spaced beams (default 5)")
    p.add_argument("--beamlet", type=float, default=5.0, help="beamlet size at isocentre [mm] (default 5)")
    p.add_argument("--margin", type=float, default=5.0, help="aperture margin around the PTV [mm] (default 5)")
    p.add_argument("--spacing", type=float, default=2.5, help="phantom voxel size [mm] (default 2.5)")
    p.add_argument("--prescription", type=float, default=3.0, help="PTV D95 per fraction [Gy] (default 3)")
    p.add_argument("--out", default="sfrt_out", help="output folder (default ./sfrt_out)")
    p.set_defaults(func=cmd_dose)
