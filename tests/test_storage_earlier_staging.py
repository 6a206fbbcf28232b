"""A session file from a release before the being-written mark came off only after the move:
such a writer, killed between taking the mark off its staged entry and moving it in, left
the whole entry unmarked under `.NAME.smm_daq_staging`. The next write of NAME clears it
when it is certainly smm-daq's and holds nothing acquired (the new write supersedes that
earlier one, as it does a marked leftover); anything else under that name is refused with
a message saying what to do (exit 2), the file unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.h5file import writing
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import check_new_entry, list_entries, read_map, write_map_entry
from smm_daq.storage.scan_entry import check_new_scan
from smm_daq.storage.staging import clear_unfinished

TEXT = h5py.string_dtype("utf-8")
X, Y = np.arange(6) * 2e-6, np.arange(5) * 2e-6


def _leftover(path: Path, name: str, *, kind: str = "induced", program: str = "smm-daq",
              lines_done: int = 0, line_record: bool = True) -> None:
    """The group such a writer left, laid out with h5py as its write_map_entry (or, kind
    "scan", ScanEntryWriter.create) did: create_entry_core's NXentry under the staged name,
    the map (a scan's NaN but for `lines_done` lines, and its `line_done` record unless not
    `line_record`), an NXprocess, the mark taken off (`del entry.attrs[STAGING]`) and the
    move not made."""
    with h5py.File(path, "a", libver=("v110", "latest")) as f:
        g = f.create_group(f".{name}.smm_daq_staging")
        g.attrs["NX_class"] = "NXentry"
        g.attrs["smm_daq_staging"] = 1
        g.attrs["kind"] = kind
        g.attrs["sources"] = np.array(["inf", "rem"] if kind == "induced" else [], dtype=TEXT)
        g.attrs["default"] = "data"
        for key, value in (("title", "earlier"), ("start_time", "2026-12-04T18:00:00+00:00"),
                           ("end_time", "2026-12-04T18:00:00+00:00"),
                           ("status", "interrupted" if kind == "scan" else "finished")):
            g.create_dataset(key, data=value, dtype=TEXT)
        g.create_dataset("program_name", data=program, dtype=TEXT).attrs["version"] = "0.1.0"
        data = g.create_group("data")
        data.attrs.update(NX_class="NXdata", signal="Bz", y_indices=0, x_indices=1)
        data.attrs["axes"] = np.array(["y", "x"], dtype=TEXT)
        for key, value in (("x", X), ("y", Y)):
            data.create_dataset(key, data=value).attrs["units"] = "m"
        bz = np.full((len(Y), len(X)), np.nan) if kind == "scan" else np.ones((5, 6)) * 1e-7
        bz[:lines_done] = 1e-7
        data.create_dataset("Bz", data=bz).attrs["units"] = "T"
        if kind == "scan" and line_record:
            data.create_dataset("line_done", data=np.arange(len(Y)) < lines_done)
        elif kind != "scan":
            process = g.create_group("process")
            process.attrs["NX_class"] = "NXprocess"
            process.create_dataset("program", data=program, dtype=TEXT)
        sample = g.create_group("sample")
        sample.attrs["NX_class"] = "NXsample"
        sample.create_dataset("name", data="earlier", dtype=TEXT)
        del g.attrs["smm_daq_staging"]


def _session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    for name, field in (("rem", 0.0), ("inf", 40e-6)):
        write_map_entry(path, MapData(np.ones((5, 6)) * 1e-6 + field * 0.01, X, Y,
                                      applied_field=np.array([0, field, 0]), name=name,
                                      height=100e-6, sensor_size=(0.0, 0.0)), kind="scan")
    return path


def _subtract(path: Path, *more: str) -> int:
    return main(["subtract", str(path), "--in-field", "inf", "--remanent", "rem", "--name",
                 "induced", "--no-register", *more])


def _scans(path: Path) -> dict[str, bytes]:
    with h5py.File(path, "r") as f:
        return {f"{name}/{key}": np.asarray(f[f"{name}/data/{key}"][()]).tobytes()
                for name in ("rem", "inf") for key in ("Bz", "x", "y")}


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_next_subtraction_clears_an_earlier_releases_leftover_of_its_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], overwrite: bool) -> None:
    """Killed before the move (the name free) or, overwriting, before the old entry was
    deleted (the name still the old entry's, written over with --overwrite)."""
    path = _session(tmp_path)
    if overwrite:
        assert _subtract(path) == 0
    _leftover(path, "induced")
    scans = _scans(path)
    assert _subtract(path, *(["--overwrite"] if overwrite else [])) == 0
    assert "Traceback" not in capsys.readouterr().err
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["induced", "inf", "rem"]
    np.testing.assert_allclose(read_map(path, "induced").bz, 0.01 * 40e-6, rtol=1e-9)
    assert [e.name for e in list_entries(path)] == ["rem", "inf", "induced"]
    assert _scans(path) == scans


@pytest.mark.parametrize(("kind", "program", "lines_done", "why"), [
    ("induced", "another program", 0, "holds something smm-daq did not write there"),
    ("import", "smm-daq", 0, "acquired data (kind 'import')"),
    ("optical", "smm-daq", 0, "acquired data (kind 'optical')"),  # an image: never deleted
    ("scan", "smm-daq", 2, "acquired data (kind 'scan')"),
])
def test_a_group_under_the_staging_name_that_may_not_be_cleared_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, program: str,
        lines_done: int, why: str) -> None:
    path = _session(tmp_path)
    _leftover(path, "induced", kind=kind, program=program, lines_done=lines_done)
    before = path.read_bytes()
    assert _subtract(path) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "'.induced.smm_daq_staging'" in err and why in err
    assert "rename" in err and "choose another entry name" in err
    for check in (lambda: check_new_entry(path, "induced", (), overwrite=False),
                  lambda: check_new_scan(path, "induced")):  # before any work or any motion
        with pytest.raises(InputError, match=re.escape(why)):
            check()
    assert path.read_bytes() == before


