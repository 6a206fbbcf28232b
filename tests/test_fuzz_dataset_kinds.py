"""Fuzzing session files with the kinds of HDF5 dataset that tests/test_fuzz_data_files.py
leaves out (a null dataspace, enums, compounds, fixed-length bytes, opaque data, array
types, big-endian and half floats, soft links to other datasets) in every dataset of a scan
entry, and the maps that read well but that the layer inversions could not run on (a map
of zeros; a layer so thick or a sensor so high that the padded grid is out of reach).

Each deterministic case is one bug that was found by a broader seeded campaign; the property
test draws (derandomized) a dataset of the entry and what it is replaced with: reading the
map and listing the entries must give a map `check_map` accepts or one InputError naming the
file and entry, never another exception, and leave the file's bytes as they were.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smm_daq.analysis.susceptibility import invert_magnetization
from smm_daq.errors import InputError
from smm_daq.storage.checks import check_map
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

N = 12
STEP = 10e-6
X = np.arange(N) * STEP


def _map(name: str, bz: np.ndarray | None = None, height: float = 20e-6) -> MapData:
    if bz is None:
        bz = 1e-6 * np.exp(-((X[None, :] - 60e-6) ** 2 + (X[:, None] - 50e-6) ** 2) / 4e-10)
    return MapData(bz, X, X, height=height, sensor_size=(0.0, 0.0),
                   applied_field=np.array([0.0, 0.0, 40e-6]), name=name, title=name)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session file with two scans, 'ok' and 'bad' (spoiled in each case's copy)."""
    path = tmp_path_factory.mktemp("kinds") / "base.h5"
    for name in ("ok", "bad"):
        write_map_entry(path, _map(name), kind="scan")
    return path


def _spoiled(base: Path, folder: Path, label: str, spoil: Callable[[h5py.File], None]) -> Path:
    path = folder / f"{label}.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        spoil(f)
    return path


def _replace(name: str, make: Callable[[h5py.File, str], None]) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        del f[name]
        make(f, name)
    return spoil


def _null(f: h5py.File, name: str) -> None:
    f[name] = h5py.Empty("f8")


def _array(f: h5py.File, name: str) -> None:
    f[name] = np.arange(400.0).reshape(20, 20)


def test_a_null_dataspace_is_refused_naming_the_dataset(base: Path, tmp_path: Path) -> None:
    """A dataset with a type but no value (HDF5's null dataspace) is no sensor height."""
    path = _spoiled(base, tmp_path, "null", _replace("bad/instrument/sensor/height", _null))
    cases = [Case("null dataspace", command, argv, [path], [], [path.name, "height", "empty"])
             for command, argv in (
                 ("info", ["info", str(path)]),
                 ("background", ["background", str(path), "--entry", "bad", "--name", "new",
                                 "--border-um", "20"]))]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


def test_a_text_dataset_holding_an_array_is_refused_in_one_short_line(base: Path,
                                                                      tmp_path: Path) -> None:
    """A title holding a 20 × 20 array: the message says what it holds, not its values."""
    path = _spoiled(base, tmp_path, "array", _replace("bad/title", _array))
    _, failures = run_all([Case("text dataset", "info", ["info", str(path)], [path], [],
                                     [path.name, "'title'", "float64", "(20, 20)"])])
    assert not failures, "\n".join(failures)
    with pytest.raises(InputError) as refused:
        read_map(path, "bad")
    assert len(str(refused.value)) < 300 and "\n" not in str(refused.value)


def test_a_map_of_zeros_inverts_to_no_magnetization() -> None:
    """All pixels 0 T: nothing for the conjugate gradients to do, and M = 0 everywhere."""
    inv = invert_magnetization(_map("zeros", np.zeros((N, N))), np.array([0.0, 0.0, 1.0]),
                               10e-6)
    assert inv.converged and inv.iterations == 0
    assert np.all(inv.values == 0.0) and inv.offset == 0.0


