"""A map whose Bz is a virtual dataset (another program's export, assembled from files beside
it) reads as its sources say while they are there; once a source file or dataset is gone,
HDF5 would read its fill value without a word, so the readers refuse it, naming the source."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

UM = 1e-6
UT = 1e-6


def _session(tmp_path: Path, source_name: str) -> tuple[Path, Path, np.ndarray]:
    """A session with entry 'scan' whose data/Bz is a virtual dataset of 'bz' in the file
    `source_name` (written beside it), as named in the mapping."""
    x = np.arange(6) * 5 * UM
    y = np.arange(4) * 5 * UM
    bz = np.arange(24, dtype=float).reshape(4, 6) * 0.1 * UT + 0.3 * UT
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=np.zeros_like(bz), x=x, y=y, height=50 * UM,
                                  applied_field=np.zeros(3), name="scan"), kind="scan")
    source = tmp_path / Path(source_name).name
    with h5py.File(source, "w") as f:
        f["bz"] = bz
    layout = h5py.VirtualLayout(shape=bz.shape, dtype=float)
    layout[:] = h5py.VirtualSource(source_name, "bz", shape=bz.shape)
    with h5py.File(path, "r+") as f:
        data = f["scan/data"]
        units = data["Bz"].attrs["units"]
        del data["Bz"]
        data.create_virtual_dataset("Bz", layout, fillvalue=0.0)
        data["Bz"].attrs["units"] = units
    return path, source, bz


@pytest.mark.parametrize("named", ["absolute", "relative"])
def test_a_virtual_map_reads_its_sources_while_they_are_there(tmp_path: Path, named: str
                                                              ) -> None:
    name = str(tmp_path / "parts.h5") if named == "absolute" else "parts.h5"
    path, _, bz = _session(tmp_path, name)
    np.testing.assert_allclose(read_map(path, "scan").bz, bz)


@pytest.mark.parametrize("named", ["absolute", "relative"])
def test_a_virtual_map_whose_source_file_is_gone_is_refused(
        tmp_path: Path, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = str(tmp_path / "parts.h5") if named == "absolute" else "parts.h5"
    path, source, _ = _session(tmp_path, name)
    source.unlink()
    with h5py.File(path, "r") as f:  # what HDF5 does on its own: the fill value, no word
        assert not np.any(f["scan/data/Bz"][()])
    with pytest.raises(InputError, match="virtual dataset") as caught:
        read_map(path, "scan")
    assert "parts.h5" in str(caught.value) and "which is not there" in str(caught.value)
    assert "entry 'scan'" in str(caught.value)
    # and the commands that read a map say so, exit code 2
    assert main(["noise", str(path), "--entry", "scan"]) == 2
    err = capsys.readouterr().err
    assert "virtual dataset" in err and "parts.h5" in err and "Traceback" not in err


def test_a_virtual_map_whose_source_dataset_is_gone_is_refused(tmp_path: Path) -> None:
    path, source, _ = _session(tmp_path, "parts.h5")
    with h5py.File(source, "r+") as f:
        del f["bz"]
    with pytest.raises(InputError, match=r"dataset 'bz' of .*parts\.h5, which cannot be read"):
        read_map(path, "scan")
