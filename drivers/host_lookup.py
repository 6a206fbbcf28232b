"""A host name's addresses, looked up within a deadline.

The system resolver (`socket.getaddrinfo`) cannot be told to stop: a name whose DNS server
does not answer waits its retries, seconds to tens of seconds, whatever the link's timeout. So a
name is looked up in a thread of its own, and given up at the deadline (the thread is left to
end by itself, its answer dropped). One lookup of a name is under way at a time: a caller that
asks for a name already being looked up (the instruments panel polls its links every half
second; several instruments may sit behind one adapter) waits for that lookup's answer, rather
than starting a thread more that the resolver would hold as long. An address given as such
(IPv4 or IPv6) is read at once, with no lookup and no thread.
"""

from __future__ import annotations

import copy
import socket
import threading

Address = tuple[int, int, int, str, tuple[object, ...]]  # getaddrinfo's: family, ..., sockaddr


class _Lookup:
    """One name's lookup under way, and its answer (addresses at port 0, or the error)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.done = threading.Event()
        self.addresses: list[Address] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.addresses = _lookup(self.host, None, 0)
        except BaseException as exc:  # handed to the waiting calls
            self.error = exc
        finally:
            with _UNDER_WAY_LOCK:
                if _UNDER_WAY.get(self.host) is self:
                    del _UNDER_WAY[self.host]
            self.done.set()


_UNDER_WAY: dict[str, _Lookup] = {}
_UNDER_WAY_LOCK = threading.Lock()


def stream_addresses(host: str | None, port: int, seconds: float) -> list[Address]:
    """The TCP addresses of `host` (a name or an address; None: this machine's loopback) at
    `port`, found within `seconds`; `TimeoutError` naming the host past them, `OSError`
    (`socket.gaierror`) for a name that has none."""
    try:
        return _lookup(host, port, socket.AI_NUMERICHOST)
    except socket.gaierror:  # a name, not an address: the resolver's
        pass
    assert host is not None  # None is read as loopback above
    with _UNDER_WAY_LOCK:
        lookup = _UNDER_WAY.get(host)
        if lookup is None:
            lookup = _Lookup(host)
            threading.Thread(target=lookup.run, name="host lookup", daemon=True).start()
            # shared once under way: a thread that could not start leaves none to wait for
            _UNDER_WAY[host] = lookup
    if not lookup.done.wait(max(0.0, seconds)):
        raise TimeoutError(f"could not look up {host!r} within {seconds:g} s (the name "
                           "server does not answer; give the adapter's IP address)")
    if lookup.error is not None:
        raise copy.copy(lookup.error)  # each waiting call raises one of its own
    return [(family, kind, proto, name, _at_port(where, port))
            for family, kind, proto, name, where in lookup.addresses]


def _at_port(where: tuple[object, ...], port: int) -> tuple[object, ...]:
    """A socket address (IPv4's host and port, IPv6's with its flow and scope) at `port`."""
    return (where[0], port, *where[2:])


def _lookup(host: str | None, port: int | None, flags: int) -> list[Address]:
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, flags)
