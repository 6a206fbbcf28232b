"""The simulated rig served on loopback TCP, reached by the real drivers through fault proxies.

`ServedRig(tmp_path, time_scale=..., sim_profile=...)`: a simulated profile's world (default
configs/simulator.toml; on `time_scale` × real time, or with 0 on a `CaughtUpClock`: its time
moves only when the rig sleeps, once the emulators acted on all it sent) served by
`SimulatedBackend.serving` (the emulators on their own ports), one `FaultProxy` in front of
each instrument, and `profile_path`: the same rig as a real one (`simulated = false`, every
address a proxy's VISA resource, link timeouts of `timeout_s`: short, or where a command
drives the rig on the system clock, `UNHURRIED_TIMEOUT_S`); on a `CaughtUpClock`, a reply a proxy
makes itself goes out only once its emulator acted on every command passed on before it
(`FaultProxy.upstream_acts`, the instrument's `Ledger`). The world is inspected from the
emulators' side: `currents()` (what the served supplies drive), `stage_moving()`.
`kill_server()` closes every listener and connection (the instruments are gone);
`restart_server()` serves the same world on new ports behind the same proxies.
`time_out_only_where_faked(rig, served)`: a rig's links (all of them) time out only where no
reply can come (the proxy withheld or made it, or closed the link; the emulator has none), each
timeout taking the link's timeout on the served clock, and wait for the emulators' replies
however late a loaded machine makes them (`TimeoutOnlyWhereFaked`);
`links_time_out_only_where_faked(served)`: so every link opened onto the proxies while in use,
those the program opens itself too (`make_rig_safe`).
`counted(rig, served)` (which both also do): on a `CaughtUpClock`, a rig whose commands the
clock waits for; a rig opened bare on it is not waited for.
`simulators_made(monkeypatch, prepare)`: the simulator backends a command makes for itself
(`smm-daq safe`, `check`), each handed to `prepare` as it is made, before the command uses it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from caught_up_clock import (
    CaughtUpClock,
    HandledCounted,
    Ledger,
    SentCounted,
    counted_per_connection,
)
from fault_proxy import NONE_YET, FaultProxy, Tally, client_port

from drivers import transports
from simulators.backend import SimulatedBackend
from simulators.tcp_server import HOST, EmulatorServer
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.cli.served_profile import served_profile_text
from smm_daq.clock import Clock, VirtualClock
from smm_daq.errors import InstrumentTimeout
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import Profile, load_profile
from smm_daq.instruments.rig import Rig, open_rig
from smm_daq.instruments.transport import Transport

REPO = Path(__file__).resolve().parents[1]
SIM_PROFILE = REPO / "configs" / "simulator.toml"
LINK_TIMEOUT_S = 0.5
# Real seconds: the links' timeout of a served rig that a command drives on the system clock
# (`smm-daq` in a process of its own, or `main` in this one: neither takes the served clock),
# its world at 1 x real time. A loaded machine delays an emulator's reply by far less (0.3 s
# did not: a reply merely slow was taken as lost, and retried or failed the scan). Where such
# a test means a reply lost, the fault proxy makes sure none comes (a link dropped or refused,
# a server killed) and the command runs here with `links_time_out_only_where_faked`, which
# times out at once there; a command in a process of its own loses none.
UNHURRIED_TIMEOUT_S = 30.0


def simulators_made(monkeypatch: pytest.MonkeyPatch,
                    prepare: Callable[[Any, Profile], None] | None = None) -> list[Any]:
    """The simulator backends made through `rig.simulator_class` from now on, in the order
    made; `prepare(backend, profile)` first sets each up (a field left on, a stage left
    moving, replies lost) as a killed program or a broken rig would have left it."""
    made: list[Any] = []
    original = rig_module.simulator_class

    def recording(profile: Profile) -> Any:
        cls = original(profile)

        def make(*args: Any) -> Any:
            backend = cls(*args)
            if prepare is not None:
                prepare(backend, profile)
            made.append(backend)
            return backend

        return make

    monkeypatch.setattr(rig_module, "simulator_class", recording)
    return made


class ServedRig:
    def __init__(self, tmp_path: Path, *, time_scale: float = 50.0,
                 timeout_s: float = LINK_TIMEOUT_S, sim_profile: Path = SIM_PROFILE) -> None:
        self.sim_profile = load_profile(sim_profile)
        if time_scale == 0:
            self.backend = SimulatedBackend(self.sim_profile, CaughtUpClock())
        else:
            self.backend = SimulatedBackend.serving(self.sim_profile, time_scale=time_scale)
        self.clock = self.backend.clock  # shared with the rig under test
        # The lock-in's first reply computes the sample's field: not within a short timeout.
        self.backend.endpoint(self.sim_profile.lockin.link.address).handle("*IDN?")
        self.roles = self.backend.addresses()  # role -> profile address
        # role -> the commands sent on its link and acted on, where the clock waits for them
        self.ledgers: dict[str, Ledger] = {}
        if isinstance(self.clock, CaughtUpClock):
            self.ledgers = {role: self.clock.ledger() for role in self.roles}
        self.server = self._serve()
        self._alive = True
        ports = self.server.ports()
        self.proxies = {role: FaultProxy((HOST, ports[a])).start()
                        for role, a in self.roles.items()}
        for role, ledger in self.ledgers.items():
            ledger.proxy = self.proxies[role]
            ledger.immediate_bytes = self.backend.endpoint(self.roles[role]).immediate_bytes
            self.proxies[role].upstream_acts = ledger  # its own replies after the emulator's acts
        self.profile_path = tmp_path / "served-lab.toml"
        self.profile_path.write_text(self._real_profile_text(timeout_s))

    def _serve(self) -> EmulatorServer:
        endpoints = dict(self.backend._endpoints)
        for role, ledger in self.ledgers.items():
            address = self.roles[role]
            endpoints[address] = HandledCounted(endpoints[address], ledger)  # type: ignore[assignment]
        server = EmulatorServer(endpoints)
        for served in server._servers.values():  # (no public access to them)
            counted_per_connection(served)
        return server.start()

    def _real_profile_text(self, timeout_s: float) -> str:
        """What `serve-sim --profile-out` writes (no `baud_rate` on a socket, said ignored
        by every command), pointed at the fault proxies, each link with `timeout_s`."""
        resources = {address: self.proxies[role].resource for role, address in self.roles.items()}
        text = served_profile_text(self.sim_profile, resources)
        return re.sub(r"(?m)^(implementation = .*)$", rf"\1\ntimeout_s = {timeout_s}", text)

    # -- the emulators' side ----------------------------------------------------------------

    def currents(self) -> np.ndarray:
        """The currents the served supplies drive now (A)."""
        with self.backend.world.lock:
            return self.backend.world.coils.currents(self.clock.now())

    def safe_currents(self) -> np.ndarray:
        """The currents of the profile's safe state "zero": the ambient field nulled."""
        coils = self.sim_profile.coils
        return np.linalg.solve(coils.calibration, -coils.ambient_field)

    def stage_moving(self) -> bool:
        stage = self.backend.world.stage
        with self.backend.world.lock:
            return any(stage.position(a) != stage.target(a) for a in stage.axis_names)

    # -- faults -----------------------------------------------------------------------------

    def kill_server(self) -> None:
        self._alive = False
        self.server.close()

    def server_alive(self) -> bool:
        return self._alive

    def restart_server(self) -> None:
        """Serve the same world again (new ports); the proxies forward there from now on."""
        self.server = self._serve()
        self._alive = True
        ports = self.server.ports()
        for role, address in self.roles.items():
            self.proxies[role].upstream = (HOST, ports[address])

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.close()
        self.server.close()


