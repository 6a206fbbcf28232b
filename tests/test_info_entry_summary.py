"""`smm-daq info` says how each induced map's two scans were registered: a subtraction made
again with other options (`--no-register`, `--rotation`, `--apply-insignificant-shift`) had
the same title and sources as the first, and the listing could not tell them apart; it says
which scans were flown, and when each entry was taken or made."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq import __version__
from smm_daq.cli.main import main
from smm_daq.storage.entry_summary import (
    flown_summary,
    provenance_summary,
    registration_summary,
)
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6


def _session(path: Path) -> Path:
    """A remanent and an in-field scan of two dipoles, 21 × 21 at 5 µm, 10 nT of noise."""
    x = y = np.arange(21) * 5 * UM
    X, Y = np.meshgrid(x, y)
    bz = np.zeros(X.shape)
    for x0, y0, s in ((30 * UM, 40 * UM, 1.0), (70 * UM, 60 * UM, -0.6)):
        r2 = (X - x0) ** 2 + (Y - y0) ** 2 + (10 * UM) ** 2
        bz += s * 1e-6 * (2 * (10 * UM) ** 2 - (X - x0) ** 2 - (Y - y0) ** 2) / r2 * (
            (10 * UM) ** 3 / r2 ** 1.5)
    rng = np.random.default_rng(3)
    for name, field, gain in (("rem", 0.0, 1.0), ("inf", 40e-6, 1.3)):
        write_map_entry(path, MapData(bz=bz * gain + rng.normal(0, 1e-8, bz.shape), x=x, y=y,
                                      height=10 * UM, sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, field, 0.0]), name=name),
                        kind="scan")
    return path


def test_info_tells_apart_subtractions_of_the_same_scans_made_with_other_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(_session(tmp_path / "s.h5"))
    for name, options in (("as_they_lie", ["--no-register"]),
                          ("forced", ["--rotation", "--apply-insignificant-shift"])):
        assert main(["subtract", path, "--in-field", "inf", "--remanent", "rem", "--name",
                     name, *options]) == 0
    capsys.readouterr()
    assert main(["info", path]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "  not registered  from inf, rem" in lines["as_they_lie"]
    with h5py.File(path, "r") as f:
        said = registration_summary(f["forced"])
        rotation = np.degrees(f["forced/registration/rotation"][()])
    assert said.startswith("registered: shift (") and rotation != 0
    assert said.endswith(f" µm applied, rotation {rotation:.3g}°")
    assert f"  {said}  from inf, rem" in lines["forced"]
    assert "registered" not in lines["rem"] and "registered" not in lines["inf"]


def test_info_says_when_each_entry_was_taken_or_made_and_which_scans_flew(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A month of session files listed with no date: when a scan was taken was in the file
    only (its start_time)."""
    path = str(_session(tmp_path / "s.h5"))
    with h5py.File(path, "a") as f:
        f["inf/start_time"][()] = "2026-11-02T09:15:00+00:00"
        f["inf/plan"] = json.dumps({"nx": 21, "fly": {"pixel_time_s": 0.05, "oversample": 8}})
    assert main(["info", path]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["inf"].endswith(
        f"  flown, 0.05 s a pixel  smm-daq {__version__}  2026-11-02T09:15:00+00:00")
    assert "flown" not in lines["rem"]
    with h5py.File(path, "r") as f:
        assert lines["rem"].endswith("  " + f["rem/start_time"][()].decode())
    with h5py.File(path, "a") as f:  # another program's: one line still
        f["inf/start_time"][()] = "2026-11-02\n09:15"
    assert main(["info", path]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith("  '2026-11-02\\n09:15'")


def _registration(tmp_path: Path, **fields: object) -> h5py.Group:
    f = h5py.File(tmp_path / "r.h5", "w")
    g = f.create_group("e/registration")
    for key, value in fields.items():
        g[key] = value
    return f["e"]


@pytest.mark.parametrize(("fields", "said"), [
    ({"registered": np.uint8(0), "shift": [0.0, 0.0]}, "not registered"),
    ({"registered": np.uint8(1), "shift": [0.0, 0.0], "shift_found": [4e-7, -3e-7],
      "shift_errors": [1e-6, 2e-6], "rotation": 0.0},
     "registered: shift (0.4, -0.3) µm found, not applied"),
    ({"registered": np.uint8(1), "shift": [2e-6, 0.0], "shift_found": [2e-6, 0.0],
      "shift_errors": [1e-7, 1e-7], "rotation": np.radians(0.5)},
     "registered: shift (2, 0) µm applied, rotation 0.5°"),
    ({"registered": np.uint8(1), "shift": [0.0, 0.0], "shift_found": [0.0, 0.0],
      "shift_errors": [np.nan, np.nan]}, "registered: no shift determined"),
    ({"registered": np.uint8(1), "shift": [0.0, 0.0]}, "registered: shift (0, 0) µm applied"),
    ({"shift": [0.0, 0.0]}, ""),
    ({"registered": np.uint8(1), "shift": [1.0, 2.0, 3.0]}, ""),
])
def test_each_way_a_registration_ended_is_said(tmp_path: Path, fields: dict, said: str
                                               ) -> None:
    entry = _registration(tmp_path, **fields)
    try:
        assert registration_summary(entry) == said
    finally:
        entry.file.close()


@pytest.mark.parametrize(("plan", "said"), [
    ('{"nx": 3, "fly": {"pixel_time_s": 0.02}}', "flown, 0.02 s a pixel"),
    ('{"nx": 3}', ""), ('{"nx": 3, "fly": null}', ""), ("not json", ""),
    ('{"fly": {"oversample": 8}}', ""), ('["a list"]', ""), (None, "")])
def test_a_flown_scan_is_said_from_its_plan(tmp_path: Path, plan: str | None, said: str
                                            ) -> None:
    with h5py.File(tmp_path / "p.h5", "w") as f:
        entry = f.create_group("e")
        if plan is not None:
            entry["plan"] = plan
        assert flown_summary(entry) == said


@pytest.mark.parametrize("plan", [
    '{"fly": {"pixel_time_s": 1' + "0" * 400 + "}}",  # an integer past float's range
    "[" * 100_000 + "]" * 100_000])  # nested deeper than the JSON decoder recurses
def test_a_plan_another_program_wrote_is_not_said_not_a_traceback(tmp_path: Path, plan: str
                                                                  ) -> None:
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["e/plan"] = plan
        assert flown_summary(f["e"]) == ""


@pytest.mark.parametrize(("entry", "dataset"), [("inf", "plan"), ("ind", "registration/shift")])
def test_info_lists_an_entry_whose_summary_lies_in_a_damaged_chunk(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, dataset: str) -> None:
    """A chunk of the plan or the registration that no longer decompresses turned the whole
    listing into a traceback (h5py's OSError), the entries after it not listed."""
    path = str(_session(tmp_path / "s.h5"))
    assert main(["subtract", path, "--in-field", "inf", "--remanent", "rem", "--name",
                 "ind"]) == 0
    with h5py.File(path, "a") as f:
        g = f[entry]
        assert int(f["ind/registration/registered"][()]) == 1
        if dataset in g:
            del g[dataset]
        data = np.frombuffer(b'{"fly": {"pixel_time_s": 0.05}}' * 64, dtype="u1")
        d = g.create_dataset(dataset, data=data, chunks=data.shape, compression="gzip")
        chunk = d.id.get_chunk_info(0)
        offset, size = chunk.byte_offset, chunk.size
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * size)
    capsys.readouterr()
    assert main(["info", path]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["rem", "inf", "ind"]


PROFILE = '# a rig\n[rig]\nname = "bench 2"\nsimulated = false\n'
RECIPE = '[recipe]\ntitle = "Remanent and induced"\n[[step]]\nkind = "zero_field"\n'


@pytest.mark.parametrize(("fields", "said"), [
    ({"program_name": ("smm-daq", "1.4.2"), "profile": (PROFILE, "/lab/rigs/bench2.toml"),
      "recipe": (RECIPE, "recipes/ri.toml")},
     "smm-daq 1.4.2, profile 'bench 2' (bench2.toml), recipe 'Remanent and induced' (ri.toml, "
     "its text stored)"),
    ({"program_name": ("smm-daq", "1.4.2"), "profile": (PROFILE, ""), "recipe": ""},
     "smm-daq 1.4.2, profile 'bench 2'"),  # a scan run without a recipe stores ""
    ({"program_name": ("smm-daq", "1.4.2"), "process/parameters/recipe":
      '[[step]]\nkind = "zero_field"\n', "process/parameters/recipe_file": "/r/s.toml"},
     "smm-daq 1.4.2, recipe untitled (s.toml, its text stored)"),  # a recipe's subtraction
    ({"recipe": RECIPE}, "recipe 'Remanent and induced' (its text stored)"),  # no file
    ({"process/program": "smm-daq", "process/version": "0.9"}, "smm-daq 0.9"),
    ({"profile": ("not [toml", "p.toml")}, "profile (p.toml)"),
    ({"profile": ('[rig]\nname = "a\\nb"\n', "")}, "profile 'a\\nb'"),
    ({"recipe": '[recipe]\ntitle = 3\n'}, "recipe untitled (its text stored)"),
    ({"title": "another program's entry"}, ""),
    ({"program_name": np.arange(2), "profile": 7.0, "recipe": np.zeros(3)}, ""),  # not text
])
def test_what_wrote_an_entry_is_said_for_citing_it(tmp_path: Path, fields: dict, said: str
                                                   ) -> None:
    """`info` showed no program version, profile nor recipe of an entry, though the file
    holds them: what a user needs to cite the data. Each is read as h5py writes it."""
    with h5py.File(tmp_path / "p.h5", "w") as f:
        entry = f.create_group("e")
        for key, value in fields.items():
            stored, attribute = value if isinstance(value, tuple) else (value, None)
            entry[key] = stored
            if attribute is not None:
                entry[key].attrs["version" if key == "program_name" else "path"] = attribute
        assert provenance_summary(entry) == said


def test_what_is_not_one_string_is_not_said_as_what_wrote_an_entry(tmp_path: Path) -> None:
    """Another program's node under these names that is no single string (a string array, an
    empty dataset, a reference, variable-length numbers, a numeric or empty attribute) was
    said as the program, its version, the profile's file or a recipe stored ("<HDF5 object
    reference>", "[b'GDA']", "Empty(dtype=...)", "recipe untitled (its text stored)")."""
    with h5py.File(tmp_path / "p.h5", "w") as f:
        odd = f.create_group("odd")
        odd["program_name"] = np.array([b"GDA"])
        odd["program_name"].attrs["version"] = np.array([b"9.2"])
        odd.create_dataset("recipe", data=h5py.Empty("S10"))
        odd.create_dataset("profile", data=h5py.Empty("S10"))
        ref = f.create_group("ref")
        ref.create_dataset("program_name", data=odd.ref, dtype=h5py.ref_dtype)
        numbers = ref.create_dataset("recipe", (1,), dtype=h5py.vlen_dtype(np.int32))
        numbers[0] = [1, 2]
        attrs = f.create_group("attrs")
        attrs["program_name"] = "smm-daq"
        attrs["program_name"].attrs["version"] = h5py.Empty("f")
        attrs["profile"] = PROFILE
        attrs["profile"].attrs["path"] = np.array([1.0, 2.0])
        assert provenance_summary(odd) == ""
        assert provenance_summary(ref) == ""
        assert provenance_summary(attrs) == "smm-daq, profile 'bench 2'"
