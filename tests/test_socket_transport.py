"""The VISA raw-socket transport stays bounded when the peer goes away, hangs or answers late.

pyvisa-py's `clear()` on a TCP socket loops forever once the peer has closed it; the transport
reconnects instead (see drivers/transports.py). Each call runs in a helper thread that the
test waits for with a generous timeout, so a hang fails the test instead of freezing it.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from fault_proxy import FaultProxy

from drivers.link import Link
from drivers.transports import _raw_socket, open_transport
from simulators.emulator import Emulator
from simulators.tcp_server import HOST, EmulatorServer
from smm_daq.errors import InstrumentLost, InstrumentTimeout
from smm_daq.instruments.profile import LinkSettings

TIMEOUT_S = 0.3
HANG_GUARD_S = 60.0  # far beyond any bounded call; only a hang reaches it


class Echo(Emulator):
    name = "echo"

    def handle(self, message: str) -> str | None:
        if message == "twice":  # a reply and a line more
            return "echo twice\nonce more"
        return f"echo {message}"


def bounded(call: Callable[[], object]) -> object:
    """Run `call` in a thread; its result or exception, or fail if it does not return."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the call did not return"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


@pytest.fixture
def proxied() -> Iterator[tuple[EmulatorServer, FaultProxy]]:
    server = EmulatorServer({"echo": Echo()}).start()
    proxy = FaultProxy((HOST, server.ports()["echo"])).start()
    yield server, proxy
    proxy.close()
    server.close()


def transport(proxy: FaultProxy):
    return open_transport(proxy.resource, LinkSettings("x", proxy.resource, TIMEOUT_S, 2),
                          visa_library="@py")


def test_clear_after_the_peer_closed_returns_and_reconnects(proxied) -> None:
    _, proxy = proxied
    t = transport(proxy)
    assert t.query("a") == "echo a"
    proxy.drop()  # the peer closes the connection: pyvisa-py's own clear() never returns here
    bounded(t.clear)
    assert bounded(lambda: t.query("b")) == "echo b"
    t.close()


def test_a_link_whose_instrument_is_gone_is_lost_in_bounded_time(proxied) -> None:
    server, proxy = proxied
    link = Link(transport(proxy), name="echo", retries=2)
    assert link.query("a", str) == "echo a"
    server.close()  # the instrument is gone: the proxy closes every connection it is given
    with pytest.raises(InstrumentLost):
        bounded(lambda: link.query("b", str))
    assert link.lost
    with pytest.raises(InstrumentLost):  # and stays lost, one attempt per exchange
        bounded(lambda: link.query("c", str))
    link.close()


def test_a_dropped_link_comes_back_for_the_next_exchange(proxied) -> None:
    """The exchange whose connection was closed is told at once and tried again on a new
    connection, as a lost reply is (a supply whose server restarted mid-ramp-down is still
    ramped down)."""
    _, proxy = proxied
    link = Link(transport(proxy), name="echo", retries=2)
    proxy.after(proxy.commands + 1, proxy.drop)  # the next command is lost with its link
    assert bounded(lambda: link.query("a", str)) == "echo a"  # retried on a new connection
    assert link.failures == 1
    link.close()


def test_a_late_reply_is_never_taken_for_the_next_answer(proxied) -> None:
    _, proxy = proxied
    t = transport(proxy)
    proxy.hold()
    with pytest.raises(InstrumentTimeout):
        bounded(lambda: t.query("first"))
    proxy.release()  # "echo first" arrives after the timeout
    bounded(t.clear)
    assert bounded(lambda: t.query("second")) == "echo second"
    t.close()


def test_a_line_more_that_came_after_its_reply_was_read_is_dropped_before_the_next_query(
        proxied) -> None:
    """An instrument that sends a line more, which arrives on its own once its reply was read
    (a second packet): the next query drops it, unread, and reads its own reply. Unfixed, only
    the VISA library's buffer was dropped (which the transport no longer reads through), and
    the next query read "once more", every later one the reply before its own."""
    _, proxy = proxied
    t = transport(proxy)
    proxy.split(len(b"echo twice\n"))  # the line more is kept back, the reply goes
    assert bounded(lambda: t.query("twice")) == "echo twice"
    proxy.release()  # the line more arrives now, after the reply was read
    sock = _raw_socket(t.resource)
    assert sock is not None and select.select([sock], [], [], HANG_GUARD_S)[0]
    assert bounded(lambda: t.query("a")) == "echo a"
    assert bounded(lambda: t.query("b")) == "echo b"
    t.close()


def test_a_link_to_a_closed_port_is_lost_at_once() -> None:
    server = EmulatorServer({"echo": Echo()}).start()
    resource = server.resources()["echo"]
    server.close()
    link = Link(open_transport(resource, LinkSettings("x", resource, TIMEOUT_S, 2),
                               visa_library="@py"), name="echo")
    with pytest.raises(InstrumentLost):
        bounded(lambda: link.query("a", str))


def test_a_raw_socket_sends_each_command_at_once(proxied) -> None:
    """TCP_NODELAY, on the first connection and on every reconnection (pyvisa-py cannot set it
    through its attribute, the transport sets it on the socket)."""
    _, proxy = proxied
    t = transport(proxy)

    def nodelay() -> int:
        session = t.resource.visalib.sessions[t.resource.session]
        return session.interface.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    assert nodelay() == 1
    t.clear()
    assert nodelay() == 1
    t.close()


def test_two_threads_on_one_link_never_take_each_others_replies(proxied) -> None:
    _, proxy = proxied
    link = Link(transport(proxy), name="echo", retries=0)
    wrong: list[tuple[str, str]] = []

    def talk(tag: str) -> None:
        for i in range(200):
            reply = link.query(f"{tag}{i}", str)
            if reply != f"echo {tag}{i}":
                wrong.append((f"{tag}{i}", reply))

    threads = [threading.Thread(target=talk, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD_S)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []
    link.close()


def test_a_link_that_cannot_be_reopened_stays_lost_not_broken(proxied) -> None:
    """Every later call raises InstrumentLost again (never an error of the closed resource)."""
    from drivers.transports import VisaTransport

    _, proxy = proxied
    opened = transport(proxy)

    def gone():
        raise InstrumentLost("cannot open: refused", instrument="echo")

    t = VisaTransport(opened.resource, name="echo", reopen=gone)
    for call in (t.clear, t.clear, lambda: t.write("a"), lambda: t.query("b")):
        with pytest.raises(InstrumentLost, match="refused"):
            bounded(call)
    assert t.timeout == pytest.approx(TIMEOUT_S)
    t.close()
