"""Errors of the file interfaces; each also derives from ``ValueError`` (STYLE 8)."""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import SfrtError

__all__ = ["DicomError", "ResultsFileError", "MachineMismatchError", "malformed_dicom"]


class DicomError(SfrtError, ValueError):
    """A DICOM file or series cannot be used; the message names the file or ROI and the problem."""


class ResultsFileError(SfrtError, ValueError):
    """An HDF5 results file cannot be read; the message names the file and the problem."""


class MachineMismatchError(ResultsFileError):
    """A results file's beams were computed with a machine file other than the one available now."""


@contextmanager
def malformed_dicom(where):
    """Turn an attribute that is missing or of the wrong form, deep in a DICOM object, into a DicomError."""
    try:
        yield
    except DicomError:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise DicomError(f"{where}: malformed DICOM ({type(exc).__name__}: {exc})") from None
