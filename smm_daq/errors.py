"""The exceptions every part of smm-daq raises, so the command line can tell them apart.

`InputError` is the user's to fix (a profile, recipe, grain file, data file or command-line
value): the command line prints its message and exits with code 2, without a traceback.
`InstrumentError` and its subclasses come from instruments; the sequencer makes the rig safe
before letting them reach the user. `Note`, a warning's category, is said as a note.
"""

from __future__ import annotations

import threading


class SmmError(Exception):
    """Base of every error smm-daq raises on purpose."""


class Note(UserWarning):
    """Said as a warning is (by every path that says one, the warning filters deciding), but
    a note, not a fault: the default, expected outcome told, so that nothing is done without
    a word. The commands print it as 'smm-daq: note: MESSAGE', the window as a note."""


class InputError(SmmError):
    """Bad input: names the file, key or line, the value, and what was expected."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class InstrumentError(SmmError):
    """An instrument refused, failed or reported an error."""

    # true on an error a stage's stop raised once its stop command went out (its check failed
    # or was refused): the stop was sent, not confirmed, which "not stopped" would belie
    stop_sent = False

    def __init__(self, message: str, *, instrument: str | None = None) -> None:
        self.instrument = instrument
        super().__init__(f"{instrument}: {message}" if instrument else message)


class InstrumentTimeout(InstrumentError):
    """No (complete) reply within the timeout. Transient: may be retried after a device clear."""


class ProtocolError(InstrumentError):
    """A reply that does not parse as the protocol says. Never read as a silent zero."""


class InstrumentLost(InstrumentError):
    """The connection is gone (disconnect, closed socket, retries exhausted)."""


class StillDropping(InstrumentError):
    """An exchange refused at once, nothing sent: the rest of a reply cut short is being
    dropped on a thread of its own (a serial line drained until quiet: `Link._drop_rest`, a
    stage's reply or a lock-in's buffer piece). A caller that no Stop waits behind (a scan's
    worker, a recipe's step: `drop_wait.once_dropped`) asks again once `wait` says the drop
    has ended; the window's poll asks again at its next reading; the window's own buttons are
    the operator's to press again."""

    def __init__(self, message: str, *, instrument: str | None = None,
                 drop: threading.Thread | None = None) -> None:
        super().__init__(message, instrument=instrument)
        self._drop = drop

    @property
    def drop(self) -> threading.Thread | None:
        """The drop under way, if known."""
        return self._drop

    def wait(self, seconds: float) -> bool:
        """Whether the drop has ended, waited for `seconds` at most."""
        if self._drop is None:
            return True
        self._drop.join(seconds)
        return not self._drop.is_alive()


class ReplyUnknown(InstrumentLost):
    """A query that clears what it reports (an error queue, an overload latch) had its reply
    lost or garbled: it is not asked again, so what it would have reported is unknown."""


class StageUnreferenced(InstrumentError):
    """Stage axes with incremental sensors are not referenced, so they refuse to move, and
    connecting was not to reference them. `axes` names them; the message says what to do
    before a scan, so a command that never references (`smm-daq safe`) words its own."""

    def __init__(self, message: str, *, axes: list[str], instrument: str | None = None) -> None:
        self.axes = list(axes)
        super().__init__(message, instrument=instrument)


class RangeError(InstrumentError, ValueError):
    """A setting outside what the instrument or the profile allows; nothing was sent."""


class ConnectStopped(SmmError):
    """The operator stopped a connect: a move it had started (a reference move), raised only
    once the driver has stopped it (its stop checked), or before the move started, the move
    stopped short; or, where no such move ran, the connect itself, once every instrument had
    connected (the rig then made safe and closed, its stage stopped). The connect failed."""

    def __init__(self, message: str, *, instrument: str | None = None) -> None:
        self.instrument = instrument
        super().__init__(f"{instrument}: {message}" if instrument else message)


class RampStopped(SmmError):
    """A field's ramp was stopped between two steps (an abort: Stop, Ctrl-C, a termination
    signal): the currents are left where the last step set them, for the caller to make the
    rig safe from there rather than ramp on to the field asked for."""

    def __init__(self, message: str, *, safe_problems: list[str] | None = None) -> None:
        # what making the rig safe from where the ramp stopped could not do ([]: the rig is
        # safe); None where that was left to the caller
        self.safe_problems = safe_problems
        super().__init__(message)


class MoveStopped(SmmError):
    """A stage's move was stopped before it arrived (an abort: Stop, Ctrl-C, a termination
    signal, asked between the slices of the wait for it): raised once every axis has been
    stopped (the stop checked), the stage left where it stopped, short of the target."""

    def __init__(self, message: str, *, instrument: str | None = None) -> None:
        self.instrument = instrument
        super().__init__(f"{instrument}: {message}" if instrument else message)


class ReadStopped(SmmError):
    """A read of many exchanges (a lock-in's buffer, read in pieces) was stopped between two of
    them (an abort: Stop, Ctrl-C, a termination signal): nothing more is asked, and what was
    read is dropped."""

    def __init__(self, message: str, *, instrument: str | None = None) -> None:
        self.instrument = instrument
        super().__init__(f"{instrument}: {message}" if instrument else message)


class StorageError(SmmError):
    """A session file could not be written (a full disk, a file size limit, the file gone);
    what it held before the write is kept."""


class SafetyError(SmmError):
    """The rig could not be brought to its safe state; the operator must check it."""


class WriteStalled(SmmError):
    """A write to a session file has not returned (a stalled disk) once the rig was made safe:
    the program is to end without it (the write may hold h5py's lock for good, so a command
    ends at once, skipping the interpreter's finalization); the message says what was left
    unwritten and how the file is left."""
