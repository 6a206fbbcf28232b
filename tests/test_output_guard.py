"""Every command's output paths go through one guard: no file written over, no directory or
missing folder taken, before any work starts (exit 2, every byte of what was there kept)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    x = np.arange(8) * 10e-6
    write_map_entry(path, MapData(np.outer(x, x), x, x, name="scan1", height=5e-6),
                    kind="import")
    return path


@pytest.fixture
def other_session(tmp_path: Path) -> Path:
    path = tmp_path / "other.h5"
    x = np.arange(4) * 10e-6
    write_map_entry(path, MapData(np.outer(x, x), x, x, name="a"), kind="import")
    return path


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.csv"
    path.write_text("someone's data\n")
    return path


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *kept: Path) -> str:
    before = {p: p.read_bytes() for p in kept}
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for p, content in before.items():
        assert p.read_bytes() == content, f"{p} changed"
    return err


def invert(session: Path, out: Path | str, *extra: str) -> list[str]:
    return ["mmt", "invert", str(session), "--entry", "scan1", "--grains",
            str(session.parent / "g.csv"), "--out", str(out), *extra]


def synth(out: Path, grains: Path, truth: Path, *extra: str) -> list[str]:
    return ["mmt", "synth", "--out", str(out), "--grains-out", str(grains), "--truth-out",
            str(truth), "--size-um", "100,100", "--thickness-um", "20", "--step-um", "5", *extra]


def test_mmt_invert_never_writes_its_csv_over_a_session_file(session, other_session, capsys):
    err = refused(capsys, invert(session, session), session)
    assert "--out" in err and "HDF5 file" in err
    refused(capsys, invert(session, other_session), session, other_session)
    refused(capsys, invert(session, other_session, "--overwrite"), session, other_session)


def test_mmt_invert_refuses_an_existing_file_a_directory_and_a_missing_folder(
        session, text, tmp_path, capsys):
    assert "exists" in refused(capsys, invert(session, text), text, session)
    assert "a directory" in refused(capsys, invert(session, tmp_path), session)
    assert "no directory" in refused(capsys, invert(session, tmp_path / "no" / "r.csv"), session)


def test_mmt_invert_refuses_a_result_entry_it_may_not_write_before_any_work(
        session, tmp_path, capsys):
    """Checked before the grains are even read (the grain file here does not exist)."""
    out = tmp_path / "r.csv"
    x = np.arange(8) * 10e-6
    write_map_entry(session, MapData(np.outer(x, x), x, x, name="scan1_mmt"), kind="mmt")
    err = refused(capsys, invert(session, out), session)
    assert "entry 'scan1_mmt' already exists" in err and not out.exists()
    err = refused(capsys, invert(session, out, "--result-entry", "scan1", "--overwrite"),
                  session)
    assert "acquired data" in err and not out.exists()
    err = refused(capsys, invert(session, out, "--grain-format", "points"),
                  session)
    assert "already exists" in err and not out.exists()  # the joint/models path too


def test_mmt_synth_guards_every_output(session, other_session, text, tmp_path, capsys):
    g, t = tmp_path / "g.csv", tmp_path / "t.csv"
    new = tmp_path / "new.h5"
    err = refused(capsys, synth(new, session, t), session)
    assert "--grains-out" in err and "HDF5" in err
    assert "--truth-out" in refused(capsys, synth(new, g, other_session), other_session)
    assert "exists" in refused(capsys, synth(new, text, t), text)
    assert "both name" in refused(capsys, synth(new, g, g))
    assert "not an HDF5 file" in refused(capsys, synth(text, g, t), text)
    assert "a directory" in refused(capsys, synth(tmp_path, g, t))
    assert not (g.exists() or t.exists() or new.exists())  # refused before any work


def test_mmt_synth_overwrite_replaces_its_own_csv_files_only(session, tmp_path, capsys):
    g, t = tmp_path / "g.csv", tmp_path / "t.csv"
    g.write_text("old\n")
    t.write_text("old\n")
    assert main(synth(session, g, t, "--name", "syn", "--overwrite")) == 0
    assert g.read_text().startswith("grain,") and t.read_text() != "old\n"


def test_export_refuses_an_existing_file_unless_overwrite(session, text, capsys):
    assert "--overwrite" in refused(
        capsys, ["export", session, "--entry", "scan1", "--csv", text], text, session)
    assert main(["export", str(session), "--entry", "scan1", "--csv", str(text),
                 "--overwrite"]) == 0
    assert "Bz_nT" in text.read_text()
    png = session.parent / "p.png"
    assert "both name" in refused(
        capsys, ["export", session, "--entry", "scan1", "--csv", png, "--png", png], session)


def test_calibrate_coils_refuses_an_existing_out_file(text, session, capsys):
    assert "exists" in refused(capsys, ["calibrate-coils", "--out", text], text)
    assert "HDF5" in refused(capsys, ["calibrate-coils", "--out", session, "--overwrite"],
                             session)


SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "40,40", "--step-um", "20",
        "--name", "k"]


def test_scan_and_run_refuse_a_non_hdf5_file_a_directory_and_a_missing_folder(
        text, tmp_path, capsys, repo):
    assert "not an HDF5 file" in refused(capsys, [*SCAN, "--out", text], text)
    assert "a directory" in refused(capsys, [*SCAN, "--out", tmp_path])
    assert "no directory" in refused(capsys, [*SCAN, "--out", tmp_path / "no" / "s.h5"])
    recipe = repo / "configs" / "recipes" / next(
        p.name for p in (repo / "configs" / "recipes").glob("*.toml"))
    assert "not an HDF5 file" in refused(capsys, ["run", recipe, "--out", text], text)
    assert "not an HDF5 file" in refused(capsys, ["demo", "--out", text], text)


def test_import_refuses_a_non_hdf5_out_file(text, tmp_path, capsys):
    scan = tmp_path / "map.txt"
    scan.write_text("0 0\n0 0\n")
    params = tmp_path / "p.json"
    params.write_text("{}")
    assert "not an HDF5 file" in refused(
        capsys, ["import", "mmt-scan", scan, "--params", params, "--out", text, "--name", "m"],
        text)


def test_outputs_and_inputs_that_are_one_file_by_another_name_are_refused(
        session, text, tmp_path, capsys):
    """A hard link is the file it links to: export's --csv and --png naming one file by two
    names, and mmt invert's --out naming the grain file it reads, are refused as when named
    alike (unfixed: compared as paths, the second write replaced the first, and --out
    --overwrite replaced the grains being read)."""
    grains, csv = tmp_path / "g.csv", tmp_path / "out.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,35,35,-10,8,8,8\n")
    csv.write_text("old\n")
    os.link(grains, tmp_path / "g_link.csv")
    os.link(csv, tmp_path / "out_link.png")
    err = refused(capsys, ["export", session, "--entry", "scan1", "--csv", csv, "--png",
                           tmp_path / "out_link.png", "--overwrite"], csv, session)
    assert "--png and --csv both name" in err
    err = refused(capsys, invert(session, tmp_path / "g_link.csv", "--overwrite"), grains,
                  session)
    assert "the file --grains reads" in err
