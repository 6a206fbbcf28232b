"""Fault suite over the real byte path: real drivers, pyvisa-py raw sockets, a fault proxy in
front of each TCP-served emulator. For each fault at seeded random moments the scan must end
in bounded time; then, seen from the emulators' side (the served supplies' currents, the
stage's motion), the coils are at their safe state and the stage still, directly or after
`smm-daq safe` where the run said it could not; and the file is consistent and resumes to
"finished".

The moments are command counts through the faulted instrument's proxy, drawn uniformly over
a clean scan's traffic (its setup, every point, its ramp-down). SMM_FAULT_SEED and
SMM_FAULT_MOMENTS change the draw and the number of moments per fault (default 1, about 15 s
on two loaded cores; raise it for a campaign). Each run prints what it did; the suite prints
its count of faults × moments, all of which must end safe.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from served_rig import ServedRig, links_time_out_only_where_faked

from smm_daq import interrupts
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.acquisition.session import Session
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, make_rig_safe, open_rig

SEED = int(os.environ.get("SMM_FAULT_SEED", "20261204"))
MOMENTS = int(os.environ.get("SMM_FAULT_MOMENTS", "1"))
HANG_GUARD_S = 120.0  # real seconds; every run ends far sooner unless something hangs
CURRENT_ATOL = 2e-3  # A: the supplies' setpoint resolution and read-back, with margin
FIELD = (0.0, 40e-6, 0.0)  # 0.8 A in coil y
ROLES = ("lockin", "stage", "coil_x", "coil_y", "coil_z", "fluxgate")
TALLY: Counter[str] = Counter()


def plan(name: str) -> ScanPlan:
    return ScanPlan.from_center(name, (12.5e-3, 12.5e-3), (60e-6, 40e-6), 20e-6, field=FIELD)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    """The served world on the rig's sleeps alone (time scale 0, `caught_up_clock`), every
    link timing out only on what the proxy withheld or dropped, and then taking its timeout
    on that clock (`links_time_out_only_where_faked`): on scaled real time, a loaded machine's
    slow replies ran the world's clock on, and the make-safe path's deadline (on that clock)
    was reached before the ramps were done; and a reply merely slow timed out."""
    os.environ.setdefault("PYVISA_LIBRARY", "@py")
    rig = ServedRig(tmp_path_factory.mktemp("served"), time_scale=0, timeout_s=0.3)
    with links_time_out_only_where_faked(rig):
        yield rig
    rig.close()
    print(f"\nfault suite (seed {SEED}): " + ", ".join(f"{k} × {n}" for k, n in
                                                    sorted(TALLY.items()))
          + f"; {sum(TALLY.values())} runs, all ended safe")


@pytest.fixture(scope="module")
def traffic(served: ServedRig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Commands through each proxy in one clean scan, after the rig is open (the moments'
    range: setup, points and ramp-down)."""
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    before = {r: p.commands for r, p in served.proxies.items()}
    seq = Sequencer(rig, tmp_path_factory.mktemp("clean") / "c.h5", plan("clean"))
    seq.start()
    assert seq.wait(HANG_GUARD_S) == "finished", seq.message
    rig.close()
    return {r: p.commands - before[r] for r, p in served.proxies.items()}


