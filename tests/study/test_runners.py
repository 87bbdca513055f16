"""Runner placement: workers and OpenMP threads per core, one worker per GPU, GPU jobs only on GPU workers."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from sfrt_engine.errors import SfrtError
from sfrt_engine.study import DaskRunner, LocalRunner, load_study, run, runners
from sfrt_engine.study.runners import _init_worker, physical_cores

STUDY = """\
[study]
backend = "{backend}"
[cohort.synthetic]
n = 1
spacing_mm = 5.0
[schedules]
vertex_sessions = [3]
"""


def test_workers_and_threads_do_not_oversubscribe_the_cores(monkeypatch):
    monkeypatch.setattr(runners, "physical_cores", lambda: 8)
    assert LocalRunner().plan(100, "cpp") == (8, 1, [])
    assert LocalRunner(2).plan(100, "cpp") == (2, 4, [])
    assert LocalRunner(3).plan(100, "auto") == (3, 2, [])
    assert LocalRunner(4).plan(1, "cpp") == (1, 8, [])  # never more workers than jobs
    with pytest.raises(SfrtError, match="workers=0"):
        LocalRunner(0).plan(3, "cpp")
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_one_worker_per_gpu_each_seeing_its_own_device(monkeypatch):
    monkeypatch.setattr(runners, "physical_cores", lambda: 16)
    monkeypatch.setattr(runners, "gpu_devices", lambda backend: [0, 1, 2, 3] if backend == "cuda" else [])
    assert LocalRunner().plan(10, "cuda") == (4, 4, [0, 1, 2, 3])
    assert LocalRunner(2).plan(10, "cuda") == (2, 8, [0, 1])
    assert LocalRunner().plan(10, "cpp") == (10, 1, [])
    queue = multiprocessing.get_context("spawn").Queue()
    queue.put(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "99")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    _init_worker(4, queue)  # what a pool worker runs first
    assert os.environ["OMP_NUM_THREADS"] == "4" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    queue.close()
    queue.join_thread()


@pytest.mark.slow
def test_gpu_jobs_go_only_to_workers_with_the_gpu_resource(tmp_path):
    LocalCluster = pytest.importorskip("distributed", reason="Dask is the optional extra [dask]").LocalCluster

    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(backend="cuda"))
    study = load_study(path)
    with (LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cpu_only,
          pytest.raises(SfrtError, match="no worker of the cluster declares the resource GPU")):
        run(study, DaskRunner(address=cpu_only.scheduler_address), progress=False)
    assert not (study.output / "jobs").exists()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      resources={"GPU": 1}) as gpu:
        summary = run(study, DaskRunner(address=gpu.scheduler_address), progress=False)
    assert summary.ran == 1  # placed on the GPU worker; without a GPU here the job records the backend's reason
    if summary.failed:
        assert "cuda" in summary.failures[0][1]


@pytest.mark.slow
def test_dask_local_gpu_cluster_has_one_worker_per_device(monkeypatch):
    Client = pytest.importorskip("distributed", reason="Dask is the optional extra [dask]").Client

    monkeypatch.setattr(runners, "physical_cores", lambda: 8)
    monkeypatch.setattr(runners, "gpu_devices", lambda backend: [0, 1] if backend == "cuda" else [])
    with DaskRunner(workers=None)._local_cluster(5, "cuda") as cluster, Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=60)
        info = c.scheduler_info()["workers"].values()
        assert sorted(w["resources"].get("GPU") for w in info) == [1, 1]
        assert all(w["nthreads"] == 1 for w in info)
        # os.getenv travels to the worker processes by reference (a test-module function would not import there)
        devices, threads = c.run(os.getenv, "CUDA_VISIBLE_DEVICES"), c.run(os.getenv, "OMP_NUM_THREADS")
        assert sorted((devices[w], threads[w]) for w in devices) == [("0", "4"), ("1", "4")]
