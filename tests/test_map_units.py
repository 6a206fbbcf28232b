"""A map read back is in SI whatever unit its file names: another program may store Bz in nT
and the axes in µm, saying so in `units`; a unit of another quantity is refused."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

UM = 1e-6


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    x = np.arange(6) * 5 * UM
    y = np.arange(4) * 5 * UM
    bz = np.add.outer(y, x) * 1e-2  # tens of nT
    write_map_entry(path, MapData(bz, x, y, height=2 * UM, sensor_size=(UM, UM), name="m",
                                  applied_field=np.array([0.0, 40e-6, 0.0])), kind="import")
    return path


def _restate(path: Path, name: str, factor: float, units: str) -> None:
    """Rewrite dataset `name` of entry m in `units` (its SI values over `factor`)."""
    with h5py.File(path, "r+") as f:
        node = f["m"][name]
        values = node[()] / factor
        node[...] = values
        node.attrs["units"] = units


def test_bz_in_nT_and_axes_in_um_read_as_tesla_and_metres(session: Path) -> None:
    before = read_map(session, "m")
    for name, factor, units in (("data/Bz", 1e-9, "nT"), ("data/x", UM, "µm"),
                                ("data/y", UM, "um"), ("instrument/sensor/height", 1e-3, "mm"),
                                ("instrument/sensor/size", UM, "um"),
                                ("sample/magnetic_field", 1e-6, "uT")):
        _restate(session, name, factor, units)
    after = read_map(session, "m")
    np.testing.assert_allclose(after.bz, before.bz, rtol=1e-12)
    np.testing.assert_allclose(after.x, before.x, rtol=1e-12)
    np.testing.assert_allclose(after.y, before.y, rtol=1e-12)
    assert after.height == pytest.approx(before.height, rel=1e-12)
    assert after.sensor_size == pytest.approx(before.sensor_size, rel=1e-12)
    np.testing.assert_allclose(after.applied_field, [0.0, 40e-6, 0.0], rtol=1e-12)


@pytest.mark.parametrize(("name", "units", "expected"), [
    ("data/Bz", "A/m", "expected T (or one of T, tesla, mT"),
    ("data/x", "nT", "expected m (or one of m, meter"),
    ("instrument/sensor/height", "furlong", "expected m"),
])
def test_a_unit_of_another_quantity_is_refused_by_name(session: Path, name: str, units: str,
                                                       expected: str) -> None:
    with h5py.File(session, "r+") as f:
        f["m"][name].attrs["units"] = units
    with pytest.raises(InputError) as caught:
        read_map(session, "m")
    assert f"'{name.rsplit('/', 1)[-1]}" in str(caught.value) or name in str(caught.value)
    assert f"has units {units!r}; {expected}" in str(caught.value)
