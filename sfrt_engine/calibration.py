"""CT calibrations: stoichiometric HU -> stopping power and electron density, and a user's own curve.

Stoichiometric method (Schneider, Pedroni and Lomax, Phys Med Biol 41:111, 1996; Schneider,
Bortfeld and Schlegel, Phys Med Biol 45:459, 2000): a CT number gives a mass density
``rho(HU)`` (the scanner's calibration) and, through the interval it falls in, the elemental
composition of the human tissue found there. From the composition (mass fractions ``w_i``):

    (Z/A)    = sum_i w_i Z_i / A_i
    ln I     = sum_i w_i (Z_i / A_i) ln I_i / (Z/A)               (Bragg additivity)
    S/rho    = K (Z/A) / beta^2 [ ln(2 m c^2 beta^2 gamma^2 W_max / I^2) / 2 - beta^2 ]   (Bethe)
    SPR      = rho (S/rho) / (S/rho)_water                         (at the reference energy)
    rho_e,rel = rho (Z/A) / (Z/A)_water

Water uses the same elements and the same rule, so water maps to exactly 1. The tables
(density curve, tissue intervals, elements) are in ``machines/data/ct_stoichiometric.json``,
each with its source.

A user's calibration is a two-column CSV (``hu,value``) read by :func:`read_calibration_csv`
and checked to be monotonic and to cover -1000 to 3000 HU.
"""

from __future__ import annotations

import csv
import json
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import MachineDataError
from .patient import HUCalibration

__all__ = [
    "REQUIRED_HU_RANGE",
    "composition_properties",
    "read_calibration_csv",
    "stoichiometric_density",
    "stoichiometric_stopping_power",
]

#: CT numbers a calibration must cover [HU]: air to dense cortical bone.
REQUIRED_HU_RANGE = (-1000.0, 3000.0)
_ME_MEV = 0.51099895  # electron rest energy (CODATA 2018)
_MP_MEV = 938.27209  # proton rest energy (CODATA 2018)
#: Water by mass (H2O with standard atomic weights).
_WATER = {"H": 2 * 1.008 / (2 * 1.008 + 15.999), "O": 15.999 / (2 * 1.008 + 15.999)}


@cache
def _data() -> dict:
    text = (resources.files("sfrt_engine.machines") / "data" / "ct_stoichiometric.json").read_text()
    return json.loads(text)


def composition_properties(mass_fractions: dict, elements: dict | None = None) -> tuple[float, float]:
    """(Z/A [mol/g], I [eV]) of a mixture by Bragg additivity.

    Parameters
    ----------
    mass_fractions : dict
        Element symbol -> mass fraction (any positive scale; normalised here).
    elements : dict, optional
        Symbol -> {"z", "a", "i_ev"}; the calibration file's table by default.
    """
    table = elements or _data()["elements"]
    total = float(sum(mass_fractions.values()))
    if not total > 0:
        raise MachineDataError(f"composition {mass_fractions}: mass fractions must add up to more than 0")
    z_over_a = 0.0
    log_i = 0.0
    for symbol, fraction in mass_fractions.items():
        if symbol not in table:
            raise MachineDataError(f"composition: element {symbol!r} has no Z, A and I in the calibration file")
        el = table[symbol]
        share = float(fraction) / total * float(el["z"]) / float(el["a"])
        z_over_a += share
        log_i += share * np.log(float(el["i_ev"]))
    return z_over_a, float(np.exp(log_i / z_over_a))


def _mass_stopping_power(z_over_a: float, i_ev: float, energy_mev: float) -> float:
    """Bethe mass collision stopping power [MeV cm^2/g] without shell or density corrections."""
    g = 1.0 + energy_mev / _MP_MEV
    b2 = 1.0 - 1.0 / (g * g)
    bg2 = b2 * g * g
    w_max = 2 * _ME_MEV * bg2 / (1 + 2 * g * _ME_MEV / _MP_MEV + (_ME_MEV / _MP_MEV) ** 2)
    i_mev = i_ev * 1e-6
    return 0.307075 * z_over_a / b2 * (0.5 * np.log(2 * _ME_MEV * bg2 * w_max / i_mev ** 2) - b2)


