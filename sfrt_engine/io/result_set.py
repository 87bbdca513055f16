"""Result folders written as one consistent set, or not at all (DESIGN 8).

A run that writes several files (report, plots, RT Dose, HDF5) must never leave a folder in
which files from two runs, or half of one run, sit side by side. :class:`ResultSet` makes
that so:

1. **Check up front.** The destination must not be empty, an existing file, a folder that is
   not an earlier result set, or in a place that cannot be written. These are checked when the
   set is opened, before any dose is computed.
2. **Lock.** A lock file beside the destination (``.NAME.lock``) is held with ``flock`` for the
   whole run. A second run into the same folder is refused with :class:`ResultSetLockedError`,
   whose message names the other run's process ID. The kernel drops the lock when its process
   dies, so a stale lock file of a killed run never blocks a new one.
3. **Write aside.** Everything is written into a temporary sibling folder
   (``.NAME.partial-PID-XXXX``), never into the destination itself.
4. **Manifest.** On success ``manifest.json`` lists every file with its size and SHA-256, the
   run's settings, the command line, the engine version and the time (UTC).
5. **Swap.** The temporary folder replaces the destination in one step: ``renameat2`` with
   ``RENAME_EXCHANGE`` where Linux offers it, otherwise two renames in a row. SIGINT and SIGTERM
   are held back (their handlers deferred) while the lock is taken, during the swap and during
   clean-up, so Ctrl-C at any moment leaves the previous complete set untouched (or no folder,
   if there was none).

On any error or interrupt inside the ``with`` block the temporary folder is removed, the lock is
released and the exception propagates; the destination is exactly as it was.

API
---
``ResultSet(out, settings=None, command=None)``
    Context manager. ``with ResultSet("sfrt_out", settings={...}) as rs:`` validates, locks and
    creates the temporary folder; write files under ``rs.path``. ``rs.settings`` (a JSON-able
    dict) may be updated inside the block; it goes into the manifest. ``rs.final_path`` is the
    destination; ``rs.manifest`` holds the manifest after a successful exit.
``check_destination(out) -> Path``
    The up-front checks alone (raises :class:`OutputError`); returns the absolute destination.
``read_manifest(folder) -> dict`` and ``verify(folder) -> list[str]``
    Read a set's manifest; list the files that are missing, extra or whose hash differs
    (an empty list means the set is complete and untouched).

Limitations: POSIX only (``fcntl.flock``); on file systems where ``flock`` is not shared
between hosts (some NFS set-ups) two machines can still write the same folder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from .. import __version__
from ..errors import OutputError, ResultSetLockedError

__all__ = ["ResultSet", "MANIFEST_NAME", "check_destination", "read_manifest", "verify"]

MANIFEST_NAME = "manifest.json"
#: Identifies a manifest written by this module.
_GENERATOR = "sfrt-engine result set"
#: Top-level names an sfrt folder written before manifests existed may hold; such a folder may be replaced.
_LEGACY_PATTERNS = ("report.json", "*.png", "RTDOSE_*.dcm", "RTSTRUCT_*.dcm", "results.h5", "CT")
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100  # linux/fcntl.h


def _sibling(out: Path, tag: str) -> str:
    return f".{out.name}.{tag}"


def check_destination(out) -> Path:
    """Check that a result set can be written to ``out``; return its absolute path.

    Raises
    ------
    OutputError
        ``out`` is empty, an existing file, a folder that holds files other than an earlier
        result set, or inside a place that is not a writable folder.
    """
    if out is None or not str(out).strip():
        raise OutputError("--out is empty: expected a folder name, e.g. --out sfrt_out")
    path = Path(os.path.realpath(os.path.expanduser(str(out))))  # a link is followed: its target is replaced
    if not path.name or path == path.parent:
        raise OutputError(f"--out {out}: is a root folder; choose a folder inside it, e.g. --out {path / 'sfrt_out'}")
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {out}: is an existing file, expected a folder; choose another name")
    if path.is_dir() and not _replaceable(path):
        raise OutputError(f"--out {out}: the folder exists and holds files that are not an sfrt result set "
                          f"(no {MANIFEST_NAME}); choose a new or empty folder so nothing of yours is replaced")
    parent = path.parent
    first = parent
    while not first.exists():
        first = first.parent
    if not first.is_dir():
        raise OutputError(f"--out {out}: {first} is a file, not a folder")
    if not os.access(first, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: {first} is not writable; choose a folder you can write to")
    return path


def _replaceable(folder: Path) -> bool:
    """True for an empty folder, a result set with a manifest, or an sfrt folder from before manifests."""
    names = [p.name for p in folder.iterdir()]
    if not names:
        return True
    if MANIFEST_NAME in names:  # written by this module, or by the engine's earlier trial writer
        try:
            manifest = read_manifest(folder)
        except (OSError, ValueError):
            return False
        return isinstance(manifest, dict) and (manifest.get("generator") == _GENERATOR or "files" in manifest)
    return all(any(fnmatch.fnmatch(n, pat) for pat in _LEGACY_PATTERNS) for n in names)


@contextmanager
def _signals_held():
    """Hold back SIGINT and SIGTERM for the block; one that arrived is acted on when it ends.

    The Python-level handlers are swapped for one that only records the signal (a signal mask would
    not do: the kernel hands a process-directed signal to any thread that does not block it, such as
    a BLAS worker). Outside the main thread, where handlers cannot be set, the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {}
    try:
        for signum in held:
            previous[signum] = signal.signal(signum, lambda number, frame: received.append(number))
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            handler = previous.get(received[0])
            if callable(handler):
                handler(received[0], None)  # e.g. default_int_handler raises KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(received[0])


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # old kernel or a file system without exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def read_manifest(folder) -> dict:
    """The manifest of a result set (``ValueError`` if it is not valid JSON)."""
    text = (Path(folder) / MANIFEST_NAME).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{Path(folder) / MANIFEST_NAME}: not valid JSON ({exc})") from None


