"""A tiled inversion's memory, checked before any tile is factored: the need it states is what
the run holds at its peak (numpy's allocations, traced); a run over the memory available has
its factors hold fewer outside grains, and one that cannot fit even so is refused, naming the
need, what the machine has, and how many tiles at once would fit."""

from __future__ import annotations

import logging
import tracemalloc
import weakref

import dask
import pytest
from distributed import Client, LocalCluster
from test_tiles_inversion import HEIGHT, SIGMA, UM, _case

from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.tiles import cluster, tiled
from smm_daq.analysis.mmt.tiles.budget import tiled_need, worker_need
from smm_daq.analysis.mmt.tiles.cluster import open_client
from smm_daq.errors import InputError

POINT = (0.0, 0.0)
TILE = 60 * UM


@pytest.fixture(scope="module")
def case():
    """150 grains under a 120 µm map in 4 tiles of 63 to 80 band grains each: the factors
    and their folds are most of the peak, as at the lab's scale."""
    data, grains, _ = _case(1, 120.0, 150, thickness_um=6.0)
    small, few, _ = _case(1, 40.0, 8, thickness_um=6.0)
    # the kernels loaded (their code, as numba's cache holds it) before anything is traced
    tiled.invert_tiled(small, few, tile=20 * UM, height=HEIGHT, sensor_size=POINT, sigma=SIGMA)
    return data, grains


def _need(data, grains, room: int, at_once: int = 1):
    layout = tiled.default_layout(data, grains, TILE, HEIGHT)
    jobs = tiled._jobs(data, layout, grains.centroids()[:, :2])
    counts = tiled._counts(data, grains, layout, jobs)
    return tiled_need(counts, room, at_once, grains.n_grains, grains.cuboids.shape[0], False)


