"""Patients: an HU volume on a grid, named structures and an HU calibration."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

import numpy as np

from .errors import GridError, StructureError
from .grid import Grid

__all__ = ["HUCalibration", "Patient", "StructureSet", "DEFAULT_HU_TO_DENSITY", "DEFAULT_HU_TO_STOPPING_POWER",
           "check_ct_numbers", "HU_MAX_STANDARD", "HU_MIN_STORED", "METAL_FRACTION_MAX"]


@dataclass(frozen=True)
class HUCalibration:
    """Piecewise-linear map from CT number [HU] to a relative density.

    Values outside the table are clamped to its end points.

    Parameters
    ----------
    hu : sequence of float, strictly increasing
        Table nodes [HU].
    density : sequence of float, >= 0
        Relative electron density (water = 1) at each node.
    name : str
        Where the table came from.
    """

    hu: tuple[float, ...]
    density: tuple[float, ...]
    name: str = "user"

    def __post_init__(self) -> None:
        hu = np.asarray(self.hu, dtype=float)
        rho = np.asarray(self.density, dtype=float)
        if hu.ndim != 1 or hu.shape != rho.shape or hu.size < 2:
            raise ValueError(
                f"HU calibration '{self.name}': expected two 1-D sequences of equal length >= 2, "
                f"got hu {hu.shape} and density {rho.shape}"
            )
        if not (np.all(np.isfinite(hu)) and np.all(np.isfinite(rho))):
            raise ValueError(f"HU calibration '{self.name}': values must be finite")
        if np.any(np.diff(hu) <= 0):
            raise ValueError(f"HU calibration '{self.name}': HU nodes must be strictly increasing, got {hu.tolist()}")
        if np.any(rho < 0):
            raise ValueError(f"HU calibration '{self.name}': densities must be >= 0, got {rho.tolist()}")
        object.__setattr__(self, "hu", tuple(hu.tolist()))
        object.__setattr__(self, "density", tuple(rho.tolist()))

    def __call__(self, hu) -> np.ndarray:
        """Relative density for CT numbers ``hu`` (any shape), float64."""
        return np.interp(np.asarray(hu, dtype=float), self.hu, self.density)


#: Generic bilinear kV-CT calibration to relative electron density. Below 0 HU the
#: air-water line (rho_e = 1 + HU/1000, exact for air/water mixtures); above, a slope
#: of 0.6e-3 per HU, which puts cortical bone (about 1300 HU) at rho_e 1.78, the ICRU
#: Report 46 value for adult cortical bone. Site-specific tables should replace it.
DEFAULT_HU_TO_DENSITY = HUCalibration(
    hu=(-1000.0, 0.0, 3000.0),
    density=(0.0, 1.0, 2.8),
    name="generic bilinear kV-CT to relative electron density",
)


#: Generic bilinear kV-CT calibration to proton stopping power relative to water. Below 0 HU
#: the air-water line; above, 0.5e-3 per HU, which puts cortical bone (about 1300 HU) at 1.65,
#: about 0.1 above stoichiometric calibrations (2 mm of range per 20 mm of bone). Kept for
#: comparison; patients default to :func:`sfrt_engine.calibration.stoichiometric_stopping_power`.
DEFAULT_HU_TO_STOPPING_POWER = HUCalibration(
    hu=(-1000.0, 0.0, 3000.0),
    density=(0.001, 1.0, 2.5),
    name="generic bilinear kV-CT to relative proton stopping power",
)


#: Highest CT number of the standard 12-bit scale (stored 0-4095 with RescaleIntercept -1024) [HU].
#: Above it lie only metal and the extended CT scales some scanners offer for metal.
HU_MAX_STANDARD = 3071.0
#: Lowest CT number a scanner stores: -32768, the int16 minimum, is the most extreme padding value
#: outside the reconstruction circle (common padding values are -2000, -2048, -3024) [HU].
HU_MIN_STORED = -32768.0
#: Largest share of voxels above :data:`HU_MAX_STANDARD` that is taken for metal; more means the
#: CT numbers are wrong (a missing or doubled rescale).
METAL_FRACTION_MAX = 0.01


def check_ct_numbers(hu, calibration: HUCalibration | None = None, where: str = "CT",
                     error: type[Exception] = GridError) -> int:
    """Refuse CT numbers that cannot be HU; warn about a few voxels of metal.

    Values from :data:`HU_MIN_STORED` up to the calibration's first node are air or padding (the
    calibration clamps them to its lowest density). Above :data:`HU_MAX_STANDARD`, up to
    :data:`METAL_FRACTION_MAX` of the voxels are taken for metal: a ``UserWarning`` gives their
    count. More, or values below :data:`HU_MIN_STORED`, raise ``error``: the message gives the range
    found and the range expected (e.g. a CT at 29 000-30 000 HU, or HU scaled by 100).

    Parameters
    ----------
    hu : ndarray of float
        CT numbers [HU], any shape.
    calibration : HUCalibration, optional
        Defaults to :data:`DEFAULT_HU_TO_DENSITY`.
    where : str
        Names the CT in the messages.
    error : exception class
        Raised for impossible values (:class:`~sfrt_engine.errors.GridError` by default).

    Returns
    -------
    int
        Voxels above :data:`HU_MAX_STANDARD` (0 when none).
    """
    calibration = calibration if calibration is not None else DEFAULT_HU_TO_DENSITY
    hu = np.asarray(hu)
    if hu.size == 0:
        return 0
    lo, hi = float(hu.min()), float(hu.max())
    n_high = int(np.count_nonzero(hu > HU_MAX_STANDARD))
    if lo < HU_MIN_STORED or n_high > METAL_FRACTION_MAX * hu.size:
        share = f"{100.0 * n_high / hu.size:.0f} % of the voxels above {HU_MAX_STANDARD:.0f} HU, " if n_high else ""
        raise error(
            f"{where}: CT numbers span {lo:.0f} to {hi:.0f} HU ({share}median {float(np.median(hu)):.0f} HU); "
            f"expected CT numbers within the calibration's range {calibration.hu[0]:.0f} to {calibration.hu[-1]:.0f} "
            f"HU ('{calibration.name}'), with padding down to {HU_MIN_STORED:.0f} HU and at most "
            f"{100 * METAL_FRACTION_MAX:g} % of the voxels (metal) above {HU_MAX_STANDARD:.0f} HU; check the "
            "RescaleSlope and RescaleIntercept of the images (water must be near 0 HU, air near -1000 HU)")
    if n_high:
        warnings.warn(f"{where}: {n_high} voxel{'s' * (n_high != 1)} above {HU_MAX_STANDARD:.0f} HU (up to "
                      f"{hi:.0f} HU), taken for metal; the calibration gives them relative density "
                      f"{float(calibration(min(hi, calibration.hu[-1]))):.2f}, its value at "
                      f"{min(hi, calibration.hu[-1]):.0f} HU", UserWarning, stacklevel=2)
    return n_high


class StructureSet(MutableMapping):
    """Named boolean masks on a grid, looked up by name (``structures["PTV"]``).

    Assigning validates shape and converts to a C-contiguous ``bool`` array.
    """

    def __init__(self, grid: Grid, masks: dict | None = None) -> None:
        self._grid = grid
        self._masks: dict[str, np.ndarray] = {}
        for name, mask in (masks or {}).items():
            self[name] = mask

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._masks[name]
        except KeyError:
            known = ", ".join(self._masks) or "none"
            raise StructureError(f"no structure named {name!r}; known structures: {known}") from None

    def __setitem__(self, name: str, mask) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"structure names must be non-empty strings, got {name!r}")
        arr = np.asarray(mask)
        if arr.dtype != bool:
            raise TypeError(
                f"structure {name!r}: mask dtype {arr.dtype}, expected bool "
                "(convert with mask.astype(bool) if it holds 0/1)"
            )
        self._masks[name] = self._grid.check_array(arr, f"structure {name!r}")

    def __delitem__(self, name: str) -> None:
        del self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def volume_cc(self, name: str) -> float:
        """Volume of a structure [cm^3]."""
        return float(self[name].sum()) * self._grid.voxel_volume_mm3 / 1000.0

    def __repr__(self) -> str:
        return f"StructureSet({list(self._masks)})"


class Patient:
    """A CT volume in HU on a :class:`Grid`, named structures and an HU calibration.

    Parameters
    ----------
    grid : Grid
    hu : ndarray, shape ``grid.shape_zyx``
        CT numbers [HU]; stored as a writable float32 array.
    structures : dict of str to bool ndarray, optional
    calibration : HUCalibration, optional
        HU to relative electron density (photons); defaults to :data:`DEFAULT_HU_TO_DENSITY`.
    stopping_power_calibration : HUCalibration, optional
        HU to relative proton stopping power; defaults to the stoichiometric calibration
        (:func:`sfrt_engine.calibration.stoichiometric_stopping_power`, cortical bone about 1.5).
    name : str
    """

    def __init__(self, grid: Grid, hu, structures=None, calibration=None, name: str = "patient",
                 stopping_power_calibration=None) -> None:
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a sfrt_engine.Grid, got {type(grid).__name__}")
        self.grid = grid
        self.hu = hu
        self.structures = StructureSet(grid, structures)
        self.calibration = calibration if calibration is not None else DEFAULT_HU_TO_DENSITY
        if stopping_power_calibration is None:
            from .calibration import stoichiometric_stopping_power

            stopping_power_calibration = stoichiometric_stopping_power()
        self.stopping_power_calibration = stopping_power_calibration
        self.name = name

    @property
    def hu(self) -> np.ndarray:
        """CT numbers [HU], float32, indexed [z, y, x]; writable in place."""
        return self._hu

    @hu.setter
    def hu(self, value) -> None:
        arr = self.grid.check_array(value, "hu")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"hu: dtype {arr.dtype}, expected a real numeric array")
        arr = np.array(arr, dtype=np.float32, order="C", copy=True)
        if not np.all(np.isfinite(arr)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise GridError(f"hu: {bad} voxels are NaN or infinite; CT numbers must be finite")
        self._hu = arr

    def density(self) -> np.ndarray:
        """Relative electron density [z, y, x] (float64) from the HU calibration."""
        if not np.all(np.isfinite(self._hu)):
            raise GridError("hu holds NaN or infinite values; CT numbers must be finite")
        return self.calibration(self._hu)

    def stopping_power(self) -> np.ndarray:
        """Proton stopping power relative to water [z, y, x] (float64) from its HU calibration."""
        return self.stopping_power_calibration(self._hu)

    def __repr__(self) -> str:
        return (
            f"Patient({self.name!r}, shape_zyx={self.grid.shape_zyx}, "
            f"spacing_xyz_mm={self.grid.spacing_xyz_mm}, structures={list(self.structures)})"
        )