@pytest.mark.parametrize("spoil, option, mention", [
    (None, "1e6", ["1e+06 µm layer"]),  # a metre thick: an option the command line accepts
    (lambda f: f["bad/instrument/sensor/height"].__setitem__((), 0.5), "10",
     ["500000 µm above"]),  # a sensor half a metre up, as a damaged file may say
])
def test_a_layer_whose_padded_grid_is_out_of_reach_is_refused(
        base: Path, tmp_path: Path, spoil: Callable[[h5py.File], None] | None, option: str,
        mention: list[str]) -> None:
    """Not a memory error after minutes, nor hours of FFTs: one message saying why."""
    path = _spoiled(base, tmp_path, "far", spoil or (lambda f: None))
    cases = [Case("layer", command, [command, str(path), "--entry", "bad", "--name", "new",
                                     "--thickness-um", option, *extra],
                  [path], [], [path.name, "'bad'", "padded", *mention])
             for command, extra in (("susceptibility", []),
                                    ("magnetization", ["--direction", "0,0,1"]))]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


# -- the property ----------------------------------------------------------------------------

DATASETS = ("data/Bz", "data/x", "data/y", "instrument/sensor/height",
            "instrument/sensor/size", "sample/magnetic_field", "title", "status")


def _kinds(shape: tuple[int, ...]) -> dict[str, Callable[[h5py.File, str], None]]:
    """What a dataset of `shape` is replaced with."""
    def data(value: object, **kwargs: object) -> Callable[[h5py.File, str], None]:
        return lambda f, name: f.create_dataset(name, data=value, **kwargs)  # type: ignore[arg-type]

    ones = np.ones(shape)
    return {
        "null": lambda f, name: f.create_dataset(name, data=h5py.Empty("f8")),
        "null text": lambda f, name: f.create_dataset(name, data=h5py.Empty(h5py.string_dtype())),
        "int8": data(ones.astype(np.int8)),
        "half": data((ones * 1e-5).astype(np.float16)),
        "big-endian": data((ones * 1e-5).astype(">f8")),
        "uint64 max": data(np.full(shape, np.iinfo(np.uint64).max, np.uint64)),
        "bool": data(np.ones(shape, bool)),
        "bytes": data(np.full(shape, b"abc", "S3")),
        "compound": data(np.zeros(shape, dtype=[("a", "f8"), ("b", "f8")])),
        "array type": data(np.zeros(shape, dtype="(3,)f8")),
        "opaque": data(np.zeros(shape, dtype="V8")),
        "enum": data(np.zeros(shape, np.int8), dtype=h5py.enum_dtype({"A": 0}, basetype="i1")),
        "array": _array,
        "text": data("north"),
        "non-UTF-8 text": data(np.bytes_(b"\xff\xfe")),
        "soft link to Bz": lambda f, name: f.__setitem__(name, h5py.SoftLink("/ok/data/Bz")),
        "soft link to nothing": lambda f, name: f.__setitem__(name, h5py.SoftLink("/none")),
    }


SHAPES = {"data/Bz": (N, N), "data/x": (N,), "data/y": (N,), "instrument/sensor/size": (2,),
          "sample/magnetic_field": (3,)}
KINDS = tuple(_kinds(()))


@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dataset=st.sampled_from(DATASETS), kind=st.sampled_from(KINDS))
def test_any_kind_of_dataset_in_any_place_reads_or_is_refused_by_name(
        base: Path, tmp_path: Path, dataset: str, kind: str) -> None:
    make = _kinds(SHAPES.get(dataset, ()))[kind]
    path = _spoiled(base, tmp_path, "drawn", _replace(f"bad/{dataset}", make))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for read in (lambda: read_map(path, "bad"), lambda: list_entries(path)):
        try:
            found = read()
        except InputError as exc:
            assert str(path) in str(exc) and "expected" in str(exc), str(exc)
        else:
            if isinstance(found, MapData):
                check_map(found, "drawn")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_susceptibility_of_a_zero_field_map_says_what_it_expected(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    zero = _map("rem")
    write_map_entry(path, MapData(zero.bz, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                  applied_field=np.zeros(3), name="rem"), kind="scan")
    _, failures = run_all([Case("zero field", "susceptibility", [
        "susceptibility", str(path), "--entry", "rem", "--name", "chi", "--thickness-um", "10"],
        [path], [], [path.name, "'rem'", "zero field", "induced map"])])
    assert not failures, "\n".join(failures)