def _traced_run(data, grains, **kwargs) -> int:
    tracemalloc.start()
    try:
        tiled.invert_tiled(data, grains, tile=TILE, height=HEIGHT, sensor_size=POINT,
                           sigma=SIGMA, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_stated_need_is_the_tiled_inversions_traced_peak(case):
    """Every outside grain a column of each factor (the default room takes them all)."""
    data, grains = case
    need = _need(data, grains, tiled._factor_room()).total
    peak = _traced_run(data, grains)
    assert 0.85 < need / peak < 1.15, (need, peak)


def test_over_the_memory_available_the_factors_hold_fewer_grains_and_the_run_fits(
        case, monkeypatch):
    """With the memory a room of 100 grains a factor needs, the factors take 100 grains
    (band and outside), the rest of the outside grains' field subtracted at their estimates;
    the run's traced peak is that need, a tile's old factor gone before its new one is made
    (the need counts one factor a tile)."""
    data, grains = case
    have = _need(data, grains, 100).total
    monkeypatch.setattr(memory, "available_bytes", lambda: have)
    sizes: list[int] = []
    made: dict[tuple[int, int], weakref.ref] = {}
    factor_tile = tiled.factor_tile

    def spy(data, grains, tile, window, band, near, *rest):
        sizes.append(band.size + near.size)
        old = made.get(tile.index)
        assert old is None or old() is None  # a tile's old factor freed before its new one
        factor = factor_tile(data, grains, tile, window, band, near, *rest)
        made[tile.index] = weakref.ref(factor)
        return factor

    monkeypatch.setattr(tiled, "factor_tile", spy)
    said: list[str] = []
    peak = _traced_run(data, grains, info=said.append)
    assert any(s.startswith(f"factors limited to 100 grains each (from "
                            f"{tiled._factor_room()}) to fit the {have / 2**30:.1f} GiB")
               for s in said)
    assert max(sizes) == 100
    assert 0.85 < have / peak < 1.15, (have, peak)


def test_a_tiled_inversion_that_cannot_fit_is_refused_before_any_tile_is_factored(
        case, monkeypatch):
    """Two tiles at once (a cluster of two worker threads in this process) need more than
    the machine has even with factors of their band's grains alone; one at a time fits."""
    data, grains = case
    one, two = _need(data, grains, 0, 1), _need(data, grains, 0, 2)
    assert one.total < two.total
    monkeypatch.setattr(memory, "available_bytes", lambda: two.total - 1)
    factored: list[object] = []
    monkeypatch.setattr(tiled, "factor_tile", lambda *args: factored.append(args))
    with open_client(n_workers=2, processes=False) as client, \
            pytest.raises(InputError) as err:
        tiled.invert_tiled(data, grains, tile=TILE, height=HEIGHT, sensor_size=POINT,
                           sigma=SIGMA, client=client)
    assert str(err.value) == (
        f"the tiled inversion of 150 grains in 4 tiles with grains, 2 at once, needs at least "
        f"{two.total / 2**30:.1f} GiB of memory (the tiles' factors, "
        f"{two.factors / 2**30:.1f} GiB, held from pass to pass, and the work of the tiles "
        f"in hand), and this machine has {(two.total - 1) / 2**30:.1f} GiB available; "
        "expected --workers 1 or fewer (tiles at once), a Dask cluster of several machines "
        "(--scheduler), or fewer grains")
    assert factored == []


def test_workers_elsewhere_are_not_checked_against_this_machines_memory():
    class Cluster:
        def __init__(self, addresses: list[str]) -> None:
            self.addresses = addresses

        def nthreads(self) -> dict[str, int]:
            return dict.fromkeys(self.addresses, 2)

    assert tiled.tiles_at_once(None) == 1
    assert tiled.tiles_at_once(Cluster(["inproc://10.0.0.5/1/2", "tcp://127.0.0.1:4000"])) == 4
    assert tiled.tiles_at_once(Cluster(["tcp://127.0.0.1:4000", "tcp://192.0.2.7:4000"])) \
        is None


class _Elsewhere:
    """A client of Dask workers on other machines, one thread each: what the scheduler says
    of them (the check comes before anything is sent to them)."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits

    def nthreads(self) -> dict[str, int]:
        return dict.fromkeys(self.limits, 1)

    def scheduler_info(self, n_workers: int = -1) -> dict[str, dict[str, dict[str, int]]]:
        return {"workers": {a: {"memory_limit": limit, "nthreads": 1}
                            for a, limit in self.limits.items()}}


def _worker(data, grains, room: int, threads: int = 1) -> int:
    layout = tiled.default_layout(data, grains, TILE, HEIGHT)
    jobs = tiled._jobs(data, layout, grains.centroids()[:, :2])
    counts = tiled._counts(data, grains, layout, jobs)
    return worker_need(counts, room, threads, grains.n_grains, grains.cuboids.shape[0], False)


def _refused(data, grains, client, monkeypatch) -> str:
    """The refusal of the tiled inversion on `client`, checked to come before any factoring."""
    factored: list[object] = []
    monkeypatch.setattr(tiled, "factor_tile", lambda *args: factored.append(args))
    with pytest.raises(InputError) as err:
        tiled.invert_tiled(data, grains, tile=TILE, height=HEIGHT, sensor_size=POINT,
                           sigma=SIGMA, client=client)
    assert factored == []
    return str(err.value)


def test_a_remote_worker_whose_limit_cannot_hold_a_tile_is_named(case, monkeypatch):
    """Workers elsewhere are checked against their memory limits, not this machine's memory
    (almost none here): any tile may run on any worker."""
    data, grains = case
    need = _worker(data, grains, 0)
    monkeypatch.setattr(memory, "available_bytes", lambda: 1)
    client = _Elsewhere({"tcp://192.0.2.7:4000": 2**40, "tcp://192.0.2.8:4000": need - 1})
    assert _refused(data, grains, client, monkeypatch) == (
        f"the tiled inversion of 150 grains in 4 tiles with grains needs at least "
        f"{need / 2**30:.2f} GiB of memory on the Dask worker tcp://192.0.2.8:4000 (the "
        f"factors and the work of the largest tile, as many as it works on at once), and "
        f"its memory limit is {(need - 1) / 2**30:.2f} GiB; expected Dask workers "
        f"with a memory limit of at least {need / 2**30:.2f} GiB (dask worker --memory-limit) "
        "or fewer threads each, or fewer grains")


def test_remote_workers_whose_limits_cannot_hold_all_the_factors_are_refused(case,
                                                                           monkeypatch):
    """Each of two workers holds a tile, but not the four tiles' factors between them."""
    data, grains = case
    each = _worker(data, grains, 0)
    two = _need(data, grains, 0, 2)
    assert 2 * each < two.total
    client = _Elsewhere({"tcp://192.0.2.7:4000": each, "tcp://192.0.2.8:4000": each})
    assert _refused(data, grains, client, monkeypatch) == (
        f"the tiled inversion of 150 grains in 4 tiles with grains, 2 at once, needs at least "
        f"{two.total / 2**30:.1f} GiB of memory (the tiles' factors, "
        f"{two.factors / 2**30:.1f} GiB, held from pass to pass, and the work of the tiles "
        f"in hand), and the Dask workers' memory limits come to {2 * each / 2**30:.1f} GiB in "
        "all; expected more workers or larger limits, or fewer grains")


def test_factors_are_made_smaller_to_fit_a_remote_workers_limit(case):
    data, grains = case
    limit = _worker(data, grains, 100)
    client = _Elsewhere({"tcp://192.0.2.7:4000": 2**40, "tcp://192.0.2.8:4000": limit})
    layout = tiled.default_layout(data, grains, TILE, HEIGHT)
    jobs = tiled._jobs(data, layout, grains.centroids()[:, :2])
    said: list[str] = []
    assert tiled.fit_memory(data, grains, layout, jobs, POINT, client, said.append) == 100
    assert said == [f"factors limited to 100 grains each (from {tiled._factor_room()}) to fit "
                    "the Dask workers' memory limits: the field of the outside grains beyond "
                    "them is subtracted at their estimates (more passes over the sensors)"]


def test_a_worker_on_this_machine_is_checked_against_its_own_limit(case, monkeypatch):
    """A scheduler's worker here (in this process) with a limit below a tile's need is named,
    though this machine has the memory."""
    data, grains = case
    limit = _worker(data, grains, 0) - 1
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**40)
    with dask.config.set(cluster.LOCAL_MEMORY_CONFIG), LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, memory_limit=limit,
            dashboard_address=None, silence_logs=logging.ERROR) as remote, \
            Client(remote) as client:
        worker = next(iter(client.nthreads()))
        text = _refused(data, grains, client, monkeypatch)
    assert text.startswith(f"the tiled inversion of 150 grains in 4 tiles with grains needs "
                           f"at least {(limit + 1) / 2**30:.2f} GiB of memory on the Dask "
                           f"worker {worker} ")


def test_a_scheduler_without_workers_is_said_to_leave_the_tiles_memory_unchecked(case):
    """No worker connected to the scheduler yet: nothing to check the tiles against, said at
    once, before the run waits for workers (it passed the checks in silence)."""
    data, grains = case
    layout = tiled.default_layout(data, grains, TILE, HEIGHT)
    jobs = tiled._jobs(data, layout, grains.centroids()[:, :2])
    said: list[str] = []
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as empty, \
            open_client(empty.scheduler_address) as client:
        room = tiled.fit_memory(data, grains, layout, jobs, POINT, client, said.append)
        address = empty.scheduler_address
    assert room == tiled._factor_room()
    assert len(said) == 1 and said[0].startswith(
        f"warning: no Dask worker is connected to the scheduler at {address} yet, so no "
        "worker's memory was checked against the run")
