"""Fuzzing the attributes of session files, which the other fuzz tests set only to a few
values (`kind`, `sources`): every attribute smm-daq writes on the file, an entry and its
groups and datasets (and a `units` on each dataset) set to a null value, numbers for text,
text for numbers, arrays, bytes that are no UTF-8, a unit of another quantity or scale,
100,000 characters. Reading the map and listing the entries must give a map `check_map`
accepts or one InputError naming the file, never another exception, and leave the file as
it was; the refusals the broader campaign found wordless say what was expected, in a line.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smm_daq.errors import InputError
from smm_daq.storage.checks import check_map
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

N = 12
X = np.arange(N) * 10e-6
BZ = 1e-6 * np.exp(-((X[None, :] - 60e-6) ** 2 + (X[:, None] - 50e-6) ** 2) / 4e-10)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("attrs") / "base.h5"
    for name, field in (("ok", 40e-6), ("bad", 0.0)):  # in-field and remanent scans
        write_map_entry(path, MapData(BZ, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, field, 0.0]), name=name,
                                      title=name), kind="scan")
    return path


def _spoiled(base: Path, folder: Path, node: str, attr: str, value: object) -> Path:
    path = folder / "spoiled.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        (f[node] if node else f).attrs[attr] = value
    return path


def test_another_programs_creator_of_any_length_is_named_in_one_short_line(
        base: Path, tmp_path: Path) -> None:
    path = _spoiled(base, tmp_path, "", "creator", "x" * 100_000)
    out = tmp_path / "out.h5"
    cases = [Case("creator", "level", ["level", str(path), "--entry", "ok", "--name", "new",
                                       "--border-um", "20"], [path], [out],
                  [path.name, "another program", "..."])]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


def test_maps_unlike_after_a_unit_changed_are_refused_saying_what_was_expected(
        base: Path, tmp_path: Path) -> None:
    """'bad' in nT reads as a map a billion times weaker: registration cannot match it."""
    path = _spoiled(base, tmp_path, "bad/data/Bz", "units", "nT")
    cases = [Case("units", "subtract", ["subtract", str(path), "--in-field", "ok", "--remanent",
                                        "bad", "--name", "new"], [path], [],
                  [path.name, "registration"])]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


# -- the property ----------------------------------------------------------------------------

NODES = ("", "bad", "bad/data", "bad/data/Bz", "bad/data/x", "bad/data/y",
         "bad/instrument/sensor/height", "bad/instrument/sensor/size",
         "bad/sample/magnetic_field")
ATTRIBUTES = ("creator", "default", "NX_class", "kind", "sources", "signal", "axes",
              "x_indices", "units", "long_name")
VALUES = {
    "null": h5py.Empty("f8"), "a number": 7, "NaN": np.nan, "numbers": np.arange(3),
    "2-D": np.zeros((2, 2)), "not UTF-8": np.bytes_(b"\xff\xfe"), "text": "zzz", "empty": "",
    "texts": np.array(["a", "b"], dtype=h5py.string_dtype()), "true": True,
    "mT": "mT", "um": "um", "G": "G", "100,000 characters": "x" * 100_000,
}


@settings(max_examples=50, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=st.sampled_from(NODES), attr=st.sampled_from(ATTRIBUTES),
       value=st.sampled_from(sorted(VALUES)))
def test_any_attribute_anywhere_reads_or_is_refused_in_a_line(
        base: Path, tmp_path: Path, node: str, attr: str, value: str) -> None:
    path = _spoiled(base, tmp_path, node, attr, VALUES[value])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for read in (lambda: read_map(path, "bad"), lambda: list_entries(path)):
        try:
            found = read()
        except InputError as exc:
            msg = str(exc)
            assert str(path) in msg and "expected" in msg and "\n" not in msg, msg
            assert len(msg) < 1000, msg[:300]
        else:
            if isinstance(found, MapData):
                check_map(found, "drawn")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
