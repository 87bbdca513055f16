"""Proton pencil-beam machine model (DESIGN 5.3).

A spot of energy E at BEV position (u_s, v_s) with weight W [Gp = 1e9 protons] gives,
at a voxel of water-equivalent depth d and physical lateral distance r from the spot
axis::

    D = W * IDD_E(d) * exp(-r^2 / (2 s^2)) / (2 pi s^2),   s^2 = s_air(E)^2 + s_mcs(E, d)^2

- ``IDD_E``: Bortfeld's analytic Bragg curve (Med Phys 24:2024, 1997), with the range
  R0 the CSDA range in water from the Bethe formula (I = 75 eV), range straggling and
  energy spread, and nuclear fluence loss; tabulated per energy on a depth grid, in
  Gy mm^2 per Gp.
- ``s_mcs``: Fermi-Eyges multiple Coulomb scattering in water with the differential
  Highland scattering power (Gottschalk 2010).
- ``s_air``: spot size in air at the isocentre, interpolated in energy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import MachineDataError

__all__ = ["ProtonMachine", "bortfeld_idd", "build_proton_machine", "csda_range_water_cm", "energy_conserving_idd"]

_ME_MEV = 0.51099895  # electron rest energy (CODATA 2018)
_MP_MEV = 938.27209  # proton rest energy (CODATA 2018)
_K_MEV_CM2_MOL = 0.307075  # 4 pi N_A r_e^2 m_e c^2 (PDG)
#: 1 MeV/g in Gy; with W in Gp (1e9 protons) and areas in mm^2 (100 mm^2 = 1 cm^2):
#: D[Gy] = W[Gp] * 1e9 * IDD[MeV cm^2/g] * G[1/mm^2] * 100 * 1.602176634e-10
_GY_MM2_PER_GP_PER_MEV_CM2_G = 1e9 * 100.0 * 1.602176634e-10
_ELEMENTARY_CHARGE_C = 1.602176634e-19  # SI 2019 exact


def _bethe_stopping_power(t_mev: np.ndarray, i_ev: float, z_over_a: float) -> np.ndarray:
    """Mass collision stopping power of water for protons [MeV cm^2/g] (Bethe, no shell/density corrections)."""
    g = 1.0 + t_mev / _MP_MEV
    b2 = 1.0 - 1.0 / (g * g)
    bg2 = b2 * g * g
    w_max = 2 * _ME_MEV * bg2 / (1 + 2 * g * _ME_MEV / _MP_MEV + (_ME_MEV / _MP_MEV) ** 2)
    i_mev = i_ev * 1e-6
    return _K_MEV_CM2_MOL * z_over_a / b2 * (0.5 * np.log(2 * _ME_MEV * bg2 * w_max / i_mev ** 2) - b2)


def _range_energy_table(i_ev: float, z_over_a: float):
    """CSDA range [cm of water] on a log energy grid from 0.5 to 400 MeV."""
    t = np.geomspace(0.5, 400.0, 6000)
    inv = 1.0 / _bethe_stopping_power(t, i_ev, z_over_a)
    r = np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(t))])
    r += 8.9e-4  # CSDA range of a 0.5 MeV proton in water (PSTAR), where the Bethe formula fails
    return t, r


def csda_range_water_cm(energy_mev, i_ev: float = 75.0, z_over_a: float = 0.55508):
    """CSDA range of protons in liquid water [g/cm^2] (Bethe formula, mean excitation energy ``i_ev``)."""
    t, r = _range_energy_table(i_ev, z_over_a)
    return np.exp(np.interp(np.log(np.asarray(energy_mev, float)), np.log(t), np.log(r)))


def bortfeld_idd(depth_cm: np.ndarray, energy_mev: float, range_cm: float, *, p: float = 1.77,
                 beta_per_cm: float = 0.012, gamma: float = 0.6, epsilon: float = 0.1,
                 energy_spread_fraction: float = 0.006) -> np.ndarray:
    """Bortfeld (1997) depth dose per unit fluence in water [MeV cm^2/g] (eqs. 26-29).

    ``alpha = R0 / E0^p`` so that the model's range is ``range_cm``. Straggling:
    sigma_mono = 0.012 R0^0.935 cm, plus the energy spread sigma_E = fraction * E0
    propagated through R = alpha E^p. Far before the peak (zeta > 10) the
    sigma -> 0 limit (eq. 28) avoids overflow of the parabolic cylinder functions.
    """
    from scipy.special import gamma as gamma_fn  # on first use, not at import (STYLE 1)
    from scipy.special import pbdv

    z = np.asarray(depth_cm, dtype=float)
    r0 = float(range_cm)
    e0 = float(energy_mev)
    alpha = r0 / e0 ** p
    s_mono = 0.012 * r0 ** 0.935
    s_e = energy_spread_fraction * e0
    sigma = np.sqrt(s_mono ** 2 + (s_e * alpha * p * e0 ** (p - 1)) ** 2)
    zeta = (r0 - z) / sigma
    norm = 1.0 / (p * alpha ** (1.0 / p) * (1.0 + beta_per_cm * r0))
    out = np.zeros_like(z)
    far = zeta > 10.0
    rz = r0 - z[far]
    out[far] = norm * (rz ** (1.0 / p - 1.0) + (beta_per_cm + gamma * beta_per_cm * p + epsilon * p / r0) * rz ** (1.0 / p))
    near = ~far & (zeta > -40.0)
    zz = zeta[near]
    pre = np.exp(-zz * zz / 4.0) * sigma ** (1.0 / p) * gamma_fn(1.0 / p) / np.sqrt(2.0 * np.pi) * norm
    d1 = pbdv(-1.0 / p, -zz)[0]
    d2 = pbdv(-1.0 / p - 1.0, -zz)[0]
    out[near] = pre * (d1 / sigma + (beta_per_cm / p + gamma * beta_per_cm + epsilon / r0) * d2)
    return np.maximum(out, 0.0)


def straggling_mm(energy_mev: float, range_cm: float, bragg: dict) -> float:
    """1-sigma spread of the end of range [mm]: range straggling and the beam's energy spread.

    Range straggling is ``scale * 0.012 R0^0.935`` cm (Bortfeld 1997, eq. 18, with the machine
    file's ``straggling_scale``); the energy spread ``sigma_E = fraction * E0`` moves the range
    by ``dR/dE sigma_E`` with the Bragg-Kleeman rule ``R = alpha E^p``.
    """
    p = float(bragg["p"])
    alpha = range_cm / energy_mev ** p
    mono = float(bragg.get("straggling_scale", 1.0)) * 0.012 * range_cm ** 0.935
    spread = float(bragg["energy_spread_fraction"]) * energy_mev * alpha * p * energy_mev ** (p - 1)
    return 10.0 * float(np.hypot(mono, spread))


def energy_conserving_idd(depth_mm: np.ndarray, energy_mev: float, t_table: np.ndarray, r_table: np.ndarray, *,
                          beta_per_cm: float, local_fraction: float,
                          buildup_fraction: float, buildup_mm: float, straggling_mm: float,
                          step_mm: float = 0.05) -> np.ndarray:
    """Integral depth dose per incident proton in water [MeV cm^2/g] that conserves energy.

    Per incident proton on a fine depth grid (``step_mm``), with E(z) the residual energy of
    the CSDA range-energy table (Bethe, the same table as the range):

    - primary fluence falls linearly, ``Phi(z) = (1 + beta (R0 - z)) / (1 + beta R0)``
      (Bortfeld 1997, eq. 6; beta from ICRU Report 63 nonelastic cross-sections);
    - primaries deposit their electronic energy loss, ``Phi dE`` per cell, so the entrance
      dose is the electronic stopping power ``S_el(E0)``;
    - the energy ``E(z) |dPhi|`` of the primaries removed by nonelastic nuclear interactions is
      split three ways: ``local_fraction`` deposited where it is released (short-range alphas,
      recoils and slow protons), ``buildup_fraction`` carried forward by secondary protons and
      deposited along an exponential of mean length ``buildup_mm`` that stops at the primary's
      range R0, and the rest carried away by neutrons and photons;
    - range straggling and the energy spread blur the end of range with a Gaussian of
      ``straggling_mm``; more than six sigma before R0 the curve is not blurred.

    The integral over depth is ``E0 - (1 - local_fraction - buildup_fraction) * E_nuclear``:
    the energy the beam carries, less what leaves the phantom.
    """
    h = float(step_mm) / 10.0  # cm
    r0 = float(np.exp(np.interp(np.log(energy_mev), np.log(t_table), np.log(r_table))))
    lam = float(buildup_mm) / 10.0
    sig = float(straggling_mm) / 10.0
    z_end = r0 + 8.0 * sig + 8.0 * lam + 1.0
    edges = h * np.arange(int(np.ceil(z_end / h)) + 1)
    residual = np.maximum(r0 - edges, 0.0)
    e_edge = np.where(residual > r_table[0], np.interp(residual, r_table, t_table), 0.0)
    e_edge[0] = energy_mev
    phi_edge = np.where(edges < r0, (1.0 + beta_per_cm * residual) / (1.0 + beta_per_cm * r0), 0.0)
    phi_mid = 0.5 * (phi_edge[1:] + phi_edge[:-1])
    primary = phi_mid * (e_edge[:-1] - e_edge[1:])  # MeV per cell
    removed = (phi_edge[:-1] - phi_edge[1:]) * 0.5 * (e_edge[:-1] + e_edge[1:])  # nuclear energy per cell
    # forward build-up: the stock c_k = a_k c_{k-1} + q_k loses (1 - a_k) in cell k, a_k = exp(-h / lambda_k).
    # Secondary protons are slower than the primary that made them, so the mean path lambda_k shortens
    # to the primary's residual range near its end and the stock is spent by R0.
    centres = 0.5 * (edges[1:] + edges[:-1])
    path = np.clip(r0 - centres, h, lam)
    keep = np.where(centres < r0, np.exp(-h / path), 0.0)
    carried = np.zeros_like(removed)
    stock = 0.0
    for k, q in enumerate((buildup_fraction * removed)[: int(np.searchsorted(centres, r0)) + 1].tolist()):
        stock += q
        carried[k] = stock * (1.0 - keep[k])
        stock *= keep[k]
    per_cell = primary + local_fraction * removed + carried
    half = int(np.ceil(6.0 * sig / h))
    x = h * np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / sig) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(half, per_cell[0]), per_cell, np.zeros(half)])
    blurred = np.convolve(padded, kernel, mode="valid")
    # straggling spreads the end of range only: far before it the curve is left as it is (there the blur
    # would only drag the secondaries' build-up towards the surface), with a ramp of one sigma between
    ramp = np.clip((centres - (r0 - 6.0 * sig)) / sig, 0.0, 1.0)
    per_cell = ramp * blurred + (1.0 - ramp) * per_cell
    return np.interp(np.asarray(depth_mm, float), 10.0 * centres, per_cell / h, left=per_cell[0] / h, right=0.0)


def _mcs_sigma_mm(depth_mm: np.ndarray, energy_mev: float, range_cm: float, t_table, r_table,
                  highland_mev: float, x0_cm: float) -> np.ndarray:
    """Fermi-Eyges sigma_mcs(depth) [mm] in water, differential Highland scattering power."""
    zc = np.asarray(depth_mm) / 10.0
    n = 4000
    zp = np.linspace(0.0, range_cm, n + 1)[:-1] + 0.5 * range_cm / n  # midpoints
    t = np.interp(range_cm - zp, r_table, t_table)  # residual energy at depth
    pv = t * (t + 2 * _MP_MEV) / (t + _MP_MEV)
    log_term = 1.0 + np.log10(np.maximum(zp, 1e-3) / x0_cm) / 9.0
    scat = (highland_mev / pv) ** 2 * log_term ** 2 / x0_cm  # [rad^2 / cm]
    dz = range_cm / n
    a0 = np.concatenate([[0.0], np.cumsum(scat * dz)])
    a1 = np.concatenate([[0.0], np.cumsum(scat * zp * dz)])
    a2 = np.concatenate([[0.0], np.cumsum(scat * zp * zp * dz)])
    edges = np.concatenate([[0.0], zp + 0.5 * dz])
    zq = np.minimum(zc, range_cm)  # beyond the range the width stays as at the end of range
    i0, i1, i2 = (np.interp(zq, edges, a) for a in (a0, a1, a2))
    var = zq * zq * i0 - 2 * zq * i1 + i2
    return 10.0 * np.sqrt(np.maximum(var, 0.0))


@dataclass(frozen=True, eq=False)
class ProtonMachine:
    """Tabulated proton pencil-beam data.

    Attributes
    ----------
    name : str
    sad_mm : float
        Virtual source-axis distance [mm] (spot positions diverge from it).
    energies_mev : ndarray, shape (nE,)
        Available energies, ascending.
    depth_step_mm : float
        Depth table spacing [mm].
    idd_gy_mm2_per_gp : ndarray, shape (nE, nd)
        Integral depth dose per Gp, ``IDD_E(d)`` [Gy mm^2].
    sigma_mm : ndarray, shape (nE, nd)
        Total spot sigma ``sqrt(s_air^2 + s_mcs^2)`` [mm] at each depth.
    range_mm : ndarray, shape (nE,)
        CSDA range R0 in water [mm].
    """

    name: str
    sad_mm: float
    energies_mev: np.ndarray
    depth_step_mm: float
    idd_gy_mm2_per_gp: np.ndarray
    sigma_mm: np.ndarray
    range_mm: np.ndarray
    sigma_air_mm: np.ndarray
    source_sha256: str = ""
    metadata: dict = field(default_factory=dict)

    modality = "proton"

    @property
    def min_energy_mev(self) -> float:
        return float(self.energies_mev[0])

    @property
    def max_energy_mev(self) -> float:
        return float(self.energies_mev[-1])

    def energy_index(self, energy_mev: float, where: str = "spot") -> int:
        """Index of an available energy; raises if the energy is not in the machine table."""
        i = int(np.argmin(np.abs(self.energies_mev - energy_mev)))
        if not np.isfinite(energy_mev) or abs(self.energies_mev[i] - energy_mev) > 1e-6:
            raise MachineDataError(
                f"{where}: energy {energy_mev!r} MeV is not in machine '{self.name}' "
                f"({self.min_energy_mev:g}-{self.max_energy_mev:g} MeV in steps of "
                f"{self.energies_mev[1] - self.energies_mev[0]:g} MeV)")
        return i

    def energy_for_range(self, range_mm: float) -> float:
        """Smallest available energy whose range is at least ``range_mm`` (clamped to the table)."""
        i = int(np.searchsorted(self.range_mm, range_mm))
        return float(self.energies_mev[min(i, self.energies_mev.size - 1)])

    @property
    def range_shifter_mm(self) -> float:
        """Water-equivalent thickness of the nozzle's range shifter [mm] (0 if it has none)."""
        return float(self.metadata.get("range_shifter", {}).get("water_equivalent_mm", 0.0))

    def with_energies(self, energies_mev) -> ProtonMachine:
        """This machine with tables for ``energies_mev`` too (same model and parameters), or itself.

        Planning systems use energies off a 1 MeV table (e.g. 150.3 MeV); their depth-dose and
        spot-width rows are computed here as the machine's own are (:func:`build_proton_machine`).

        Raises
        ------
        MachineDataError
            An energy outside the machine's range.
        """
        wanted = np.unique(np.round(np.asarray(energies_mev, dtype=float).ravel(), 6))
        missing = np.array([e for e in wanted if np.min(np.abs(self.energies_mev - e)) > 1e-6])
        if missing.size == 0:
            return self
        if not np.all(np.isfinite(missing)) or missing.min() < self.min_energy_mev or \
                missing.max() > self.max_energy_mev:
            raise MachineDataError(f"energies {missing.tolist()} MeV: machine '{self.name}' covers "
                                   f"{self.min_energy_mev:g}-{self.max_energy_mev:g} MeV")
        depth_mm = self.depth_step_mm * np.arange(self.idd_gy_mm2_per_gp.shape[1])
        ranges_cm, idd, sigma, s_air = _energy_tables(missing, depth_mm, self.metadata)
        energies = np.concatenate([self.energies_mev, missing])
        order = np.argsort(energies, kind="stable")
        tables = {"idd_gy_mm2_per_gp": np.concatenate([self.idd_gy_mm2_per_gp, idd])[order],
                  "sigma_mm": np.concatenate([self.sigma_mm, sigma])[order]}
        for arr in tables.values():
            arr.setflags(write=False)
        return dataclasses.replace(
            self, energies_mev=energies[order], range_mm=np.concatenate([self.range_mm, 10.0 * ranges_cm])[order],
            sigma_air_mm=np.concatenate([self.sigma_air_mm, s_air])[order], **tables,
            metadata=dict(self.metadata, energies_added_mev=sorted(set(self.metadata.get("energies_added_mev", []))
                                                                   | set(missing.tolist()))))

    def protons_per_mu(self, energy_mev) -> np.ndarray:
        """Protons delivered per monitor unit at ``energy_mev`` (the machine file's ``meterset`` entry).

        ``N / MU = C K / (S_air(E) rho_air e)``: monitor chamber charge per MU and cm of gap ``C``,
        energy per ion pair ``K``, air mass stopping power ``S_air`` (polynomial in E) and density.

        Raises
        ------
        MachineDataError
            The machine file has no ``meterset`` entry (its plans cannot be read or written in MU).
        """
        meta = self.metadata.get("meterset")
        if not meta:
            raise MachineDataError(f"proton machine '{self.name}' has no 'meterset' entry: MU cannot be converted "
                                   "to protons; add the monitor calibration to its machine file")
        e = np.asarray(energy_mev, dtype=float)
        s_air_ev_per_cm = (np.polyval(np.asarray(meta["air_stopping_power_poly_mev_cm2_per_g"], float), e)
                           * float(meta["air_density_g_per_cm3"]) * 1e6)
        return (float(meta["charge_per_mu_c_per_cm"]) * float(meta["mean_energy_per_ion_pair_ev"])
                / (s_air_ev_per_cm * _ELEMENTARY_CHARGE_C))

    def gp_per_mu(self, energy_mev) -> np.ndarray:
        """Spot weight unit per monitor unit [Gp / MU] (1 Gp = 1e9 protons); see :meth:`protons_per_mu`."""
        return self.protons_per_mu(energy_mev) * 1e-9

    def range_straggling_mm(self, energy_mev: float) -> float:
        """1-sigma range straggling including the energy spread [mm] (see :func:`straggling_mm`)."""
        r0 = float(self.range_mm[self.energy_index(energy_mev)]) / 10.0
        return straggling_mm(energy_mev, r0, self.metadata["bragg_curve"])


#: Depth-dose models a machine file can name in ``bragg_curve.model``.
DEPTH_DOSE_MODELS = ("energy_conserving", "bortfeld_1997")


def _depth_dose(depth_mm, energy_mev, range_cm, bc: dict, t_table, r_table) -> np.ndarray:
    """IDD per incident proton [MeV cm^2/g] by the machine file's model."""
    model = bc.get("model", "bortfeld_1997")
    if model == "energy_conserving":
        return energy_conserving_idd(
            depth_mm, energy_mev, t_table, r_table, beta_per_cm=float(bc["beta_per_cm"]),
            local_fraction=float(bc["local_fraction"]), buildup_fraction=float(bc["buildup_fraction"]),
            buildup_mm=float(bc["buildup_mm"]), straggling_mm=straggling_mm(energy_mev, range_cm, bc))
    if model == "bortfeld_1997":
        return bortfeld_idd(depth_mm / 10.0, energy_mev, range_cm, p=float(bc["p"]),
                            beta_per_cm=float(bc["beta_per_cm"]), gamma=float(bc["gamma"]),
                            epsilon=float(bc["epsilon"]), energy_spread_fraction=float(bc["energy_spread_fraction"]))
    raise MachineDataError(f"bragg_curve.model {model!r}: expected one of {', '.join(DEPTH_DOSE_MODELS)}")


def _energy_tables(energies: np.ndarray, depth_mm: np.ndarray, data: dict):
    """(CSDA range [cm], IDD [Gy mm^2 / Gp], sigma [mm], sigma in air [mm]) of ``energies`` on ``depth_mm``,
    from the model parameters of a machine description (``range_energy``, ``bragg_curve``, ``scattering``,
    ``spot_sigma_in_air_mm``)."""
    re = data["range_energy"]
    t_table, r_table = _range_energy_table(float(re["mean_excitation_energy_ev"]), float(re["z_over_a"]))
    ranges_cm = np.exp(np.interp(np.log(energies), np.log(t_table), np.log(r_table)))
    bc = data["bragg_curve"]
    sc = data["scattering"]
    air = data["spot_sigma_in_air_mm"]
    s_air = np.interp(energies, np.asarray(air["energy_mev"], float), np.asarray(air["sigma_mm"], float))
    idd = np.empty((energies.size, depth_mm.size))
    sigma = np.empty_like(idd)
    for k, (e, r) in enumerate(zip(energies, ranges_cm)):
        idd[k] = _GY_MM2_PER_GP_PER_MEV_CM2_G * _depth_dose(depth_mm, e, r, bc, t_table, r_table)
        mcs = _mcs_sigma_mm(depth_mm, e, r, t_table, r_table, float(sc["highland_mev"]), float(sc["radiation_length_cm"]))
        sigma[k] = np.sqrt(s_air[k] ** 2 + mcs ** 2)
    return ranges_cm, idd, sigma, s_air


def build_proton_machine(data: dict, source_sha256: str = "") -> ProtonMachine:
    """Tables of a proton machine from its JSON description (see the module docstring)."""
    name = str(data["name"])
    where = f"proton machine '{name}'"
    er = data["energy_mev"]
    e_min, e_max, e_step = float(er["min"]), float(er["max"]), float(er["step"])
    if not (0 < e_min < e_max and e_step > 0):
        raise MachineDataError(f"{where}: energy_mev needs 0 < min < max and step > 0")
    energies = np.round(np.arange(e_min, e_max + 0.5 * e_step, e_step), 6)
    table = data.get("table", {})
    step = float(table.get("depth_step_mm", 0.5))
    max_depth = float(table.get("max_depth_mm", 360.0))
    depth_mm = step * np.arange(int(round(max_depth / step)) + 1)
    ranges_cm, idd, sigma, s_air = _energy_tables(energies, depth_mm, data)
    if ranges_cm[-1] * 10.0 > max_depth - 20.0:
        raise MachineDataError(f"{where}: depth table ({max_depth} mm) must extend beyond the largest range")
    for label, arr in (("idd", idd), ("sigma", sigma)):
        arr.setflags(write=False)
        if not np.all(np.isfinite(arr)):
            raise MachineDataError(f"{where}: {label} table has non-finite values")
    return ProtonMachine(name=name, sad_mm=float(data["sad_mm"]), energies_mev=energies, depth_step_mm=step,
                         idd_gy_mm2_per_gp=idd, sigma_mm=sigma, range_mm=10.0 * ranges_cm, sigma_air_mm=s_air,
                         source_sha256=source_sha256,
                         metadata={k: data[k] for k in ("description", "bragg_curve", "scattering", "range_energy",
                                                        "spot_sigma_in_air_mm", "weight_unit", "range_shifter",
                                                        "meterset")
                                   if k in data})
