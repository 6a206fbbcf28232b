"""A fly scan on the served rig (real drivers, loopback TCP, fault proxies) is timed as the
drivers time it, however late an emulator's thread acts on a command.

The lock-in's `STRT` (which starts its buffer) has no reply: the driver times the buffer's start
by it and the `SPTS?` count read right after. Here the lock-in's emulator is held before acting
on each `STRT` until the rig waits for the lock-in (its next command there, or its clock's wait
for the emulators), or else until the rig has gone on to wait out the line, as a loaded machine
holds a thread. On scaled real time, or on
a virtual clock that moved on regardless, the buffer started after the line and the line was
refused or stored misplaced (a failed scan's finished lines held NaN); on the `CaughtUpClock`
the rig's sleep waits for the emulator, so every line is whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from served_rig import (
    HANG_GUARD_S,
    SIM_PROFILE,
    ServedRig,
    served_to_pyvisa_py,
    time_out_only_where_faked,
)

from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

CENTRE = (12.5e-3, 12.5e-3)  # the C-884's travel's centre (m)
LINES = 3


class Held:
    """A served emulator whose `command` waits, before the emulator acts on it, for `release`:
    cleared as the rig sends it (`Sending`), set when the rig waits for it, or when the stage
    sees the line's end asked for."""

    def __init__(self, inner: Any, command: str) -> None:
        self.inner = inner
        self.command = command
        self.release = threading.Event()
        self.held = 0

    def handle(self, message: str) -> str | None:
        if message.strip() == self.command:
            assert self.release.wait(HANG_GUARD_S), f"{self.command} held for good"
            self.held += 1
        return self.inner.handle(message)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Releasing:
    """A served emulator that sets `release` when it is sent `command`."""

    def __init__(self, inner: Any, command: str, release: threading.Event) -> None:
        self.inner = inner
        self.command = command
        self.release = release

    def handle(self, message: str) -> str | None:
        if message.strip().startswith(self.command):
            self.release.set()
        return self.inner.handle(message)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Sending:
    """The rig's transport to the held emulator: `held.release` cleared as it sends the held
    command, set as it sends any other (which waits on the held one)."""

    def __init__(self, inner: Any, held: Held) -> None:
        self.inner = inner
        self.held = held

    def write(self, message: str) -> None:
        if message.strip() == self.held.command:
            self.held.release.clear()
        else:
            self.held.release.set()
        self.inner.write(message)

    def query(self, message: str) -> str:
        self.held.release.set()
        return self.inner.query(message)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedRig]:
    with served_to_pyvisa_py(tmp_path, sim_profile=SIM_PROFILE, timeout_s=5.0,
                             time_scale=0) as served:
        yield served


def test_a_buffer_started_late_by_its_emulator_still_starts_with_the_line(
        served: ServedRig, tmp_path: Path) -> None:
    endpoints = served.backend._endpoints
    lockin, stage = served.roles["lockin"], served.roles["stage"]
    held = Held(endpoints[lockin], "STRT")
    # Served again with the lock-in held: the stage's on-target query after the line lets it go
    # (too late), and so does the rig's clock waiting for the lock-in to act (in time).
    served.kill_server()
    endpoints[lockin] = held  # type: ignore[assignment]
    endpoints[stage] = Releasing(endpoints[stage], "ONT?", held.release)  # type: ignore[assignment]
    served.restart_server()
    ledger = served.ledgers["lockin"]
    caught_up = ledger.caught_up

    def looked_at() -> bool:
        if not caught_up():
            held.release.set()  # the rig waits for the lock-in before its time moves on
        return caught_up()

    ledger.caught_up = looked_at  # type: ignore[method-assign]
    rig = time_out_only_where_faked(
        open_rig(load_profile(served.profile_path), clock=served.clock), served)
    rig.lockin.link.transport = Sending(rig.lockin.link.transport, held)  # type: ignore[attr-defined]
    path = tmp_path / "f.h5"
    plan = ScanPlan.from_center("f", CENTRE, (60e-6, 20e-6 * (LINES - 1)), 20e-6,
                                field=(0.0, 40e-6, 0.0), fly=FlySettings(pixel_time=0.05))
    try:
        seq = Sequencer(rig, path, plan)
        seq.start()
        status = seq.wait(HANG_GUARD_S)
    finally:
        rig.close()
    assert status == "finished", seq.message
    assert held.held == LINES
    with h5py.File(path, "r") as f:
        assert f["f/data/line_done"][()].all()
        assert np.isfinite(f["f/data/Bz"][()]).all()
