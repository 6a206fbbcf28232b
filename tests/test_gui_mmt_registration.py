"""The MMT tab registers the grains onto the scan and crops point lists to it as
`smm-daq mmt invert` does (--grains-shift-um, --grains-rotation-deg,
--grains-rotation-origin-um, --crop-to-scan with points and mpe): one code path, so a tab run
and the command it records store the same parameters (and a saved result says how its grains
were registered), and what the command line refuses the tab refuses with the same message
before inverting, the options named as the tab's controls (`grain_words`)."""

from __future__ import annotations

import math
import shlex

import h5py
import numpy as np
import pytest
from test_gui_mmt import WAIT_MS, write_cuboid_session

from gui.command import RECORDED_PREFIX
from gui.grain_words import said_in_window
from gui.mmt_view import MMTView
from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
# three grains under the scan and one 5 mm away, whose field the crop says cannot reach it
SCAN_FRAME_UM = np.array([[10, 10, -3], [30, 12, -4], [20, 30, -5], [5000, 5000, -5]])
VOLUMES = np.array([4.0, 6.0, 8.0, 4.0]) * UM**3
M = np.array([[3e4, 0, -2e4], [-1e4, 2e4, 1e4], [1e4, 1e4, 2e4]])
SHIFT_UM, DEGREES, ORIGIN_UM = (7.0, -4.0, 1.5), 30.0, (3.0, 5.0)


def _to_ct(p: np.ndarray) -> np.ndarray:
    """Scan-frame positions (µm) in the grain file's frame: the registration undone."""
    t = math.radians(-DEGREES)
    u, v = p[:, 0] - ORIGIN_UM[0] - SHIFT_UM[0], p[:, 1] - ORIGIN_UM[1] - SHIFT_UM[1]
    return np.c_[ORIGIN_UM[0] + math.cos(t) * u - math.sin(t) * v,
                 ORIGIN_UM[1] + math.sin(t) * u + math.cos(t) * v, p[:, 2] - SHIFT_UM[2]]


@pytest.fixture
def session(tmp_path):
    return _write_session(tmp_path, noise=2e-9)


def _write_session(tmp_path, noise: float):
    """A scan of the three near grains (Gaussian noise of SD `noise`, T; 0: a plane, where
    no noise floor shows) and their grain file, in the CT frame."""
    x = y = np.arange(0, 40.1, 1) * UM
    X, Y = np.meshgrid(x, y)
    h = 2 * UM
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, h)]
    near = point_grains(SCAN_FRAME_UM[:3] * UM, VOLUMES[:3])
    bz = forward(MultipoleModel.build(near, Sensor(), "dipole"), sensors, M)
    bz = (bz + np.random.default_rng(3).normal(0, noise, X.size) if noise
          else 1e-7 * (1 + X.ravel() / (40 * UM) + Y.ravel() / (40 * UM)))
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=bz.reshape(X.shape), x=x, y=y, height=h,
                                  sensor_size=(0.0, 0.0), name="scan"), kind="scan")
    grains = tmp_path / "ct.txt"
    write_points(grains, point_grains(_to_ct(SCAN_FRAME_UM) * UM, VOLUMES))
    return path, grains


def _view(qtbot, path, grains, fmt):
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.entry.setCurrentText("scan")
    view.set_grain_file(grains, fmt)
    return view