# -- the faults ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """Arms itself on `role`'s proxy at its k-th command from now; `lasting`: the link stays
    broken until the suite restores it (so the run may not make that instrument safe)."""

    name: str
    arm: Callable[[ServedRig, str, int, np.random.Generator], None]
    roles: tuple[str, ...] = ROLES
    lasting: bool = False


def _at(served: ServedRig, role: str, k: int, action: Callable[[], None]) -> None:
    proxy = served.proxies[role]
    proxy.after(proxy.commands + k, action)


def _kill(served: ServedRig, role: str, k: int, rng: np.random.Generator) -> None:
    # in its own thread: closing the server joins connections the proxy's thread serves
    _at(served, role, k, lambda: threading.Thread(target=served.kill_server).start())


def _late(served: ServedRig, role: str, k: int, rng: np.random.Generator) -> None:
    proxy = served.proxies[role]
    _at(served, role, k, proxy.hold)
    _at(served, role, k + 1, proxy.release)  # the retry, on a new connection, is answered


def _trip(served: ServedRig, role: str, k: int, rng: np.random.Generator) -> None:
    axis = "xyz".index(role[-1])

    def trip() -> None:
        with served.backend.world.lock:
            served.backend.world.coils.trip(axis)

    _at(served, role, k, trip)


FAULTS = (
    Fault("link dropped", lambda s, r, k, g: _at(s, r, k, s.proxies[r].drop)),
    Fault("instrument gone", lambda s, r, k, g: _at(s, r, k, s.proxies[r].refuse),
          lasting=True),
    Fault("server killed", _kill, lasting=True),
    Fault("replies withheld", lambda s, r, k, g: _at(s, r, k, s.proxies[r].hold),
          lasting=True),
    Fault("one reply late", _late),
    Fault("garbage", lambda s, r, k, g: _at(
        s, r, k, lambda: s.proxies[r].garble(int(g.integers(1, 5))))),
    Fault("supply trips", _trip, roles=("coil_x", "coil_y", "coil_z")),
)


def restore(served: ServedRig) -> None:
    if not served.server_alive():
        served.restart_server()
    for proxy in served.proxies.values():
        proxy.disarm()
        proxy.restore()


def assert_safe_from_the_emulators(served: ServedRig) -> None:
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    assert not served.stage_moving()


def assert_consistent_and_resumable(served: ServedRig, path: Path, name: str,
                                    status: str) -> None:
    with h5py.File(path, "r") as f:
        assert f[f"{name}/status"].asstr()[()] == status
        done = f[f"{name}/data/line_done"][()].astype(bool)
        bz = f[f"{name}/data/Bz"][()]
    assert np.isfinite(bz[done]).all() and np.isnan(bz[~done]).all()
    assert (status == "finished") == bool(done.all())
    if status == "finished":
        return
    assert load_resumable(path, name).lines_left == int(np.count_nonzero(~done))
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    try:
        seq = Sequencer(rig, path, plan(name), resume=True)
        seq.start()
        assert seq.wait(HANG_GUARD_S) == "finished", seq.message
    finally:
        rig.close()
    with h5py.File(path, "r") as f:
        assert np.isfinite(f[f"{name}/data/Bz"][()]).all()
        np.testing.assert_array_equal(f[f"{name}/data/Bz"][()][done], bz[done])


def ended_safe(served: ServedRig, seq: Sequencer) -> None:
    """The run's own verdict, then the emulators': safe now, or after `smm-daq safe`."""
    if seq.safety_problems:
        assert f"smm-daq safe --profile {served.profile_path}" in seq.message
        restore(served)
        states = make_rig_safe(load_profile(served.profile_path), clock=served.clock)
        assert all(s.safe for s in states), states
    restore(served)
    assert_safe_from_the_emulators(served)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_every_fault_at_random_moments_ends_safe_and_resumable(
        served: ServedRig, traffic: dict[str, int], tmp_path: Path, fault: Fault) -> None:
    rng = np.random.default_rng([SEED, FAULTS.index(fault)])
    for i in range(MOMENTS):
        role = str(rng.choice(fault.roles))
        k = int(rng.integers(1, traffic[role] + 1))
        name = f"run{i}"
        path = tmp_path / f"{name}.h5"
        rig = open_rig(load_profile(served.profile_path), clock=served.clock)
        try:
            seq = Sequencer(rig, path, plan(name))
            fault.arm(served, role, k, rng)
            seq.start()
            status = seq.wait(HANG_GUARD_S)
            assert status in ("finished", "failed"), f"{fault.name} at {role} #{k}: {status}"
        finally:
            rig.close()
        print(f"{fault.name} at {role} command {k}: {status}"
              + (" (rig not safe: smm-daq safe run)" if seq.safety_problems else ""))
        ended_safe(served, seq)
        assert_consistent_and_resumable(served, path, name, status)
        TALLY[fault.name] += 1


# -- signals -------------------------------------------------------------------------------


def test_signals_at_random_moments_stop_the_scan_once_and_never_the_ramp_down(
        served: ServedRig, traffic: dict[str, int], tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """One to four SIGINT/SIGTERM at random commands of the lock-in (during the points) and of
    coil y (ramps, and the ramp-down): the first stops the scan, the others are acknowledged,
    and the coils end safe. The main thread runs the scan as the command line does."""
    rng = np.random.default_rng([SEED, 99])
    for i in range(MOMENTS + 2):
        name = f"sig{i}"
        path = tmp_path / f"{name}.h5"
        n = int(rng.integers(1, 5))
        first = int(rng.integers(1, traffic["lockin"] - 8))
        rig: Rig = open_rig(load_profile(served.profile_path), clock=served.clock)
        session = Session(path, rig)
        sigs = [signal.SIGINT if rng.random() < 0.5 else signal.SIGTERM for _ in range(n)]
        with interrupts.installed():
            _at(served, "lockin", first, lambda s=sigs[0]: os.kill(os.getpid(), s))
            for s in sigs[1:]:
                k = int(rng.integers(1, traffic["coil_y"] + 1))
                _at(served, "coil_y", k, lambda s=s: os.kill(os.getpid(), s))
            try:
                with pytest.raises(KeyboardInterrupt):
                    session.scan_plan(plan(name))
            finally:
                problems = session.close()
                restore(served)
        assert problems == []
        assert_safe_from_the_emulators(served)
        err = capfd.readouterr().err
        assert "Traceback" not in err
        status = "aborted" if name in _entries(path) else None
        with capfd.disabled():
            print(f"{n} signal(s), the first at lock-in command {first}: "
                  f"{status or 'stopped before the entry was made'}; acknowledged "
                  f"{err.count('smm-daq: SIG')} time(s)")
        if status is not None:
            assert_consistent_and_resumable(served, path, name, status)
        TALLY["signals"] += 1


def _entries(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with h5py.File(path, "r") as f:
        return set(f)
