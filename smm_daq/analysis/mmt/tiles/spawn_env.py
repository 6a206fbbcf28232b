"""A Dask nanny whose worker process has numba's thread count in its environment from its start.

A worker process is spawned, and the first thing it does is import the caller's main script
(Python's spawn start method re-imports it): a script that imports numba at its top, or
anything that does (smm_daq's models), has numba read NUMBA_NUM_THREADS there, before the
nanny's `env` is applied. numba would keep the machine's core count (each of the n workers
spreading its kernels over every core), or, with a kernel compiled after its threads
started, fail on the changed setting ("Cannot set NUMBA_NUM_THREADS to a different value
once the threads have been launched"). So the count goes in Dask's pre-spawn environment,
which the nanny writes into this process's own `os.environ` for the spawn to inherit (a
worker forked rather than spawned, `distributed.worker.multiprocessing-method: fork`, has
numba as this process set it up).

That write would stay, and this process's numba reads `os.environ` again at its next compile:
its own count would become the workers' (or its compile fail the same way once its threads
run). The value this process had is put back once the nannies starting at the time have their
workers up (a restarted worker's included); a kernel compiled in this process meanwhile, from
another thread, can still see the workers' value.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from distributed import Nanny, Status

NUMBA_THREADS_VAR = "NUMBA_NUM_THREADS"
WORKER_NUMBA_THREADS = "1"

_lock = threading.Lock()
_starting = 0  # nannies between the start of their worker process and its connection
_own_value: str | None = None  # this process's NUMBA_NUM_THREADS before the first of them


@contextlib.contextmanager
def _own_value_kept() -> Iterator[None]:
    """This process's NUMBA_NUM_THREADS as it was before, once the last of the nannies
    starting together (on one or more clusters' event loops) is done."""
    global _starting, _own_value
    with _lock:
        if _starting == 0:
            _own_value = os.environ.get(NUMBA_THREADS_VAR)
        _starting += 1
    try:
        yield
    finally:
        with _lock:
            _starting -= 1
            if _starting == 0:
                if _own_value is None:
                    os.environ.pop(NUMBA_THREADS_VAR, None)
                else:
                    os.environ[NUMBA_THREADS_VAR] = _own_value


class OneNumbaThreadNanny(Nanny):
    """A nanny whose worker process runs numba's kernels on one thread, set in the
    environment it is spawned with, this process's own setting left as it was."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pre_spawn_env[NUMBA_THREADS_VAR] = WORKER_NUMBA_THREADS
        self.env[NUMBA_THREADS_VAR] = WORKER_NUMBA_THREADS

    async def instantiate(self) -> Status:
        with _own_value_kept():
            return await super().instantiate()
