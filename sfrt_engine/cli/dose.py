"""``sfrt dose``: a conformal photon plan on the built-in sarcoma phantom, per-structure summary
and a PNG dose slice (written as one result set with a manifest)."""

from __future__ import annotations

import argparse

import numpy as np

from ._common import (
    Stages,
    UsageError,
    add_backend_option,
    add_memory_option,
    add_out_option,
    check_backend,
    common_options,
    memory_budget,
)

__all__ = ["register"]


def _check(args: argparse.Namespace):
    """Every option checked before any work; returns the machine."""
    import sfrt_engine as se

    from ..machines import PhotonMachine

    if not (np.isfinite(args.prescription) and args.prescription > 0):
        raise UsageError(f"--prescription {args.prescription:g}: expected a PTV D95 per fraction above 0 Gy, e.g. 3")
    for name in ("spacing", "beamlet"):
        value = getattr(args, name)
        if not (np.isfinite(value) and value > 0):
            raise UsageError(f"--{name} {value:g}: expected a size above 0 mm")
    if not (np.isfinite(args.margin) and args.margin >= 0):
        raise UsageError(f"--margin {args.margin:g}: expected a margin of 0 mm or more")
    machine = se.load_machine(args.machine)
    if not isinstance(machine, PhotonMachine):
        raise UsageError(f"--machine {args.machine}: a {type(machine).__name__}, but sfrt dose plans photon "
                         "beams only; use a photon machine (e.g. photon_6mv), or sfrt compare --technique impt "
                         "for protons")
    return machine


def cmd_dose(args: argparse.Namespace) -> int:
    import sfrt_engine as se

    from ..evaluation import dose_statistics
    from ..io.result_set import ResultSet
    from ..memory import check_memory, estimate_peak_bytes
    from ..phantoms import sarcoma_thigh_grid
    from ..plotting import save_dose_slice

    machine = _check(args)
    backend = check_backend(args.backend)
    grid = sarcoma_thigh_grid(args.spacing)
    check_memory(estimate_peak_bytes(grid.size, args.beams, 0, backend, "dose"), memory_budget(args),
                 f"sfrt dose on a {' x '.join(map(str, grid.shape_zyx))} grid ({grid.size / 1e6:.1f} million "
                 f"voxels at {args.spacing:g} mm) with {args.beams} beams on {backend}",
                 "use a coarser --spacing")
    stages = Stages("dose")
    with ResultSet(args.out, settings=dict(vars(args), func=None, command="dose")) as result_set:
        stages("building the sarcoma phantom")
        patient = se.phantoms.sarcoma_thigh(spacing_xyz_mm=args.spacing)
        gantries = [i * 360.0 / args.beams for i in range(args.beams)]
        stages("building the beams")
        beams = se.plan.conformal_beams(patient, "PTV", machine, gantry_deg=gantries, beamlet_mm=args.beamlet,
                                        margin_mm=args.margin)
        stages(f"dose ({backend})")
        dose = se.compute_dose(beams, patient, backend=backend)
        stages("evaluation and plot")
        # normalise the plan so that PTV D95 = the prescribed dose per fraction
        ptv = dose_statistics(dose.gy, patient.structures["PTV"], "PTV")
        scale = args.prescription / ptv["d95_gy"]
        gy = dose.gy * scale
        iz = int(np.argmax(patient.structures["PTV"].sum(axis=(1, 2))))
        save_dose_slice(result_set.path / "dose_axial.png", gy, patient, iz,
                        title=f"{len(beams)}-beam conformal 6 MV, PTV D95 = {args.prescription:g} Gy")
    stages.done()
    n_beamlets = sum(b.n_beamlets for b in beams)
    print(f"patient: {patient.name}, grid {patient.grid.shape_zyx} (z, y, x) at {patient.grid.spacing_xyz_mm} mm")
    print(f"plan: {len(beams)} conformal {machine.name} beams at {', '.join(f'{g:g}' for g in gantries)} deg, "
          f"{n_beamlets} beamlets of {args.beamlet:g} mm, {scale:.1f} MU per beamlet")
    print(f"backend: {dose.backend}, dose computed in {dose.seconds:.2f} s; normalised to PTV D95 = "
          f"{args.prescription:g} Gy")
    header = f"{'structure':14s} {'vol [cc]':>9s} {'mean':>7s} {'min':>7s} {'max':>7s} {'D95':>7s} {'D5':>7s}  [Gy]"
    print(header)
    for name in patient.structures:
        s = dose_statistics(gy, patient.structures[name], name)
        print(f"{name:14s} {patient.structures.volume_cc(name):9.1f} {s['mean_gy']:7.3f} {s['min_gy']:7.3f} "
              f"{s['max_gy']:7.3f} {s['d95_gy']:7.3f} {s['d5_gy']:7.3f}")
    print(f"wrote {result_set.final_path / 'dose_axial.png'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("dose", help="conformal photon plan on the built-in sarcoma phantom",
                       parents=[common_options()])
    add_backend_option(p)
    p.add_argument("--machine", default="photon_6mv", help="built-in photon machine name or machine JSON file")
    p.add_argument("--beams", type=int, default=5, help="number of equally spaced beams (default 5)")
    p.add_argument("--beamlet", type=float, default=5.0, help="beamlet size at isocentre [mm] (default 5)")
    p.add_argument("--margin", type=float, default=5.0, help="aperture margin around the PTV [mm] (default 5)")
    p.add_argument("--spacing", type=float, default=2.5, help="phantom voxel size [mm] (default 2.5)")
    p.add_argument("--prescription", type=float, default=3.0, help="PTV D95 per fraction [Gy] (default 3)")
    add_out_option(p)
    add_memory_option(p)
    p.set_defaults(func=cmd_dose)
