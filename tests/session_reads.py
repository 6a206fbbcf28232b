"""Waiting, in a test, for the Session tab's read of a session file's entries (made off the
window's thread) to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

WAIT_MS = 60_000


def read_to_end(browser, qtbot, start: Callable[[], int | None]) -> bool:
    """Start a read of `browser`'s entries with `start` (its `open_file` or `refresh`, which
    return the read's token) and wait for that read to end: whether its entries are shown
    (else its `message` says why)."""
    ended: dict[int, bool] = {}

    def read(token: int, _entries: object) -> None:
        ended[token] = True

    def failed(token: int, _text: str) -> None:
        ended[token] = False

    browser.entriesRead.connect(read)
    browser.entriesFailed.connect(failed)
    try:
        token = start()
        assert token is not None, "no session file open to read"
        qtbot.waitUntil(lambda: token in ended, timeout=WAIT_MS)
    finally:
        browser.entriesRead.disconnect(read)
        browser.entriesFailed.disconnect(failed)
    return ended[token]


def opened(browser, qtbot, path: Path) -> bool:
    """`browser.open_file(path)`, its entries read: whether they are shown."""
    return read_to_end(browser, qtbot, lambda: browser.open_file(path))


def refreshed(browser, qtbot) -> bool:
    """`browser.refresh()`, the entries read again: whether they are shown."""
    return read_to_end(browser, qtbot, browser.refresh)


def entries_settled(browser, qtbot) -> None:
    """Wait until no read of the entries is in hand (the latest one's result shown)."""
    qtbot.waitUntil(lambda: browser.reading is None, timeout=WAIT_MS)


def compared(browser, qtbot) -> dict:
    """Show the Compare tab, as a user does to compare maps (its views are built, and their
    maps read, only then), and wait until its maps are read: its views by role."""
    browser.views.setCurrentWidget(browser.compare)
    qtbot.waitUntil(lambda: browser.reading is None and browser.reader.pending == 0,
                    timeout=WAIT_MS)
    return browser.compare.views
