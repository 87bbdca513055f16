"""File interfaces: the HDF5 results store and DICOM.

- :func:`save` / :func:`load`: everything of a run in one HDF5 file, with units, axis order and
  provenance, written atomically.
- :func:`read_dicom`: an axial HFS CT series and its RT Structure Set -> :class:`~sfrt_engine.Patient`.
- :func:`write_rtdose`, :func:`write_rtstruct`, :func:`write_ct`: RT Dose (physical or EQD2), the
  vertex lattice as RT Structure Set, and the CT of a phantom; :func:`read_rtdose` reads a dose back.
- :func:`export_run` / :func:`export_comparison`: all of it for one SFRT vs CRT run, in one call.
"""

from ._errors import DicomError, MachineMismatchError, ResultsFileError
from ._hdf5_load import load
from ._hdf5_save import save
from .dicom_read import read_dicom, read_rtdose
from .dicom_write import write_ct, write_rtdose
from .export import describe_alpha_beta, export_comparison, export_run
from .hdf5 import SCHEMA_VERSION, Results
from .rtstruct_write import write_rtstruct

__all__ = ["DicomError", "MachineMismatchError", "ResultsFileError", "read_dicom", "read_rtdose", "write_ct",
           "write_rtdose", "describe_alpha_beta", "export_comparison", "export_run", "SCHEMA_VERSION", "Results",
           "load", "save", "write_rtstruct"]
