"""Where tasks run: here (one at a time), in local worker processes, or on a
Dask distributed cluster. Each runner yields TaskResults as they finish and
stops handing out work when cancelled; a cancelled task finishes its open event
and returns what it found."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterator

from motionwatch.archive.task import ScanTask, TaskResult, run_task
from motionwatch.errors import ConfigError, MotionwatchError

# How often the client wakes to redraw the progress bar while tasks run.
POLL_S = 0.3


def _safe(task: ScanTask, cancel, on_frames=None) -> TaskResult:
    """A task never raises: whatever goes wrong with one file is that file's row in the table."""
    if cancel is not None and cancel.is_set():
        return TaskResult(task, interrupted=True)
    try:
        return run_task(task, cancel, on_frames)
    except Exception as e:   # noqa: BLE001  (reported in the table, the other files go on)
        return TaskResult(task, error=f"{type(e).__name__}: {e}")


class InProcess:
    """`--jobs 1` over several files: no worker processes to start."""

    def __init__(self):
        self.cancel = threading.Event()
        self.frames = 0

    def _count(self, n: int) -> None:
        self.frames += n

    def results(self, tasks: list[ScanTask], tick: Callable[[], None]) -> Iterator[TaskResult]:
        for task in tasks:
            yield _safe(task, self.cancel, self._count)
            tick()

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


_worker_cancel = None
_worker_frames = None


def _init_worker(cancel, frames) -> None:
    global _worker_cancel, _worker_frames
    # Ctrl-C reaches the whole process group: the client decides what stops, and tells us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_cancel, _worker_frames = cancel, frames


def _add_frames(n: int) -> None:
    with _worker_frames.get_lock():
        _worker_frames.value += n


def _pool_task(task: ScanTask) -> TaskResult:
    return _safe(task, _worker_cancel, _add_frames)


class LocalPool:
    """`--jobs N` worker processes. Spawned, not forked: the client holds SQLite and
    threads, which a fork would copy half-way."""

    def __init__(self, jobs: int):
        ctx = multiprocessing.get_context("spawn")
        self.cancel = ctx.Event()
        self._frames = ctx.Value("q", 0)
        self.pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                        initargs=(self.cancel, self._frames))

    @property
    def frames(self) -> int:
        return self._frames.value

    def results(self, tasks: list[ScanTask], tick: Callable[[], None]) -> Iterator[TaskResult]:
        pending = {self.pool.submit(_pool_task, t): t for t in tasks}
        while pending:
            done, _ = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            tick()
            for fut in done:
                task = pending.pop(fut)
                try:
                    yield fut.result()
                except Exception as e:   # noqa: BLE001  (a worker process died)
                    yield TaskResult(task, error=f"worker process failed: {type(e).__name__}: {e}")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Kill the workers (a second Ctrl-C): they ignore SIGINT and would go on
        scanning after we exit. The executor offers no public way to reach them."""
        for proc in list(getattr(self.pool, "_processes", {}).values()):
            proc.kill()


class _Cancel:
    """The cluster's cancel Event, with what this client did remembered here
    (asked after the client has closed, and from a signal handler)."""

    def __init__(self, event):
        self.event = event
        self.flag = threading.Event()

    def set(self) -> None:
        self.flag.set()
        self.event.set()

    def is_set(self) -> bool:
        return self.flag.is_set()


def _dask_task(task: ScanTask, cancel_name: str) -> TaskResult:
    from distributed import Event
    return _safe(task, Event(cancel_name))


class DaskRunner:
    """Tasks on a Dask distributed cluster. Results (records and file bytes) come back
    to this client, which alone writes the recordings and the index; a task whose
    worker dies is run again elsewhere by Dask, and since a task writes nothing
    itself, nothing is lost or doubled."""

    def __init__(self, address: str):
        try:
            from distributed import Client, Event
        except ImportError:
            raise ConfigError("--cluster needs Dask distributed; install it with pip install '.[cluster]' (in the checkout)") \
                from None
        try:
            self.client = Client(address, timeout=15, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise MotionwatchError(f"--cluster {address}: cannot reach the Dask scheduler: {e}") from None
        self.cancel_name = f"motionwatch-cancel-{uuid.uuid4().hex}"
        self.cancel = _Cancel(Event(self.cancel_name, client=self.client))
        self.frames = 0
        self.jobs = max(1, sum(self.client.nthreads().values()))

    def results(self, tasks: list[ScanTask], tick: Callable[[], None]) -> Iterator[TaskResult]:
        from distributed import as_completed
        futures = [self.client.submit(_dask_task, t, self.cancel_name, pure=False) for t in tasks]
        by_key = {f.key: t for f, t in zip(futures, tasks)}
        for fut in as_completed(futures, loop=self.client.loop):
            try:
                res = fut.result()
            except Exception as e:   # noqa: BLE001  (Dask gave up on it: reported in the table)
                res = TaskResult(by_key[fut.key], error=f"cluster task failed: {type(e).__name__}: {e}")
            self.frames += res.frames
            tick()
            yield res

    def close(self) -> None:
        self.client.close()

    def abort(self) -> None:
        pass   # the cancel Event is set: the cluster's tasks stop on their own


def make_runner(jobs: int, cluster: str | None, tasks: int):
    if cluster:
        return DaskRunner(cluster)
    if jobs <= 1 or tasks <= 1:
        return InProcess()
    return LocalPool(min(jobs, tasks))


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
