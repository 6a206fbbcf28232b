"""An entry written over another of its name (`--overwrite`) is swapped in so that a writer
killed at any step leaves the old entry or the new one whole, never neither: for the next
reader (which repairs a file a killed writer left marked), `info`, `repair` and the next
writer of the name. Each kill point is every change the writer makes to the file once the
new entry is laid out, counted as it runs, so a step added later is killed at too."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.optical import ImageRegistration
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage import nexus
from smm_daq.storage.h5file import marked_open, repair
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import check_new_entry, list_entries, read_map, write_map_entry
from smm_daq.storage.optical_entry import write_optical_entry
from smm_daq.storage.scan_entry import ScanEntryWriter, check_new_scan
from smm_daq.storage.staging import STAGING
from smm_daq.storage.superblock import clear_open_mark

OLD, NEW = np.full((3, 4), 1e-6), np.full((3, 4), 2e-6)

# Run as `python -c KILLER FILE K`: overwrites entry 'product' of FILE and, at the K-th change
# to the file after the new entry is laid out, flushes what was changed and is killed (-9);
# exits 3 when the write made fewer changes than K.
KILLER = textwrap.dedent(
    """
    import os, sys
    import h5py, numpy as np
    from smm_daq.storage import nexus
    from smm_daq.storage.mapdata import MapData

    at, seen, armed = int(sys.argv[2]), [0], [False]
    laid_out = nexus.write_process

    def arm(*args, **kw):
        laid_out(*args, **kw)
        armed[0] = True

    def dying(cls, method):
        real = getattr(cls, method)

        def change(self, *args):
            if armed[0]:
                if seen[0] == at:
                    ident = self.id if isinstance(self, h5py.Group) else self._id
                    h5py.h5f.flush(ident)
                    os.kill(os.getpid(), 9)
                seen[0] += 1
            return real(self, *args)

        setattr(cls, method, change)

    for cls, method in ((h5py.Group, "move"), (h5py.Group, "__delitem__"),
                        (h5py.AttributeManager, "__setitem__"),
                        (h5py.AttributeManager, "__delitem__")):
        dying(cls, method)
    nexus.write_process = arm
    m = MapData(np.full((3, 4), 2e-6), np.arange(4.0), np.arange(3.0), name="product")
    nexus.write_map_entry(sys.argv[1], m, kind="induced", overwrite=True)
    sys.exit(3)
    """
)


def _session(path: Path) -> None:
    write_map_entry(path, MapData(np.arange(12.0).reshape(3, 4) * 1e-7, np.arange(4.0),
                                  np.arange(3.0), name="other"), kind="scan")
    write_map_entry(path, MapData(OLD, np.arange(4.0), np.arange(3.0), name="product"),
                    kind="induced")


def _dump(path: Path, name: str) -> dict[str, object]:
    """Every dataset's bytes and every attribute under entry `name`."""
    found: dict[str, object] = {}

    def visit(key: str, obj: h5py.HLObject) -> None:
        found[key] = {k: np.asarray(v).tobytes() for k, v in obj.attrs.items()}
        if isinstance(obj, h5py.Dataset):
            found[key + "[]"] = np.asarray(obj[()]).tobytes()

    with h5py.File(path, "r") as f:
        visit("", f[name])
        f[name].visititems(visit)
    return found


def _killed_at(tmp_path: Path, at: int) -> tuple[Path, dict[str, object]] | None:
    """A session whose overwrite of 'product' was killed at its `at`-th change and its entry
    'other' as it was (`_dump`), or None when the overwrite makes fewer changes."""
    path = tmp_path / f"killed{at}.h5"
    _session(path)
    other = _dump(path, "other")
    proc = subprocess.run([sys.executable, "-c", KILLER, str(path), str(at)], check=False)
    if proc.returncode == 3:
        return None
    assert proc.returncode == -9
    assert marked_open(path)
    return path, other


