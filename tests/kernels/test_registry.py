"""Backend registry: availability with reasons, "auto", errors, lazy imports (DESIGN 6, STYLE 4)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import pytest

import sfrt_engine as se
from sfrt_engine import BackendUnavailableError
from sfrt_engine.kernels import AUTO_ORDER, BACKENDS

ALL_BACKENDS = ("cuda", "cupy", "cpp", "numpy")
_REAL_UNAVAILABLE = [name for name, (ok, _) in se.available_backends().items() if not ok]


def test_available_backends_lists_all_four_with_reasons():
    info = se.available_backends()
    assert set(info) == set(ALL_BACKENDS)
    for name, value in info.items():
        assert isinstance(value, tuple) and len(value) == 2, name
        ok, reason = value
        assert isinstance(ok, bool) and isinstance(reason, str) and reason, name
        if ok:
            assert reason == "ok"


def test_reference_and_cpu_backends_always_run():
    info = se.available_backends()
    assert info["numpy"] == (True, "ok")
    # cpp is built on every install (DESIGN 6); if it is missing the build is broken
    assert info["cpp"][0], info["cpp"][1]


def test_auto_order_is_gpu_first():
    assert AUTO_ORDER == ("cuda", "cupy", "cpp", "numpy")
    assert tuple(BACKENDS) == AUTO_ORDER


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="nope") as info:
        se.get_backend("nope")
    for name in ("auto", *ALL_BACKENDS):
        assert name in str(info.value)
    assert not isinstance(info.value, BackendUnavailableError)


def test_backend_name_must_be_a_string():
    with pytest.raises(TypeError, match="string"):
        se.get_backend(None)


def test_auto_picks_first_available_and_says_so(caplog):
    expected = next(name for name in AUTO_ORDER if se.available_backends()[name][0])
    with caplog.at_level(logging.INFO, logger="sfrt_engine"):
        engine = se.get_backend("auto")
    assert engine.name == expected
    assert any(expected in rec.getMessage() and "auto" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("name", ALL_BACKENDS)
def test_backend_objects_follow_the_protocol(name):
    ok, reason = se.available_backends()[name]
    if not ok:
        pytest.skip(reason)
    engine = se.get_backend(name)
    assert engine.name == name
    assert callable(engine.photon_dose) and callable(engine.radiological_depth)
    assert engine.describe()["name"] == name
    assert se.get_backend(name.upper()) is engine  # names are case-insensitive; instances reused


@pytest.mark.parametrize("name", _REAL_UNAVAILABLE or [pytest.param("none", marks=pytest.mark.skip("all run here"))])
def test_unavailable_backend_raises_with_reason(name):
    reason = se.available_backends()[name][1]
    with pytest.raises(BackendUnavailableError) as info:
        se.get_backend(name)
    assert name in str(info.value) and reason in str(info.value)
    assert isinstance(info.value, RuntimeError)
    # compute_dose passes it on: no silent substitution of another backend
    patient = se.phantoms.water_box(size_xyz_mm=20.0, spacing_xyz_mm=10.0)
    beam = se.plan.open_field(se.load_machine("photon_6mv"), patient, field_mm=(10.0, 10.0))
    with pytest.raises(BackendUnavailableError, match=name):
        se.compute_dose(beam, patient, backend=name)


@pytest.fixture
def fake_backend(monkeypatch):
    """Register a backend module whose probe says why it cannot run."""
    module = types.ModuleType("_sfrt_test_fake_backend")
    module.NAME = "fake"
    module.probe = lambda: "fake accelerator is switched off (test)"
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(BACKENDS, "fake", module.__name__)
    return module


def test_registered_unavailable_backend_reason_is_passed_on(fake_backend):
    assert se.available_backends()["fake"] == (False, "fake accelerator is switched off (test)")
    with pytest.raises(BackendUnavailableError, match="fake accelerator is switched off"):
        se.get_backend("fake")


def test_unimportable_backend_module_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(BACKENDS, "ghost", "_sfrt_test_no_such_module")
    ok, reason = se.available_backends()["ghost"]
    assert not ok and "cannot import _sfrt_test_no_such_module" in reason


def test_import_does_not_touch_gpu_modules():
    # a fresh interpreter: importing the package must not import CuPy or the CUDA extension,
    # nor any backend module (they are loaded lazily, on first use)
    code = textwrap.dedent("""
        import sys
        import sfrt_engine
        bad = [m for m in sys.modules if m == "cupy" or m.startswith("cupy.")
               or m in ("sfrt_engine.kernels._cuda", "sfrt_engine.kernels.backend_cuda",
                        "sfrt_engine.kernels.backend_cupy", "sfrt_engine.kernels._core")]
        print(",".join(bad))
    """)
    # outside the checkout, so the installed package is the one imported
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         cwd=tempfile.gettempdir())
    assert out.stdout.strip() == "", f"imported at package import: {out.stdout.strip()}"


@pytest.mark.skipif(not {"cuda", "cupy"} <= set(_REAL_UNAVAILABLE), reason="needs cuda and cupy to be unavailable")
def test_require_cuda_turns_gpu_skips_into_failures(tmp_path: Path):
    """The ``backend`` fixture of tests/conftest.py, run in a child pytest with and without SFRT_REQUIRE_CUDA."""
    shutil.copy(Path(__file__).parents[1] / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    (tmp_path / "test_probe.py").write_text("def test_backend(backend):\n    assert backend\n")

    def run(require: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "SFRT_REQUIRE_CUDA"}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the child needs no third-party plugins; starts faster
        if require is not None:
            env["SFRT_REQUIRE_CUDA"] = require
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                               "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
                              check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        return proc.stdout

    relaxed = run(None)
    assert "backend 'cuda' unavailable: " in relaxed and "backend 'cupy' unavailable: " in relaxed, relaxed
    assert "FAILED" not in relaxed and "ERROR" not in relaxed, relaxed
    strict = run("1")
    assert "ERROR" in strict or "FAILED" in strict, strict
    for name in ("cuda", "cupy"):
        assert f"SFRT_REQUIRE_CUDA=1 but backend '{name}' cannot run" in strict, strict
    assert "PASSED" in strict and "[cpp]" in strict  # cpu backends are unaffected
