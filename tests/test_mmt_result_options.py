"""A saved MMT result records each option that shaped it as a parameter of its own
(`result_params`): the Dragonfly options (its crop window resolved), each scan's mask as typed,
absolute and, for a .json mask, its shapes; the same from the command line and from the MMT
tab, read back equal by `read_result_entry` and shown by the tab's "Show saved". A joint
result's `process/parameters/height` is the lowest scan's, and says so."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_gui_mmt import DRAGONFLY, WAIT_MS, save, write_cuboid_session
from test_gui_mmt_saved import open_saved

from gui.mmt_view import MMTView
from smm_daq.analysis.mmt.formats.dragonfly import DragonflyOptions
from smm_daq.analysis.mmt.result_file import grain_parameters
from smm_daq.analysis.mmt.result_params import MaskSource, ResultOptions, mask_parameters
from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.analysis.noise import white_noise_floor
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import read_map, write_map_entry

UM = 1e-6
SHAPES = {"rectangles_um": [[0, 10, 0, 3]]}  # the lowest row's first three pixels


@pytest.fixture
def made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot) -> tuple[Path, Path]:
    """Two scans of the same grains ('scan', 'again' higher up), their Dragonfly export
    (cc.csv), an array mask for the first and a shapes mask for the second, all named relative
    to the folder the inversions run in; inverted the same way by the command line (entry
    'cli') and the MMT tab (entry 'gui'): (session file, folder)."""
    path, _grains = write_cuboid_session(tmp_path)
    first = read_map(path, "scan")
    again = first.with_bz(first.bz * 1.01, name="again")
    write_map_entry(path, replace(again, height=first.height + 2 * UM), kind="scan")
    (tmp_path / "cc.csv").write_bytes(DRAGONFLY.encode("latin-1"))
    mask = np.zeros(first.bz.shape, dtype=bool)
    mask[1, :4] = True
    np.save(tmp_path / "bad.npy", mask)
    (tmp_path / "shapes.json").write_text(json.dumps(SHAPES))
    monkeypatch.chdir(tmp_path)
    assert main(["mmt", "invert", "s.h5", "--entry", "scan", "--entry", "again",
                 "--grains", "cc.csv", "--grain-format", "dragonfly", "--min-voxels", "5",
                 "--z-top-um", "500", "--crop-to-scan", "--model", "dipole",
                 "--mask", "bad.npy", "--mask", "shapes.json",
                 "--out", "cli.csv", "--result-entry", "cli"]) == 0

    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.entry.setCurrentText("scan")
    view.set_grain_file(Path("cc.csv"), "dragonfly")
    view.dragonfly.min_voxels.setValue(5)
    view.dragonfly.z_top.setValue(500.0)
    view.dragonfly.crop.setChecked(True)
    view.model.setCurrentText("dipole")
    view.more_entries.setText("again")
    view.mask_edit.setText("bad.npy, shapes.json")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert save(view, qtbot, "gui")[0]
    return path, tmp_path


def _parameters(path: Path, entry: str) -> dict[str, tuple[object, dict[str, object]]]:
    """Each process parameter but the command: (value, attributes)."""
    with h5py.File(path, "r") as f:
        p = f[f"{entry}/process/parameters"]
        return {k: (np.asarray(p[k][()]).tolist(), dict(p[k].attrs)) for k in p if k != "command"}


def test_the_command_line_and_the_tab_record_the_same_options_each_a_parameter(
        made: tuple[Path, Path]) -> None:
    path, folder = made
    cli, gui = read_result_entry(path, "cli"), read_result_entry(path, "gui")
    scan, again = read_map(path, "scan"), read_map(path, "again")
    w, h = scan.sensor_size  # both scans' sensor: the window spans it whole
    assert w > 0 and again.sensor_size == (w, h)
    expected = ResultOptions(
        dragonfly=DragonflyOptions(min_voxels=5, z_top_mm=cli.options.dragonfly.z_top_mm,
                                   z_down=False,
                                   crop=(float(scan.x.min()) - w / 2, float(scan.x.max()) + w / 2,
                                         float(scan.y.min()) - h / 2, float(scan.y.max()) + h / 2),
                                   # the nearest scan, and the least noise floor
                                   crop_height=min(scan.height, again.height),
                                   crop_noise=min(white_noise_floor(scan.bz),
                                                  white_noise_floor(again.bz))),
        masks=(MaskSource("bad.npy", str(folder.resolve() / "bad.npy")),
               MaskSource("shapes.json", str(folder.resolve() / "shapes.json"),
                          json.dumps(SHAPES))))
    assert cli.options == expected
    assert cli.options.dragonfly.z_top_mm == pytest.approx(0.5, rel=1e-12)
    assert gui.options == cli.options
    assert (gui.grain_file, gui.grain_format, gui.grain_file_absolute) == (
        cli.grain_file, cli.grain_format, cli.grain_file_absolute) == (
        "cc.csv", "dragonfly", str(folder.resolve() / "cc.csv"))
    # in the file: the same parameters, values and units, whichever made the result
    recorded = _parameters(path, "cli")
    assert recorded == _parameters(path, "gui")
    assert recorded["z_top"] == (pytest.approx(500 * UM), {"units": "m",
                                                           "long_name": "CT z of the sample top"})
    assert recorded["crop"][1]["units"] == "m" and recorded["min_voxels"][0] == 5
    assert recorded["crop_noise"][1]["units"] == "T" and recorded["crop_noise"][0] > 0
    assert recorded["mask"][0] == [b"bad.npy", b"shapes.json"]


def test_a_joint_results_height_is_the_lowest_scans_and_says_so(made: tuple[Path, Path]) -> None:
    path, _ = made
    with h5py.File(path, "r") as f:
        g = f["cli"]
        heights = [g[f"scans/{s}/height"][()] for s in ("scan", "again")]
        assert heights[1] > heights[0]
        height = g["process/parameters/height"]
        assert height[()] == min(heights) and "lowest scan" in height.attrs["long_name"]
    assert read_result_entry(path, "cli").height == min(heights)


def test_show_saved_says_how_the_result_was_made(qtbot, made: tuple[Path, Path]) -> None:
    path, _ = made
    _view, (shown, text) = open_saved(qtbot, path, "gui")
    assert shown, text
    noise = read_result_entry(path, "gui").options.dragonfly.crop_noise
    assert "Dragonfly: min voxels 5, sample top at CT z 500 µm, z axis up, only grains whose " \
           "field could reach the scan's sensors (x -1–121 µm, y -1–129 µm, σ " \
           f"{noise * 1e9:.4g} nT)" in text
    assert "masks bad.npy, shapes.json" in text


def test_a_result_without_the_options_reads_as_made_without_them_and_a_spoilt_one_is_refused(
        made: tuple[Path, Path]) -> None:
    path, _ = made
    with h5py.File(path, "a") as f:
        p = f["cli/process/parameters"]
        for name in ("min_voxels", "z_top", "z_down", "crop_to_scan", "crop", "mask",
                     "mask_absolute", "mask_shapes"):
            del p[name]  # as written before the options were recorded
        f.copy(f["gui"], "spoilt")
        del f["spoilt/process/parameters/mask"]
        f.create_dataset("spoilt/process/parameters/mask", data=["bad.npy"],
                         dtype=h5py.string_dtype())
    assert read_result_entry(path, "cli").options == ResultOptions()
    with pytest.raises(InputError, match=r"'mask' holds 1 value.*one per scan") as refused:
        read_result_entry(path, "spoilt")
    assert "spoilt" in str(refused.value)


def test_an_inversion_in_tiles_records_the_tile_size(tmp_path: Path) -> None:
    h5 = tmp_path / "t.h5"
    assert main(["mmt", "synth", "--out", str(h5), "--name", "synth", "--size-um", "40,40",
                 "--thickness-um", "10", "--density-per-mm3", "3e5", "--step-um", "2",
                 "--height-um", "5", "--noise-nT", "50", "--seed", "4",
                 "--grains-out", str(tmp_path / "g.csv"),
                 "--truth-out", str(tmp_path / "truth.csv")]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "synth", "--grains",
                 str(tmp_path / "g.csv"), "--out", str(tmp_path / "r.csv"),
                 "--tile-um", "20", "--workers", "1"]) == 0
    saved = read_result_entry(h5, "synth_mmt")
    assert saved.options == ResultOptions(tile=pytest.approx(20 * UM, rel=1e-12))
    with h5py.File(h5, "r") as f:
        assert f["synth_mmt/process/parameters/tile"].attrs["units"] == "m"


def test_the_tabs_command_names_what_the_profile_supplied_and_runs_to_the_same_result(
        qtbot, tmp_path: Path) -> None:
    """A map that records no sensor height or area is inverted by the tab with the profile's;
    the command it records says so, and run on the command line it makes the same result."""
    import shlex

    from gui.command import RECORDED_PREFIX

    path, grains = write_cuboid_session(tmp_path)
    scan = read_map(path, "scan")
    write_map_entry(path, replace(scan, name="bare", height=None, sensor_size=None), kind="scan")
    profile = load_profile()
    view = MMTView(profile)
    qtbot.addWidget(view)
    view.set_file(path)
    view.entry.setCurrentText("bare")
    view.set_grain_file(grains)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert save(view, qtbot, "gui")[0]
    command = read_result_entry(path, "gui").command
    assert command.startswith(RECORDED_PREFIX)
    words = shlex.split(command[len(RECORDED_PREFIX):])
    w, l = profile.sensor.active_area
    assert words[words.index("--height-um") + 1] == repr(profile.sensor.height / UM)
    assert words[words.index("--sensor-size-um") + 1] == f"{w / UM!r},{l / UM!r}"
    words[words.index("--out") + 1] = str(tmp_path / "cli.csv")
    words[words.index("--result-entry") + 1] = "cli"
    assert main(words) == 0
    gui, cli = read_result_entry(path, "gui"), read_result_entry(path, "cli")
    assert (cli.height, cli.residual.sensor_size) == (gui.height, gui.residual.sensor_size)
    np.testing.assert_allclose(cli.magnetization, gui.magnetization, rtol=1e-9)


def test_a_grain_or_mask_file_named_in_no_utf8_is_recorded_escaped(tmp_path: Path) -> None:
    """A grain or mask file typed in a Latin-1 terminal (its byte 0xe9 no UTF-8: a lone
    surrogate to Python) made the inversion a traceback as its result was written, after
    the solve: its names are stored with the byte escaped, as the command is."""
    grains, mask = (os.fsdecode(b"g/caf\xe9.csv"), os.fsdecode(b"m/caf\xe9.npy"))
    made = {**grain_parameters(grains, "csv"), **mask_parameters([mask], 2)}
    with h5py.File(tmp_path / "p.h5", "w") as f:
        for key, value in made.items():
            f[key] = value
        assert f["grains"].asstr()[()] == "g/caf\\xe9.csv"
        assert f["grains_absolute"].asstr()[()].endswith("/g/caf\\xe9.csv")
        assert list(f["mask"].asstr()[()]) == ["m/caf\\xe9.npy"] * 2
        assert f["mask_absolute"].asstr()[0].endswith("/m/caf\\xe9.npy")
