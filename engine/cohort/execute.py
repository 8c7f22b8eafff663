"""Dask distributed underneath a cohort run: the cluster, the guideline shipped once per worker, and
batches evaluated with a bounded number in flight, their results back in input order.

Default: an embedded LocalCluster on this machine's cores (worker processes, one thread each: a
durable_rules ruleset runs one session at a time, and processes use every core). `--scheduler`:
an existing cluster whose workers have this package installed; the same tasks, the same output.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from engine.errors import BadInputError, EngineError, RuleEngineError

BATCH = 1_000          # patients per task: ~0.5 s of work, so scheduling costs little per patient
WINDOW_PER_WORKER = 4  # tasks in flight (or finished, waiting for their turn) per worker
CONNECT_TIMEOUT = 15.0  # seconds to reach an existing scheduler (Dask retries until then) and find a worker
T = TypeVar("T")


class WorkerError(RuleEngineError):
    """A task failed on a worker for a reason of its own (not a patient's): the run cannot be completed."""


def local_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Dask's batched streams keep each of their last `low-level-log-length` (1,000) messages for
# debugging; a message here is a whole batch of patients (about 1 MB), so the driver grew by ~2 KB
# per patient up to ~2 GB (measured: 1.8 GB peak for 10^6 patients; 683 MB -> 18 MB over 300
# batches with the log off). Off for this client and for an embedded cluster's scheduler and workers.
_NO_MESSAGE_LOG = {"distributed.admin.low-level-log-length": 0}


@contextmanager
def client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: on `scheduler` (tcp://host:port), or on an embedded cluster of `workers` processes."""
    import dask
    import distributed  # noqa: F401  (registers its config defaults, which the setting below amends)

    with dask.config.set(_NO_MESSAGE_LOG):
        with _client(workers, scheduler) as connected:
            yield connected


@contextmanager
def _client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            connected = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BadInputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        try:
            try:  # a cluster without a worker would take the tasks and never run them
                connected.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except TimeoutError as exc:
                raise BadInputError(f"the Dask cluster at {scheduler} has no worker") from exc
            yield connected
        finally:
            connected.close()
        return
    import dask

    # Dask starts worker processes with MALLOC_TRIM_THRESHOLD_=65536 (to hand memory back to the
    # OS); durable_rules allocates and frees at every fact, and with it evaluated 2.5-10x slower
    # (measured): the embedded cluster's workers keep glibc's own setting.
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        try:
            cluster = LocalCluster(n_workers=workers or local_cores(), threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR)
        except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. "Nanny failed to start": named, exit 1
            raise WorkerError(f"cannot start the local Dask cluster ({workers or local_cores()} worker "
                              f"processes): {type(exc).__name__}: {exc}") from exc
    try:
        with Client(cluster, set_as_default=False) as embedded:
            yield embedded
    finally:
        cluster.close()


def worker_count(dask_client: Any) -> int:
    return len(dask_client.scheduler_info(n_workers=-1).get("workers", {}))


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _result(future: Any) -> Any:
    try:
        return future.result()
    except EngineError:
        raise
    except Exception as exc:  # a worker died, ran out of memory, lost its connection
        raise WorkerError(f"the cohort run failed on a worker: {type(exc).__name__}: {exc}") from exc


def ordered_map(dask_client: Any, func: Callable[..., T], fixed: list[Any], calls: Iterable[tuple[Any, ...]],
                window: int) -> Iterator[T]:
    """func(*fixed, *args) for each args of `calls`, on the cluster, yielded in the order of `calls`.

    At most `window` tasks are submitted and not yet yielded: input is read only as fast as results
    are written, so memory stays flat whatever the number of patients. Waiting on the oldest task
    is the re-ordering buffer: later ones go on running meanwhile.
    """
    pending: deque[Any] = deque()
    try:
        for args in calls:
            pending.append(dask_client.submit(func, *fixed, *args, pure=False))
            if len(pending) >= window:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        for future in pending:  # a failed or abandoned run leaves nothing running on the cluster
            future.cancel()


def ship(dask_client: Any, value: Any) -> Any:
    """`value` sent once to every worker (pickled by content), as a future tasks take as an argument."""
    return dask_client.scatter(value, broadcast=True, hash=False)
