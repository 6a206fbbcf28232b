"""`smm-daq safe --from-file FILE --entry NAME` reads the profile stored with the scan, and
only that: an entry damaged elsewhere or of an earlier version still gives it, a writer
stalled amid a write to the file does not hold it up (`safe` is the way out), and what keeps
it from being read is said, naming the file and entry, exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest

from smm_daq.cli.main import main
from smm_daq.clock import VirtualClock
from smm_daq.storage import turns
from smm_daq.storage.h5file import marked_open


@pytest.fixture(scope="module")
def _scanned_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scanned") / "s.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "60,40", "--step-um", "20",
                 "--name", "s1", "--out", str(path)]) == 0
    return path


@pytest.fixture
def scanned(_scanned_once: Path, tmp_path: Path) -> Path:
    """A copy of a scanned file, each test's own."""
    path = tmp_path / "s.h5"
    shutil.copyfile(_scanned_once, path)
    return path


@pytest.fixture
def made_safe(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the rigs `safe` made safe, none opened."""
    names: list[str] = []
    monkeypatch.setattr("smm_daq.instruments.rig.make_rig_safe",
                        lambda profile: names.append(profile.name) or [])
    return names


def _safe(path: Path, entry: str = "s1") -> int:
    return main(["safe", "--from-file", str(path), "--entry", entry])


@pytest.mark.parametrize("key", ["recipe", "plan", "status", "profile_fingerprint",
                                 "data/line_done", "data"])
def test_an_entry_damaged_elsewhere_still_gives_its_profile(scanned: Path, made_safe: list[str],
                                                            key: str) -> None:
    with h5py.File(scanned, "a") as f:
        del f[f"s1/{key}"]
    assert _safe(scanned) == 0
    assert made_safe == ["smm-daq simulator"]


@pytest.mark.parametrize(("stored", "said"), [
    (None, "entry 's1': has no 'profile' text; expected the profile the scan started with"),
    (5, "entry 's1': has no 'profile' text; expected the profile the scan started with"),
    ("rig = [", "entry 's1': the profile stored with it cannot be used: "),
    ('[rig]\nname = "old"\nsince_removed = 1\n',
     "entry 's1': the profile stored with it cannot be used: "),
])
def test_a_profile_that_cannot_be_read_is_said_of_the_entry(
        scanned: Path, made_safe: list[str], capsys: pytest.CaptureFixture[str],
        stored: object, said: str) -> None:
    with h5py.File(scanned, "a") as f:
        del f["s1/profile"]
        if stored is not None:
            f["s1/profile"] = stored
    assert _safe(scanned) == 2
    err = capsys.readouterr().err
    assert f"{scanned}, {said}" in err, err
    assert "make the rig safe with `smm-daq safe --profile PROFILE`" in err, err
    assert made_safe == []


def test_another_programs_file_is_refused(tmp_path: Path, made_safe: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["s1/profile"] = "x"
        f["s1"].attrs["kind"] = "scan"
    assert _safe(path) == 2
    assert "is another program's HDF5 file, not an smm-daq session file" in \
        capsys.readouterr().err
    assert made_safe == []


def test_a_missing_entry_is_named_with_those_there_are(scanned: Path, made_safe: list[str],
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert _safe(scanned, "s2") == 2
    assert f"{scanned}: no entry 's2'; expected one of 's1'" in capsys.readouterr().err
    assert made_safe == []


STALLED_WRITER = textwrap.dedent(
    """
    import sys
    from smm_daq.storage.h5file import writing
    with writing(sys.argv[1]) as f:  # not in SWMR mode, as an entry is made
        f.flush()
        print("holding", flush=True)
        sys.stdin.readline()
    """
)


def test_a_writer_stalled_amid_a_write_does_not_hold_it_up(
        scanned: Path, made_safe: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A read that took its turn waited for the writer (60 s), then refused: the rig left
    as it was."""
    monkeypatch.setattr(turns, "CLOCK", VirtualClock())  # a wait for the writer ends at once
    child = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, str(scanned)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "holding\n"
        assert marked_open(scanned)
        assert _safe(scanned) == 0, capsys.readouterr().err
        assert made_safe == ["smm-daq simulator"]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(60)
    assert child.returncode == 0


@pytest.mark.parametrize("staged_too", [False, True])
def test_an_entry_its_writer_left_mid_swap_gives_its_profile(
        scanned: Path, made_safe: list[str], staged_too: bool) -> None:
    """Killed between moving the earlier entry aside and moving the new one in: no entry is
    under the name; the profile is the new one's, else the earlier one's."""
    from smm_daq.storage.staging import REPLACED, aside_name, staged_name

    with h5py.File(scanned, "a") as f:
        f["s1"].attrs[REPLACED] = 1
        f.move("s1", aside_name("s1"))
        if staged_too:
            f.copy(aside_name("s1"), staged_name("s1"))
            del f[staged_name("s1")].attrs[REPLACED]
            text = f[f"{staged_name('s1')}/profile"][()].decode()
            del f[f"{staged_name('s1')}/profile"]
            f[f"{staged_name('s1')}/profile"] = text.replace('name = "smm-daq simulator"',
                                                             'name = "new one"')
    assert _safe(scanned) == 0
    assert made_safe == ["new one" if staged_too else "smm-daq simulator"]


def test_a_file_its_writer_left_marked_open_is_read_as_it_is(
        scanned: Path, made_safe: list[str]) -> None:
    """The writer killed amid a write (kill -9, the case `safe` is for): the profile is read
    from the file as it lies, not first repaired (the whole file rewritten, the rig waiting
    for it; the user's file changed by a command that only makes the rig safe)."""
    child = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, str(scanned)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "holding\n"
    child.kill()
    child.wait(60)
    child.stdout.close()
    assert child.stdin is not None
    child.stdin.close()
    assert marked_open(scanned)
    before = scanned.read_bytes()
    assert _safe(scanned) == 0
    assert made_safe == ["smm-daq simulator"]
    assert scanned.read_bytes() == before
