"""Names in a session file that are not entries: a link at the file's top level (other NeXus
tools make them; h5py, silx and nexusformat show them as links), and what a writer killed
part-way left (groups marked as being written or replaced, an earlier release's staged
entry). `info` says what each is; every reader of an entry by name refuses it, saying what
it is and what to do; no writer follows a link into its target; a replacement left in a
state smm-daq never makes is refused, naming the objects, with the file unchanged."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_storage_earlier_staging import _leftover, _scans, _session, _subtract
from test_storage_replace import KILLER, _dump, _whole
from test_storage_replace import _session as replace_session

from smm_daq.acquisition.resumable import load_resumable
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage import nexus
from smm_daq.storage.nexus import list_entries, read_map, read_sensor_thickness
from smm_daq.storage.optical_entry import read_optical_entry
from smm_daq.storage.scan_entry import read_field_checks, read_scan_record

READERS: dict[str, Callable[[Path, str], object]] = {
    "read_map": read_map,
    "read_sensor_thickness": read_sensor_thickness,
    "read_scan_record": read_scan_record,
    "read_field_checks": read_field_checks,
    "load_resumable": load_resumable,
    "read_optical_entry": read_optical_entry,
}


def _with_product(tmp_path: Path) -> Path:
    path = _session(tmp_path)
    assert _subtract(path) == 0
    return path


def _mark(f: h5py.File, key: str, mark: str) -> None:
    f[key].attrs[f"smm_daq_{mark}"] = 1


def test_info_names_a_top_level_link_as_a_link_never_as_an_entry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _session(tmp_path)
    with h5py.File(path, "a") as f:
        f["alias"] = h5py.SoftLink("/rem")
        f["far"] = h5py.ExternalLink("other.h5", "/scan")
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 2 entries" in out
    assert "  alias  [" not in out and "  far  [" not in out
    assert ("not an entry: 'alias' is a soft link to '/rem': entry 'rem' under another name, "
            "not an entry of its own") in out
    assert "not an entry: 'far' is an external link to '/scan' in other.h5, not an entry" in out
    assert [e.name for e in list_entries(path)] == ["rem", "inf"]


@pytest.mark.parametrize("reader", READERS)
def test_a_link_to_an_entry_is_read_by_no_reader_which_names_the_entry(
        tmp_path: Path, reader: str) -> None:
    path = _session(tmp_path)
    with h5py.File(path, "a") as f:
        f["alias"] = h5py.SoftLink("/rem")
    with pytest.raises(InputError, match=r"'alias' is a soft link to '/rem', not an entry of "
                                         r"its own.*read entry 'rem' by its own name"):
        READERS[reader](path, "alias")


def test_no_writer_follows_a_link_into_its_target(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _with_product(tmp_path)
    with h5py.File(path, "a") as f:
        f["alias"] = h5py.SoftLink("/induced")
    before = path.read_bytes()
    assert main(["subtract", str(path), "--in-field", "inf", "--remanent", "rem", "--name",
                 "alias", "--no-register", "--overwrite"]) == 2
    assert main(["subtract", str(path), "--in-field", "alias", "--remanent", "rem", "--name",
                 "x", "--no-register"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "'alias'" in err
    assert path.read_bytes() == before


STATES: dict[str, tuple[Callable[[h5py.File], None], str, str]] = {
    # how the file is spoilt, the name asked for, and what the refusal says it is
    "being written, staged": (
        lambda f: (f.copy("induced", ".new.smm_daq_staging"),
                   _mark(f, ".new.smm_daq_staging", "staging")),
        ".new.smm_daq_staging", "is entry 'new' still marked as being written"),
    "being written, moved in": (
        lambda f: _mark(f, "induced", "staging"),
        "induced", "is entry 'induced' still marked as being written"),
    "replaced, aside": (
        lambda f: (f.copy("induced", ".induced.smm_daq_replaced"),
                   _mark(f, ".induced.smm_daq_replaced", "replaced")),
        ".induced.smm_daq_replaced", "is the old entry 'induced', waiting aside"),
    "replaced, at its name": (
        lambda f: _mark(f, "induced", "replaced"),
        "induced", "is the old entry 'induced', marked as being replaced"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("state", STATES)
def test_what_a_killed_writer_left_is_read_by_no_reader_which_says_repair_settles_it(
        tmp_path: Path, state: str, reader: str) -> None:
    path = _with_product(tmp_path)
    spoil, name, said = STATES[state]
    with h5py.File(path, "a") as f:
        spoil(f)
    with pytest.raises(InputError, match=f"{said}.*`smm-daq repair {path}` settles it"):
        READERS[reader](path, name)


@pytest.mark.parametrize("reader", READERS)
def test_an_earlier_releases_staged_entry_is_read_by_no_reader(tmp_path: Path, reader: str
                                                               ) -> None:
    path = _session(tmp_path)
    _leftover(path, "earlier")
    with pytest.raises(InputError, match=r"'\.earlier\.smm_daq_staging' is entry 'earlier' as "
                                         r"an earlier smm-daq wrote it.*smm-daq repair"):
        READERS[reader](path, ".earlier.smm_daq_staging")


def test_subtract_refuses_a_marked_entry_as_its_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _session(tmp_path)
    with h5py.File(path, "a") as f:
        _mark(f, "inf", "replaced")
    before = path.read_bytes()
    capsys.readouterr()
    assert _subtract(path) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "'inf' is the old entry 'inf', marked as being replaced" in err
    assert f"`smm-daq repair {path}` settles it" in err
    assert path.read_bytes() == before


NEVER_MADE: dict[str, tuple[Callable[[h5py.File], None], list[str]]] = {
    # how the file is spoilt, and the objects the refusal names
    "a second marked group aside": (
        lambda f: (f.copy("induced", ".induced.smm_daq_replaced"),
                   _mark(f, ".induced.smm_daq_replaced", "replaced"),
                   _mark(f, "induced", "replaced")),
        ["'induced' and '.induced.smm_daq_replaced' are both groups marked as the old entry"]),
    "a dataset aside": (
        lambda f: (f.copy("induced", ".induced.smm_daq_staging"),
                   _mark(f, ".induced.smm_daq_staging", "staging"),
                   _mark(f, "induced", "replaced"),
                   f.__setitem__(".induced.smm_daq_replaced", [1.0])),
        ["'.induced.smm_daq_replaced', where smm-daq moves entry 'induced' aside",
         "holds a dataset", "its successor waits at '.induced.smm_daq_staging'"]),
    "a group of another program's aside": (
        lambda f: (f.copy("induced", ".induced.smm_daq_staging"),
                   _mark(f, ".induced.smm_daq_staging", "staging"),
                   _mark(f, "induced", "replaced"),
                   f.create_group(".induced.smm_daq_replaced")),
        ["'.induced.smm_daq_replaced', where smm-daq moves entry 'induced' aside",
         "holds a group smm-daq did not write"]),
    "a dataset at the name, the old entry aside": (
        lambda f: (f.move("induced", ".induced.smm_daq_replaced"),
                   _mark(f, ".induced.smm_daq_replaced", "replaced"),
                   f.__setitem__("induced", [1.0])),
        ["'induced' holds a dataset, not the new entry smm-daq moved in",
         "at '.induced.smm_daq_replaced'"]),
}


@pytest.mark.parametrize("state", NEVER_MADE)
@pytest.mark.parametrize("command", ["write", "repair", "info"])
def test_a_replacement_in_a_state_smm_daq_never_makes_is_refused_naming_the_objects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str, command: str) -> None:
    path = _with_product(tmp_path)
    spoil, said = NEVER_MADE[state]
    with h5py.File(path, "a") as f:
        spoil(f)
    before = path.read_bytes()
    capsys.readouterr()
    argv = {"write": ["subtract", str(path), "--in-field", "inf", "--remanent", "rem",
                      "--name", "induced", "--no-register", "--overwrite"],
            "repair": ["repair", str(path)], "info": ["info", str(path)]}[command]
    assert main(argv) == (0 if command == "info" else 2)
    out, err = capsys.readouterr()
    told = out if command == "info" else err
    assert "Traceback" not in err and "Unable to move link" not in err
    for words in said:
        assert words in told
    assert "with an HDF5 tool (h5py, HDFView)" in told and "nothing was changed" in told
    assert path.read_bytes() == before


def test_an_earlier_releases_product_is_kept_until_its_successor_is_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed while the new entry is laid out (here stopped there): the earlier product is
    the entry, whole, under its name (the step its writer did not make); writing it again
    with --overwrite replaces it."""
    path = _session(tmp_path)
    _leftover(path, "induced")
    scans = _scans(path)

    def killed(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(nexus, "write_process", killed)
    assert _subtract(path) != 0
    assert [e.name for e in list_entries(path)] == ["rem", "inf", "induced"]
    np.testing.assert_array_equal(read_map(path, "induced").bz, np.ones((5, 6)) * 1e-7)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["induced", "inf", "rem"]
    monkeypatch.undo()
    assert _subtract(path, "--overwrite") == 0
    np.testing.assert_allclose(read_map(path, "induced").bz, 0.01 * 40e-6, rtol=1e-9)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["induced", "inf", "rem"]
    assert _scans(path) == scans


def test_repair_keeps_an_external_link_as_a_link(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Never the other file's data copied in, nor a traceback where that file is missing."""
    path = _session(tmp_path)
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other.create_dataset("x", data=[1.0, 2.0])
    with h5py.File(path, "a") as f:
        f["far"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
        f["gone"] = h5py.ExternalLink("missing.h5", "/x")
    scans = _scans(path)
    assert main(["repair", str(path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    with h5py.File(path, "r") as f:
        far, gone = f.get("far", getlink=True), f.get("gone", getlink=True)
        assert isinstance(far, h5py.ExternalLink) and far.path == "/x"
        assert far.filename == str(tmp_path / "other.h5")
        assert isinstance(gone, h5py.ExternalLink) and gone.filename == "missing.h5"
    assert _scans(path) == scans


def test_a_soft_link_round_in_a_loop_is_a_link_to_nothing_not_a_corrupt_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _session(tmp_path)
    with h5py.File(path, "a") as f:
        f["self"] = h5py.SoftLink("/self")
        f["through"] = h5py.SoftLink("/self/data")
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 2 entries" in out
    loop = "which leads round in a loop of links (HDF5 cannot follow it)"
    assert f"not an entry: 'self' is a soft link to '/self', {loop}" in out
    assert f"not an entry: 'through' is a soft link to '/self/data', {loop}" in out
    with pytest.raises(InputError, match=r"no entry 'self' \('self' is a soft link to '/self', "
                                         r"which leads round in a loop.*\); expected one of "
                                         r"'rem', 'inf'$"):
        read_map(path, "self")
    assert main(["repair", str(path)]) == 0
    assert "corrupt" not in capsys.readouterr().err
    with h5py.File(path, "r") as f:
        assert f.get("self", getlink=True).path == "/self"


def test_a_write_killed_at_any_swap_step_over_an_earlier_product_leaves_one_whole(
        tmp_path: Path) -> None:
    """An earlier release's staged product of the name (its writer killed before the move)
    and a new write of that name killed at each change once its entry is laid out: the next
    reader finds the earlier product or the new one, whole, under the name."""
    killed = 0
    while True:
        path = tmp_path / f"killed{killed}.h5"
        replace_session(path)
        with h5py.File(path, "a") as f:
            f.move("product", ".product.smm_daq_staging")  # unmarked: the earlier release's
        other = _dump(path, "other")
        proc = subprocess.run([sys.executable, "-c", KILLER, str(path), str(killed)],
                              check=False)
        if proc.returncode == 3:
            break
        assert proc.returncode == -9
        _whole(path, other)
        killed += 1
    assert killed >= 3  # moved in; marked, moved aside, moved in, mark off, deleted