def _whole(path: Path, other: dict[str, object]) -> None:
    """The file as an overwrite leaves it: 'product' the old or the new map, whole; no
    temporary group left; 'other' as it was."""
    assert [e.name for e in list_entries(path)] == ["other", "product"]
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["other", "product"]
    bz = read_map(path, "product").bz
    assert np.array_equal(bz, OLD) or np.array_equal(bz, NEW)
    assert _dump(path, "other") == other


def test_an_overwrite_killed_at_any_step_leaves_the_old_entry_or_the_new_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    killed = 0
    while (left := _killed_at(tmp_path, killed)) is not None:
        path, other = left
        # the next writer of the name, the mark cleared as `h5clear -s` would (no repair)
        writer = path.with_name(f"writer{killed}.h5")
        shutil.copyfile(path, writer)
        clear_open_mark(writer)
        # `info` on that file: 'product' listed, or named as a replacement cut off
        assert main(["info", str(writer)]) == 0
        listed = capsys.readouterr().out
        assert "product  [induced" in listed or (
            "unfinished: entry 'product' was cut off while replaced" in listed)
        assert "Traceback" not in listed
        # `repair` on another copy of it
        repaired = path.with_name(f"repaired{killed}.h5")
        shutil.copyfile(writer, repaired)
        repair(repaired)
        _whole(repaired, other)
        # the next reader of the killed writer's own file repairs it on the way
        _whole(path, other)
        # the next write of the name: the leftover settled first, then written over
        write_map_entry(writer, MapData(np.full((3, 4), 3e-6), np.arange(4.0),
                                        np.arange(3.0), name="product"),
                        kind="induced", overwrite=True)
        with h5py.File(writer, "r") as f:
            assert sorted(f) == ["other", "product"]
        np.testing.assert_array_equal(read_map(writer, "product").bz, 3e-6)
        assert _dump(writer, "other") == other
        killed += 1
    assert killed >= 4  # mark, move aside, move in, unmark, delete the old one (and default)


class _Killed(BaseException):
    """A writer interrupted at a point (Ctrl-C): the file is closed with what was written."""


def test_an_overwrite_interrupted_at_any_step_leaves_the_file_whole_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or any exception) part-way through the swap settles it before the file is
    closed: readers that do not write (a file not marked open) see the entry at once."""
    at, seen, armed, overwriting = [0], [0], [False], [False]
    laid_out = nexus.write_process

    def arm(*args: object, **kw: object) -> None:
        laid_out(*args, **kw)
        armed[0] = overwriting[0]

    def dying(cls: type, method: str) -> None:
        real = getattr(cls, method)

        def change(self: object, *args: object) -> object:
            if armed[0]:
                if seen[0] == at[0]:
                    armed[0] = False
                    raise _Killed
                seen[0] += 1
            return real(self, *args)

        monkeypatch.setattr(cls, method, change)

    for cls, method in ((h5py.Group, "move"), (h5py.Group, "__delitem__"),
                        (h5py.AttributeManager, "__setitem__"),
                        (h5py.AttributeManager, "__delitem__")):
        dying(cls, method)
    monkeypatch.setattr(nexus, "write_process", arm)
    while True:
        path = tmp_path / f"s{at[0]}.h5"
        _session(path)
        other = _dump(path, "other")
        seen[0], overwriting[0] = 0, True
        try:
            write_map_entry(path, MapData(NEW, np.arange(4.0), np.arange(3.0),
                                          name="product"), kind="induced", overwrite=True)
        except _Killed:
            overwriting[0] = False
            assert not marked_open(path)
            _whole(path, other)
            at[0] += 1
            continue
        break
    assert at[0] >= 4


def test_repair_of_a_file_holding_a_link_to_nothing_keeps_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Looking for unfinished entries and replacements, repair passes over another
    program's soft link to nothing (it was an AttributeError traceback)."""
    path = tmp_path / "s.h5"
    _session(path)
    with h5py.File(path, "a") as f:
        f["theirs"] = h5py.SoftLink("/nowhere")
    assert main(["repair", str(path)]) == 0
    assert "left as it is" in capsys.readouterr().out  # intact: nothing to rewrite
    assert repair(path, only_ours=True).left_out == []  # and rebuilt, as one left open is
    with h5py.File(path, "r") as f:
        assert f.get("theirs", getlink=True).path == "/nowhere"
        assert sorted(f) == ["other", "product", "theirs"]


