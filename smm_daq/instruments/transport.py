"""The byte-level link every driver talks through.

A pyvisa message-based resource already has this shape; a pyserial port, a TCP socket and the
in-process simulator emulators are wrapped to it. Drivers never see which one they have.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Transport(Protocol):
    """A message link: one command per `write`, one reply per `read`, both without terminator.

    `read` raises `smm_daq.errors.InstrumentTimeout` when no reply arrives within `timeout`
    seconds and `InstrumentLost` when the link is gone; `clear` is the device clear (IEEE 488.2
    SDC, or flushing buffers where the link has none).
    """

    timeout: float

    def write(self, message: str) -> None: ...

    def read(self) -> str: ...

    def query(self, message: str) -> str: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class BlockTransport(Transport, Protocol):
    """A transport that reads an IEEE 488.2 definite-length block (`#<n><length><bytes>`) by
    the length its header gives: one whose line reads would alter the block's bytes (a serial
    port's strips a line's trailing CR, which a block's data may end a line with).

    `read_block` returns the whole reply, a block byte for byte (one character per byte,
    latin-1) or, when the reply starts no block, the line it is; without the terminator.
    """

    def read_block(self) -> str: ...
