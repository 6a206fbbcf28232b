"""The test links' timeouts (`served_rig.TimeoutOnlyWhereFaked`): a read's own timeout, short
where the proxy made up the reply, is not left for the reopen that follows it."""

from __future__ import annotations

from served_rig import FAKED_TIMEOUT_S, TimeoutOnlyWhereFaked

from smm_daq.clock import VirtualClock


class _Transport:
    timeout = 5.0

    def read(self) -> str:
        return "1=5"


class _Proxy:
    pass


def test_a_reopen_after_a_made_up_reply_waits_the_links_own_timeout() -> None:
    """After a reply the proxy made up (read within FAKED_TIMEOUT_S), the driver's retry
    reconnects on the transport's timeout: it was left at 0.1 s, and on a loaded machine the
    reconnect failed ("could not be reopened within 0.1 s"), not the reply."""
    inner = _Transport()
    link = TimeoutOnlyWhereFaked(inner, _Proxy(), VirtualClock())  # type: ignore[arg-type]
    assert link.read() == "1=5"  # no connection known: read within FAKED_TIMEOUT_S
    assert FAKED_TIMEOUT_S < 5.0
    assert inner.timeout == 5.0
