"""The proton depth dose conserves energy and matches the entrance stopping power and a Monte Carlo.

References:

- NIST PSTAR (ICRU Report 49) electronic mass stopping power of liquid water [MeV cm^2/g]:
  9.559, 7.289, 5.445, 4.492, 4.170 at 70, 100, 150, 200, 225 MeV. At the surface a
  broad beam's dose per unit fluence is S_el(E0) plus the few per cent that nuclear
  secondaries add.
- MCsquare Monte Carlo (Souris et al., Med Phys 43:2362, 2016) integral depth doses of
  single spots in a 160 x 360 x 160 mm water box, 2 mm voxels, 2e6 primaries
  (``benchmarks/validation/mcsquare_reference.py``, data in
  ``benchmarks/validation/reference``): the energy deposited per proton, and the width
  and distal fall-off of the Bragg peak. The model's free constants were fitted to the
  150 MeV spot; 70, 100, 200 and 230 MeV are independent checks.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import sfrt_engine as se

PSTAR_S_EL_MEV_CM2_G = {70.0: 9.559, 100.0: 7.289, 150.0: 5.445, 200.0: 4.492, 225.0: 4.170}
#: Gy mm^2 per Gp for 1 MeV cm^2/g per proton: 1e9 protons * 1.602e-13 J/MeV * 1e3 g/kg * 100 mm^2/cm^2
GY_MM2_PER_GP = 1e9 * 1.602176634e-13 * 1e3 * 100.0
REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "validation" / "reference"
MC_ENERGIES = (70.0, 100.0, 150.0, 200.0, 230.0)


@functools.cache
def _machine():
    return se.load_machine("proton_generic")


def _idd_per_proton(energy_mev: float) -> tuple[np.ndarray, np.ndarray]:
    """(depth [mm], IDD per proton [MeV cm^2/g]) from the machine table."""
    m = _machine()
    idd = m.idd_gy_mm2_per_gp[m.energy_index(energy_mev)] / GY_MM2_PER_GP
    return m.depth_step_mm * np.arange(idd.size), idd


@functools.cache
def _mc(energy_mev: float):
    path = REFERENCE / f"mcsquare_spot{int(energy_mev):03d}.npz"
    with np.load(path) as data:
        dose = data["dose_gy"].astype(np.float64)
        voxel = float(data["voxel_mm"])
        idd = dose.sum(axis=(0, 2)) * voxel * voxel / GY_MM2_PER_GP
        return idd, voxel, float(data["deposited_fraction_of_e0"])


def _binned(depth_mm, idd, voxel_mm: float, n: int) -> np.ndarray:
    """The model's IDD averaged over the Monte Carlo's depth voxels."""
    fine = np.arange(0.0, n * voxel_mm, 0.05) + 0.025
    return np.interp(fine, depth_mm, idd).reshape(n, -1).mean(axis=1)


def _peak_figures(idd: np.ndarray, voxel_mm: float) -> dict:
    """R80, distal 80-20 % fall-off and full width at half maximum of a Bragg curve [mm]."""
    z = (np.arange(idd.size) + 0.5) * voxel_mm
    zf = np.arange(0.0, z[-1], 0.01)
    f = np.interp(zf, z, idd)
    i = int(np.argmax(f))
    top = f[i]

    def distal(level):
        return zf[i + int(np.argmax(f[i:] < level * top))]

    proximal50 = zf[int(np.argmax(f > 0.5 * top))]
    return {"r80": distal(0.8), "fall_80_20": distal(0.2) - distal(0.8), "fwhm": distal(0.5) - proximal50}


@pytest.mark.parametrize("energy_mev", sorted(PSTAR_S_EL_MEV_CM2_G))
def test_surface_dose_is_the_electronic_stopping_power(energy_mev):
    """Entrance IDD per proton within 3 % of PSTAR S_el(E0) (the issue's criterion), and not below it."""
    _, idd = _idd_per_proton(energy_mev)
    ratio = idd[0] / PSTAR_S_EL_MEV_CM2_G[energy_mev]
    assert 0.995 < ratio < 1.03, ratio


@pytest.mark.parametrize("energy_mev", [70.0, 100.0, 150.0, 200.0, 230.0])
def test_integral_depth_dose_deposits_less_than_the_beam_energy(energy_mev):
    """Energy per proton: below E0 (neutrons and photons leave), about 0.9-0.99 E0, closer to E0 at low energy."""
    depth, idd = _idd_per_proton(energy_mev)
    deposited = np.trapezoid(idd, depth / 10.0) / energy_mev
    assert 0.90 < deposited < 0.99
    # nuclear losses grow with the range: more escapes at higher energy
    if energy_mev > 70.0:
        lower_depth, lower_idd = _idd_per_proton(70.0)
        assert deposited < np.trapezoid(lower_idd, lower_depth / 10.0) / 70.0


@pytest.mark.parametrize("energy_mev", MC_ENERGIES)
def test_deposited_energy_matches_monte_carlo(energy_mev):
    """Within 1 % of E0 of MCsquare's deposited energy (70 MeV: MCsquare 98.1 %, the model 98.6 %;
    200 MeV: 93.7 % and 93.9 %; 0.3 % at most)."""
    depth, idd = _idd_per_proton(energy_mev)
    deposited = np.trapezoid(idd, depth / 10.0) / energy_mev
    _, _, mc_fraction = _mc(energy_mev)
    assert abs(deposited - mc_fraction) < 0.01, (deposited, mc_fraction)


@pytest.mark.parametrize("energy_mev", MC_ENERGIES)
def test_bragg_peak_shape_matches_monte_carlo(energy_mev):
    """Distal 80-20 % within 1 mm, R80 within 1 mm (MCsquare uses I = 78 eV, the model PSTAR's 75 eV, which
    moves the range by up to 0.6 mm), the plateau within 4 % (100 MeV: 3.3 %, 230 MeV: 3.8 %), the peak height within 6 % (150 MeV: 5.7 %), and
    the width at half maximum within 15 % (200-230 MeV: 10-12 % narrower; its proximal side lies on the slowly rising curve, so a 2-3 %
    difference in height there moves it by millimetres)."""
    mc_idd, voxel, _ = _mc(energy_mev)
    depth, idd = _idd_per_proton(energy_mev)
    model = _binned(depth, idd, voxel, mc_idd.size)
    got, want = _peak_figures(model, voxel), _peak_figures(mc_idd, voxel)
    assert abs(got["fwhm"] / want["fwhm"] - 1.0) < 0.15, (got, want)
    assert abs(got["fall_80_20"] - want["fall_80_20"]) < 1.0, (got, want)
    assert abs(got["r80"] - want["r80"]) < 1.0, (got, want)
    plateau = slice(1, int(0.7 * want["r80"] / voxel))
    ratio = model[plateau] / mc_idd[plateau]
    assert np.all(np.abs(ratio - 1.0) < 0.04), (ratio.min(), ratio.max())
    assert abs(model.max() / mc_idd.max() - 1.0) < 0.06
