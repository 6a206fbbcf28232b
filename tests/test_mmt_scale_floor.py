"""benchmarks/mmt_scale.py --qr-floor: the floor is the fastest QR of Q's shape this code
does, so it times the blocks the inversion folds and, where the memory allows, the streams
with a whole block each (the QR alone may be faster so)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numba
import pytest

from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.solver import streams as qr_streams

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def mmt_scale(monkeypatch):
    for name in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY"):  # what its import sets
        monkeypatch.setenv(name, "20" if name.startswith("OPENBLAS") else "PASSIVE")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("mmt_scale")
    yield module
    sys.modules.pop("mmt_scale", None)


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(numba, "threading_layer", lambda: "omp")  # as on any layer safe
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)


def test_the_floor_times_the_inversions_blocks_and_a_whole_block_a_stream(
        mmt_scale, two_cores, monkeypatch):
    sensors, unknowns, block = 40_401, 600, 6144  # the medium cuboid preset
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    assert mmt_scale.floor_layouts(sensors, unknowns, block) == [(1, 6144), (2, 3072),
                                                                 (2, 6144)]
    halves = memory.solve_bytes(unknowns, 3072, streams=2)
    monkeypatch.setattr(memory, "available_bytes", lambda: halves)  # not a whole block each
    assert mmt_scale.floor_layouts(sensors, unknowns, block) == [(1, 6144), (2, 3072)]
    assert mmt_scale.floor_layouts(block, unknowns, block) == [(1, 6144)]  # one block


def test_each_floor_folds_blocks_of_its_rows_in_its_streams(mmt_scale, monkeypatch):
    folded: list[tuple[int, list[int], list[int]]] = []
    monkeypatch.setattr(qr_streams, "fold", lambda columns, sizes, owners, fill, report:
                        folded.append((columns, list(sizes), list(owners))))
    for streams, rows in [(1, 6144), (2, 3072), (2, 6144)]:
        mmt_scale.qr_floor(40_401, 600, streams, rows)
    (c1, one, o1), (c2, halves, o2), (c3, wholes, o3) = folded
    assert c1 == c2 == c3 == 601
    assert max(one) == 6144 and set(o1) == {0} and sum(one) == 40_401
    assert max(halves) <= 3072 and len(halves) == 14 and o2 == [0, 1] * 7
    assert 3072 < max(wholes) <= 6144 and len(wholes) == 8 and o3 == [0, 1] * 4
    assert sum(halves) == sum(wholes) == 40_401
