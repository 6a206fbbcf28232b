"""Dask plumbing of the tiled inversion and the study: order, progress, errors, addresses."""

from __future__ import annotations

import pytest

from smm_daq.analysis.mmt.tiles import cluster
from smm_daq.analysis.mmt.tiles.cluster import open_client, run_tasks
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
