"""Fuzzing what `info` reads as an entry's provenance (smm_daq/storage/entry_summary.py):
any value another program may store under program_name, profile, recipe, process/program,
process/version, process/parameters/recipe(_file) and as their version or path attribute (any
dtype and shape, empty, a reference, variable-length, bytes that are not UTF-8, a group, a
link to nothing) leaves `info` listing the entry with exit 0 and no traceback; provenance is
said only from single strings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

FAST = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = ["program_name", "profile", "recipe", "process/program", "process/version",
        "process/parameters/recipe", "process/parameters/recipe_file"]
NOT_UTF8 = b"caf\xe9 \xff"
TOML = '[rig]\nname = "bench"\n[recipe]\ntitle = "t"\n'
VALUES = st.sampled_from([
    "smm-daq", TOML, "", "not [toml", "a\nb'", np.bytes_(NOT_UTF8), np.bytes_(b"x\0\0"),
    np.array([b"GDA", b"x"]), np.array([NOT_UTF8]), np.zeros(3), 7.0, np.int64(-1), True,
    np.zeros((2, 0)), h5py.Empty("S10"), h5py.Empty("f"), "reference", "vlen numbers",
    "vlen bytes", "group", "dangling link", "external link", "compound", "vlen str array",
    "vlen str not utf8", np.array(3 + 1j), np.datetime64("2026-01-01").astype("S"),
])
ATTRIBUTES = st.sampled_from([
    None, "1.4", "/lab/rig.toml", NOT_UTF8, np.bytes_(NOT_UTF8), np.array([b"9.2"]),
    np.array([1.0, 2.0]), h5py.Empty("f"), h5py.Empty("S3"), 5, np.zeros(0), "reference",
    "vlen str not utf8",
])


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("info") / "s.h5"
    x = np.arange(8) * 5e-6
    write_map_entry(path, MapData(bz=np.zeros((8, 8)), x=x, y=x, height=1e-5,
                                  sensor_size=(0.0, 0.0), applied_field=np.zeros(3), name="e"),
                    kind="scan")
    return path


def _store(entry: h5py.Group, key: str, value: object) -> None:
    """`value` under `key` as another program might have written it."""
    if key in entry:
        del entry[key]
    kind = value if isinstance(value, str) else None
    if kind == "reference":
        entry.create_dataset(key, data=entry.ref, dtype=h5py.ref_dtype)
    elif kind in ("vlen numbers", "vlen bytes"):
        base = np.int32 if kind == "vlen numbers" else np.uint8
        entry.create_dataset(key, (2,), dtype=h5py.vlen_dtype(base))[0] = [1, 2]
    elif kind == "group":
        entry.create_group(key)
    elif kind == "dangling link":
        entry[key] = h5py.SoftLink("/nowhere")
    elif kind == "external link":
        entry[key] = h5py.ExternalLink("/no/such/file.h5", "/x")
    elif kind == "compound":
        entry[key] = np.array((1, 2.0), dtype=[("a", "i4"), ("b", "f8")])
    elif kind == "vlen str not utf8":  # h5py writes the bytes; reading them as str fails
        entry.create_dataset(key, data=NOT_UTF8, dtype=h5py.string_dtype("utf-8"))
    elif kind == "vlen str array":
        entry.create_dataset(key, data=["a", "b"], dtype=h5py.string_dtype())
    else:
        entry[key] = value


def _attribute(node: object, name: str, value: object) -> None:
    kind = value if isinstance(value, str) else None
    if value is None or not isinstance(node, h5py.Dataset):
        return
    if kind == "reference":
        node.attrs.create(name, node.ref, dtype=h5py.ref_dtype)
    elif kind == "vlen str not utf8":  # h5py writes the bytes; reading them as str fails
        node.attrs.create(name, NOT_UTF8, dtype=h5py.string_dtype("utf-8"))
    else:
        node.attrs[name] = value


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), st.tuples(VALUES, ATTRIBUTES), min_size=1))
@example({"program_name": (np.zeros(3), "vlen str not utf8"), "profile": ("vlen bytes", 5),
          "recipe": (np.array([b"GDA", b"x"]), np.array([b"9.2"]))})
@example({"program_name": ("vlen str not utf8", None), "profile": ("vlen str not utf8", "1"),
          "recipe": ("vlen str not utf8", "vlen str not utf8")})
@example({"program_name": ("reference", None), "profile": (True, None),
          "process/parameters/recipe": ("compound", None)})
@example({"program_name": (np.bytes_(NOT_UTF8), "reference"),
          "process/parameters/recipe": ("", None),
          "process/parameters/recipe_file": ("vlen str array", None)})
def test_info_lists_the_entry_whatever_is_stored_as_its_provenance(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture, stored: dict) -> None:
    path = tmp_path / "p.h5"
    shutil.copyfile(session, path)
    with h5py.File(path, "r+") as f:
        entry = f["e"]
        for key, (value, attribute) in sorted(stored.items()):
            if "/" in key and not isinstance(entry.get(key.rsplit("/", 1)[0]), h5py.Group):
                continue  # its group was replaced by another value
            _store(entry, key, value)
            node = entry.get(key)
            _attribute(node, "version" if key.endswith("program_name") else "path", attribute)
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "\n  e  [scan" in out, out
    for word in ("<HDF5", "Empty(", "[b'", "b'", "array(", "[0. ", "[1 2]", "(1, 2.", "True",
                 "'b'", "9.2"):  # what no single string says
        assert word not in out, out
