"""`smm-daq export`'s refusals of an entry or a --dataset name what the file and the entry
hold: an entry name that is a path (the file's root, a group inside an entry) is no entry,
the file's entries listed; a dataset the entry lacks is answered with exactly the maps export
takes from that entry, for a joint MMT result those of every scan whose grid is known,
whatever its shape. The session is `export_session`'s."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from export_session import write_export_session
from test_gui_mmt_saved import as_written_before_version_3

from smm_daq.cli.main import main

HELD = "expected a map the entry holds: "
ENTRIES = "expected one of " + ", ".join(repr(e) for e in (  # in the order written
    "low", "high", "side", "in_field", "induced", "chi", "mag", "joint", "optical"))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export_session(tmp_path_factory.mktemp("export"))


@pytest.fixture
def session(made: Path, tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    shutil.copy(made, path)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _listed(err: str) -> list[str]:
    """The maps a refusal of --dataset lists, the default marked " (the default)"."""
    assert HELD in err, err
    return err.split(HELD, 1)[1].strip().split(", ")


def _names(listed: list[str]) -> list[str]:
    return [name.removesuffix(" (the default)") for name in listed]


def _maps_under(path: Path, entry: str) -> list[str]:
    """Every 2-D dataset under the entry (data/Bz aside: it is the listed default, Bz)."""
    found: list[str] = []
    with h5py.File(path, "r") as f:
        f[entry].visititems(lambda name, node: found.append(name) if (
            isinstance(node, h5py.Dataset) and node.ndim == 2 and name != "data/Bz") else None)
    return found


def _exactly_what_export_takes(path: Path, entry: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The maps listed for an unknown --dataset, checked against export itself: each one it
    lists is exported (exit 0), each other 2-D dataset under the entry refused (exit 2)."""
    code, err = _run(capsys, "export", path, "--entry", entry, "--dataset", "nowhere",
                     "--csv", tmp_path / "x.csv")
    assert code == 2 and "--dataset is 'nowhere', which the entry does not hold" in err, err
    listed = _names(_listed(err))
    assert listed[0] == "Bz"
    out = tmp_path / "x.csv"
    for name in _maps_under(path, entry):
        code, err = _run(capsys, "export", path, "--entry", entry, "--dataset", name,
                         "--csv", out)
        assert (code == 0) == (name in listed), (name, listed, err)
        assert out.exists() == (code == 0)
        out.unlink(missing_ok=True)
    return listed


@pytest.mark.parametrize("entry", ["low", "induced", "chi", "mag", "joint"])
def test_a_dataset_the_entry_lacks_is_answered_with_exactly_the_maps_export_takes(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str) -> None:
    """A joint MMT result of scans of two shapes: the list held only the maps of the first
    scan's shape, leaving out scans/side/..., which export takes on that scan's grid."""
    listed = _exactly_what_export_takes(session, entry, tmp_path, capsys)
    if entry == "joint":
        assert listed == ["Bz", "fitted/Bz", *(
            f"scans/{scan}/{what}" for scan in ("high", "low", "side")
            for what in ("fitted_Bz", "residual_Bz"))]


def test_an_older_results_list_leaves_out_the_maps_of_a_scan_whose_entry_is_gone(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A result written before each scan's grid was stored, scan 'high' (of the first scan's
    shape) since deleted from the file: its maps were listed, and each refused when asked
    for ("lies on the grid of scan 'high' ... gone or unreadable")."""
    as_written_before_version_3(session, "joint")
    with h5py.File(session, "a") as f:
        del f["high"]
    listed = _exactly_what_export_takes(session, "joint", tmp_path, capsys)
    assert not [name for name in listed if "high" in name], listed
    assert "scans/side/residual_Bz" in listed  # its entry still gives its grid


@pytest.mark.parametrize("entry, why", [
    ("/", " (the file's root, not an entry)"),
    (".", " (the file's root, not an entry)"),
    ("//", " (the file's root, not an entry)"),
    ("", ""),
    ("low/data", " (a path inside the file; an entry's name holds no '/')"),
    ("/low", " (a path inside the file; an entry's name holds no '/')"),
])
def test_an_entry_name_that_names_no_entry_is_refused_listing_the_files_entries(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str,
        why: str) -> None:
    """'/', '.' and 'low/data' were read as entries that 'hold no map', and '/low' as 'low'."""
    out = tmp_path / "x.csv"
    for options in (["--csv", out], ["--mask-template", tmp_path / "x.png"]):
        code, err = _run(capsys, "export", session, "--entry", entry, *options)
        assert code == 2 and f"error: {session}: no entry '{entry}'{why}; {ENTRIES}" in err, err
    assert not out.exists() and not (tmp_path / "x.png").exists()


def test_a_results_path_is_not_taken_for_a_measured_map(
        session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A map command refuses an MMT result by its kind, looked up by the entry's name: given
    as '/joint', the result's residual was taken for a scan and its noise printed."""
    code, err = _run(capsys, "noise", session, "--entry", "joint", "--border-um", "4")
    assert code == 2 and "entry 'joint' is an MMT result" in err, err
    code, err = _run(capsys, "noise", session, "--entry", "/joint", "--border-um", "4")
    assert code == 2 and "no entry '/joint' (a path inside the file" in err, err