def test_an_image_stored_under_the_name_of_a_replacement_cut_off_takes_nothing_of_it(
        tmp_path: Path) -> None:
    """Killed with the old entry aside and the new one not yet moved in, the mark cleared as
    `h5clear -s` would: storing a registered image under that name settles the replacement
    first, so the name is taken by the whole new entry. It was written into the free name,
    and the next writer of the name then took the image for the swapped-in entry, deleted
    the old one aside and the new one staged: both gone."""
    left = _killed_at(tmp_path, 2)  # the old entry marked and moved aside
    assert left is not None
    path, other = left
    clear_open_mark(path)
    with h5py.File(path, "r") as f:
        assert "product" not in f and ".product.smm_daq_replaced" in f
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    reg = ImageRegistration(np.array([[1e-6, 0, 0], [0, 1e-6, 0]]), np.zeros((3, 2)),
                            np.zeros((3, 2)), 0.0)
    with pytest.raises(InputError, match="entry 'product' already exists"):
        write_optical_entry(path, "product", image, reg)
    _whole(path, other)
    np.testing.assert_array_equal(read_map(path, "product").bz, NEW)


def test_the_early_checks_find_a_name_as_the_writers_leave_it(tmp_path: Path) -> None:
    """On a file not marked open, the checks made before any work (check_new_scan before the
    rig connects, check_new_entry before an analysis) judge the name as the writers find it
    once they have cleared what a killed writer left: an entry still marked as being written
    at its own name is cleared (they refused it as taken), and a replacement cut off with
    the old entry aside is settled into the name (they let it pass, and the writer refused
    only after the work)."""
    path = tmp_path / "marked.h5"
    _session(path)
    with h5py.File(path, "a") as f:  # killed between the move in and the mark's removal
        f["product"].attrs[STAGING] = 1
    check_new_scan(path, "product")
    check_new_entry(path, "product", (), overwrite=False)
    ScanEntryWriter.create(path, name="product", title="t", x=np.arange(4.0) * 1e-6,
                           y=np.arange(3.0) * 1e-6, field=np.zeros(3), height=1e-4,
                           plan_text="{}", profile=load_profile(), snapshot={})
    assert [e.kind for e in list_entries(path) if e.name == "product"] == ["scan"]

    left = _killed_at(tmp_path, 2)  # the old entry aside, the new one staged
    assert left is not None
    aside = left[0]
    clear_open_mark(aside)
    for check in (lambda: check_new_scan(aside, "product"),
                  lambda: check_new_entry(aside, "product", (), overwrite=False)):
        with pytest.raises(InputError, match="entry 'product' already exists"):
            check()
    check_new_entry(aside, "product", (), overwrite=True)  # the settled entry a product
    with pytest.raises(InputError, match="entry 'product' already exists"):
        write_map_entry(aside, MapData(OLD, np.arange(4.0), np.arange(3.0), name="product"),
                        kind="induced")


