"""Work run in a thread of its own and waited for, bounded: a test that would wait for ever
fails instead of hanging."""

from __future__ import annotations

import threading
from collections.abc import Callable

JOIN_S = 60  # a thread that has not ended by then waits for ever: the test fails, never hangs


def ended(work: Callable[[], object], *,
          never_ended: str = "the work in its thread never ended") -> BaseException | None:
    """What `work`, run in a thread of its own, raised (None: nothing), once it ended; the
    test fails, saying `never_ended`, where it has not ended within JOIN_S."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            out.append(None)
        except BaseException as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(JOIN_S)
    assert not thread.is_alive(), never_ended
    return out[0]
