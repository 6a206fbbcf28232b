"""The window remembers which file each path it read names (`note_resolved`) so that it can
tell, without asking the disk, that a link and its target are one file. A window open for
days reads many files: the memory is bounded, and the files in use keep their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui import entry_reads
from gui.entry_reads import RESOLVED_KEPT, file_key, note_resolved, same_file


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry_reads, "_resolved", type(entry_reads._resolved)())


def test_many_files_read_keep_a_bounded_memory_and_the_files_in_use(tmp_path: Path) -> None:
    target = tmp_path / "session.h5"
    target.write_bytes(b"")
    link = tmp_path / "link.h5"
    link.symlink_to(target)
    note_resolved(link)
    note_resolved(target)
    others = [tmp_path / f"other-{i}.h5" for i in range(3 * RESOLVED_KEPT)]
    for i, other in enumerate(others):
        other.write_bytes(b"")
        note_resolved(other)
        if i % 50 == 0:  # the window compares its open file on each change
            assert same_file(link, target)
    assert len(entry_reads._resolved) == RESOLVED_KEPT
    assert same_file(link, target)  # in use: kept
    assert file_key(others[-1]) == Path(note_resolved(others[-1]))  # read last: kept
    assert others[0].absolute() not in entry_reads._resolved  # not used since: forgotten
    assert file_key(others[0]) == others[0].absolute()  # its own key again
    note_resolved(others[0])  # read again: known again
    assert others[0].absolute() in entry_reads._resolved
    assert len(entry_reads._resolved) == RESOLVED_KEPT
