"""`list_entries` reads each scan's field tolerance from the profile stored with it: the scans
of a session store one profile, whose text is parsed once, not once per entry (the GUI's
reader thread lists the file again on each change)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.storage import field_tolerance
from smm_daq.storage.h5file import TEXT
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry

PROFILE = (Path(__file__).parents[1] / "configs" / "simulator.toml").read_text(encoding="utf-8")


def _session(path: Path, profiles: list[str]) -> None:
    x, y = np.arange(4) * 1e-6, np.arange(3) * 1e-6
    for i, _ in enumerate(profiles):
        write_map_entry(path, MapData(np.zeros((3, 4)), x, y, height=1e-4, name=f"s{i}"),
                        kind="scan")
    with h5py.File(path, "a") as f:
        for i, profile in enumerate(profiles):
            f[f"s{i}"].create_dataset("profile", data=profile, dtype=TEXT)


def test_a_profile_stored_with_many_scans_is_parsed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fine = f"# {tmp_path}\n{PROFILE}"  # a text no other test has had parsed
    coarse = fine.replace("field_tolerance_nT = 50.0", "field_tolerance_nT = 500.0")
    assert coarse != fine
    path = tmp_path / "s.h5"
    _session(path, [fine] * 30 + [coarse, f"# {tmp_path}\nnot = [toml"])
    parsed: list[str] = []
    loads = tomllib.loads

    def counted(text: str) -> dict[str, object]:
        parsed.append(text)
        return loads(text)

    monkeypatch.setattr(field_tolerance.tomllib, "loads", counted)
    for _ in range(2):
        infos = list_entries(path)
        assert [i.field_tolerance for i in infos] == pytest.approx(
            [50e-9] * 30 + [500e-9, None])  # type: ignore[list-item]
    assert len(parsed) == 3  # each profile once, the unreadable one too