def test_a_scans_earlier_layout_holding_no_line_is_cleared_for_a_new_scan(tmp_path: Path
                                                                          ) -> None:
    """A scan's staged group was only its layout: the earlier writer moved it in before its
    first line, so nothing measured is lost (the scan writer clears through the same call)."""
    path = _session(tmp_path)
    _leftover(path, "scan1", kind="scan")
    with writing(path) as f:
        clear_unfinished(f, "scan1")
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["inf", "rem"]
    _leftover(path, "scan1", kind="scan", lines_done=1)
    with writing(path) as f, pytest.raises(InputError, match="acquired data"):
        clear_unfinished(f, "scan1")
    with h5py.File(path, "r") as f:
        assert ".scan1.smm_daq_staging" in f


def _group(path: Path, key: str) -> dict[str, bytes]:
    """Every dataset's bytes under group `key`, by path."""
    found: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:
        f[key].visititems(lambda k, obj: found.__setitem__(k, np.asarray(obj[()]).tobytes())
                          if isinstance(obj, h5py.Dataset) else None)
    return found


def test_info_and_repair_take_a_leftover_holding_nothing_acquired_as_a_cut_off_entry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`info` names it as an entry cut off while written, not as an entry called
    '.induced.smm_daq_staging'; `repair` removes it, as it does a marked one."""
    path = _session(tmp_path)
    _leftover(path, "induced")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 2 entries" in out and "smm_daq_staging  [" not in out
    assert ("unfinished: entry 'induced' was cut off while written (its writer, an earlier "
            "smm-daq, killed before moving it in), so it is not in the file") in out
    scans = _scans(path)
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: rewritten in the HDF5 1.10 format, left out 'induced'\n" in out
    assert ("left out entry 'induced', cut off while written (its writer, an earlier "
            "smm-daq, killed before moving it in)") in out
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["inf", "rem"]
    assert _scans(path) == scans


@pytest.mark.parametrize(("kind", "lines_done"), [("import", 0), ("scan", 2)])
def test_repair_moves_a_leftover_holding_acquired_data_in_under_its_free_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, lines_done: int
        ) -> None:
    """Acquired data are never deleted: `info` says where they are and that `repair` moves
    them in; `repair` makes the earlier writer's last step, the data as they were."""
    path = _session(tmp_path)
    _leftover(path, "scan1", kind=kind, lines_done=lines_done)
    data = _group(path, ".scan1.smm_daq_staging")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "smm_daq_staging  [" not in out
    assert (f"unfinished: entry 'scan1' as an earlier smm-daq wrote it, acquired data (kind "
            f"'{kind}'), was cut off before it was moved in: it is kept under "
            f"'.scan1.smm_daq_staging'; `smm-daq repair {path}` moves it in as 'scan1'") in out
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out
    assert "every entry kept" in out
    assert (f"moved '.scan1.smm_daq_staging' in as entry 'scan1': acquired data (kind "
            f"'{kind}')") in out
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["inf", "rem", "scan1"]
    assert _group(path, "scan1") == data
    assert [(e.name, e.kind) for e in list_entries(path)][-1] == ("scan1", kind)


