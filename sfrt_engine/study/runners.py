"""Runners: where study jobs run. Every runner runs the same :func:`~sfrt_engine.study.jobs.execute`.

- :class:`LocalRunner` (the default): a pool of local processes, one per physical core unless
  told otherwise; each worker's OpenMP threads are ``cores // workers`` so the cores are not
  oversubscribed. With a GPU backend (``cuda``/``cupy``) and N devices: one worker per device,
  each seeing only its own (``CUDA_VISIBLE_DEVICES``).
- :class:`DaskRunner`: Dask distributed, on an existing cluster (``address="tcp://host:8786"``)
  or on a ``LocalCluster`` started for the run. GPU placement uses Dask worker resources:
  GPU workers declare ``--resources GPU=1`` and see one device each; jobs of a ``cuda`` or
  ``cupy`` study ask for ``GPU=1``, so each runs alone on its worker's device.
- :class:`SerialRunner`: in this process, one job after the other (debugging, tiny studies).

A runner's ``results(specs, backend)`` yields a :class:`~sfrt_engine.study.jobs.JobResult` per
spec as each finishes; storing them is the caller's business.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..errors import SchedulerUnreachableError, SfrtError
from .jobs import JobResult, JobSpec, execute

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "GPU_BACKENDS",
    "DaskRunner",
    "LocalRunner",
    "SerialRunner",
    "gpu_devices",
    "physical_cores",
]

GPU_BACKENDS = ("cuda", "cupy")
#: How long :class:`DaskRunner` tries to reach a scheduler before giving up [s].
DEFAULT_CONNECT_TIMEOUT_S = 10.0


def physical_cores() -> int:
    """Physical CPU cores this process may use (logical CPUs when the count is unknown)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:  # psutil comes with dask; without it count logical CPUs
        physical = usable
    return max(1, min(physical, usable))


def gpu_devices(backend: str) -> list[int]:
    """Indices of the CUDA devices jobs of ``backend`` should be spread over (empty for CPU backends)."""
    if backend not in GPU_BACKENDS:
        return []
    from ..kernels import available_backends

    ok, _ = available_backends()[backend]
    if not ok:
        return []  # the job reports the backend's reason
    try:
        import cupy

        return list(range(cupy.cuda.runtime.getDeviceCount()))
    except Exception:  # noqa: BLE001 - no CuPy: ask the compiled module
        from ..kernels import backend_cuda

        try:
            return list(range(len(backend_cuda.devices())))
        except Exception:  # noqa: BLE001
            return [0]


def _init_worker(omp_threads: int, devices) -> None:
    """Pool worker start-up: OpenMP threads (before the kernels load) and, for GPU jobs, one device."""
    os.environ["OMP_NUM_THREADS"] = str(omp_threads)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


@dataclass
class SerialRunner:
    """Run the jobs one after the other in this process."""

    def describe(self, n_jobs: int, backend: str = "auto") -> str:
        return "in this process"

    def results(self, specs: list[JobSpec], backend: str) -> Iterator[JobResult]:
        for spec in specs:
            yield execute(spec)