def test_an_overwrite_cut_off_before_the_old_entry_was_marked_is_told_as_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Killed before the old entry was marked: the new entry was cut off and the old one is
    whole under its name. The reader that repairs the file, `info` and `repair` say so; they
    said the entry was not in the file and writing it again made it anew."""
    left = _killed_at(tmp_path, 0)
    assert left is not None
    path, other = left
    cleared = path.with_name("cleared.h5")
    shutil.copyfile(path, cleared)
    clear_open_mark(cleared)
    assert main(["info", str(cleared)]) == 0
    listed = capsys.readouterr().out
    assert "product  [induced" in listed
    assert ("unfinished: an overwrite of entry 'product' was cut off while written (its "
            "writer killed): 'product' is as it was before it, whole" in listed)
    assert "not in the file" not in listed
    assert main(["repair", str(cleared)]) == 0
    out = capsys.readouterr().out
    assert "left out an overwrite of 'product' ('product' kept as it was)" in out
    assert "makes it anew" not in out
    _whole(cleared, other)
    np.testing.assert_array_equal(read_map(cleared, "product").bz, OLD)
    with caplog.at_level("WARNING", logger="smm_daq.storage.h5file"):
        _whole(path, other)  # the next reader repairs the killed writer's file
    assert (f"{path}: left out an overwrite of entry 'product', cut off while written (its "
            "writer killed); entry 'product' is as it was before it, whole" in caplog.text)
    assert "makes it anew" not in caplog.text
    np.testing.assert_array_equal(read_map(path, "product").bz, OLD)


def test_the_early_check_refuses_a_foreign_group_where_the_old_entry_would_wait(
        tmp_path: Path) -> None:
    """As the writer does, before the work (it was refused only once the product was made)."""
    path = tmp_path / "s.h5"
    _session(path)
    with h5py.File(path, "a") as f:
        f.create_group(".product.smm_daq_replaced")
    before = path.read_bytes()
    for write in (lambda: check_new_entry(path, "product", (), overwrite=True),
                  lambda: write_map_entry(path, MapData(NEW, np.arange(4.0), np.arange(3.0),
                                                        name="product"),
                                          kind="induced", overwrite=True)):
        with pytest.raises(InputError, match=r"'\.product\.smm_daq_replaced', the name "):
            write()
    assert path.read_bytes() == before


@pytest.mark.parametrize("target", ["/nowhere", "/other"])
def test_a_link_where_a_replaced_entry_belongs_is_refused_and_the_old_entry_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    """The old entry aside, marked, and a soft link under its name (to nothing, or to another
    entry): `info` names the link, repair and the next writer refuse naming it, and change
    nothing (info said writing the entry again or repair settled it). Finishing
    the swap read the link as the new entry: a KeyError traceback for a link to nothing, and
    the old entry deleted for a link to an entry. Once the link is gone, repair puts the old
    entry back."""
    path = tmp_path / "s.h5"
    _session(path)
    with h5py.File(path, "a") as f:
        f.move("product", ".product.smm_daq_replaced")
        f[".product.smm_daq_replaced"].attrs["smm_daq_replaced"] = 1
        f["product"] = h5py.SoftLink(target)
    before = path.read_bytes()
    assert main(["info", str(path)]) == 0
    listed = capsys.readouterr().out
    assert (f"the old entry waits, whole, at '.product.smm_daq_replaced', and 'product' is a "
            f"soft link to '{target}'") in listed and "writing it again" not in listed
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"'product' is a soft link to '{target}'" in err and "Traceback" not in err
    assert ("the old entry waits, whole, at '.product.smm_daq_replaced'" in err
            and "delete or rename the link" in err)
    with pytest.raises(InputError, match=f"'product' is a soft link to '{target}'"):
        write_map_entry(path, MapData(NEW, np.arange(4.0), np.arange(3.0), name="product"),
                        kind="induced", overwrite=True)
    assert path.read_bytes() == before
    with h5py.File(path, "a") as f:
        del f["product"]
    assert main(["repair", str(path)]) == 0
    np.testing.assert_array_equal(read_map(path, "product").bz, OLD)


def test_an_entry_missing_from_a_file_holding_a_link_to_nothing_is_named_missing(
        tmp_path: Path) -> None:
    """Another program's soft link to nothing, asked for or beside the entry asked for: the
    entry is not there, said as such with the entries there are; it was 'cannot be read
    (KeyError ...): the file is corrupt'."""
    path = tmp_path / "s.h5"
    _session(path)
    with h5py.File(path, "a") as f:
        f["theirs"] = h5py.SoftLink("/nowhere")
    for name, what in (("absent", ""),
                       ("theirs", r" \('theirs' is a soft link to '/nowhere', which does not "
                                  r"exist\)")):
        with pytest.raises(InputError, match=f"no entry '{name}'{what}; expected one of "
                                             "'other', 'product'$"):
            read_map(path, name)
