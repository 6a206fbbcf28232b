"""Which mask polygons cross themselves: also those whose outline crosses at a vertex (a bow
tie with its middle listed, a vertex on another edge that the outline passes through), while
one that only touches itself there, one given closed (its first vertex repeated last), one with
a vertex repeated or in the middle of a straight side is read; and the pairs of edges tested
are made a block at a time, not all at once (a comb's K² pairs would fill the memory)."""

from __future__ import annotations

import json
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from smm_daq.analysis.mmt import masks
from smm_daq.analysis.mmt.masks import read_mask
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

N = 12
X = np.arange(N) * 10e-6


def _read(tmp_path: Path, polygon: list[list[float]]) -> np.ndarray:
    mask = tmp_path / "mask.json"
    mask.write_text(json.dumps({"polygons_um": [polygon]}))
    data = MapData(np.zeros((N, N)), X, X, height=20e-6, sensor_size=(0.0, 0.0), name="ok")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a polygon over no pixel centre
        return read_mask(mask, data)


@pytest.mark.parametrize(("polygon", "edges"), [
    # a rectangle's corners listed across, its middle listed as a vertex of both diagonals
    ([[0, 0], [50, 50], [100, 100], [100, 0], [50, 50], [0, 100]], "from vertex 0 to 1 "
     "crosses the one from 3 to 4"),
    # the same, the middle listed twice on the first diagonal
    ([[0, 0], [50, 50], [50, 50], [100, 100], [100, 0], [50, 50], [0, 100]], "from vertex 0 "
     "to 1 crosses the one from 4 to 5"),
    # the middle a vertex of one diagonal only, the other passing through it
    ([[50, 50], [0, 0], [100, 0], [0, 100], [100, 100]], "from vertex 0 to 1 crosses the one "
     "from 2 to 3"),
    # a vertex on another edge, the outline coming from below it and going on above
    ([[0, 50], [100, 50], [50, 0], [50, 50], [30, 100]], "from vertex 0 to 1 crosses the one "
     "from 2 to 3"),
])
def test_an_outline_crossing_itself_at_a_vertex_is_refused(
        tmp_path: Path, polygon: list[list[float]], edges: str) -> None:
    with pytest.raises(InputError) as caught:
        _read(tmp_path, polygon)
    assert f"polygons_um[0] crosses itself: its edge {edges}" in str(caught.value)


@pytest.mark.parametrize("polygon", [
    [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]],  # given closed
    [[0, 0], [50, 0], [100, 0], [100, 100], [0, 100]],  # a vertex in a straight side
    [[0, 0], [100, 0], [100, 0], [100, 100], [0, 100]],  # a vertex repeated
    [[0, 0], [50, 50], [100, 0], [100, 100], [50, 50], [0, 100]],  # touching at its middle
    [[0, 50], [100, 50], [100, 0], [50, 50], [30, 0]],  # a vertex touching an edge from below
])
def test_an_outline_that_only_touches_itself_is_read(tmp_path: Path,
                                                     polygon: list[list[float]]) -> None:
    assert _read(tmp_path, polygon).any()


def _comb(teeth: int) -> np.ndarray:
    """A comb of `teeth` long horizontal teeth: no edge crosses another, and each tooth's
    edges span the x range of all the others'."""
    outline = [[-1.0, 2.0 * teeth], [-1.0, 0.0]]
    for i in range(teeth):
        outline += [[0.0, 2.0 * i], [100.0, 2.0 * i], [100.0, 2.0 * i + 1], [1.0, 2.0 * i + 1]]
    return np.asarray(outline)


def test_the_pairs_of_edges_are_tested_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    comb = _comb(150)  # 600 teeth edges: about 180,000 pairs
    monkeypatch.setattr(masks, "CROSSING_PAIRS", 4096)
    tracemalloc.start()
    try:
        assert masks._crossing(comb) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak:,} bytes for blocks of 4,096 pairs"
    crossed = comb.copy()
    crossed[[11, 12]] = crossed[[12, 11]]  # a tooth's tip listed across: a small bow tie
    assert masks._crossing(crossed) == (10, 12)


def test_where_edges_of_numbers_near_the_float_limit_meet_no_overflow_is_warned_of() -> None:
    big = 1.7e308  # a bow tie whose middle, (0, 0), is a vertex of one diagonal
    polygon = np.asarray([[0, 0], [big, big], [big, -big], [-big, big], [-big, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert masks._crossing(polygon) == (0, 2)
