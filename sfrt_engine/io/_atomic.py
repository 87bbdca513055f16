"""Atomic output with ordinary file permissions.

Wraps :func:`sfrt_engine._files.atomic_path` (temporary name beside the target, then rename;
on error the temporary file is removed and an earlier file stays intact). ``mkstemp`` creates
its file readable by the owner only; exported DICOM and HDF5 files are meant to be shared, so
they get the mode an ordinary ``open()`` would give (0666 minus the umask).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .._files import atomic_path

__all__ = ["atomic_output"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    with atomic_path(Path(path)) as tmp:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