@contextmanager
def served_to_pyvisa_py(folder: Path, *, time_scale: float = 50.0, timeout_s: float = 0.3,
                        sim_profile: Path = SIM_PROFILE) -> Iterator[ServedRig]:
    """A `ServedRig` reached through pyvisa-py (the pure-Python VISA backend) while in use."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYVISA_LIBRARY", "@py")
        rig = ServedRig(folder, time_scale=time_scale, timeout_s=timeout_s,
                        sim_profile=sim_profile)
        try:
            yield rig
        finally:
            rig.close()


FAKED_TIMEOUT_S = 0.1  # real seconds: reading what the proxy sent already, or timing out
# Real seconds: a hang guard only, for a reply the proxy saw nothing of (an emulator that never
# answers); a loaded machine delays an emulator's reply by far less.
REPLY_GUARD_S = 120.0
LOOK_S = 0.005  # real seconds between looks at the emulator's ledger (it wakes nobody here)


class TimeoutOnlyWhereFaked:
    """A transport through `proxy` whose reads time out when, and only when, no reply can
    come: the proxy kept it back or cut it short (`hold`, `split`, lines left out by
    `garble`), answered the command itself (what it sent is all there is: a blank line, a line
    marked to continue, is still waited for then) or closed the connection; or, on a
    `CaughtUpClock` (`ledger`), the emulator acted on the command and has no reply to it. A
    reply from the emulators, which a loaded machine slows, is waited for however long it
    takes (up to REPLY_GUARD_S, a hang guard), as a real instrument's comes within its
    timeout.

    The read that times out is the transport's own (what the proxy sent, within
    FAKED_TIMEOUT_S), so the driver's timeout path runs as it would; and the link's timeout
    (the transport's, the profile's `timeout_s`) is then spent on `clock`, the served world's,
    so deadlines on it (the make-safe path's) see each timeout take its time, as on a real rig.
    Nothing here depends on how fast the machine is: the proxy tells what it did
    (`FaultProxy.tally`, per connection), and wakes the wait when it does."""

    def __init__(self, transport: Transport, proxy: FaultProxy, clock: Clock,
                 ledger: Ledger | None = None) -> None:
        self.transport = transport
        self.proxy = proxy
        self.clock = clock
        self.ledger = ledger
        self._timeout_s = transport.timeout
        # (port, its tally) as the exchange began: its connection, and what was done before
        self._since: tuple[int | None, Tally] = (None, NONE_YET)
        self._asked = False  # a command was written since the last read
        self._command = ""  # the last one

    @property
    def timeout(self) -> float:
        return self._timeout_s

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._timeout_s = seconds

    def _mark(self) -> None:
        port = client_port(self.transport)
        self._since = (port, NONE_YET if port is None else self.proxy.tally(port))

    def write(self, message: str) -> None:
        if not self._asked:  # the first command of an exchange (a reply may come later)
            self._mark()
            self._asked = True
        self._command = message
        self.transport.write(message)

    def read(self) -> str:
        self._asked = False
        port = client_port(self.transport)
        marked, since = self._since
        if port != marked:  # connected again since (a clear, a reopen): all of it is news
            since = NONE_YET
        guard = time.monotonic() + REPLY_GUARD_S
        while port is not None:
            now = self.proxy.tally(port)
            if now.connection != since.connection:  # `since` was an earlier connection's: its
                # port's, marked before the proxy accepted this one (a port used again)
                since = NONE_YET._replace(connection=now.connection)
            if now.closed or now.withheld > since.withheld or now.answered > since.answered:
                break  # what the proxy sent is all there is
            if now.delivered > since.delivered:
                return self._within(REPLY_GUARD_S)  # a reply on its way (or read whole)
            if self.ledger is not None and self.ledger.no_reply_coming(self._command):
                break  # the emulator acted on it and does not answer
            left = guard - time.monotonic()
            if left <= 0:
                break
            self.proxy.await_change(port, now, min(left, LOOK_S))
        return self._within(FAKED_TIMEOUT_S)

    def _within(self, seconds: float) -> str:
        self.transport.timeout = seconds
        try:
            return self.transport.read()
        except InstrumentTimeout:
            if isinstance(self.clock, VirtualClock):
                self.clock.advance(self._timeout_s)
            raise
        finally:
            # the link's own again: the transport's reopen after it (a clear, a link that
            # failed) waits its timeout in real seconds, which on a loaded machine
            # FAKED_TIMEOUT_S is too short for ("could not be reopened within 0.1 s")
            self.transport.timeout = self._timeout_s

    def query(self, message: str) -> str:
        drop_unasked = getattr(self.transport, "_drop_unasked", None)
        if drop_unasked is not None:  # as the transport's own query does first
            drop_unasked()
        self.write(message)
        return self.read()

    def clear(self) -> None:
        self.transport.clear()  # a raw socket's connects again
        self._asked = False

    def close(self) -> None:
        self.transport.close()


def _links(rig: Rig) -> dict[str, Any]:
    """Role -> link: the stage's, the lock-in's, the fluxgate's, each coil supply's."""
    links = {role: getattr(rig, role).link for role in ("stage", "lockin")}
    if rig.fluxgate is not None:
        links["fluxgate"] = rig.fluxgate.link  # type: ignore[attr-defined]
    for supply in rig.coils._supplies:  # type: ignore[attr-defined]  # one link per axis
        links[f"coil_{supply.axis}"] = supply.link
    return links


def time_out_only_where_faked(rig: Rig, served: ServedRig) -> Rig:
    """`rig` (opened on `served.profile_path`) with every link reading through
    `TimeoutOnlyWhereFaked` (and counted, `counted`)."""
    for role, link in _links(rig).items():
        if not _wrapped(link.transport, TimeoutOnlyWhereFaked):
            link.transport = TimeoutOnlyWhereFaked(link.transport, served.proxies[role],
                                                   served.clock, served.ledgers.get(role))
    return counted(rig, served)


@contextmanager
def links_time_out_only_where_faked(served: ServedRig) -> Iterator[None]:
    """While in use, every link opened onto `served`'s proxies reads through
    `TimeoutOnlyWhereFaked` and is counted (`counted`): a rig the test opens, and one the
    program opens itself (`make_rig_safe`, `smm-daq safe`, a make-safe path's connects), whose
    links would otherwise time out on an emulator a loaded machine slows."""
    roles = {proxy.resource: role for role, proxy in served.proxies.items()}
    opened = transports.open_transport

    def opening(address: str, link: Any, **options: Any) -> Transport:
        transport = opened(address, link, **options)
        role = roles.get(address)
        if role is None:
            return transport
        transport = TimeoutOnlyWhereFaked(transport, served.proxies[role], served.clock,
                                          served.ledgers.get(role))
        if role in served.ledgers:
            transport = SentCounted(transport, served.ledgers[role])
        return transport

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transports, "open_transport", opening)
        yield


def counted(rig: Rig, served: ServedRig) -> Rig:
    """`rig` (opened on `served.profile_path`) with every link's commands counted in the
    served world's ledgers, where its `CaughtUpClock` waits for them (else as it is)."""
    for role, link in _links(rig).items():
        if role in served.ledgers and not _wrapped(link.transport, SentCounted):
            link.transport = SentCounted(link.transport, served.ledgers[role])
    return rig


def _wrapped(transport: object, kind: type) -> bool:
    """Whether `transport` is, or wraps (through `transport`), a `kind` (opened so while
    `links_time_out_only_where_faked`)."""
    while transport is not None:
        if isinstance(transport, kind):
            return True
        transport = getattr(transport, "transport", None)
    return False


# Real seconds; every run ends far sooner unless something hangs, however late a loaded
# machine makes the emulators' replies (a scan of a dozen points is hundreds of them).
HANG_GUARD_S = 240.0


def assert_failed_then_resumes(served: ServedRig, path: Path, plan: ScanPlan) -> None:
    """The scan entry `plan.name` of `path` failed with whole lines only (measured or NaN);
    it resumes on the served rig to its end, leaving the lines it had unchanged."""
    name = plan.name
    with h5py.File(path, "r") as f:
        assert f[f"{name}/status"].asstr()[()] == "failed"
        done = f[f"{name}/data/line_done"][()].astype(bool)
        bz = f[f"{name}/data/Bz"][()]
    assert np.isfinite(bz[done]).all() and np.isnan(bz[~done]).all()
    assert load_resumable(path, name).lines_left == int(np.count_nonzero(~done))
    rig = counted(open_rig(load_profile(served.profile_path), clock=served.clock), served)
    try:
        seq = Sequencer(rig, path, plan, resume=True)
        seq.start()
        assert seq.wait(HANG_GUARD_S) == "finished", seq.message
    finally:
        rig.close()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f[f"{name}/data/Bz"][()][done], bz[done])
        assert f[f"{name}/data/line_done"][()].all()
