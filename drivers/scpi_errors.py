"""A SCPI instrument's error queue (`SYST:ERR?`), as the drivers read it at connect.

Each connect reads the queue before `*CLS` empties it, so what an earlier program left there
(a supply fault, a refused command) is kept and reported (`errors_at_connect`), neither taken
for one of our commands nor cleared unseen. That read is a diagnostic and never fails a
connect: `smm-daq safe` connects this way to ramp the field down. Reading an entry removes
it, so a reply lost or garbled is not asked again (`ReplyUnknown`: the query is destructive):
what is left is said unknown, as the last entry, and the connect goes on.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.link import parse_int, shown
from smm_daq.errors import ProtocolError, ReplyUnknown

ERROR_QUEUE_READS = 20  # SYST:ERR? at most this often in a row (a BOP keeps 16, a 34970A 10)
UNKNOWN = "unknown (a reply to SYST:ERR? was lost)"


def parse_scpi_error(reply: str) -> tuple[int, str]:
    """'-222,"Data out of range"' -> (-222, 'Data out of range')."""
    code, sep, text = reply.partition(",")
    if not sep:
        raise ProtocolError(f"expected 'code,\"message\"' from SYST:ERR?, got {shown(reply)}")
    return parse_int(code, what="SCPI error code"), text.strip().strip('"')


def errors_found(ask: Callable[[], tuple[int, str]]) -> list[str]:
    """The queued errors ('<code> <message>'), oldest first, `ask` sending one `SYST:ERR?`
    (destructive) and parsing its reply; a reply lost or garbled ends the list with
    `UNKNOWN` (asking again could spend a timeout each time, and would skip the entry lost)."""
    errors = []
    for _ in range(ERROR_QUEUE_READS):
        try:
            code, text = ask()
        except ReplyUnknown:
            return [*errors, UNKNOWN]
        if code == 0:
            break
        errors.append(f"{code} {text}")
    return errors
