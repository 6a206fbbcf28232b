"""A failed write puts back the root attributes it changed and leaves the others as they
were: also those numpy cannot compare with `==` (variable-length sequences, references),
which every refused write rewrote, changing the file's bytes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_fuzz_data_files5 import _map

from smm_daq.cli.main import main
from smm_daq.storage.h5file import _Before
from smm_daq.storage.nexus import write_map_entry

VLEN = h5py.vlen_dtype(np.float64)


def _ragged(*rows: list[float]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.array(r) for r in rows]
    return out


def _set_reference(f: h5py.File) -> None:
    f.attrs.create("ref", f["ok"].ref, dtype=h5py.ref_dtype)


def _set_references(f: h5py.File) -> None:
    f.attrs.create("refs", [f["ok"].ref, h5py.Reference()], dtype=h5py.ref_dtype)


def _set_ragged(f: h5py.File) -> None:
    f.attrs.create("ragged", _ragged([1.0, np.nan], [3.0]), dtype=VLEN)


def _set_compound(f: h5py.File) -> None:
    row = np.dtype([("value", "f8"), ("name", h5py.string_dtype())])
    f.attrs.create("compound", np.array([(np.nan, "a")], dtype=row))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rollback") / "base.h5"
    write_map_entry(path, _map("ok"), kind="scan")
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("setter", [_set_reference, _set_references, _set_ragged, _set_compound],
                         ids=["reference", "references", "ragged with NaN", "compound with text"])
def test_a_refused_write_leaves_an_attribute_of_objects_as_it_was(
        base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], setter: object) -> None:
    path = tmp_path / "s.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        setter(f)  # type: ignore[operator]
    argv = ["background", str(path), "--entry", "ok", "--name", "new", "--border-um", "20"]
    assert main(argv) == 0
    before = _digest(path)
    assert main(argv) == 2  # 'new' is there: refused after the write began
    assert "'new'" in capsys.readouterr().err
    assert _digest(path) == before


def test_a_failed_write_puts_back_the_objects_it_changed(base: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        f.create_group("other")
        _set_reference(f)
        _set_ragged(f)
        f.attrs.create("names", ["a", "b"], dtype=h5py.string_dtype())
        before = _Before.of(f)
        f.attrs.create("ref", f["other"].ref, dtype=h5py.ref_dtype)
        f.attrs.create("ragged", _ragged([1.0, 2.0], [3.0]), dtype=VLEN)
        f.attrs.create("names", ["a", "c"], dtype=h5py.string_dtype())
        before.put_back(f, path)
    with h5py.File(path, "r") as f:
        assert f[f.attrs["ref"]].name == "/ok"
        ragged = f.attrs["ragged"]
        assert ragged[0][0] == 1.0 and np.isnan(ragged[0][1]) and list(ragged[1]) == [3.0]
        assert list(f.attrs["names"]) == ["a", "b"]
