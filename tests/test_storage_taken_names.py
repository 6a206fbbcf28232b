"""A product or an image refused over an entry of its name says what holds the name, as a
scan refused there does (`EntryTaken`): a scan, imported data, an analysis product, an image
or another program's group; --overwrite is offered for a product, and never for acquired
data or another program's group, which it does not replace."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.optical import fit_affine
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import check_new_entry, write_map_entry
from smm_daq.storage.optical_entry import write_optical_entry

REGISTRATION = fit_affine(np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]),
                          np.array([[0.0, 0.0], [4e-5, 0.0], [0.0, 3e-5]]))
IMAGE = np.zeros((4, 5, 3), dtype=np.uint8)

# entry name -> how the refusal names what holds it
HELD = {
    "scan": "a scan (kind 'scan')",
    "imported": "imported data (kind 'import')",
    "product": "an analysis product (kind 'induced')",
    "image": "an optical image of the sample (kind 'optical')",
    "foreign": "something smm-daq did not write (another program's)",
}


def _map(name: str) -> MapData:
    x = np.arange(4) * 1e-6
    return MapData(bz=np.zeros((3, 4)), x=x, y=x[:3], height=1e-4, name=name)


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    for name, kind in (("scan", "scan"), ("imported", "import"), ("product", "induced")):
        write_map_entry(path, _map(name), kind=kind)
    write_optical_entry(path, "image", IMAGE, REGISTRATION)
    with h5py.File(path, "a") as f:
        f.create_group("foreign").attrs["NX_class"] = "NXentry"
    return path


@pytest.mark.parametrize("name", HELD)
def test_a_product_refused_over_an_entry_names_what_holds_it(session: Path, name: str) -> None:
    before = session.read_bytes()
    for refuse in (lambda: check_new_entry(session, name, (), overwrite=False),
                   lambda: write_map_entry(session, _map(name), kind="background")):
        with pytest.raises(InputError) as refused:
            refuse()
        said = str(refused.value)
        assert f"entry '{name}' already exists and is {HELD[name]}; expected a new entry " \
               "name" in said, said
        # --overwrite offered where it replaces what is there, only
        assert ("--overwrite" in said) == (name == "product"), said
    assert session.read_bytes() == before


@pytest.mark.parametrize("name", HELD)
def test_an_image_refused_over_an_entry_names_what_holds_it(session: Path, name: str) -> None:
    before = session.read_bytes()
    with pytest.raises(InputError) as refused:
        write_optical_entry(session, name, IMAGE, REGISTRATION)
    assert f"entry '{name}' already exists and is {HELD[name]}; expected another name" in str(
        refused.value), refused.value
    assert session.read_bytes() == before


@pytest.mark.parametrize("name", ["scan", "imported", "image"])
def test_overwrite_never_replaces_acquired_data_an_image_included(session: Path,
                                                                   name: str) -> None:
    """An optical image is acquired data (a picture of the sample, its registration fitted
    by hand), as a scan is: --overwrite refuses it, the file unchanged."""
    before = session.read_bytes()
    for refuse in (lambda: check_new_entry(session, name, (), overwrite=True),
                   lambda: write_map_entry(session, _map(name), kind="background",
                                           overwrite=True)):
        with pytest.raises(InputError, match=f"entry '{name}' holds acquired data "
                           r"\(kind '\w+'\) and is never overwritten"):
            refuse()
    assert session.read_bytes() == before


def test_the_command_line_says_it_too(session: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    assert main(["crop", str(session), "--entry", "product", "--name", "scan", "--x-um",
                 "0,2", "--y-um", "0,2"]) == 2
    assert "entry 'scan' already exists and is a scan (kind 'scan')" in capsys.readouterr().err
