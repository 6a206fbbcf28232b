"""Patches on a simulated rig's PI stage link transport for the make-safe stop tests: writes
noted (some not taken), queries noted, and the stage's share of the path ended at a command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.pi_gcs import STOP_ALL
from smm_daq.errors import InstrumentTimeout
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.safe_bound import stage_share_s


def writes_noted(transport: Any,
                 not_taken: Callable[[list[str], str], bool] = lambda _sent, _message: False,
                 ) -> list[str]:
    """Patch `transport.write` to note each message sent (in the list returned); a message for
    which `not_taken(sent, message)` holds (`sent` already noting it) times out unwritten."""
    sent: list[str] = []
    write = transport.write

    def noted(message: str) -> None:
        sent.append(message)
        if not_taken(sent, message):
            raise InstrumentTimeout("could not send within 1 s", instrument="stage")
        write(message)

    transport.write = noted
    return sent


def first_stop_not_taken(sent: list[str], message: str) -> bool:
    """For `writes_noted`: the stop's first write times out."""
    return message == STOP_ALL and sent.count(STOP_ALL) == 1


def queries_noted(transport: Any) -> list[tuple[str, str]]:
    """Patch `transport.query` to note each exchange, message and reply, in the list returned."""
    exchanged: list[tuple[str, str]] = []
    query = transport.query

    def noted(message: str) -> str:
        exchanged.append((message, reply := query(message)))
        return reply

    transport.query = noted
    return exchanged


def share_ends_after(rig: Any, profile: Profile, command: str) -> list[bool]:
    """Patch the stage's transport so that the stage's share of the make-safe path ends just
    as `command` is first written; the list returned is non-empty once it has."""
    transport: Any = rig.stage.link.transport
    write = transport.write
    passed: list[bool] = []

    def share_ends(message: str) -> None:
        write(message)
        if message == command and not passed:
            passed.append(True)
            rig.clock.advance(stage_share_s(profile) + 1.0)

    transport.write = share_ends
    return passed


def window_stop_exchanges(rig: Any) -> list[tuple[str, str]]:
    """The exchanges of a window's Stop of the stage (no make-safe path)."""
    exchanged = queries_noted(rig.stage.link.transport)
    rig.stage.stop()
    return exchanged