def test_a_registered_and_cropped_point_list_stores_what_its_recorded_command_stores(
        qtbot, session, tmp_path):
    path, grains = session
    view = _view(qtbot, path, grains, "points")
    assert not view.dragonfly.isHidden() and view.dragonfly.dragonfly_part.isHidden()
    view.dragonfly.crop.setChecked(True)
    assert view.dragonfly.saturation.isEnabled()
    view.dragonfly.saturation.setValue(1710)
    view.registration.setChecked(True)
    for box, value in zip((view.registration.dx, view.registration.dy, view.registration.dz,
                           view.registration.rotation, view.registration.ox,
                           view.registration.oy), (*SHIFT_UM, DEGREES, *ORIGIN_UM), strict=True):
        box.setValue(value)
    view.sigma.setValue(0.002)  # µT
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    r = view.result
    assert list(r.grains.labels) == [1, 2, 3]  # the far grain cropped, once registered
    np.testing.assert_allclose(r.grains.positions / UM, SCAN_FRAME_UM[:3], atol=1e-9)
    with qtbot.waitSignal(view.saveEnded, timeout=WAIT_MS) as ended:
        assert view.save_to_file("tab")
    assert ended.args[0], ended.args[1]

    with h5py.File(path, "r") as f:
        command = f["tab/process/parameters/command"][()].decode()
    assert command.startswith(RECORDED_PREFIX)
    words = shlex.split(command.removeprefix(RECORDED_PREFIX))
    words[words.index("--result-entry") + 1] = "cli"
    words[words.index("--out") + 1] = str(tmp_path / "cli.csv")
    assert main(words) == 0

    with h5py.File(path, "r") as f:
        tab, cli = f["tab/process/parameters"], f["cli/process/parameters"]
        assert set(tab) == set(cli)
        assert {"grains_shift", "grains_rotation", "crop", "crop_magnetization"} <= set(tab)
        for name in set(tab) - {"command"}:
            np.testing.assert_array_equal(tab[name][()], cli[name][()], err_msg=name)
            assert dict(tab[name].attrs) == dict(cli[name].attrs), name
        assert cli["crop_magnetization"][()] == 1710e3
        tab_crop = tab["crop"][()]
        np.testing.assert_array_equal(f["tab/grains/mx"][()], f["cli/grains/mx"][()])
    for name in ("tab", "cli"):
        options = read_result_entry(path, name).options
        assert options.registration == view.registration.registration()
        assert options.dragonfly is None  # a point list: cropped, not read as Dragonfly's
        assert options.crop is not None and options.crop.crop_magnetization == 1710e3
        np.testing.assert_array_equal(options.crop.crop, tab_crop)
    # a saved result says how its grains were registered
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as loaded:
        assert view.load_result(path, "cli")
    assert loaded.args[0], loaded.args[1]
    assert "grains turned 30° about (3, 5) µm, then shifted by (7, -4, 1.5) µm" \
        in view.status.text()
    # and that its point list was cropped to the scan
    assert "only grains whose field could reach the scan's sensors" in view.status.text()
    assert "magnetized to 1710 kA/m at most" in view.status.text()


def test_a_turn_cuboids_cannot_take_is_refused_before_inverting_as_the_cli_says(
        qtbot, tmp_path, capsys):
    path, grains = write_cuboid_session(tmp_path)
    assert main(["mmt", "invert", str(path), "--entry", "scan", "--grains", str(grains),
                 "--out", str(tmp_path / "r.csv"), "--grains-rotation-deg", "45"]) == 2
    said = capsys.readouterr().err
    view = _view(qtbot, path, grains, "cuboids")
    view.registration.setChecked(True)
    view.registration.rotation.setValue(45)
    assert not view.run()
    assert not view.running and view.run_button.isEnabled()
    assert ("the Registration's turn (then: turned) is 45 with cuboid grains, whose cuboids "
            "are axis-aligned" in view.status.text()), view.status.text()
    assert ("(or point grains: Model dipole, quadrupole or octupole reads their centroids)"
            in view.status.text()), view.status.text()
    assert "--" not in view.status.text() and view.status.text() in said_in_window(said)
    view.model.setCurrentText("dipole")  # a point model reads the centroids: any angle
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert "--grains-rotation-deg=45.0" in view.made["command"]


