"""Executors: where the jobs of ``jobs.run_jobs`` run. Scheduling, resume, staging names and
final names stay in jobs.py; an executor is handed a function and a job, runs the one on the
other somewhere and hands the result back. It knows nothing of jobs' files.

* ``LocalExecutor(workers)``: in this process (1 worker) or a forkserver process pool;
* ``RayExecutor(address, workers, retries)``: Ray tasks (``ray.remote(max_retries=...)``, also
  retried on exceptions), on a local Ray started for the build or an existing cluster
  (``address="auto"`` or ``ray://host:10001``). Ray is imported only here (``sweaug[ray]``).

``run_jobs`` hands every executor ``jobs.execute``: on a local store the job writes its shards
into ``<out>/.sweaug`` directly; on an fsspec store it writes them into a local temporary folder
and commits them (shards first, then the record) to the store, so workers on other machines
need nothing but access to the store. The job's *inputs* (source files, archives) are read by
path: on a cluster they must be on storage every node mounts at the same path.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ..records import ConfigError, SourceError

log = logging.getLogger("sweaug.jobs")
RAY_RETRIES = 3


def _warm() -> None:
    return None


def run_job(fn, job, store, cwd: str) -> dict:
    """``fn(job, store)`` in a Ray worker, from the driver's working directory (where it
    exists), so that relative input and output paths mean what they mean to the driver."""
    if os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    return fn(job, store)


_SAFE_PATH = sys.version_info >= (3, 11)  # PYTHONSAFEPATH exists


def _worker_init(cwd: str, owner: int) -> None:
    """A pool worker: run in the pool's current directory, and end when the process that owns
    the pool is gone (see ``_exit_with``)."""
    import threading

    os.chdir(cwd)
    threading.Thread(target=_exit_with, args=(owner,), daemon=True,
                     name="sweaug-exit-with-owner").start()


def _exit_with(owner: int) -> None:
    """End this worker as soon as ``owner`` has exited. A ProcessPoolExecutor worker outlives a
    killed owner (``kill -9``, the OOM killer) for ever: the workers hold the write ends of the
    call queue and of the forkserver's alive pipe, so neither ever reaches EOF; the orphans then
    keep writing into an output that the next run has taken over. A pidfd wakes at once
    (Linux 5.3+); elsewhere the owner is polled twice a second."""
    import select
    import time

    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])  # readable once the owner has exited
    else:
        while True:
            time.sleep(0.5)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                break
            except PermissionError:  # alive (a pid of another user's)
                pass
    os._exit(1)


def _start_forkserver() -> None:
    """Start multiprocessing's forkserver so that it and its workers import *this* sweaug.

    The server runs ``python -c ...``, whose ``sys.path`` starts with the current directory
    (CPython 3.10-3.13 hand it the parent's ``sys.path`` and ignore it), so a folder named
    ``sweaug`` there (a checkout's parent, a user's project) would be imported instead and
    every worker die with an ImportError. Python 3.11+: the server starts with
    ``PYTHONSAFEPATH=1`` (no current directory on its ``sys.path``); 3.10: it starts in the
    folder this package is imported from (each worker then changes to the pool's current
    directory: LocalExecutor's initializer). A server already running is left as it is."""
    from multiprocessing import forkserver

    if _SAFE_PATH:
        before = os.environ.get("PYTHONSAFEPATH")
        os.environ["PYTHONSAFEPATH"] = "1"
        try:
            forkserver.ensure_running()
        finally:
            if before is None:
                del os.environ["PYTHONSAFEPATH"]
            else:
                os.environ["PYTHONSAFEPATH"] = before
        return
    cwd = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[2])
    try:
        forkserver.ensure_running()
    finally:
        os.chdir(cwd)


class LocalExecutor:
    """This process (``workers == 1``) or a forkserver process pool."""

    def __init__(self, workers: int = 1):
        self.slots = max(1, int(workers))
        self.inline = self.slots == 1
        self._pool = None
        if not self.inline:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("forkserver")  # fork is unsafe with threads (progress bar)
            # workers fork from a server that has already imported the audio stack
            ctx.set_forkserver_preload(["sweaug.build.partitions", "sweaug.build.audio", "sweaug.augment",
                                        "numpy", "soundfile", "soxr"])
            _start_forkserver()
            # workers run in this directory (relative paths), not where the server started
            self._pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=ctx,
                                             initializer=_worker_init,
                                             initargs=(os.getcwd(), os.getpid()))
            for _ in range(self.slots):  # start the workers now, while the first jobs are formed
                self._pool.submit(_warm)

    def submit(self, fn, job, store):
        """``fn(job, store)`` in a pool worker; a handle for :meth:`wait`."""
        return self._pool.submit(fn, job, store)

    def wait(self, handles) -> list:
        """At least one finished handle of ``handles``, with its result."""
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(handles), return_when=FIRST_COMPLETED)
        return [(f, f.result()) for f in done]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray tasks, one per job, retried by Ray when a worker dies or the job raises."""

    inline = False

    def __init__(self, address: str | None = None, workers: int | None = None,
                 retries: int = RAY_RETRIES):
        if not address:  # a private Ray for this build: listen on the loopback address only
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'sweaug[ray]'") from None
        self._ray, self._started, self.retries = ray, False, retries
        if not ray.is_initialized():
            kw = {"include_dashboard": False, "logging_level": logging.WARNING}
            if address:
                kw["address"] = address
            elif workers:
                kw["num_cpus"] = workers
            try:
                ray.init(**kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise ConfigError(f"cannot start or reach {where}: {e}") from None
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = max(1, int(workers or cpus))
        self._task = ray.remote(num_cpus=1, max_retries=retries,
                                retry_exceptions=True)(run_job)
        self._cwd = os.getcwd()
        self._names: dict = {}
        log.info("Ray: %d CPUs in the cluster, %d jobs at a time", cpus, self.slots)

    def submit(self, fn, job, store):
        """``fn(job, store)`` as a Ray task; a handle for :meth:`wait`."""
        ref = self._task.remote(fn, job, store, self._cwd)
        self._names[ref] = job.name
        return ref

    def wait(self, handles) -> list:
        ray = self._ray
        done, _ = ray.wait(list(handles), num_returns=1)
        out = []
        for ref in done:
            name = self._names.pop(ref, "?")
            try:
                out.append((ref, ray.get(ref)))
            except ray.exceptions.RayTaskError as e:  # the job raised, on every try
                if isinstance(e.cause, (SourceError, ConfigError)):  # a known bad input/store
                    raise e.cause from None
                raise e.as_instanceof_cause() from None
            except ray.exceptions.RayError as e:  # its worker died on every try, or similar
                raise SourceError(f"job {name} failed on Ray after {self.retries} retries: "
                                  f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
        return out

    def close(self) -> None:
        for ref in list(self._names):
            self._ray.cancel(ref, force=True)
        self._names.clear()
        if self._started:
            self._ray.shutdown()


def make_executor(kind: str = "local", workers: int | None = None, address: str | None = None,
                  retries: int = RAY_RETRIES):
    if kind == "local":
        if address:
            raise ConfigError("--ray-address needs --executor ray")
        return LocalExecutor(workers or 1)
    if kind == "ray":
        return RayExecutor(address, workers, retries)
    raise ConfigError(f"unknown executor {kind!r}: choose local or ray")
