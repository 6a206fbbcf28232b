"""Dask plumbing of the tiled inversion and the study: order, progress, errors, addresses."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import types

import dask
import numba
import pytest
from distributed import LocalCluster

from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.tiles import cluster
from smm_daq.analysis.mmt.tiles.cluster import (
    UncheckedMemoryWarning,
    open_client,
    run_tasks,
    worker_memory,
)
from smm_daq.errors import InputError


def _square(v: int) -> int:
    if v < 0:
        raise InputError(f"value {v} is negative")
    return v * v


def test_results_come_back_in_order_with_progress_on_a_cluster_and_without() -> None:
    items = [(v,) for v in range(7)]
    with open_client(processes=False, n_workers=2) as client:
        events: list[tuple[str, int, int]] = []
        out = run_tasks(client, _square, items, stage="s", progress=lambda *e: events.append(e))
    assert out == [v * v for v in range(7)]
    assert events[0] == ("s", 0, 7) and events[-1] == ("s", 7, 7) and len(events) == 8
    events.clear()
    assert run_tasks(None, _square, items, stage="s", progress=lambda *e: events.append(e)) \
        == out
    assert [d for _, d, _ in events] == list(range(8))


def test_a_task_error_reaches_the_caller() -> None:
    with open_client(processes=False, n_workers=1) as client, \
            pytest.raises(InputError, match="value -2 is negative"):
        run_tasks(client, _square, [(1,), (-2,), (3,)], stage="s")


def test_an_unreachable_scheduler_is_a_clear_input_error(monkeypatch) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 0.5)
    expected = r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"
    with pytest.raises(InputError, match=expected), open_client("tcp://127.0.0.1:9"):
        pass


def test_workers_that_cannot_start_are_a_clear_input_error(tmp_path) -> None:
    """Dask says only that a nanny failed to start: the worker's own error is named."""
    preload = tmp_path / "failing_preload.py"
    preload.write_text('raise RuntimeError("no worker here")\n')
    expected = (r"the local Dask cluster of 1 worker could not start \(RuntimeError: no worker "
                r"here\); expected workers that start")
    with dask.config.set({"distributed.worker.preload": [str(preload)]}), \
            pytest.raises(InputError, match=expected), open_client(n_workers=1, processes=False):
        pass


def _thresholds(dask_worker) -> tuple[object, object, object]:
    manager = dask_worker.memory_manager
    return (manager.memory_target_fraction, manager.memory_spill_fraction,
            manager.memory_pause_fraction)


AVAILABLE = 3 * 2**30  # the memory available, as `local_processes` has it


def _numba_threads() -> tuple[int, int, str]:
    """(threads numba runs its kernels on, its NUMBA_NUM_THREADS, the main script's path)."""
    return (numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS,
            sys.modules["__mp_main__"].__file__)


@pytest.fixture(scope="module")
def local_processes(tmp_path_factory):
    """(a client of one local cluster of 2 worker processes, the caller's main script, the
    caller's NUMBA_NUM_THREADS and numba's count before the cluster), for the tests of what
    such workers are given: one cluster, as each start takes seconds. AVAILABLE is the
    memory available, and the caller's script imports numba at its top (`__main__` stands
    for it in process)."""
    script = tmp_path_factory.mktemp("caller") / "user_script.py"
    script.write_text("import numba\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    before = (os.environ.get("NUMBA_NUM_THREADS"), numba.config.NUMBA_NUM_THREADS)
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:  # for the start only
            patch.setattr(memory, "available_bytes", lambda: AVAILABLE)
            patch.setitem(sys.modules, "__main__", main)
            client = stack.enter_context(open_client(n_workers=2))
        yield client, script, before


def test_local_workers_may_each_use_the_memory_available_and_neither_spill_nor_pause(
        local_processes) -> None:
    """Runs are sized against the memory available to all workers together, and which
    worker holds which factor is the scheduler's choice: each worker process's limit is that
    memory (not Dask's even share, which an uneven spread would exceed), with no spilling
    to disk and no pausing short of it."""
    client = local_processes[0]
    limits = worker_memory(client)
    thresholds = client.run(_thresholds)
    assert len(limits) == 2
    assert all(a.startswith("tcp://127.0.0.1:") for a in limits)
    assert set(limits.values()) == {(AVAILABLE, 1)}
    assert set(thresholds.values()) == {(False, False, False)}


@pytest.fixture
def no_workers():
    """A scheduler on 127.0.0.1 with no worker connected (its workers still to start)."""
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as empty:
        yield empty.scheduler_address


def test_a_scheduler_without_workers_is_said_to_leave_memory_unchecked(no_workers) -> None:
    """No worker connected: no limit to check, and the caller is told so (it passed the
    memory checks in silence), through `say` where given, else as a warning."""
    said: list[str] = []
    with open_client(no_workers) as client:
        assert worker_memory(client, said.append) == {}
        with pytest.warns(UncheckedMemoryWarning) as caught:
            assert worker_memory(client) == {}
    expected = (f"no Dask worker is connected to the scheduler at {no_workers} yet, so no "
                "worker's memory was checked against the run")
    assert len(said) == 1 and said[0].startswith(expected)
    assert f"dask worker {no_workers}" in said[0]
    assert [str(w.message) for w in caught] == said


def test_workers_run_numba_on_one_thread_though_the_callers_script_imports_numba(
        local_processes) -> None:
    """A worker process imports the caller's main script before anything else of its own
    runs; a script importing numba at its top (or anything that does) had numba read its
    thread count then, so the count must be in the worker's environment from its start.
    The caller keeps its own count."""
    client, script, before = local_processes
    if before[1] == 1:
        pytest.skip("numba's own thread count is 1 here: nothing to tell apart")
    threads = client.run(_numba_threads)
    assert list(threads.values()) == [(1, 1, str(script))] * 2
    numba.config.reload_config()  # what this process's next compile does: reads the environment
    assert (os.environ.get("NUMBA_NUM_THREADS"), numba.config.NUMBA_NUM_THREADS) == before
