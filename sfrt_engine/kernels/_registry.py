"""Backend registry: lazy discovery, availability with reasons, and "auto" selection.

Each backend module exposes ``NAME``, ``probe() -> str | None`` (``None`` means it
can run here; otherwise a reason a person can act on) and ``get()`` returning an
object with ``photon_dose(density, grid, tasks)`` and
``radiological_depth(density, grid, task)``. Modules are imported only when asked
for, so importing sfrt_engine on a CPU machine never touches CUDA.
"""

from __future__ import annotations

import importlib
import logging

from ..errors import BackendUnavailableError

__all__ = ["BACKENDS", "AUTO_ORDER", "available_backends", "get_backend"]

log = logging.getLogger("sfrt_engine")

#: name -> module, in the order "auto" tries them
BACKENDS = {
    "cuda": "sfrt_engine.kernels.backend_cuda",
    "cupy": "sfrt_engine.kernels.backend_cupy",
    "cpp": "sfrt_engine.kernels.backend_cpp",
    "numpy": "sfrt_engine.kernels.backend_numpy",
}
AUTO_ORDER = tuple(BACKENDS)
_instances: dict[str, object] = {}


def _probe(name: str) -> str | None:
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as exc:  # a broken install, not a missing optional feature
        return f"cannot import {BACKENDS[name]}: {exc}"
    return module.probe()


def available_backends() -> dict[str, tuple[bool, str]]:
    """Every registered backend: ``name -> (available, reason)``; the reason is "ok" when available."""
    result = {}
    for name in BACKENDS:
        reason = _probe(name)
        result[name] = (reason is None, reason or "ok")
    return result


def get_backend(name: str = "auto"):
    """The backend object called ``name``, or the first that can run for ``"auto"``.

    Raises
    ------
    ValueError
        For an unknown name.
    BackendUnavailableError
        If the named backend cannot run here; the message gives the reason.
    """
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    key = name.lower()
    if key == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            reason = _probe(candidate)
            if reason is None:
                log.info("backend 'auto' chose %r", candidate)
                return get_backend(candidate)
            reasons.append(f"{candidate}: {reason}")
        raise BackendUnavailableError("no backend can run: " + "; ".join(reasons))
    if key not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of: auto, {', '.join(BACKENDS)}")
    if key not in _instances:
        reason = _probe(key)
        if reason is not None:
            raise BackendUnavailableError(f"backend {key!r} cannot run: {reason}")
        _instances[key] = importlib.import_module(BACKENDS[key]).get()
    return _instances[key]