@dataclass
class LocalRunner:
    """A local process pool (``workers`` default: one per physical core, or one per GPU for GPU backends)."""

    workers: int | None = None

    def plan(self, n_jobs: int, backend: str) -> tuple[int, int, list[int]]:
        """(workers, OpenMP threads per worker, GPU devices) for ``n_jobs`` jobs."""
        if self.workers is not None and (isinstance(self.workers, bool) or int(self.workers) != self.workers
                                         or self.workers < 1):
            raise SfrtError(f"workers={self.workers!r}: expected a whole number >= 1")
        cores = physical_cores()
        devices = gpu_devices(backend)
        n = self.workers or (len(devices) if devices else cores)
        if devices:
            n = min(n, len(devices))
        n = max(1, min(n, n_jobs))
        return n, max(1, cores // n), devices[:n]

    def describe(self, n_jobs: int, backend: str = "auto") -> str:
        n, threads, devices = self.plan(n_jobs, backend)
        gpu = f", GPUs {devices}" if devices else ""
        return f"local pool of {n} worker(s) x {threads} OpenMP thread(s){gpu}"

    def results(self, specs: list[JobSpec], backend: str) -> Iterator[JobResult]:
        n, threads, devices = self.plan(len(specs), backend)
        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold OpenMP/CUDA state
        queue = None
        if devices:
            queue = context.Queue()
            for d in devices:
                queue.put(d)
        with ProcessPoolExecutor(n, mp_context=context, initializer=_init_worker, initargs=(threads, queue)) as pool:
            futures = {pool.submit(execute, spec): spec for spec in specs}
            try:
                for future in as_completed(futures):
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        raise SfrtError(f"a worker process died (killed, or out of memory) while job "
                                        f"{futures[future].label} was running; finished jobs are kept: run the study "
                                        "again to resume, with fewer --workers if memory is short") from None
            finally:
                for future in futures:
                    future.cancel()
        if queue is not None:
            queue.close()
            queue.join_thread()


@dataclass
class DaskRunner:
    """Dask distributed: an existing scheduler at ``address``, or a ``LocalCluster`` when it is None.

    Parameters
    ----------
    address : str, optional
        ``tcp://HOST:PORT`` of a running ``dask scheduler``; None starts a LocalCluster.
    workers : int, optional
        LocalCluster workers (default: one per physical core, or one per GPU for GPU backends).
    processes : bool
        LocalCluster workers as processes (default) or as threads of this process.
    connect_timeout_s : float
        How long to try to reach ``address`` (and to wait for its first worker) [s].
    """

    address: str | None = None
    workers: int | None = None
    processes: bool = True
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

    def describe(self, n_jobs: int, backend: str = "auto") -> str:
        if self.address:
            return f"Dask cluster at {self.address}"
        n, _, devices = LocalRunner(self.workers).plan(n_jobs, backend)
        kind = "process" if self.processes else "thread"
        return f"Dask LocalCluster of {n} {kind} worker(s)" + (f", GPUs {devices}" if devices else "")

    @contextlib.contextmanager
    def _client(self, n_jobs: int, backend: str):
        try:
            from distributed import Client
        except ImportError:
            raise SfrtError("the Dask runner needs dask.distributed: pip install 'sfrt-engine[dask]' "
                            "(or run on the local pool, without --scheduler/--dask-local)") from None

        if self.address is None:
            with self._local_cluster(n_jobs, backend) as cluster, Client(cluster, set_as_default=False) as client:
                yield client
            return
        start = time.perf_counter()
        try:
            client = Client(self.address, timeout=f"{self.connect_timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            waited = time.perf_counter() - start
            raise SchedulerUnreachableError(
                f"could not reach the Dask scheduler at {self.address!r}: tried for {waited:.1f} s (timeout "
                f"{self.connect_timeout_s:g} s; {type(exc).__name__}). Start one with `dask scheduler` and workers "
                f"with `dask worker {self.address}`, or check the address, port and firewall") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=self.connect_timeout_s)
            except TimeoutError:
                raise SchedulerUnreachableError(
                    f"the Dask scheduler at {self.address!r} has no worker after {self.connect_timeout_s:g} s; "
                    f"start workers with `dask worker {self.address}`") from None
            yield client

    def _local_cluster(self, n_jobs: int, backend: str):
        from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

        n, threads, devices = LocalRunner(self.workers).plan(n_jobs, backend)
        if devices and self.processes:
            workers = {f"gpu-{d}": {"cls": Nanny, "options": {
                "nthreads": 1, "resources": {"GPU": 1},
                "env": {"CUDA_VISIBLE_DEVICES": str(d), "OMP_NUM_THREADS": str(threads)}}} for d in devices}
            return SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": None}})
        options = {"env": {"OMP_NUM_THREADS": str(threads)}} if self.processes else {}
        resources = {"resources": {"GPU": 1}} if devices else {}
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=self.processes, dashboard_address=None,
                            **options, **resources)

    def results(self, specs: list[JobSpec], backend: str) -> Iterator[JobResult]:
        from distributed import as_completed as dask_completed

        with self._client(len(specs), backend) as client:
            resources = None
            if backend in GPU_BACKENDS:
                workers = client.scheduler_info()["workers"].values()
                if not any(w.get("resources", {}).get("GPU") for w in workers):
                    raise SfrtError(f"backend {backend!r} needs GPU workers, but no worker of the cluster declares "
                                    "the resource GPU; start one per device with "
                                    "`CUDA_VISIBLE_DEVICES=i dask worker ADDRESS --nthreads 1 --resources GPU=1`")
                resources = {"GPU": 1}
            futures = {client.submit(execute, spec, key=f"sfrt-job-{spec.key}", resources=resources, pure=False):
                       spec for spec in specs}
            try:
                for future in dask_completed(futures, loop=client.loop):
                    spec = futures[future]
                    if future.status == "error":  # the worker itself died (execute records job errors)
                        exc = future.exception()
                        yield JobResult(spec.key, spec.label, "failed", error=f"{type(exc).__name__}: {exc}",
                                        details="the Dask task failed outside the job (worker lost?)")
                    else:
                        yield future.result()
                    future.release()
            finally:
                client.cancel(list(futures))