def test_repair_keeps_a_leftover_holding_acquired_data_whose_name_is_taken(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _session(tmp_path)
    _leftover(path, "rem", kind="scan", lines_done=2)
    data, scans = _group(path, ".rem.smm_daq_staging"), _scans(path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("it is kept under '.rem.smm_daq_staging', as 'rem' is another entry; rename it "
            "with an HDF5 tool") in out
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out
    assert "every entry kept" in out
    assert ("kept '.rem.smm_daq_staging' as it is: acquired data (kind 'scan') that an "
            "earlier smm-daq wrote as entry 'rem'") in out and "rename it" in out
    assert _group(path, ".rem.smm_daq_staging") == data and _scans(path) == scans
    assert [e.name for e in list_entries(path)] == ["rem", "inf"]


def test_a_scans_earlier_entry_without_its_line_record_is_never_cleared(tmp_path: Path
                                                                        ) -> None:
    """Without `line_done` nothing says no line was measured: it is counted as acquired
    (it was taken for an empty layout and deleted, measured lines and all)."""
    path = _session(tmp_path)
    _leftover(path, "scan1", kind="scan", lines_done=2, line_record=False)
    with writing(path) as f, pytest.raises(InputError, match=r"acquired data \(kind 'scan'\)"):
        clear_unfinished(f, "scan1")
    with h5py.File(path, "r") as f:
        assert np.isfinite(f[".scan1.smm_daq_staging/data/Bz"][:2]).all()


def test_the_refusal_of_acquired_data_says_how_to_keep_them_under_a_name(tmp_path: Path
                                                                          ) -> None:
    """Under its own name when that is free (`repair` moves it in), else under another."""
    path = _session(tmp_path)
    _leftover(path, "scan1", kind="import")
    with pytest.raises(InputError, match=re.escape(
            f"`smm-daq repair {path}` moves it in as 'scan1'")):
        check_new_entry(path, "scan1", (), overwrite=False)
    _leftover(path, "rem", kind="import")
    with pytest.raises(InputError, match=re.escape(
            "'rem' being another entry, rename it with an HDF5 tool (h5py, HDFView) to keep "
            "it under a name of its own")):
        check_new_entry(path, "rem", (), overwrite=True)


def test_the_early_checks_name_no_entry_where_only_a_cut_off_write_lies(tmp_path: Path
                                                                         ) -> None:
    """A group still marked STAGING under the name (a write cut off) is no entry: the checks
    made before any work say, as `info` does, that `repair` moves the acquired data in under
    that name, and it does."""
    path = _session(tmp_path)
    _leftover(path, "scan1", kind="scan", lines_done=2)
    with h5py.File(path, "a") as f:
        f.create_group("scan1").attrs["smm_daq_staging"] = 1
    hint = re.escape(f"`smm-daq repair {path}` moves it in as 'scan1'")
    for check in (lambda: check_new_scan(path, "scan1"),
                  lambda: check_new_entry(path, "scan1", (), overwrite=True)):
        with pytest.raises(InputError, match=hint):
            check()
    assert main(["repair", str(path)]) == 0
    assert [(e.name, e.kind) for e in list_entries(path)][-1] == ("scan1", "scan")


@pytest.mark.parametrize("kind", ["scan", "induced"])
def test_a_leftover_beside_an_acquired_entry_of_its_name_is_told_as_never_overwritten(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """A leftover holding nothing acquired (a scan's layout before its first line, or a
    product) beside scan 'rem': `info` and `repair` say 'rem' is acquired data, as it was and
    never overwritten, and that repair removes what was left. They said an overwrite was cut
    off and writing it again with --overwrite replaces it: refused for acquired data."""
    path = _session(tmp_path)
    _leftover(path, "rem", kind=kind)
    scans = _scans(path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("unfinished: a write of entry 'rem' was cut off while written (its writer, an "
            "earlier smm-daq, killed before moving it in): 'rem' is another entry, acquired "
            "data (kind 'scan'), as it was, whole, and is never overwritten; "
            f"`smm-daq repair {path}` removes what was left") in out
    assert "--overwrite" not in out and "an overwrite" not in out
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: rewritten in the HDF5 1.10 format, left out a write of 'rem' ('rem' kept "\
        "as it was)\n" in out
    assert ("left out a write of entry 'rem', cut off while written (its writer, an earlier "
            "smm-daq, killed before moving it in); entry 'rem', acquired data (kind 'scan'), "
            "is as it was, whole (it is never overwritten)") in out
    assert "--overwrite" not in out and "an overwrite" not in out
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["inf", "rem"]
    assert _scans(path) == scans


def test_a_leftover_beside_an_import_says_an_import_alone_replaces_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An import is replaced by an import of its name with --overwrite (never by another
    writer): `info` and `repair` say so of the import a leftover lies beside, not that it is
    never overwritten."""
    path = _session(tmp_path)
    write_map_entry(path, MapData(np.ones((5, 6)) * 1e-6, X, Y, name="qdm", height=100e-6,
                                  sensor_size=(0.0, 0.0)), kind="import")
    _leftover(path, "qdm")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("'qdm' is another entry, acquired data (kind 'import'), as it was, whole, and is "
            "replaced only by an import of that name with --overwrite; "
            f"`smm-daq repair {path}` removes what was left") in out
    assert "never overwritten" not in out
    assert main(["repair", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("entry 'qdm', acquired data (kind 'import'), is as it was, whole (it is replaced "
            "only by an import of that name with --overwrite)") in out
    assert "never overwritten" not in out
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["inf", "qdm", "rem"]
