"""Fuzzing the map inputs the last landings added, as real users type them: `noise --repeat`
given any two entries of a session (scans in one field or two, subtractions sharing a scan, a
crop, a background removed), a mask file's polygons (crossing, touching, retracing, of
thousands of vertices, malformed) and a sample outline typed on the command line. Each must
give its figure, or be refused with one message naming what was wrong and what was expected
(exit 2 on the command line), with no traceback and no file changed (tests/fuzz_harness.py
hashes them before and after).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smm_daq.analysis.mmt.masks import read_mask
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

# each case of the command line reads the session's entries (up to 1 s on 2 loaded cores)
FUZZ = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- noise --repeat ------------------------------------------------------------------------

N = 16
X = np.arange(N) * 5e-6
SCANS = {"A": (0.0, 40e-6), "B": (0.0, 40e-6), "R": (0.0, 0.0), "S": (0.0, 0.0),
         "C": (0.0, 20e-6)}  # name: (x, y) field; A, B in one field, R, S in zero field
ENTRY_NAMES = [*SCANS, "A-R", "B-R", "A-S", "C-R", "cut", "flat", "nope", "a/b", " A", "é"]


def _noise_session(tmp: Path) -> Path:
    """Scans in two fields and in zero field, and maps made from them as the commands record
    them: subtractions sharing a scan or not, a crop of one, a scan's background removed."""
    path = tmp / "s.h5"
    rng = np.random.default_rng(6)
    blob = 1e-6 * np.exp(-((X[None, :] - 40e-6) ** 2 + (X[:, None] - 40e-6) ** 2) / 4e-10)
    kw = {"height": 20e-6, "sensor_size": (0.0, 0.0)}
    maps = {}
    for name, (fx, fy) in SCANS.items():
        bz = blob + 0.01 * fy + rng.normal(size=blob.shape) * 1e-8
        maps[name] = MapData(bz, X, X, applied_field=np.array([fx, fy, 0.0]), name=name, **kw)
        write_map_entry(path, maps[name], kind="scan")
    for a, r in (("A", "R"), ("B", "R"), ("A", "S"), ("C", "R")):
        write_map_entry(path, MapData(maps[a].bz - maps[r].bz, X, X, name=f"{a}-{r}",
                                      applied_field=maps[a].applied_field, sources=(a, r), **kw),
                        kind="induced")
    cut = maps["B"].bz[:13, :13] - maps["R"].bz[:13, :13]
    write_map_entry(path, MapData(cut, X[:13], X[:13], name="cut", sources=("B-R",),
                                  applied_field=maps["B"].applied_field, **kw), kind="crop")
    write_map_entry(path, maps["A"].with_bz(maps["A"].bz - 4e-7, name="flat", sources=("A",)),
                    kind="background")
    return path


@FUZZ
@given(entry=st.sampled_from(ENTRY_NAMES), repeat=st.sampled_from(ENTRY_NAMES),
       mask=st.sampled_from([(), ("--border-um", "10"), ("--border-um", "1e9"),
                             ("--sample-polygon", "0,0;70,0;70,70"),
                             ("--background-rect", "0,1,0,1")]))
def test_noise_from_any_two_entries_is_a_figure_or_a_refusal_saying_why(
        noise_session: Path, entry: str, repeat: str, mask: tuple[str, ...]) -> None:
    """Two scans in one field give a figure; any other pair is refused, naming the entries
    and what was expected."""
    case = Case("noise --repeat", f"{entry} / {repeat}",
                ["noise", str(noise_session), "--entry", entry, "--repeat", repeat, *mask],
                [noise_session], [], any_of=[f"'{entry}'", f"'{repeat}'", "--repeat", *mask[:1]],
                may_pass=True)
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def noise_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _noise_session(tmp_path_factory.mktemp("noise"))


# --- mask files' polygons and outlines ---------------------------------------------------

GRID = MapData(np.zeros((N, N)), X, X, height=20e-6, sensor_size=(0.0, 0.0), name="m")


def _star(spikes: int, swap: int | None) -> list[list[float]]:
    t = np.arange(2 * spikes) * np.pi / spikes
    r = np.where(np.arange(2 * spikes) % 2 == 0, 60.0, 0.6)
    v = np.c_[40 + r * np.cos(t), 40 + r * np.sin(t)]
    if swap is not None:
        v[[swap, swap + spikes]] = v[[swap + spikes, swap]]
    return v.tolist()


def _fan(triangles: int) -> list[list[float]]:
    t = np.linspace(0.0, 2 * np.pi, 2 * triangles, endpoint=False).reshape(-1, 2)
    tips = 40 + 30 * np.stack([np.cos(t), np.sin(t)], axis=-1)
    return np.concatenate([np.full((triangles, 1, 2), 40.0), tips], axis=1).reshape(-1,
                                                                                    2).tolist()


COORDINATE = st.one_of(st.integers(-5, 90), st.sampled_from([0.5, 1e-300, 1e300, -1e308,
                                                             5e-324, 40.000000001]))
POLYGONS = st.one_of(
    st.lists(st.lists(COORDINATE, min_size=2, max_size=2), min_size=0, max_size=9),
    st.builds(_star, st.sampled_from([3, 50, 2000, 6000]),
              st.one_of(st.none(), st.integers(0, 2))),
    st.builds(_fan, st.sampled_from([2, 40, 400, 2000])),
    st.sampled_from([[[0, 0], [1, 1]], [[0, 0], [1, "1"], [2, 0]], [[0, 0, 0]] * 3, "x", 5,
                     [[0, 0], [float("nan"), 1], [2, 0]], [[0, 0], [1, True], [2, 0]], None,
                     {"x": 1}, [[0, 0], [1e309, 1], [2, 0]]]),
)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(polygons=st.lists(POLYGONS, min_size=1, max_size=3))
@example(polygons=[_star(6000, 1)])  # 12,000 vertices crossing: named at once
@example(polygons=[_fan(2000)])  # 6,000 touching at one point: refused as too tangled
@example(polygons=[_fan(40), _star(2000, None)])  # read
def test_a_mask_files_polygons_are_read_or_refused_naming_the_polygon(
        tmp_path: Path, polygons: list) -> None:
    """Crossing, touching, retracing, huge and malformed polygons: each mask file is read,
    or refused naming the file and the polygon, promptly (a star of 12,000 vertices crossing
    itself, a fan of 6,000 touching at one point)."""
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"polygons_um": polygons}, allow_nan=True))
    before = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a shape covering no pixel, said
            warnings.simplefilter("error", RuntimeWarning)
            read_mask(path, GRID)
    except InputError as exc:
        message = str(exc)
        assert message.startswith(f"{path}") and "expected" in message, message
        assert "polygons_um" in message or "JSON" in message or "every" in message, message
    assert path.read_bytes() == before


OUTLINE_POINTS = st.lists(st.tuples(st.integers(-5, 90), st.integers(-5, 90)), min_size=0,
                          max_size=8)


@FUZZ
@given(points=OUTLINE_POINTS, junk=st.sampled_from(["", ";", ";;", "1,2,3", "x,y", "nan,1",
                                                    "1e999,0", ",", " 5 , 6 "]))
def test_a_sample_outline_typed_is_taken_or_refused_naming_the_option(
        noise_session: Path, points: list[tuple[int, int]], junk: str) -> None:
    text = ";".join(f"{x},{y}" for x, y in points) + (";" + junk if junk else "")
    case = Case("--sample-polygon", text, ["noise", str(noise_session), "--entry", "A",
                                           "--sample-polygon", text], [noise_session], [],
                ["--sample-polygon"], may_pass=True)
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)