def test_a_saturation_chosen_with_no_known_noise_is_refused_as_the_cli_says(
        qtbot, tmp_path, capsys):
    """A noiseless map and no σ: the crop goes by distance, whatever the magnetization, so a
    saturation chosen in the tab is refused as --crop-magnetization-kA-per-m is, with the
    command line's message in the tab's words, and nothing is inverted or written;
    magnetite's (the default, not spelt out in the recorded command) crops as before."""
    path, grains = _write_session(tmp_path, noise=0.0)
    assert main(["mmt", "invert", str(path), "--entry", "scan", "--grains", str(grains),
                 "--grain-format", "points", "--out", str(tmp_path / "r.csv"),
                 "--crop-to-scan", "--crop-magnetization-kA-per-m", "1710"]) == 2
    said = capsys.readouterr().err
    view = _view(qtbot, path, grains, "points")
    view.dragonfly.crop.setChecked(True)
    view.dragonfly.saturation.setValue(1710)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert not done.args[0]
    shown = view.status.text().removeprefix("Inversion failed: ")
    assert shown.startswith("the saturation chosen is 1710 kA/m and no noise is known for the "
                            "scans (σ from the residual, and no map shows a noise floor"), shown
    assert ('so "only grains under the scan" keeps the grains' in shown
            and "expected σ typed, for the crop" in shown
            and shown.endswith("or the saturation left at magnetite's 480 kA/m")), shown
    assert "--" not in shown and shown in said_in_window(said)
    assert view.result is None and view.run_button.isEnabled()
    with h5py.File(path, "r") as f:
        assert list(f) == ["scan"]
    view.dragonfly.saturation.setValue(480)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert list(view.result.grains.labels) == [1, 2, 3]  # the far grain still cropped


@pytest.mark.parametrize("fmt", ["points", "mpe"])
def test_the_crop_is_offered_for_point_lists_and_not_for_cuboids(qtbot, session, fmt):
    path, grains = session
    view = _view(qtbot, path, grains, fmt)
    row = view.dragonfly
    assert not row.isHidden() and row.dragonfly_part.isHidden()
    row.crop.setChecked(True)
    assert row.saturation.isEnabled()
    view.grain_format.setCurrentText("cuboids")
    assert row.isHidden()
    view.grain_format.setCurrentText("dragonfly")
    assert not row.isHidden() and not row.dragonfly_part.isHidden()


def test_a_registration_recorded_in_part_or_out_of_range_is_refused_by_name(tmp_path):
    from smm_daq.analysis.mmt.result_params import read_options
    from smm_daq.errors import InputError

    with h5py.File(tmp_path / "r.h5", "w") as f:
        p = f.create_group("parameters")
        p["grains_shift"] = np.array([1e-6, 0.0, 0.0])
        with pytest.raises(InputError, match="'grains_rotation' is missing"):
            read_options(p, ("scan",), "r.h5")
        p["grains_rotation"] = 400.0
        p["grains_rotation_origin"] = np.zeros(2)
        with pytest.raises(InputError, match=r"'grains_rotation' holds \[400.0\]"):
            read_options(p, ("scan",), "r.h5")


def test_a_point_lists_crop_reads_back_and_one_without_it_reads_as_uncropped(tmp_path):
    from smm_daq.analysis.mmt.result_params import crop_parameters, read_options

    window = (-5e-6, 45e-6, -5e-6, 45e-6)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        p = f.create_group("parameters")
        assert read_options(p, ("scan",), "r.h5").crop is None
        p["crop_to_scan"] = np.uint8(0)
        assert read_options(p, ("scan",), "r.h5").crop is None
        del p["crop_to_scan"]
        p["crop_to_scan"] = np.uint8(1)
        for name, q in crop_parameters(window, 2e-6, 3e-9, 1710e3).items():
            p[name] = q.value
        crop = read_options(p, ("scan",), "r.h5").crop
        assert crop is not None
        assert (crop.crop, crop.crop_height, crop.crop_noise, crop.crop_magnetization) \
            == (window, 2e-6, 3e-9, 1710e3)
