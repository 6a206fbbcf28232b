"""Dask for the tiled inversion and the parameter study: a client, and tasks run with progress.

The default cluster is a `LocalCluster` of worker *processes*, one thread each, on loopback:
the work is numba kernels and BLAS, which would otherwise contend for the same cores in one
process (each kernel already spreads over all cores it is given), and a process per worker
keeps each worker's memory its own, so the nanny can report and bound it, which is what tiling
is for. Each worker process starts with NUMBA_NUM_THREADS=1 in its environment (Dask already
sets OMP/BLAS threads to 1), so n_workers processes use n_workers cores, whatever the caller's
script imports (`spawn_env`). `processes=False` runs the workers as threads of this process
(no sockets; what the tests use).

Memory: the runs are sized before they start against the memory this machine has available
(`tiles.budget`, `study.budget`), all workers together, so a local worker's limit is that whole
memory rather than Dask's even share of it: which worker holds which tile's factor is the
scheduler's choice, and an uneven spread must not get a worker killed (at 95 % of its limit)
or paused (at 80 %) in a run that fits. Spilling is off: what a worker holds is the factors in
use from pass to pass and the working arrays of a running task, which written to disk would
only be read straight back. Workers elsewhere (`--scheduler`) keep their own limits, which
the runs are checked against (`worker_memory`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
from distributed import Client, LocalCluster, as_completed, system

from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.tiles.spawn_env import OneNumbaThreadNanny
from smm_daq.errors import InputError

Progress = Callable[[str, int, int], None]  # (stage, tasks done, tasks in the stage)

CONNECT_TIMEOUT_S = 10
# Dask's thresholds, as fractions of a worker's memory limit: no spilling to disk and no
# pausing (the nanny still ends a worker past 95 % of its limit, the whole memory available)
LOCAL_MEMORY_CONFIG = {"distributed.worker.memory.target": False,
                       "distributed.worker.memory.spill": False,
                       "distributed.worker.memory.pause": False}


@contextlib.contextmanager
def open_client(
    scheduler: str | None = None, *, n_workers: int = 2, processes: bool = True
) -> Iterator[Client]:
    """A Dask client: connected to `scheduler` (an address such as tcp://host:8786) when given,
    else to a new LocalCluster of `n_workers` single-threaded workers on 127.0.0.1, shut down
    on exit."""
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); expected the "
                "address of a running scheduler, e.g. tcp://host:8786"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    if n_workers < 1:
        raise InputError(f"{n_workers} Dask workers: expected at least 1")
    # Every node also serves HTTP (health, metrics) on all interfaces unless told an address:
    # loopback only, and no dashboard (which would need bokeh).
    options: dict[str, Any] = {
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
        "worker_dashboard_address": "127.0.0.1:0",
    }
    if processes:
        options |= {"host": "127.0.0.1", "worker_class": OneNumbaThreadNanny}
    have = memory.available_bytes()  # Dask refuses a limit over the system's (or cgroup's)
    have = min(have, system.MEMORY_LIMIT) if have is not None else None
    try:
        with dask.config.set(LOCAL_MEMORY_CONFIG):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                   processes=processes, silence_logs=logging.ERROR,
                                   memory_limit=have if have is not None else "auto", **options)
    except (RuntimeError, OSError, TimeoutError) as exc:  # Dask's words for a worker's failure
        workers = f"{n_workers} worker{'s' if n_workers != 1 else ''}"
        raise InputError(
            f"the local Dask cluster of {workers} could not start ({_first_cause(exc)}); "
            "expected workers that start (a worker's own error is in Dask's log above; a "
            "script that opens the cluster must do so under `if __name__ == \"__main__\":`, "
            "as each worker process imports the script first)"
        ) from None
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _first_cause(exc: BaseException) -> str:
    """The exception that began the chain ending in `exc` (Dask wraps a worker's failure in
    "Nanny failed to start."), as 'Type: message'."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class UncheckedMemoryWarning(UserWarning):
    """The workers' memory could not be checked: none was connected to the scheduler."""


def worker_memory(client: Client, say: Callable[[str], None] | None = None
                  ) -> dict[str, tuple[int | None, int]]:
    """{address: (memory limit in bytes or None where it has none, threads)} of every worker
    the scheduler knows. With none connected yet (a scheduler whose workers are still to
    start) that no memory was checked is said through `say`, at once (the run then waits
    for workers), else as an UncheckedMemoryWarning. Dask lets workers join at any time, so
    waiting here for some would only guess how long."""
    info = client.scheduler_info(n_workers=-1)
    workers = info["workers"]
    if not workers:
        address = info.get("address", "the scheduler")
        text = (f"no Dask worker is connected to the scheduler at {address} yet, so no "
                "worker's memory was checked against the run: its tasks wait for workers to "
                "join, and a worker with too little memory for them may be ended part-way; "
                f"start the workers (dask worker {address}) before the run to have them checked")
        if say is not None:
            say(text)
        else:
            warnings.warn(text, UncheckedMemoryWarning, stacklevel=2)
    return {address: (int(w["memory_limit"]) if w.get("memory_limit") else None,
                      int(w["nthreads"]))
            for address, w in workers.items()}


def submit(client: Client | None, func: Callable[..., Any], *args: Any) -> Any:
    """func(*args) as a future on the cluster, its result staying in the worker's memory for
    later tasks that take the future as an argument (computed here when `client` is None)."""
    return client.submit(func, *args, pure=False) if client is not None else func(*args)


def run_tasks(
    client: Client | None, func: Callable[..., Any], items: Sequence[tuple[Any, ...]], *,
    stage: str, progress: Progress | None = None,
) -> list[Any]:
    """func(*item) for every item on the cluster (in this process, one after another, when
    `client` is None; futures among an item's values are replaced by their results); results
    in the order of `items`. Calls progress(stage, done, total) as
    tasks finish; a task's exception is raised here (the remaining tasks are cancelled)."""
    if client is None:
        results = []
        for done, item in enumerate(items, start=1):
            if progress is not None and done == 1:
                progress(stage, 0, len(items))
            results.append(func(*item))
            if progress is not None:
                progress(stage, done, len(items))
        return results
    futures = [client.submit(func, *item, pure=False) for item in items]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    if progress is not None:
        progress(stage, 0, len(futures))
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            results[index[future.key]] = future.result()
            if progress is not None:
                progress(stage, done, len(futures))
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results


def stderr_progress(stream: Any = None) -> Progress:
    """A progress callback printing one line per finished task, e.g. `tiles pass 2: 3/9`."""
    out = stream if stream is not None else sys.stderr

    def report(stage: str, done: int, total: int) -> None:
        print(f"{stage}: {done}/{total}", file=out, flush=True)

    return report
