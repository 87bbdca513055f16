"""Result sets (io/result_set.py): whole sets or nothing, manifest, lock, up-front checks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

import sfrt_engine as se
from sfrt_engine.errors import OutputError, ResultSetLockedError
from sfrt_engine.io.result_set import (
    MANIFEST_NAME,
    ResultSet,
    check_destination,
    read_manifest,
    verify,
)


def _write_set(out, text: str, extra: dict | None = None) -> ResultSet:
    with ResultSet(out, settings={"dose": text}) as rs:
        (rs.path / "report.json").write_text(json.dumps({"dose": text}))
        (rs.path / "CT").mkdir()
        (rs.path / "CT" / "CT.0001.dcm").write_bytes(text.encode() * 10)
        for name, data in (extra or {}).items():
            (rs.path / name).write_text(data)
    return rs


def _hidden_siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def test_manifest_lists_every_file_with_its_sha256(tmp_path):
    out = tmp_path / "run"
    rs = _write_set(out, "8 Gy")
    manifest = read_manifest(out)
    assert manifest == rs.manifest and manifest["settings"] == {"dose": "8 Gy"}
    assert manifest["engine_version"] == se.__version__
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {"report.json", "CT/CT.0001.dcm"}
    for name, entry in listed.items():
        data = (out / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    assert verify(out) == []
    assert _hidden_siblings(out) == []  # no lock file, no temporary folder left
    # verify finds a changed, a missing and an extra file
    (out / "report.json").write_text("{}")
    (out / "CT" / "CT.0001.dcm").unlink()
    (out / "stray.txt").write_text("x")
    assert verify(out) == ["missing: CT/CT.0001.dcm", "not in the manifest: stray.txt", "SHA-256 differs: report.json"]


def test_a_new_set_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "run"
    _write_set(out, "8 Gy", extra={"only_in_old.txt": "old"})
    _write_set(out, "15 Gy")
    assert json.loads((out / "report.json").read_text()) == {"dose": "15 Gy"}
    assert not (out / "only_in_old.txt").exists()  # nothing of the old set survives beside the new one
    assert verify(out) == [] and _hidden_siblings(out) == []


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_error_or_interrupt_leaves_the_previous_set_untouched(tmp_path, failure):
    out = tmp_path / "run"
    _write_set(out, "8 Gy")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(type(failure)):
        with ResultSet(out) as rs:
            (rs.path / "report.json").write_text("half")
            raise failure
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _hidden_siblings(out) == []


def test_an_error_on_a_fresh_folder_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError):
        with ResultSet(tmp_path / "new") as rs:
            (rs.path / "report.json").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path):
    out = tmp_path / "run"
    with ResultSet(out, command="sfrt compare --out run"):
        with pytest.raises(ResultSetLockedError, match=rf"another run is writing this folder \(PID {os.getpid()} "):
            ResultSet(out).__enter__()
    _write_set(out, "after")  # the lock is gone once the first set is written


def test_a_stale_lock_of_a_dead_process_does_not_block(tmp_path):
    out = tmp_path / "run"
    # a killed run leaves its lock file (no longer locked: the kernel released it) and its partial folder
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".run.lock").write_text(f"PID {dead.stdout.strip()} on host: sfrt compare\n")
    (tmp_path / f".run.partial-{dead.stdout.strip()}-abc").mkdir()
    _write_set(out, "8 Gy")
    assert verify(out) == [] and _hidden_siblings(out) == []


def test_destination_checks(tmp_path):
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match="--out is empty"):
        check_destination("  ")
    with pytest.raises(OutputError, match="is an existing file"):
        check_destination(tmp_path / "file.txt")
    with pytest.raises(OutputError, match="not an sfrt result set"):
        check_destination(tmp_path / "mine")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_destination(tmp_path / "file.txt" / "out")
    # an empty folder and a folder written by an earlier version (report and plots only) may be replaced
    (tmp_path / "empty").mkdir()
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "report.json").write_text("{}")
    (tmp_path / "legacy" / "eqd2_axial.png").write_bytes(b"png")
    assert check_destination(tmp_path / "empty") == tmp_path / "empty"
    assert check_destination(tmp_path / "legacy") == tmp_path / "legacy"
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "mine"
    assert MANIFEST_NAME == "manifest.json"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_place_is_refused_up_front(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            check_destination(ro / "out")
    finally:
        ro.chmod(0o755)


def test_a_set_left_aside_by_a_killed_swap_is_put_back(tmp_path):
    out = tmp_path / "run"
    _write_set(out, "8 Gy")
    os.rename(out, tmp_path / ".run.old-12345")  # killed between the two renames of the fallback swap
    with ResultSet(out) as rs:
        restored = json.loads((out / "report.json").read_text())  # put back before the new set is written
        (rs.path / "report.json").write_text("{}")
    assert restored == {"dose": "8 Gy"} and verify(out) == [] and _hidden_siblings(out) == []


def test_a_link_is_followed_and_root_refused(tmp_path):
    _write_set(tmp_path / "real", "8 Gy")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    _write_set(tmp_path / "link", "15 Gy")
    assert (tmp_path / "link").is_symlink()
    assert json.loads((tmp_path / "real" / "report.json").read_text()) == {"dose": "15 Gy"}
    with pytest.raises(OutputError, match="is a root folder"):
        check_destination("/")


def test_ctrl_c_held_back_while_locking_is_cleaned_up(tmp_path, monkeypatch):
    # SIGINT arriving while the lock is taken and the temporary folder made is held back, then
    # raised as soon as that is done: the folder and the lock must still be undone
    import signal
    import tempfile

    real = tempfile.mkdtemp

    def mkdtemp_then_ctrl_c(*args, **kwargs):
        path = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with ResultSet(tmp_path / "run"):
            pytest.fail("the block must not run")
    assert list(tmp_path.iterdir()) == []


def test_the_swap_without_rename_exchange(tmp_path, monkeypatch):
    from sfrt_engine.io import result_set

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from_a").write_text("a")
    if result_set._exchange(a, b):  # Linux renameat2: one atomic step
        assert (b / "from_a").exists() and not (a / "from_a").exists()
    monkeypatch.setattr(result_set, "_exchange", lambda a, b: False)  # old kernels, other file systems
    out = tmp_path / "run"
    _write_set(out, "8 Gy", extra={"only_in_old.txt": "old"})
    _write_set(out, "15 Gy")
    assert json.loads((out / "report.json").read_text()) == {"dose": "15 Gy"}
    assert not (out / "only_in_old.txt").exists() and verify(out) == [] and _hidden_siblings(out) == []
