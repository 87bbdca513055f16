"""A result folder written as one set (DESIGN 8).

:func:`atomic_folder` is :class:`sfrt_engine.io.result_set.ResultSet` under the name the trial
code uses: files go into a temporary sibling folder, ``manifest.json`` lists each file's SHA-256,
and the folder then replaces the earlier set in one step. A second run into the same folder is
refused (a lock naming its process), and a folder holding anything but an earlier result set is
never replaced, so ``--out`` pointing at a user's own folder cannot delete it.
"""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["atomic_folder"]


@contextmanager
def atomic_folder(path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` with a manifest added."""
    from ..io.result_set import ResultSet

    with ResultSet(path) as result_set:
        yield result_set.path
