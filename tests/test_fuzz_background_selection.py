"""Fuzzing the background a person selects for `smm-daq background` and `level`
(--background-rect, --border-um, --sample-polygon; smm_daq/cli/maps.py), recorded as data in
the entry made: random valid and invalid option values, on an 8 × 8 map, either write the
entry, whose `background_pixels` are the pixels its fit used (the fit made again on them
gives the entry's map), or are refused with exit 2 and one message, the file unchanged.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smm_daq.analysis.background import remove_background
from smm_daq.analysis.levelling import level_lines
from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

FAST = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
UM = 1e-6
# coordinates in µm about the map (0..35 µm in x and y, 5 µm apart), and what is no number;
# two of three selections are all numbers, for the entries written to be many
NUMBER = st.one_of(st.integers(-10, 45).map(str), st.floats(-10, 45).map(lambda v: f"{v:.3g}"))
COORD = st.one_of(NUMBER, st.sampled_from(["nan", "inf", "-1e400", "2e6", "", "x", " 5 "]))
RECT = st.one_of(*[st.lists(NUMBER, min_size=4, max_size=4).map(",".join)] * 2,
                 st.lists(COORD, min_size=3, max_size=5).map(",".join))
VERTEX = st.tuples(NUMBER, NUMBER).map(",".join)
POLYGON = st.one_of(*[st.lists(VERTEX, min_size=3, max_size=4).map(";".join)] * 2,
                    st.lists(st.tuples(COORD, COORD).map(",".join), min_size=2,
                             max_size=5).map(";".join))
BORDER = st.one_of(st.none(), st.sampled_from(["0", "-5", "nan", "inf", "1e-4", "2e6"]),
                   *[st.floats(1, 20).map(lambda v: f"{v:.3g}")] * 2)

@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bg") / "s.h5"
    x = np.arange(8) * 5 * UM
    rng = np.random.default_rng(1)
    bz = 1e-7 * (np.add.outer(x, x) / x[-1] + rng.normal(0, 0.1, (8, 8)))
    write_map_entry(path, MapData(bz=bz, x=x, y=x, height=10 * UM, sensor_size=(0.0, 0.0),
                                  applied_field=np.array([0.0, 0.0, 2e-6]), name="scan"),
                    kind="scan")
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@FAST
@given(command=st.sampled_from([["background", "--model", "offset"],
                                ["background", "--model", "plane"],
                                ["background", "--model", "field"],
                                ["level", "--order", "0"], ["level", "--order", "1"]]),
       rects=st.lists(RECT, max_size=2), border=BORDER, polygons=st.lists(POLYGON, max_size=2))
@example(command=["level", "--order", "1"], rects=["0,0,0,35"], border=None, polygons=[])
@example(command=["background", "--model", "plane"], rects=["0,0,0,0"], border=None,
         polygons=[])
@example(command=["background", "--model", "offset"], rects=[], border=None,
         polygons=["0,0;10,0;20,0"])  # an outline of no area: all background
def test_a_background_selection_is_recorded_as_the_pixels_used_or_refused(
        session: Path, tmp_path: Path, command: list[str], rects: list[str],
        border: str | None, polygons: list[str]) -> None:
    path = tmp_path / "s.h5"
    shutil.copyfile(session, path)
    before = _digest(path)
    argv = [command[0], str(path), "--entry", "scan", "--name", "out", *command[1:],
            *(f"--background-rect={r}" for r in rects),
            *(f"--sample-polygon={p}" for p in polygons),
            *([f"--border-um={border}"] if border is not None else [])]
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's refusals
            code = stop.code
    said = err.getvalue()
    assert "Traceback" not in said
    if code != 0:
        assert code == 2 and said.count("error:") == 1, (code, said)
        assert _digest(path) == before, said
        return
    with h5py.File(path, "r") as f:
        parameters = f["out/process/parameters"]
        used = (parameters["background_pixels"][()].astype(bool)
                if "background_pixels" in parameters else None)
    given_any = bool(rects or polygons or border is not None)
    assert (used is not None) == given_any
    scan, made = read_map(path, "scan"), read_map(path, "out")
    if used is None:  # --model field from the field vector alone
        return
    assert used.shape == scan.shape and used.any()
    if command[0] == "level":
        again = level_lines(scan, used, order=int(command[2])).map.bz
    else:
        model = "offset" if command[2] == "field" else command[2]
        again = remove_background(scan, used, model=model).map.bz
    np.testing.assert_array_equal(again, made.bz)
