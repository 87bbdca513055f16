"""File interfaces: the HDF5 results store and DICOM.

- :func:`save` / :func:`load`: everything of a run in one HDF5 file, with units, axis order and
  provenance, written atomically.
- :func:`read_dicom`: an axial HFS CT series and its RT Structure Set -> :class:`~sfrt_engine.Patient`.
- :func:`write_rtdose`, :func:`write_rtstruct`, :func:`write_ct`: RT Dose (physical or EQD2), the
  vertex lattice as RT Structure Set, and the CT of a phantom; :func:`read_rtdose` reads a dose back.
- :func:`export_run` / :func:`export_comparison`: all of it for one SFRT vs CRT run, in one call.
- :func:`read_rtionplan` / :func:`write_rtionplan`: RT Ion Plans to and from the engine's proton beams.

h5py, pydicom and contourpy are imported on first use of a function that needs them, so
``import sfrt_engine`` stays light (STYLE 1).
"""

from __future__ import annotations

import importlib

from ._errors import DicomError, MachineMismatchError, ResultsFileError

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "save": "._hdf5_save", "load": "._hdf5_load", "Results": ".hdf5", "SCHEMA_VERSION": ".hdf5",
    "read_dicom": ".dicom_read", "read_rtdose": ".dicom_read", "write_rtdose": ".dicom_write",
    "write_ct": ".dicom_write", "write_rtstruct": ".rtstruct_write", "export_run": ".export",
    "export_comparison": ".export", "describe_alpha_beta": ".export",
}
_LAZY.update({"read_rtionplan": ".rtionplan_read", "write_rtionplan": ".rtionplan_write", "RTPlanData": ".rtplan_types"})

__all__ = [
    "DicomError", "MachineMismatchError", "ResultsFileError", "save", "load", "Results", "SCHEMA_VERSION",
    "read_dicom", "read_rtdose", "write_rtdose", "write_ct", "write_rtstruct", "export_run", "export_comparison",
    "describe_alpha_beta",
]
__all__ += ["read_rtionplan", "write_rtionplan", "RTPlanData"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

# DICOM RT Plan (photons; RT Ion Plans are passed on to the proton reader and writer)
_LAZY.update({"read_rtplan": ".rtplan_read", "write_rtplan": ".rtplan_write"})
__all__ += ["read_rtplan", "write_rtplan"]