def test_an_optical_image_is_refused_as_an_image_not_a_map_missing_its_bz(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It was refused as a damaged map: "data: 'Bz' is missing; expected a 2-D array"."""
    for options in (["--csv", tmp_path / "x.csv"], ["--mask-template", tmp_path / "x.png"]):
        code, err = _run(capsys, "export", session, "--entry", "optical", *options)
        assert code == 2 and (f"error: {session}, entry 'optical': is an optical image of the "
                              "sample, not a map; expected an entry holding a map of Bz") in err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("entry", "default", "column"), [
    ("low", "Bz", "Bz_nT"), ("induced", "Bz", "Bz_nT"), ("chi", "chi/chi", "chi_SI"),
    ("mag", "magnetization/M", "M_A_per_m"), ("joint", "Bz", "residual_Bz_nT")])
def test_without_dataset_export_takes_the_map_the_entry_opens_on(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str,
        default: str, column: str) -> None:
    """A χ or magnetization entry opens (its NeXus default plot) on χ or M: export without
    --dataset gave its data/Bz, the field of its model, instead."""
    out, named = tmp_path / "default.csv", tmp_path / "named.csv"
    code, err = _run(capsys, "export", session, "--entry", entry, "--csv", out)
    assert code == 0, err
    assert out.read_text().splitlines()[0] == f"x_um,y_um,{column}"
    assert _run(capsys, "export", session, "--entry", entry, "--dataset", default,
                "--csv", named)[0] == 0
    assert named.read_text() == out.read_text()
    code, err = _run(capsys, "export", session, "--entry", entry, "--dataset", "nowhere",
                     "--csv", tmp_path / "x.csv")
    assert code == 2 and f"{default} (the default)" in _listed(err)


def test_the_help_says_what_export_takes_without_dataset(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("default: the map the entry opens on, its NeXus default plot: chi/chi for a "
            "susceptibility entry, magnetization/M for a magnetization entry, else Bz") in help_text


@pytest.mark.parametrize(("entry", "dataset", "column", "label"), [
    ("joint", None, "residual_Bz_nT", "residual Bz (nT)"),
    ("joint", "fitted/Bz", "fitted_Bz_nT", "fitted Bz (nT)"),
    ("chi", "Bz", "model_Bz_nT", "model Bz (nT)"),
    ("mag", "data/Bz", "model_Bz_nT", "model Bz (nT)"),
    ("low", "Bz", "Bz_nT", "Bz (nT)")])
def test_a_bz_that_was_not_measured_says_what_it_is_in_its_column_and_label(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, entry: str, dataset: str | None, column: str,
        label: str) -> None:
    """An MMT result's residual and fitted map, and a χ or magnetization model's field, were
    all written as "Bz_nT" (and drawn as "Bz (nT)"): a co-author given the CSV took the
    residual, or the model, for the field measured."""
    import smm_daq.analysis.export as export

    labels: list[str] = []
    monkeypatch.setattr(export, "write_png", lambda m, path, **kw: labels.append(kw["label"]))
    out = tmp_path / "out.csv"
    code, err = _run(capsys, "export", session, "--entry", entry, "--csv", out,
                     "--png", tmp_path / "out.png", *(["--dataset", dataset] if dataset else []))
    assert code == 0, err
    assert out.read_text().splitlines()[0] == f"x_um,y_um,{column}"
    assert labels == [label]


@pytest.mark.parametrize(("name", "units", "column"), [
    ("time", "s", "time_s"), ("lockin_x", "V", "lockin_x_V"), ("odd", "furlong", "odd (furlong)")])
def test_a_map_in_another_unit_says_its_unit_in_its_column(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
        units: str, column: str) -> None:
    """A scan's data/time (s) or data/lockin_x (V) was written under a bare "time" or
    "lockin_x" column: the unit the file gives was lost on the way out."""
    with h5py.File(session, "a") as f:
        bz = f["low/data/Bz"]
        f["low/data"].create_dataset(name, data=np.ones(bz.shape)).attrs["units"] = units
    out = tmp_path / "out.csv"
    code, err = _run(capsys, "export", session, "--entry", "low", "--dataset", f"data/{name}",
                     "--csv", out)
    assert code == 0, err
    assert out.read_text().splitlines()[0] == f"x_um,y_um,{column}"


@pytest.mark.parametrize("entry", ["low", "induced", "joint"])
def test_a_pictures_title_names_its_entry(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    """A Bz picture was titled with the entry's title alone: two subtractions of the same
    scans with other options (registered or not, with a rotation) made pictures of one
    title, which a co-author could not tell apart."""
    import smm_daq.analysis.export as export
    from smm_daq.storage.nexus import read_map

    titles: list[str] = []
    monkeypatch.setattr(export, "write_png", lambda m, path, **kw: titles.append(kw["title"]))
    assert _run(capsys, "export", session, "--entry", entry, "--png", tmp_path / "a.png")[0] == 0
    title = read_map(session, entry).title
    assert titles == [f"{entry}: {title}" if title else entry]
