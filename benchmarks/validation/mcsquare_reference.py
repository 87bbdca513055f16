"""Monte Carlo reference doses for the proton validation, computed with MCsquare.

MCsquare (Souris, Lee and Sterpin, Med Phys 43:2362, 2016; Apache-2.0) is a fast proton
Monte Carlo engine validated against Geant4/GATE. Its Linux executable and material data
ship in the ``opentps-core`` 2.0.0 wheel on PyPI, so the reference is reproducible from
PyPI alone::

    python -m pip download --no-deps opentps-core==2.0.0 -d /tmp/wheel
    python benchmarks/validation/mcsquare_reference.py --wheel /tmp/wheel/opentps_core-2.0.0-py3-none-any.whl

Cases (all in a 160 x 360 x 160 mm water box, the beam along +y from gantry 0, 2 mm voxels):

- ``spot070`` ... ``spot230``: one spot of 70, 100, 150, 200 or 230 MeV, sigma 4 mm in air,
  energy spread 0.6 %;
- ``broad150``: 150 MeV spots on a 4 mm grid over 120 x 120 mm (a broad field);
- ``halfbone150``: the broad field with a 20 mm cortical-bone slab (ICRU 46 composition,
  1.92 g/cm3) covering x < 0 from 40 mm depth.

The beam is one Gaussian spot of sigma 4 mm without divergence and with 0.6 % energy spread
(the engine's generic machine at 150 MeV); comparisons set the engine's spot to the same size.
Weights: 1 MU = 1e9 protons (1 Gp), the engine's unit, so both doses are in Gy per Gp.
Results go to ``benchmarks/validation/reference/mcsquare_<case>.npz``: the dose [z, y, x] in
Gy for 1 Gp in every spot (y grows with depth; x and z centred on the beam axis), the
phantom's CT numbers, the fraction of the beam energy deposited in the box and the settings; about a minute per
million primaries on two cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "reference"
MCSQ = "opentps/core/processing/doseCalculation/protons/MCsquare/"

#: Water box [mm] and scoring voxel [mm]; the beam enters at y = -BOX_Y/2.
BOX_X_MM, BOX_Y_MM, BOX_Z_MM, VOXEL_MM = 160.0, 360.0, 160.0, 2.0
SIGMA_AIR_MM, ENERGY_SPREAD_PERCENT = 4.0, 0.6
#: Case name -> beam energy [MeV]: single spots at five energies, the broad field and the bone edge at 150 MeV.
CASES = {"spot070": 70.0, "spot100": 100.0, "spot150": 150.0, "spot200": 200.0, "spot230": 230.0,
         "broad150": 150.0, "halfbone150": 150.0}
#: MCsquare material IDs (Materials/list.dat of the wheel): 17 Water, 38 Bone_Cortical (ICRU 46).
WATER_ID, BONE_ID = 17, 38
#: CT numbers used to tag the two materials in the reference CT.
WATER_HU, BONE_HU = 0, 1500
BONE_SLAB = {"x_max_mm": 0.0, "depth_from_mm": 40.0, "thickness_mm": 20.0}


def _extract(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(MCSQ) and not name.endswith((".exe", ".dll", ".bat")):
                z.extract(name, dest)
    root = dest / MCSQ
    for exe in root.glob("MCsquare_linux*"):
        exe.chmod(0o755)
    return root


def _phantom(case: str) -> np.ndarray:
    """CT numbers [z, y, x] of the case in MCsquare's frame, where the gantry-0 beam runs towards -y:
    depth is measured from the high-y face."""
    nx, ny, nz = (round(s / VOXEL_MM) for s in (BOX_X_MM, BOX_Y_MM, BOX_Z_MM))
    hu = np.full((nz, ny, nx), WATER_HU, dtype=np.float32)
    if case == "halfbone150":
        x = (np.arange(nx) + 0.5) * VOXEL_MM - BOX_X_MM / 2
        depth = BOX_Y_MM - (np.arange(ny) + 0.5) * VOXEL_MM
        ys = (depth >= BONE_SLAB["depth_from_mm"]) & (depth < BONE_SLAB["depth_from_mm"] + BONE_SLAB["thickness_mm"])
        hu[:, ys[:, None] & (x < BONE_SLAB["x_max_mm"])[None, :]] = BONE_HU
    return hu


def _write_mhd(path: Path, hu: np.ndarray) -> None:
    nz, ny, nx = hu.shape
    path.with_suffix(".raw").write_bytes(np.ascontiguousarray(hu, dtype="<f4").tobytes())
    path.write_text(
        "ObjectType = Image\nNDims = 3\nElementNumberOfChannels = 1\nBinaryData = True\nCompressedData = False\nElementByteOrderMSB = False\n"
        "Offset = 0 0 0\n"
        f"ElementSpacing = {VOXEL_MM} {VOXEL_MM} {VOXEL_MM}\nDimSize = {nx} {ny} {nz}\n"
        f"ElementType = MET_FLOAT\nElementDataFile = {path.with_suffix('.raw').name}\n")


def _spots(case: str) -> list[tuple[float, float]]:
    if case.startswith("spot"):
        return [(0.0, 0.0)]
    g = np.arange(-60.0, 60.0 + 1e-9, 4.0)
    return [(float(a), float(b)) for b in g for a in g]


def _write_inputs(work: Path, root: Path, case: str, primaries: float, threads: int, seed: int) -> None:
    (work / "HU_Density.txt").write_text(f"-1000 0.001\n{WATER_HU - 1} 1.0\n{WATER_HU} 1.0\n{WATER_HU + 1} 1.0\n"
                                         f"{BONE_HU - 1} 1.0\n{BONE_HU} 1.92\n3000 1.92\n")
    (work / "HU_Material.txt").write_text(f"-1050 {WATER_ID}\n{BONE_HU - 50} {BONE_ID}\n")
    # MCsquare samples each spot's phase space from the correlated Gaussian model of its beam data library;
    # a divergence or correlation of exactly zero breaks that sampling, so both are tiny instead
    # (0.1 mrad moves a proton 0.05 mm over the 500 mm from the nozzle).
    energy = CASES[case]
    row = (f"{SIGMA_AIR_MM} 0.0001 0.001 {SIGMA_AIR_MM} 0.0001 0.001")
    (work / "BDL.txt").write_text(
        "--UPenn beam model (double gaussian)--\n\nNozzle exit to Isocenter distance\n500.0\n\n"
        "SMX to Isocenter distance\n2000.0\n\nSMY to Isocenter distance\n2000.0\n\n"
        "Beam parameters\n1 energies\n\n"
        "NominalEnergy \t MeanEnergy \t EnergySpread \t ProtonsMU \t Weight1 \t SpotSize1x \t Divergence1x \t "
        "Correlation1x \t SpotSize1y \t Divergence1y \t Correlation1y \t Weight2 \t SpotSize2x \t Divergence2x \t "
        "Correlation2x \t SpotSize2y \t Divergence2y \t Correlation2y\n"
        f"{energy:.1f} {energy:.1f} {ENERGY_SPREAD_PERCENT} 1000000000.0 1.0 {row} 0.0 {row}\n")
    spots = _spots(case)
    lines = ["#TREATMENT-PLAN-DESCRIPTION", "#PlanName", case, "#NumberOfFractions", "1", "##FractionID", "1",
             "##NumberOfFields", "1", "###FieldsID", "1", "#TotalMetersetWeightOfAllFields", f"{len(spots):f}", "",
             "#FIELD-DESCRIPTION", "###FieldID", "1", "###FinalCumulativeMeterSetWeight", f"{len(spots):f}",
             "###GantryAngle", "0.0", "###PatientSupportAngle", "0.0", "###IsocenterPosition",
             f"{BOX_X_MM / 2:f}\t {BOX_Y_MM / 2:f}\t {BOX_Z_MM / 2:f}", "###NumberOfControlPoints", "1", "",
             "#SPOTS-DESCRIPTION", "####ControlPointIndex", "1", "####SpotTunnedID", "1",
             "####CumulativeMetersetWeight", f"{len(spots):f}", "####Energy (MeV)", f"{energy:f}",
             "####NbOfScannedSpots", str(len(spots)), "####X Y Weight"]
    lines += [f"{u:f} {v:f} 1.0" for u, v in spots]
    (work / "Plan.txt").write_text("\n".join(lines) + "\n")
    template = {
        "Num_Threads": threads, "RNG_Seed": seed, "Num_Primaries": f"{primaries:.0f}", "E_Cut_Pro": 0.5,
        "D_Max": 0.2, "Epsilon_Max": 0.25, "Te_Min": 0.05, "CT_File": "CT.mhd",
        "HU_Density_Conversion_File": "HU_Density.txt", "HU_Material_Conversion_File": "HU_Material.txt",
        "BDL_Machine_Parameter_File": "BDL.txt", "BDL_Plan_File": "Plan.txt",
        "Simulate_Nuclear_Interactions": "True", "Simulate_Secondary_Protons": "True",
        "Simulate_Secondary_Deuterons": "True", "Simulate_Secondary_Alphas": "True",
        "Compute_stat_uncertainty": "False", "Output_Directory": "Outputs", "Dose_MHD_Output": "True",
        "Energy_MHD_Output": "True",
        "Dose_to_Water_conversion": "Disabled",
    }
    (work / "config.txt").write_text("\n".join(f"{k}\t{v}" for k, v in template.items()) + "\n")
    shutil.copytree(root / "Materials", work / "Materials")


def _read_mhd(path: Path) -> np.ndarray:
    header = dict(line.split(" = ", 1) for line in path.read_text().splitlines() if " = " in line)
    nx, ny, nz = (int(v) for v in header["DimSize"].split())
    dtype = {"MET_FLOAT": np.float32, "MET_DOUBLE": np.float64}[header["ElementType"].strip()]
    data = np.fromfile(path.parent / header["ElementDataFile"].strip(), dtype=dtype)
    return data.reshape(nz, ny, nx)


#: MCsquare scores per simulated primary: energy in eV and dose in eV/g. One Gp (1e9 protons)
#: of dose in Gy is then 1e9 * 1.602176634e-19 J/eV * 1e3 g/kg times the eV/g figure.
GY_PER_GP_PER_EV_PER_G = 1e9 * 1.602176634e-19 * 1e3


def run_case(root: Path, case: str, primaries: float, threads: int, seed: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    hu = _phantom(case)
    spots = _spots(case)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _write_mhd(work / "CT.mhd", hu)
        _write_inputs(work, root, case, primaries, threads, seed)
        t0 = time.perf_counter()
        proc = subprocess.run([str(root / "MCsquare_linux")], cwd=work, capture_output=True, text=True, check=False,
                              env={**os.environ, "MCsquare_Materials_Dir": str(work / "Materials")})
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not (work / "Outputs" / "Dose.mhd").exists():
            raise SystemExit(f"MCsquare failed on {case} (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-2000:]}")
        dose_ev_per_g = _read_mhd(work / "Outputs" / "Dose.mhd")
        energy_ev = _read_mhd(work / "Outputs" / "Energy.mhd")
        log = proc.stdout
    if not dose_ev_per_g.any():
        raise SystemExit(f"MCsquare gave no dose for {case}; its log:\n{log[-2000:]}")
    # per primary of the plan -> every spot carrying 1 Gp; flip y so that depth grows with the index
    dose_gy = (dose_ev_per_g * GY_PER_GP_PER_EV_PER_G * len(spots))[:, ::-1, :]
    target = OUT / f"mcsquare_{case}.npz"
    tmp_target = target.with_name(target.stem + ".partial.npz")
    np.savez_compressed(
        tmp_target, dose_gy=dose_gy.astype(np.float32), hu=hu[:, ::-1, :].astype(np.int16), voxel_mm=VOXEL_MM,
        box_xyz_mm=np.array([BOX_X_MM, BOX_Y_MM, BOX_Z_MM]), energy_mev=CASES[case], sigma_air_mm=SIGMA_AIR_MM,
        energy_spread_percent=ENERGY_SPREAD_PERCENT, spots_uv_mm=np.array(spots),
        deposited_fraction_of_e0=float(energy_ev.sum(dtype=np.float64) / (CASES[case] * 1e6)),
        primaries=primaries, seed=seed, seconds=seconds, engine="MCsquare (opentps-core 2.0.0 wheel)",
        bone_slab=str(BONE_SLAB) if case == "halfbone150" else "", log_tail=log[-1500:])
    tmp_target.replace(target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", required=True, type=Path, help="opentps_core-2.0.0-py3-none-any.whl")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--primaries", type=float, default=2e6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = _extract(args.wheel, Path(tmp))
        for case in args.cases:
            print(f"{case}: {run_case(root, case, args.primaries, args.threads, args.seed)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
