"""A serial port that failed is opened again by its next use, whichever thread that is: the
drain of a reply cut short, on a thread of its own (`Link._drop_rest`), and a Stop sent
meanwhile open one new port between them, not one each (a serial-over-LAN adapter, as a PI
controller, takes few connections; the other would be leaked, or the Stop written to a port
being closed). The reopen is held by events; nothing sleeps."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import serial

from drivers import transports
from drivers.transports import SerialTransport
from smm_daq.errors import InstrumentLost, InstrumentTimeout
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.safe_bound import _stage_attempt_s, clear_s

HANG_GUARD_S = 10.0  # real seconds; only a hang reaches it
TIMEOUT_S = 1.0  # the link's: no read here waits for it


class NotedLock:
    """The transport's reopening lock, telling when the thread named "stop" waits for it."""

    def __init__(self, lock: Any, stop_waits: threading.Event) -> None:
        self.lock = lock
        self.stop_waits = stop_waits

    def __enter__(self) -> Any:
        if threading.current_thread().name == "stop":
            self.stop_waits.set()
        return self.lock.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self.lock.__exit__(*exc)


def _lost_then_drain_then_stop(timeout: float, reopen: Callable[[], Any],
                               first_opening: threading.Event, stop_waits: threading.Event,
                               go: threading.Event) -> tuple[Any, dict[str, BaseException]]:
    """A stage's serial transport whose port (a loop) is gone: a write fails, lost; then
    `_drain_then_stop` on it, its reopening lock noted. The transport, and what failed."""
    first = serial.serial_for_url("loop://", timeout=timeout, write_timeout=timeout)
    transport = SerialTransport(first, name="stage", reopen=reopen)
    first.close()  # the adapter gone: the next write fails, and the port is reopened after
    with pytest.raises(InstrumentLost):
        transport.write("POS?")
    if hasattr(transport, "_reopening"):
        transport._reopening = NotedLock(transport._reopening, stop_waits)
    return transport, _drain_then_stop(transport, first_opening, stop_waits, go)


def _drain_then_stop(transport: Any, first_opening: threading.Event,
                     stop_waits: threading.Event, go: threading.Event
                     ) -> dict[str, BaseException]:
    """A drain's write (`ERR?`) on a thread of its own, which starts the failed port's reopen
    (held once `first_opening` is set, until `go`), then a Stop's (`\\x18`) on another, which
    waits for that reopen (`stop_waits`); both then let finish: what each raised, by its
    thread's name ("drain", "stop")."""
    failed: dict[str, BaseException] = {}

    def use(message: str) -> None:
        try:
            transport.write(message)
        except BaseException as exc:
            failed[threading.current_thread().name] = exc

    drain = threading.Thread(target=use, args=("ERR?",), name="drain", daemon=True)
    drain.start()
    assert first_opening.wait(HANG_GUARD_S)
    stop = threading.Thread(target=use, args=("\x18",), name="stop", daemon=True)
    stop.start()
    assert stop_waits.wait(HANG_GUARD_S)
    go.set()
    drain.join(HANG_GUARD_S)
    stop.join(HANG_GUARD_S)
    assert not drain.is_alive() and not stop.is_alive()
    return failed


def test_a_failed_port_used_by_two_threads_at_once_is_reopened_once() -> None:
    """The port failed; the drain's thread begins to reopen it (held there), and a Stop is
    written meanwhile from another: it waits for that reopen and goes on the port it opened.
    Unfixed, the Stop's write saw the port still failed and opened a second one."""
    opened: list[str] = []
    ports: list[serial.SerialBase] = []
    first_opening, go, stop_waits = threading.Event(), threading.Event(), threading.Event()

    def reopen(within: float) -> serial.SerialBase:
        opened.append(threading.current_thread().name)
        if len(opened) == 1:
            first_opening.set()
            assert go.wait(HANG_GUARD_S)
        else:
            stop_waits.set()  # unfixed: no wait, a second port
        ports.append(serial.serial_for_url("loop://", timeout=TIMEOUT_S,
                                           write_timeout=TIMEOUT_S))
        return ports[-1]

    transport, failed = _lost_then_drain_then_stop(TIMEOUT_S, reopen, first_opening, stop_waits, go)
    assert not failed, failed
    assert opened == ["drain"], opened
    assert transport.port is ports[0]
    sent = ports[0].read(ports[0].in_waiting).split(b"\n")  # both on the one port opened
    assert sorted(sent) == sorted([b"", b"ERR?", b"\x18"]), sent


