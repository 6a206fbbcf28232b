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


@pytest.mark.parametrize(("stored", "shown"), [
    ("1e300", "1e+300"), ("100000.5", "100000.5"), ("0", "0"), ("-5.0", "-5.0"), ("nan", "nan"),
    ("inf", "inf"), ('"50"', "'50'"), ("true", "True")])
def test_a_stored_tolerance_out_of_the_profiles_bounds_is_set_aside_with_the_reason(
        tmp_path: Path, stored: str, shown: str) -> None:
    """The profile loader takes coils.field_tolerance_nT in (0, 100000] nT; a stored profile's
    is held to the same bounds (it took any finite number), the reason listed."""
    path = tmp_path / "s.h5"
    odd = f"# {tmp_path}\n" + PROFILE.replace("field_tolerance_nT = 50.0",
                                              f"field_tolerance_nT = {stored}")
    _session(path, [odd, PROFILE.replace("field_tolerance_nT = 50.0",
                                         "field_tolerance_nT = 100000")])
    first, edge = list_entries(path)
    assert first.field_tolerance is None
    assert first.field_tolerance_problem.startswith(f"{shown}")
    assert first.field_tolerance_problem.endswith(
        ", not a number in (0, 100000] nT as a profile must give")
    assert edge.field_tolerance == pytest.approx(1e-4) and edge.field_tolerance_problem == ""
