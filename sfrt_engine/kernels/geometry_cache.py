"""Geometry cache: what a dose call derives from geometry alone, kept for the next call on the same geometry.

Arc refinement, normalisation, optimisation and plan read-back dose the same beams on the same patient
again and again; only the weights change. Two things were recomputed on every call although they do not
depend on the weights:

- the erf profiles of the scatter tables (:func:`sfrt_engine.kernels._task.scatter_table`), the largest
  host cost of a GPU dose call: on an NVIDIA H200 they took 8 of the 20 ms of the default 5-beam case and
  126 of the 200 ms of a 36-control-point arc, the kernels 3 and 14 ms;
- the patient's density (or stopping power) from its HU calibration, cast to the backend's precision:
  about 0.2 s of the 0.5 s of a 256^3 dose call on that machine (the interpolation, the finiteness check
  and the float32 copy);
- the ray tables of the cpp backend (radiological depth along each ray of a beam's lattice), about 30 %
  of a cpp dose call. The GPU backends trace on the device in microseconds per beam and do not use them.

Keys are chosen so that a hit returns exactly the array a miss computes, bit for bit:

- profiles are keyed by the scalars that define their nodes, edges and sigma ladder (each built from
  ``numpy.arange`` of those scalars), never by float arrays compared loosely;
- a ray table is keyed by the density array it was traced through (an array this cache handed out,
  read-only, held weakly: its tables go when it does, so they go when the CT or calibration changes) and
  the exact bytes of the grid pack and of the beam's frame and ray lattice (elements 0..24 of its pack);
- a density entry belongs to one :class:`~sfrt_engine.patient.Patient` (held weakly: the entry goes when
  the patient does), one calibration (by value; calibrations are frozen) and one dtype, and keeps a copy of
  the CT numbers it was made from. Every use compares the patient's CT numbers with that copy bit for bit,
  so writing into ``patient.hu`` in place, or assigning a new array, invalidates it; the comparison reads
  the grid twice, several times cheaper than the interpolation it saves.

The cache is bounded: beyond its limit the least recently used entries are dropped. The limit is
``SFRT_GEOMETRY_CACHE_MIB`` (MiB, read at import; default 512) or :func:`set_limit_mib`; 0 turns the cache
off. :func:`stats` reports hits, misses and bytes held; :func:`clear` empties it. Cached arrays are
read-only. Thread-safe (one lock around the bookkeeping; the arrays are computed outside it).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

from ..errors import SfrtError

__all__ = ["DEFAULT_LIMIT_MIB", "clear", "density_for", "limit_mib", "profiles", "ray_table", "set_limit_mib",
           "stats"]

#: Elements of a photon or proton pack that fix its ray table (frame and ray lattice; csrc/params.h).
RAY_GEOMETRY_PACK = 25

#: Default bound [MiB]: a 256^3 grid's float32 density and its CT copy take 128 MiB.
DEFAULT_LIMIT_MIB = 512.0
_ENV = "SFRT_GEOMETRY_CACHE_MIB"


def _limit_from_env() -> float:
    text = os.environ.get(_ENV)
    if text is None or not text.strip():
        return DEFAULT_LIMIT_MIB
    try:
        value = float(text)
    except ValueError:
        raise SfrtError(f"{_ENV}={text!r}: expected a number of MiB (0 turns the geometry cache off); "
                        f"unset it for the default {DEFAULT_LIMIT_MIB:g}") from None
    if not (value >= 0 and np.isfinite(value)):
        raise SfrtError(f"{_ENV}={text!r}: expected a finite number of MiB >= 0 (0 turns the geometry cache off)")
    return value


class _Cache:
    """Least-recently-used map of key -> (nbytes, value), bounded in bytes."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = int(limit_bytes)
        self.entries: OrderedDict[Hashable, tuple[int, object]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.lock = threading.RLock()  # re-entered when dropping an entry frees a density (its ray tables go)

    def get(self, key):
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            self.entries.move_to_end(key)
            return entry[1]

    def put(self, key, value, nbytes: int) -> None:
        with self.lock:
            if key in self.entries:
                self.nbytes -= self.entries.pop(key)[0]
            if nbytes > self.limit_bytes:
                return
            self.entries[key] = (nbytes, value)
            self.nbytes += nbytes
            self._trim()

    def drop(self, key) -> None:
        with self.lock:
            entry = self.entries.pop(key, None)
            if entry is not None:
                self.nbytes -= entry[0]

    def drop_where(self, keep: Callable[[Hashable], bool]) -> None:
        with self.lock:
            for key in [k for k in self.entries if not keep(k)]:
                self.nbytes -= self.entries.pop(key)[0]

    def _trim(self) -> None:
        while self.nbytes > self.limit_bytes and self.entries:
            _, (n, _) = self.entries.popitem(last=False)
            self.nbytes -= n

    def count(self, hit: bool) -> None:
        with self.lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1


_cache = _Cache(int(_limit_from_env() * 2 ** 20))
#: id of each density array handed out -> weak reference to it (its ray tables are valid while it lives).
_densities: dict[int, weakref.ref] = {}


def _forget_density(ident: int) -> None:
    _densities.pop(ident, None)
    _cache.drop_where(lambda key: not (key[0] == "ray" and key[1] == ident))


def set_limit_mib(limit: float) -> None:
    """Bound the cache to ``limit`` MiB (0 turns it off); entries beyond the new bound are dropped at once."""
    try:
        value = float(limit)
    except (TypeError, ValueError):
        raise SfrtError(f"geometry cache limit {limit!r}: expected a number of MiB >= 0") from None
    if not (value >= 0 and np.isfinite(value)):
        raise SfrtError(f"geometry cache limit {limit!r}: expected a finite number of MiB >= 0 (0 turns it off)")
    with _cache.lock:
        _cache.limit_bytes = int(value * 2 ** 20)
        _cache._trim()


def limit_mib() -> float:
    """The cache's bound [MiB]."""
    return _cache.limit_bytes / 2 ** 20


def clear() -> None:
    """Drop every entry (the counters stay)."""
    with _cache.lock:
        _cache.entries.clear()
        _cache.nbytes = 0
    _densities.clear()


def stats() -> dict:
    """Hits, misses, entries and bytes held, and the bound [MiB]."""
    with _cache.lock:
        return {"hits": _cache.hits, "misses": _cache.misses, "entries": len(_cache.entries),
                "bytes": _cache.nbytes, "limit_mib": _cache.limit_bytes / 2 ** 20}


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def profiles(key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
    """The array ``make()`` returns, cached under ``("profiles",) + key`` (``key``: the scalars it is built from)."""
    full = ("profiles",) + tuple(key)
    found = _cache.get(full)
    _cache.count(found is not None)
    if found is not None:
        return found
    value = _frozen(np.asarray(make()))
    _cache.put(full, value, value.nbytes)
    return value


def density_for(patient, calibration, convert: Callable[[], np.ndarray], dtype) -> np.ndarray:
    """``convert()`` (the patient's CT numbers through ``calibration``) as C-contiguous ``dtype``, cached.

    The entry is checked against the patient's current CT numbers bit for bit on every call (module docstring).
    """
    dtype = np.dtype(dtype)
    hu = patient.hu
    key = ("density", id(patient), calibration, dtype.str)
    found = _cache.get(key)
    if found is not None:
        ref, hu_copy, value = found
        if ref() is patient and hu_copy.shape == hu.shape and np.array_equal(hu_copy.view(np.uint32),
                                                                            hu.view(np.uint32)):
            _cache.count(True)
            return value
        _cache.drop(key)
    _cache.count(False)
    value = _frozen(np.array(convert(), dtype=dtype, order="C"))  # its own array: its id keys its ray tables
    if _cache.limit_bytes > 0:
        nbytes = value.nbytes + hu.nbytes
        if nbytes <= _cache.limit_bytes:
            ref = weakref.ref(patient, lambda _, key=key: _cache.drop(key))
            _cache.put(key, (ref, _frozen(hu.copy()), value), nbytes)
            ident = id(value)
            _densities[ident] = weakref.ref(value, lambda _, ident=ident: _forget_density(ident))
    return value


def ray_table(density: np.ndarray, grid_pack: np.ndarray, beam_pack: np.ndarray,
              make: Callable[[], np.ndarray]) -> np.ndarray | None:
    """The ray table ``make()`` traces for a beam through ``density``, cached; None (nothing traced) when
    ``density`` is not an array :func:`density_for` handed out (the caller then traces as before)."""
    ident = id(density)
    ref = _densities.get(ident)
    if ref is None or ref() is not density or _cache.limit_bytes == 0:
        return None
    geometry = np.ascontiguousarray(beam_pack[:RAY_GEOMETRY_PACK], dtype=np.float64).tobytes()
    key = ("ray", ident, np.ascontiguousarray(grid_pack, dtype=np.float64).tobytes(), geometry)
    found = _cache.get(key)
    _cache.count(found is not None)
    if found is not None:
        return found
    value = _frozen(np.asarray(make()))
    _cache.put(key, value, value.nbytes)
    return value
