"""What the storage turn tests start from: a session file holding one scan entry
("earlier"), and the clock that `turns` waits on replaced by a virtual one."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest
from test_storage_nexus import _map

from smm_daq.clock import VirtualClock
from smm_daq.storage import turns
from smm_daq.storage.nexus import write_map_entry

C = TypeVar("C", bound=VirtualClock)


def waits_on(monkeypatch: pytest.MonkeyPatch, clock: C) -> C:
    """`clock`, made the one `turns` waits on for the test."""
    monkeypatch.setattr(turns, "CLOCK", clock)
    return clock


def session_file(tmp_path: Path) -> Path:
    """`tmp_path`/s.h5 written with one scan entry, "earlier"."""
    made = tmp_path / "s.h5"
    write_map_entry(made, _map("earlier"), kind="scan")
    return made
