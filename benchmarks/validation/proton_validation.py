"""Proton validation report: the engine against MCsquare Monte Carlo doses in water and behind a bone edge.

Regenerates ``benchmarks/validation/results/proton_validation.json`` (a table of figures and
gamma pass rates) and ``proton_*.png`` from the committed references
(``benchmarks/validation/reference/mcsquare_*.npz``, made by ``mcsquare_reference.py``)::

    python benchmarks/validation/proton_validation.py [--backend cpp]

For each case the engine computes the same beam on the same grid: one spot or a 31 x 31 spot
lattice (4 mm) of the generic machine, with the Monte Carlo's spot size (sigma 4 mm in air)
and the generic 0.6 % energy spread. Water is water (stopping-power ratio 1); the bone of the
half-plane case is ICRU cortical bone, 1.92 g/cm3 with the NIST PSTAR stopping-power ratio
6.536 / 7.289 at 100 MeV, so both engines see the same slab.

Figures: entrance dose per proton against PSTAR's electronic stopping power, deposited
energy, R80 against PSTAR and the Monte Carlo, distal 80-20 % fall-off, peak width; 3-D
gamma (global, pymedphys) 2 %/2 mm for the spot and the broad field and 3 %/3 mm behind the
bone edge, both doses normalised at the entrance, 10 % threshold; the R80 shift behind the
bone; the lateral 80-20 % width of the distal transition at the bone edge.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

import sfrt_engine as se
from sfrt_engine.machines import build_proton_machine
from sfrt_engine.plan.protons import ProtonBeam, SpotLayer

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"
RESULTS = HERE / "results"
#: NIST PSTAR electronic stopping power of liquid water [MeV cm^2/g] and CSDA range [g/cm^2]
PSTAR_S_EL = {70.0: 9.559, 100.0: 7.289, 150.0: 5.445, 200.0: 4.492, 230.0: 4.114}
PSTAR_CSDA_MM = {70.0: 40.80, 100.0: 77.18, 150.0: 157.7, 200.0: 259.6, 230.0: 329.5}
#: ICRU cortical bone, 1.92 g/cm3, PSTAR mass stopping power 6.536 against water's 7.289 at 100 MeV
BONE_SPR = 1.92 * 6.536 / 7.289
GY_MM2_PER_GP = 1e9 * 1.602176634e-13 * 1e3 * 100.0


def _machine(sigma_air_mm: float):
    data = json.loads((resources.files("sfrt_engine.machines") / "data" / "proton_generic.json").read_text())
    data["name"] = "proton_generic_mc_spot"
    data["spot_sigma_in_air_mm"] = {"energy_mev": [70.0, 230.0], "sigma_mm": [sigma_air_mm, sigma_air_mm],
                                    "source": "the Monte Carlo reference's spot"}
    return build_proton_machine(data)


def _reference(case: str) -> dict:
    with np.load(REFERENCE / f"mcsquare_{case}.npz") as data:
        return {k: data[k] for k in data.files}


def _patient(ref: dict) -> se.Patient:
    hu = ref["hu"].astype(np.float32)
    nz, ny, nx = hu.shape
    voxel = float(ref["voxel_mm"])
    box = ref["box_xyz_mm"]
    grid = se.Grid((nz, ny, nx), voxel, tuple(-0.5 * b + 0.5 * voxel for b in box))
    calibration = se.HUCalibration(hu=(-1000.0, 0.0, 1500.0, 3000.0), density=(0.0, 1.0, BONE_SPR, BONE_SPR),
                                   name="water and ICRU cortical bone")
    return se.Patient(grid, hu, stopping_power_calibration=calibration, name="mc box")


def _engine_dose(ref: dict, patient: se.Patient, backend: str) -> np.ndarray:
    machine = _machine(float(ref["sigma_air_mm"]))
    spots = np.asarray(ref["spots_uv_mm"], float)
    u = np.unique(spots[:, 0])
    v = np.unique(spots[:, 1])
    spacing = (float(u[1] - u[0]) if u.size > 1 else 1.0, float(v[1] - v[0]) if v.size > 1 else 1.0)
    layer = SpotLayer(float(ref["energy_mev"]), np.ones((v.size, u.size)), spacing, (float(u[0]), float(v[0])))
    beam = ProtonBeam(machine, (0.0, 0.0, 0.0), 0.0, [layer])
    return se.compute_dose(beam, patient, backend=backend).gy


def _idd(dose: np.ndarray, voxel: float) -> np.ndarray:
    return dose.sum(axis=(0, 2)) * voxel * voxel


def _distal(curve: np.ndarray, z: np.ndarray, level: float) -> float:
    zf = np.arange(z[0], z[-1], 0.01)
    f = np.interp(zf, z, curve)
    i = int(np.argmax(f))
    return float(zf[i + int(np.argmax(f[i:] < level * f[i]))])


def _depth_figures(curve: np.ndarray, z: np.ndarray) -> dict:
    zf = np.arange(z[0], z[-1], 0.01)
    f = np.interp(zf, z, curve)
    top = f.max()
    proximal = float(zf[int(np.argmax(f > 0.5 * top))])
    return {"r80_mm": _distal(curve, z, 0.8), "fall_80_20_mm": _distal(curve, z, 0.2) - _distal(curve, z, 0.8),
            "fwhm_mm": _distal(curve, z, 0.5) - proximal, "peak_to_entrance": float(top / curve[0])}


def _entrance_normalised(dose: np.ndarray, voxel: float) -> np.ndarray:
    """Dose over its mean in the central 10 x 10 mm, 2-10 mm deep (the normalisation point)."""
    nz, ny, nx = dose.shape
    cz, cx, half = nz // 2, nx // 2, max(1, int(round(5.0 / voxel)))
    y0, y1 = int(round(2.0 / voxel)), int(round(10.0 / voxel))
    return dose / float(dose[cz - half:cz + half, y0:y1, cx - half:cx + half].mean())


def _gamma(reference: np.ndarray, evaluation: np.ndarray, voxel: float, dose_percent: float, dta_mm: float) -> float:
    import pymedphys

    axes = tuple(voxel * (np.arange(n) - 0.5 * (n - 1)) for n in reference.shape)
    g = pymedphys.gamma(axes, reference, axes, evaluation, dose_percent_threshold=dose_percent,
                        distance_mm_threshold=dta_mm, lower_percent_dose_cutoff=10, interp_fraction=5,
                        max_gamma=2.0, random_subset=30000, local_gamma=False)
    valid = np.isfinite(g)
    return float(100.0 * np.mean(g[valid] <= 1.0))


def _lateral_80_20(row: np.ndarray, x: np.ndarray) -> float:
    """Distance over which a row rises from 20 % to 80 % of the way between its low (x < -20 mm) and high sides."""
    hi, lo = row[x > 20].mean(), row[x < -20].mean()
    xf = np.arange(x[0], x[-1], 0.05)
    fr = np.interp(xf, x, row)
    at = [float(xf[int(np.argmax(fr >= lo + level * (hi - lo)))]) for level in (0.2, 0.8)]
    return at[1] - at[0]


def _bone_edge(mc: np.ndarray, ours: np.ndarray, ref: dict) -> dict:
    """R80 shift behind the bone (x < 0) and beside it, and the lateral 80-20 % width of the distal transition."""
    voxel = float(ref["voxel_mm"])
    nz, ny, nx = mc.shape
    z = (np.arange(ny) + 0.5) * voxel
    x = (np.arange(nx) + 0.5) * voxel - 0.5 * nx * voxel
    cz = nz // 2
    out = {}
    for name, dose in (("mc", mc), ("engine", ours)):
        plane = dose[cz - 2:cz + 3].mean(axis=0)  # [y, x]
        behind = plane[:, (x > -40) & (x < -20)].mean(axis=1)
        beside = plane[:, (x > 20) & (x < 40)].mean(axis=1)
        r_behind, r_beside = _distal(behind, z, 0.8), _distal(beside, z, 0.8)
        mid = 0.5 * (r_behind + r_beside)  # the depth where the two ranges mix
        out[name] = {"r80_behind_mm": r_behind, "r80_beside_mm": r_beside, "shift_mm": r_beside - r_behind,
                     "lateral_80_20_mm": _lateral_80_20(plane[int(mid / voxel)], x)}
    return out


def _plots(results: dict, idds: dict, planes: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    files = []
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    for case, (z, mc, ours) in idds.items():
        line, = ax.plot(z, ours, lw=1.5, label=f"{case} engine")
        ax.plot(z, mc, ".", ms=3, color=line.get_color(), label=f"{case} MCsquare")
    ax.set_xlabel("depth in water [mm]")
    ax.set_ylabel("integral depth dose [Gy mm$^2$ per Gp]")
    ax.set_title("Single spots in water: engine (lines) and MCsquare Monte Carlo (dots)")
    ax.legend(ncols=2, fontsize=8, loc="upper left")
    path = RESULTS / "proton_idd.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path.name)
    if planes:
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), constrained_layout=True)
        mc, ours, extent = planes["mc"], planes["engine"], planes["extent"]
        vmax = float(max(mc.max(), ours.max()))
        for ax, data, title in ((axes[0], mc, "MCsquare"), (axes[1], ours, "engine")):
            im = ax.imshow(data, origin="lower", extent=extent, aspect="auto", vmin=0, vmax=vmax, cmap="viridis")
            ax.axvline(0.0, color="w", lw=0.8, ls=":")
            ax.set_title(f"{title}: 150 MeV, bone 40-60 mm deep at x < 0", fontsize=10)
            ax.set_xlabel("x [mm] (bone at x < 0)")
            ax.set_ylabel("depth [mm]")
        fig.colorbar(im, ax=axes[:2], label="dose / entrance dose")
        diff = axes[2].imshow(ours - mc, origin="lower", extent=extent, aspect="auto", cmap="RdBu_r",
                              vmin=-0.3, vmax=0.3)
        axes[2].set_title("engine - MCsquare [entrance dose]\n(in the bone: dose to water vs dose to bone)",
                          fontsize=10)
        axes[2].set_xlabel("x [mm]")
        fig.colorbar(diff, ax=axes[2])
        path = RESULTS / "proton_bone_edge.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path.name)
    return files


def run(backend: str = "cpp", cases=None) -> dict:
    t0 = time.perf_counter()
    available = sorted(p.stem.removeprefix("mcsquare_") for p in REFERENCE.glob("mcsquare_*.npz"))
    cases = [c for c in (cases or available) if c in available]
    results: dict = {"backend": backend, "reference": "MCsquare via opentps-core 2.0.0 (mcsquare_reference.py)",
                     "cases": {}}
    idds, planes = {}, {}
    for case in cases:
        ref = _reference(case)
        voxel = float(ref["voxel_mm"])
        patient = _patient(ref)
        mc = ref["dose_gy"].astype(np.float64)
        ours = _engine_dose(ref, patient, backend)
        energy = float(ref["energy_mev"])
        z = (np.arange(mc.shape[1]) + 0.5) * voxel
        entry = {"energy_mev": energy}
        if case.startswith("spot"):
            mc_idd, our_idd = _idd(mc, voxel), _idd(ours, voxel)
            idds[case] = (z, mc_idd, our_idd)
            m = se.load_machine("proton_generic")
            table = m.idd_gy_mm2_per_gp[m.energy_index(energy)]
            entry["entrance_over_pstar_s_el"] = float(table[0] / GY_MM2_PER_GP / PSTAR_S_EL[energy])
            entry["deposited_fraction"] = float(np.trapezoid(table, dx=m.depth_step_mm) / 10.0 / GY_MM2_PER_GP / energy)
            entry["deposited_fraction_mc"] = float(ref["deposited_fraction_of_e0"])
            entry["engine"] = _depth_figures(our_idd, z)
            entry["mc"] = _depth_figures(mc_idd, z)
            entry["r80_vs_pstar_percent"] = 100.0 * (entry["engine"]["r80_mm"] / PSTAR_CSDA_MM[energy] - 1.0)
        if case in ("spot150", "broad150", "halfbone150"):
            a, b = _entrance_normalised(mc, voxel), _entrance_normalised(ours, voxel)
            criteria = (3.0, 3.0) if case == "halfbone150" else (2.0, 2.0)
            entry["gamma"] = {"criteria": f"{criteria[0]:g}%/{criteria[1]:g}mm global, 10% threshold",
                              "pass_rate_percent": _gamma(a, b, voxel, *criteria)}
            if case == "halfbone150":
                entry["bone_edge"] = _bone_edge(a, b, ref)
                nz, nx = mc.shape[0], mc.shape[2]
                planes = {"mc": a[nz // 2], "engine": b[nz // 2],
                          "extent": (-0.5 * nx * voxel, 0.5 * nx * voxel, 0.0, mc.shape[1] * voxel)}
        results["cases"][case] = entry
        print(f"{case}: {json.dumps(entry, default=float)}", flush=True)
    results["figures"] = _plots(results, idds, planes)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "proton_validation.json"
    tmp = target.with_suffix(".json.partial")
    tmp.write_text(json.dumps(results, indent=2, default=float) + "\n")
    tmp.replace(target)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpp")
    parser.add_argument("--cases", nargs="*", default=None)
    args = parser.parse_args(argv)
    run(args.backend, args.cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