class FakeClock:
    """The transport's clock, moved on by hand: nothing sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_a_stop_that_waits_for_a_drains_reopen_keeps_its_own_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The port failed; the drain's thread reopens it, which takes its whole timeout (the
    transport's clock moved on by it), while a Stop written from another thread waits for
    that reopen: the Stop then goes on the port reopened, with its own write time (the
drain's own write, its time spent on the reopen, is refused). Unfixed,
    the Stop's deadline was set before the wait, no time was left, and it was refused
    (`InstrumentTimeout`), the link then draining the line before sending it again."""
    clock = FakeClock()
    monkeypatch.setattr(transports, "time", types.SimpleNamespace(
        monotonic=clock.monotonic, sleep=lambda seconds: None))
    ports: list[serial.SerialBase] = []
    first_opening, go, stop_waits = threading.Event(), threading.Event(), threading.Event()

    def reopen(within: float) -> serial.SerialBase:
        first_opening.set()
        assert go.wait(HANG_GUARD_S)
        clock.now += TIMEOUT_S  # the adapter slow to come back: the drain's whole timeout
        ports.append(serial.serial_for_url("loop://", timeout=TIMEOUT_S,
                                           write_timeout=TIMEOUT_S))
        return ports[-1]

    _, failed = _lost_then_drain_then_stop(TIMEOUT_S, reopen, first_opening, stop_waits, go)
    assert "stop" not in failed, failed  # the drain's own write had no time left: refused
    assert b"\x18" in ports[0].read(ports[0].in_waiting).split(b"\n")


class TakesNoInput:
    """A port reopened whose line takes no more input: each write waits its whole write
    timeout on `clock`, then fails."""

    def __init__(self, clock: FakeClock, timeout: float) -> None:
        self.clock = clock
        self.timeout = self.write_timeout = timeout
        self.baudrate = 115200

    def write(self, data: bytes) -> int:
        self.clock.now += self.write_timeout
        raise serial.SerialTimeoutException("write timeout")

    def close(self) -> None:
        pass


def test_a_stops_wait_for_a_drains_reopen_is_within_the_stage_exchange_the_bound_counts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The make-safe bound counts no separate term for a stop's wait for another thread's
    reopen (`transports._waited_for_reopen`): it is inside the stage's exchange under way
    (`safe_bound._stage_attempt_s`). On the example lab's stage link: the port failed; a
    drain aside reopens it, taking its whole timeout, while the stop, written amid it, waits;
    the port reopened takes no input, so the stop's write then takes its own whole write
    timeout. Together (the worst a stop's write can take: no other exchange uses the port
    during a drop aside but a stop, nor on the coils' links, which drop nothing aside) they
    are within one stage attempt, with its device clear after (a drain, `clear_s`)."""
    profile = load_profile(Path(__file__).resolve().parents[1] / "configs" / "example-lab.toml")
    timeout = profile.stage.link.timeout_s
    clock = FakeClock()
    monkeypatch.setattr(transports, "time", types.SimpleNamespace(
        monotonic=clock.monotonic, sleep=lambda seconds: None))
    first_opening, go, stop_waits = threading.Event(), threading.Event(), threading.Event()

    def reopen(within: float) -> Any:
        first_opening.set()
        assert go.wait(HANG_GUARD_S)
        clock.now += within  # the adapter slow to come back: the reopen's whole time
        return TakesNoInput(clock, timeout)

    _, failed = _lost_then_drain_then_stop(timeout, reopen, first_opening, stop_waits, go)
    assert isinstance(failed.get("stop"), InstrumentTimeout), failed  # it had its own time
    waited_and_written = clock.now  # the stop began at 0, as the reopen did
    assert waited_and_written == pytest.approx(2 * timeout)
    assert waited_and_written + clear_s(profile.stage.link) <= _stage_attempt_s(profile)
