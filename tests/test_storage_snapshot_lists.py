"""The rig's snapshot as groups: a list is stored as one type whether or not it is empty (a
stage's `unreferenced_axes` is a list of axis names, empty once every axis is referenced)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from smm_daq.instruments.profile import load_profile
from smm_daq.storage.scan_entry import ScanEntryWriter

SNAPSHOT = {"stage": {"unreferenced_axes": [], "axes": ["1", "2", "3"], "position_m": [0.0, 1e-3],
                      "nothing": None},
            "other_stage": {"unreferenced_axes": ["2"]}}


def test_an_empty_list_is_stored_as_json_text_as_a_list_of_names_is(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    ScanEntryWriter.create(path, name="s", title="t", x=np.arange(4.0) * 1e-6,
                           y=np.arange(3.0) * 1e-6, field=np.zeros(3), height=1e-4,
                           plan_text="{}", profile=load_profile(), snapshot=SNAPSHOT)
    with h5py.File(path, "r") as f:
        snap = f["s/instrument/snapshot"]
        stored = {key: snap[key] for key in ("stage/unreferenced_axes",
                                             "other_stage/unreferenced_axes", "stage/axes")}
        for key, ds in stored.items():
            assert ds.dtype.kind == "O" and h5py.check_string_dtype(ds.dtype), key
        assert json.loads(stored["stage/unreferenced_axes"].asstr()[()]) == []
        assert json.loads(stored["other_stage/unreferenced_axes"].asstr()[()]) == ["2"]
        position = snap["stage/position"]  # numbers stay numbers, their unit an attribute
        assert position.dtype == np.float64 and position.attrs["units"] == "m"
        np.testing.assert_array_equal(position[()], [0.0, 1e-3])
        assert json.loads(snap["stage/nothing"].asstr()[()]) is None


def test_an_empty_list_under_a_key_with_a_unit_is_stored_as_numbers_with_its_unit(
        tmp_path: Path) -> None:
    """A key with a unit suffix names a list of numbers (`position_m`, `ranges_V`): none now
    is an empty float64 dataset under the stem, its unit in `units`, as a list of some is;
    stored as JSON text, its type hung on whether the list was empty."""
    path = tmp_path / "s.h5"
    snapshot = {"stage": {"position_m": [], "steps_um": (), "axes": []},
                "lockin": {"ranges_V": [1e-3, 1e-2], "fields_nT": []}}
    ScanEntryWriter.create(path, name="s", title="t", x=np.arange(4.0) * 1e-6,
                           y=np.arange(3.0) * 1e-6, field=np.zeros(3), height=1e-4,
                           plan_text="{}", profile=load_profile(), snapshot=snapshot)
    with h5py.File(path, "r") as f:
        snap = f["s/instrument/snapshot"]
        for key, units in (("stage/position", "m"), ("stage/steps", "um"),
                           ("lockin/fields", "nT"), ("lockin/ranges", "V")):
            assert key in snap, f"{key}: {list(snap[key.split('/')[0]])}"
            ds = snap[key]
            assert ds.dtype == np.float64 and ds.attrs["units"] == units, key
        for key in ("stage/position", "stage/steps", "lockin/fields"):
            assert snap[key].shape == (0,), key
        assert "stage/position_m" not in snap and "lockin/fields_nT" not in snap
        np.testing.assert_array_equal(snap["lockin/ranges"][()], [1e-3, 1e-2])
        assert json.loads(snap["stage/axes"].asstr()[()]) == []  # names: no unit, text
