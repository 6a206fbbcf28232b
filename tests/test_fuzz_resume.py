"""Fuzzing `resume` with damaged scan entries: every dataset of the entry's data group and
every text resume reads (plan, profile, fingerprint, status) missing, of another type or
shape, and every key of the plan given a bad value, as another tool or a damaged copy leaves
them. Each must be refused before the rig is opened, with one message naming the file and
entry, exit 2, no traceback, and the file unchanged. The counts are printed (pytest -s).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all

import smm_daq.acquisition.session as session_module
from smm_daq.cli.main import main

NY, NX = 3, 4
DATA = {"Bz": (NY, NX), "line_done": (NY,), "lockin_range": (NY, NX), "lockin_x": (NY, NX),
        "lockin_y": (NY, NX), "time": (NY, NX), "x": (NX,), "y": (NY,)}
TEXTS = ("plan", "profile", "profile_fingerprint", "status")
PLAN_VALUES: dict[str, list[object]] = {
    "nx": [0, -4, 4.5, "4", None, 10**12, 5],
    "ny": [0, -3, 1e308, None, 4],
    "x0_um": [float("nan"), 1e308, "x", None, 10**400],  # a whole number beyond any float
    "y0_um": [float("-inf"), [1, 2], True],  # JSON's true is no coordinate
    "step_x_um": [0.0, -20.0, float("nan"), 1e308, 21.0],
    "step_y_um": [0.0, float("inf")],
    "field_uT": [[0.0, 0.0], [float("nan"), 0.0, 0.0], [1e308, 0.0, 0.0], "north",
                 "100", [True, False, False]],  # text of three digits is no field vector
    "height_um": [-100.0, float("nan"), 1e308, "100"],
    "settle_tau": [-1.0, float("nan"), 1e308],
    "dwell_tau": [float("inf"), -1.0, False],
    "raster": ["spiral", 1],
    "name": ["other", "", 7],
}


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scan entry aborted after its first line."""
    path = tmp_path_factory.mktemp("base") / "s.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "60,40", "--step-um",
                 "20", "--name", "s1", "--out", str(path)]) == 0
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][1:] = False
        f["s1/data/Bz"][1:] = np.nan
    return path


def _put(key: str, value: object) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        if key in f:
            del f[key]
        if isinstance(value, str) and value == "group":
            f.create_group(key)
        elif value is not None:
            f[key] = value
    return spoil


def _plan(key: str, value: object) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        plan = json.loads(f["s1/plan"].asstr()[()])
        if value is None:
            del plan[key]
        else:
            plan[key] = value
        del f["s1/plan"]
        f["s1/plan"] = json.dumps(plan)
    return spoil


def _spoils() -> Iterator[tuple[str, Callable[[h5py.File], None]]]:
    for name, shape in DATA.items():
        key = f"s1/data/{name}"
        yield f"data/{name} missing", _put(key, None)
        yield f"data/{name} a string", _put(key, "x")
        yield f"data/{name} a group", _put(key, "group")
        yield f"data/{name} one more column", _put(key, np.zeros((*shape[:-1], shape[-1] + 1)))
        yield f"data/{name} 0-d", _put(key, 1.0)
    yield "data/x NaN", _put("s1/data/x", np.full(NX, np.nan))
    yield "data/Bz complex", _put("s1/data/Bz", np.zeros((NY, NX), complex))
    yield "data/line_done floats", _put("s1/data/line_done", np.array([1.0, 0.5, 0.0]))
    yield "data a dataset", _put("s1/data", np.zeros(3))
    yield "data/x in an external file that is gone", lambda f: (
        f.__delitem__("s1/data/x"),
        f.create_dataset("s1/data/x", shape=(NX,), dtype="f8",
                         external=[("gone.raw", 0, h5py.h5f.UNLIMITED)]))
    for name in TEXTS:
        key = f"s1/{name}"
        yield f"{name} missing", _put(key, None)
        yield f"{name} a number", _put(key, 3.0)
        yield f"{name} a group", _put(key, "group")
        yield f"{name} garbage", _put(key, "\x01{[garbage")
    yield "status finished", _put("s1/status", "finished")
    yield "plan a list", _put("s1/plan", "[1, 2]")
    yield "profile_fingerprint of another rig", _put("s1/profile_fingerprint", json.dumps(
        {"lockin": "sr860", "stage": "other"}))
    for key, values in PLAN_VALUES.items():
        for value in values:
            yield f"plan {key} = {value!r}", _plan(key, value)
        yield f"plan without {key}", _plan(key, None)
    for value in ({"a": 1}, 7):  # a plan without a title has an empty one
        yield f"plan title = {value!r}", _plan("title", value)


def _cases(tmp: Path, base: Path) -> Iterator[Case]:
    for i, (label, spoil) in enumerate(_spoils()):
        path = tmp / f"r{i}.h5"
        shutil.copy(base, path)
        with h5py.File(path, "a") as f:
            spoil(f)
        yield Case("session file (resume)", label, ["resume", str(path), "--entry", "s1"],
                   [path], [], [path.name])


def test_every_damaged_scan_entry_is_refused_before_the_rig_is_opened(
        tmp_path: Path, interrupted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rig was opened for an entry that cannot be resumed")

    monkeypatch.setattr(session_module.Session, "open", classmethod(refuse))
    counts, failures = run_all(_cases(tmp_path, interrupted))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
