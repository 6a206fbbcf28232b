"""A host name's addresses, looked up within a deadline.

The system resolver (`socket.getaddrinfo`) cannot be told to stop: a name whose DNS server
does not answer waits its retries, seconds to tens of seconds, whatever the link's timeout. So a
name is looked up in a thread of its own, and given up at the deadline (the thread is left to
end by itself, its answer dropped). An address given as such (IPv4 or IPv6) is read at once,
with no lookup and no thread.
"""

from __future__ import annotations

import socket
import threading

Address = tuple[int, int, int, str, tuple[object, ...]]  # getaddrinfo's: family, ..., sockaddr


def stream_addresses(host: str | None, port: int, seconds: float) -> list[Address]:
    """The TCP addresses of `host` (a name or an address; None: this machine's loopback) at
    `port`, found within `seconds`; `TimeoutError` naming the host past them, `OSError`
    (`socket.gaierror`) for a name that has none."""
    try:
        return _lookup(host, port, socket.AI_NUMERICHOST)
    except socket.gaierror:  # a name, not an address: the resolver's
        pass
    done = threading.Event()
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["addresses"] = _lookup(host, port, 0)
        except BaseException as exc:  # handed to the waiting call
            out["error"] = exc
        done.set()

    threading.Thread(target=run, name="host lookup", daemon=True).start()
    if not done.wait(max(0.0, seconds)):
        raise TimeoutError(f"could not look up {host!r} within {seconds:g} s (the name "
                           "server does not answer; give the adapter's IP address)")
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["addresses"]  # type: ignore[return-value]


def _lookup(host: str | None, port: int, flags: int) -> list[Address]:
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, flags)