def _nodes() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """CT-number nodes, mass density at them and the tissue whose interval holds each node."""
    data = _data()
    d_hu = np.asarray(data["mass_density_g_cm3"]["hu"], float)
    d_rho = np.asarray(data["mass_density_g_cm3"]["density"], float)
    tissues = sorted(data["tissues"], key=lambda t: t["hu_from"])
    starts = np.array([t["hu_from"] for t in tissues])
    lo, hi = REQUIRED_HU_RANGE[0], max(REQUIRED_HU_RANGE[1], float(d_hu[-1]))
    # the density nodes and the middle of every tissue interval: a piecewise-linear curve through the
    # tissues, as calibrations are fitted in clinics, without the steps where one composition meets the next
    ends = np.append(starts[1:], hi)
    middles = 0.5 * (starts + ends)
    middles = middles[(middles > lo) & (middles < hi)]
    hu = np.unique(np.concatenate([[lo, hi], d_hu[(d_hu >= lo) & (d_hu <= hi)], middles]))
    rho = np.interp(hu, d_hu, d_rho)
    owner = [tissues[max(int(np.searchsorted(starts, h, side="right")) - 1, 0)] for h in hu]
    return hu, rho, owner


@cache
def stoichiometric_stopping_power(energy_mev: float | None = None) -> HUCalibration:
    """HU -> proton stopping power relative to water, by the stoichiometric method.

    Cortical bone (1300 HU) gets about 1.55; water 1.0. ``energy_mev`` defaults to the file's
    reference energy (100 MeV).
    """
    data = _data()
    e = float(energy_mev or data["reference_energy_mev"])
    water = _mass_stopping_power(*composition_properties(_WATER), e)
    hu, rho, owner = _nodes()
    spr = [r * _mass_stopping_power(*composition_properties(t["mass_percent"]), e) / water
           for r, t in zip(rho, owner)]
    return HUCalibration(hu=tuple(hu), density=tuple(spr),
                         name=f"stoichiometric kV-CT to relative proton stopping power ({e:g} MeV, Schneider 2000)")


@cache
def stoichiometric_density() -> HUCalibration:
    """HU -> electron density relative to water, by the stoichiometric method (for photons)."""
    water_z_over_a, _ = composition_properties(_WATER)
    hu, rho, owner = _nodes()
    rho_e = [r * composition_properties(t["mass_percent"])[0] / water_z_over_a for r, t in zip(rho, owner)]
    return HUCalibration(hu=tuple(hu), density=tuple(rho_e),
                         name="stoichiometric kV-CT to relative electron density (Schneider 2000)")


def read_calibration_csv(path: str | Path, quantity: str = "stopping power") -> HUCalibration:
    """A user's calibration curve from a CSV file of ``hu,value`` rows (a header line is allowed).

    The curve must be monotonic (CT numbers strictly increasing, values never decreasing) and
    cover at least -1000 to 3000 HU; values must be finite and >= 0.

    Raises
    ------
    MachineDataError
        Naming the file, the row and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise MachineDataError(f"calibration file {str(path)!r} does not exist; give a CSV file of hu,value rows")
    hu: list[float] = []
    values: list[float] = []
    with path.open(newline="") as handle:
        for row_number, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if len(cells) < 2:
                raise MachineDataError(f"{path}: row {row_number} {row!r}: expected two columns, hu and {quantity}")
            try:
                a, b = float(cells[0]), float(cells[1])
            except ValueError:
                if not hu:  # a header line
                    continue
                raise MachineDataError(f"{path}: row {row_number} {row!r}: expected two numbers (hu, {quantity})"
                                       ) from None
            if not (np.isfinite(a) and np.isfinite(b)) or b < 0:
                raise MachineDataError(f"{path}: row {row_number}: ({a}, {b}) must be finite with {quantity} >= 0")
            if hu and a <= hu[-1]:
                raise MachineDataError(f"{path}: row {row_number}: CT number {a:g} HU after {hu[-1]:g} HU; the CT "
                                       "numbers must increase strictly")
            if values and b < values[-1]:
                raise MachineDataError(f"{path}: row {row_number}: {quantity} {b:g} at {a:g} HU is below {values[-1]:g}"
                                       f" at {hu[-1]:g} HU; a calibration curve must not decrease")
            hu.append(a)
            values.append(b)
    if len(hu) < 2:
        raise MachineDataError(f"{path}: {len(hu)} calibration point(s); expected at least two hu,value rows")
    lo, hi = REQUIRED_HU_RANGE
    if hu[0] > lo or hu[-1] < hi:
        raise MachineDataError(f"{path}: covers {hu[0]:g} to {hu[-1]:g} HU; a calibration must cover {lo:g} to "
                               f"{hi:g} HU (add points for air and dense bone)")
    return HUCalibration(hu=tuple(hu), density=tuple(values), name=f"{quantity} from {path.name}")
