"""A result folder written as one set (DESIGN 8).

Files go into a temporary sibling folder; a ``manifest.json`` with each file's SHA-256 is
added; the folder is then renamed into place. An earlier folder of the same name is moved
aside first and removed only after the new one is in place, so a reader sees either the
old set or the new one, never a mix, and a failed run leaves the old set intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_folder"]


def _manifest(folder: Path) -> dict:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            files[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"files": files}


@contextmanager
def atomic_folder(path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` with a manifest added."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        from ..errors import TrialDataError

        raise TrialDataError(f"output {str(path)!r} is a file; expected a folder name; fix: choose another --out")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    old = None
    try:
        yield tmp
        (tmp / "manifest.json").write_text(json.dumps(_manifest(tmp), indent=2))
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:
                os.replace(old, path)  # put the earlier set back
                old = None
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
