"""Shared fixtures: the built-in machine and the ``backend`` fixture (STYLE 9).

``backend`` runs a test once per registered non-reference backend (cuda, cupy,
cpp, ...); the NumPy reference is what they are compared against, so it is not
a parameter. A backend that cannot run here is skipped with the registry's own
reason. In GPU CI, ``SFRT_REQUIRE_CUDA=1`` turns a skipped cuda or cupy backend
into a failure, so a broken CUDA build cannot pass as "skipped".
"""

from __future__ import annotations

import os

import pytest

import sfrt_engine as se
from sfrt_engine.kernels import BACKENDS

#: Backends that exist only with an NVIDIA GPU; SFRT_REQUIRE_CUDA=1 makes them mandatory.
GPU_BACKENDS = ("cuda", "cupy")
#: Every registered backend except the reference, in registry order.
COMPARED_BACKENDS = tuple(name for name in BACKENDS if name != "numpy")


def _backend_param(name: str):
    marks = [pytest.mark.gpu] if name in GPU_BACKENDS else []
    return pytest.param(name, id=name, marks=marks)


@pytest.fixture(params=[_backend_param(name) for name in COMPARED_BACKENDS])
def backend(request) -> str:
    """Name of a non-reference backend that can run here (skips, or fails under SFRT_REQUIRE_CUDA=1)."""
    name = request.param
    available, reason = se.available_backends()[name]
    if not available:
        if name in GPU_BACKENDS and os.environ.get("SFRT_REQUIRE_CUDA") == "1":
            pytest.fail(f"SFRT_REQUIRE_CUDA=1 but backend {name!r} cannot run: {reason}", pytrace=False)
        pytest.skip(f"backend {name!r} unavailable: {reason}")
    return name


@pytest.fixture(scope="session")
def machine() -> se.PhotonMachine:
    """The built-in generic 6 MV machine (loaded once; it is immutable)."""
    return se.load_machine("photon_6mv")