def verify(folder) -> list[str]:
    """Problems with a result set: files missing, not listed, or with another SHA-256. Empty if intact."""
    folder = Path(folder)
    listed = {entry["path"]: entry for entry in read_manifest(folder)["files"]}
    present = {p.relative_to(folder).as_posix(): p for p in _files(folder)}
    problems = [f"missing: {name}" for name in sorted(set(listed) - set(present))]
    problems += [f"not in the manifest: {name}" for name in sorted(set(present) - set(listed))]
    problems += [f"SHA-256 differs: {name}" for name in sorted(set(listed) & set(present))
                 if _sha256(present[name]) != listed[name]["sha256"]]
    return problems


class ResultSet:
    """Write a folder of results as one set: lock, write aside, manifest, swap (see the module docstring).

    Parameters
    ----------
    out : str or Path
        Destination folder.
    settings : dict, optional
        The run's settings (JSON-able), recorded in the manifest; may be replaced before the block ends.
    command : str, optional
        The command line, recorded in the lock file and the manifest.
    """

    def __init__(self, out, settings: dict | None = None, command: str | None = None) -> None:
        self.final_path = check_destination(out)
        self.settings = dict(settings or {})
        self.command = command if command is not None else " ".join(sys.argv)
        self.path: Path | None = None
        self.manifest: dict | None = None
        self._lock_fd: int | None = None
        self._lock_path = self.final_path.parent / _sibling(self.final_path, "lock")

    # -- lock ---------------------------------------------------------------------------------
    def _acquire(self) -> None:
        while True:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown process"
                finally:
                    os.close(fd)
                raise ResultSetLockedError(
                    f"--out {self.final_path}: another run is writing this folder ({holder}); wait for it "
                    f"to finish or choose another --out") from None
            # the file may have been unlinked by the run that just finished: lock the file that is there now
            try:
                same = os.stat(self._lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        os.write(fd, f"PID {os.getpid()} on {os.uname().nodename}, started {started}: {self.command}\n".encode())
        self._lock_fd = fd

    def _release(self) -> None:
        if self._lock_fd is None:
            return
        try:
            os.unlink(self._lock_path)
        except FileNotFoundError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None

    # -- context ------------------------------------------------------------------------------
    def __enter__(self) -> ResultSet:
        parent = self.final_path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            with _signals_held():
                self._acquire()
                self._remove_leftovers()
                self.path = Path(tempfile.mkdtemp(prefix=_sibling(self.final_path, f"partial-{os.getpid()}-"),
                                                  dir=parent))
                os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes 0700; results are an ordinary folder
        except BaseException as exc:  # a Ctrl-C held back above arrives here too: undo everything
            self._discard()
            if isinstance(exc, PermissionError):
                raise OutputError(f"--out {self.final_path}: cannot write there ({exc.strerror}); choose a "
                                  "folder you can write to") from None
            if isinstance(exc, OSError) and not isinstance(exc, OutputError):
                raise OutputError(f"--out {self.final_path}: cannot create the result folder ({exc})") from None
            raise
        return self

    def _discard(self) -> None:
        """Remove the temporary folder and release the lock, with SIGINT and SIGTERM held back."""
        with _signals_held():
            if self.path is not None and self.path.exists():
                shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
            self._release()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            self._discard()

    def _remove_leftovers(self) -> None:
        """Clear up after earlier runs into this destination that were killed (we hold the lock).

        Their partial folders are removed. A run killed between the two renames of the fallback swap
        left the previous set as ``.NAME.old-PID`` and no destination: that set is put back first.
        """
        parent, name = self.final_path.parent, self.final_path.name
        old_sets = sorted(p for p in parent.glob(f".{_glob_escape(name)}.old-*") if p.is_dir())
        if old_sets and not self.final_path.exists():
            os.rename(old_sets.pop(), self.final_path)
        for p in [*old_sets, *parent.glob(f".{_glob_escape(name)}.partial-*")]:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)

    def _commit(self) -> None:
        files = []
        for p in _files(self.path):
            files.append({"path": p.relative_to(self.path).as_posix(), "bytes": p.stat().st_size,
                          "sha256": _sha256(p)})
            _fsync(p)
        self.manifest = {
            "generator": _GENERATOR,
            "engine_version": __version__,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": self.command,
            "settings": self.settings,
            "files": files,
        }
        manifest = self.path / MANIFEST_NAME
        manifest.write_text(json.dumps(self.manifest, indent=2, default=str))
        _fsync(manifest)
        _fsync(self.path)
        with _signals_held():
            if not self.final_path.exists():
                os.rename(self.path, self.final_path)
            elif not _replaceable(self.final_path):  # filled by hand while we ran: keep the user's files
                raise OutputError(f"--out {self.final_path}: files appeared in the folder during the run; "
                                  f"the new results are discarded, nothing of yours was changed")
            elif _exchange(self.path, self.final_path):
                shutil.rmtree(self.path, ignore_errors=True)  # now holds the previous set
            else:
                old = self.final_path.parent / _sibling(self.final_path, f"old-{os.getpid()}")
                os.rename(self.final_path, old)
                os.rename(self.path, self.final_path)
                shutil.rmtree(old, ignore_errors=True)
            _fsync(self.final_path.parent)
            self.path = None


def _glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync folders; the rename order still holds
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
