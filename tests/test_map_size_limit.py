"""The most pixels a map may hold is one limit, for what smm-daq writes and what it reads back.

Reading a map refuses more than MAX_MAP_PIXELS (a damaged file may state 10^12), and a scan
plan never makes more. But the imports (the MMT community's text map, the multipole library's
JSON + NPZ) took up to 100,000 points a side and wrote an entry every later command refused to
read: each now refuses such a map from its parameters, before reading it, and no writer stores
a map larger than the limit. A map at the limit is written and read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all

from smm_daq.acquisition.plan import MAX_POINTS
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.limits import MAX_MAP_PIXELS
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

SIDE = 5000  # SIDE × SIDE is the limit
UM = 1e-6


def _map(ny: int, nx: int, name: str = "big") -> MapData:
    """A map of ny × nx pixels of one value, taking no memory until written."""
    return MapData(bz=np.broadcast_to(np.float64(1e-7), (ny, nx)), x=np.arange(nx) * UM,
                   y=np.arange(ny) * UM, height=100 * UM, sensor_size=(0.0, 0.0), name=name)


def test_the_limit_is_a_scan_plans_most_points() -> None:
    assert SIDE * SIDE == MAX_MAP_PIXELS == MAX_POINTS


@pytest.mark.slow
def test_a_map_at_the_limit_is_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    write_map_entry(path, _map(SIDE, SIDE), kind="import")
    back = read_map(path, "big")
    assert back.shape == (SIDE, SIDE) and back.bz[-1, -1] == 1e-7


def test_no_map_over_the_limit_is_written(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with pytest.raises(InputError, match=r"the map of entry 'big' is 5,000 × 5,001 pixels "
                                         r"\(25,005,000\); expected at most 25,000,000"):
        write_map_entry(path, _map(SIDE + 1, SIDE), kind="import")
    assert not path.exists()


def _community(tmp_path: Path, ur_um: tuple[float, float]) -> list[Path]:
    """A one-pixel text map and parameters whose corners state a grid of 1 µm to `ur_um`."""
    bz, params = tmp_path / "map.txt", tmp_path / "p.json"
    bz.write_text("1e-7\n")
    params.write_text(json.dumps({
        "Sensor center domain LL-x-y": [0.0, 0.0],
        "Sensor center domain UR-x-y": [ur_um[0] * UM, ur_um[1] * UM],
        "Scan spacing": UM, "Scan height": 4 * UM}))
    return [bz, params]


def _mpe(tmp_path: Path, sides_um: tuple[float, float]) -> list[Path]:
    """Parameters stating a scan of `sides_um` at 1 µm, and an NPZ of one pixel."""
    params, arrays = tmp_path / "meta.json", tmp_path / "scan.npz"
    params.write_text(json.dumps({
        "Scan height Hz": 4 * UM, "Scan area x-dimension Sx": sides_um[0] * UM,
        "Scan area y-dimension Sy": sides_um[1] * UM, "Scan x-step Sdx": UM,
        "Scan y-step Sdy": UM, "Sensor origin x": 0.0, "Sensor origin y": 0.0,
        "Sensor dimensions": []}))
    np.savez(arrays, Bz_array=np.zeros((1, 1)))
    return [params, arrays]


def test_an_import_over_the_limit_is_refused_from_its_parameters(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    text_map, text_params = _community(tmp_path, (SIDE, SIDE - 1))  # 5001 × 5000 points
    library = _mpe(tmp_path, (SIDE + 1, SIDE))
    cases = [
        Case("import", "community map of 5001 × 5000", [
            "import", "mmt-scan", str(text_map), "--params", str(text_params), "--out",
            str(out), "--name", "q"], [text_map, text_params], [out],
            ["p.json", "the map its corners give is 5,001 × 5,000 pixels (25,005,000); "
                       "expected at most 25,000,000 pixels"]),
        Case("import", "library scan of 5001 × 5000", [
            "import", "mpe", *map(str, library), "--out", str(out), "--name", "q"],
            library, [out], ["meta.json", "the scan its area and steps give is 5,001 × 5,000 "
                                          "pixels (25,005,000)"]),
    ]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


def test_an_import_at_the_limit_passes_its_parameters(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """The same parameters one point smaller: refused only for the one-pixel map."""
    text_map, text_params = _community(tmp_path, (SIDE - 1, SIDE - 1))
    out = tmp_path / "s.h5"
    assert main(["import", "mmt-scan", str(text_map), "--params", str(text_params), "--out",
                 str(out), "--name", "q"]) == 2
    assert "the map is 1 × 1" in capsys.readouterr().err
    assert main(["import", "mpe", *map(str, _mpe(tmp_path, (SIDE, SIDE))), "--out", str(out),
                 "--name", "q"]) == 2
    assert "describes, 5000 × 5000 (ny, nx)" in capsys.readouterr().err


def _synth(tmp_path: Path, size_um: str) -> list[str]:
    return ["mmt", "synth", "--out", str(tmp_path / "s.h5"), "--name", "scan", "--grains-out",
            str(tmp_path / "g.csv"), "--truth-out", str(tmp_path / "t.csv"), "--size-um",
            size_um, "--step-um", "1", "--thickness-um", "1", "--density-per-mm3", "1e7",
            "--height-um", "2", "--noise-nT", "0"]


@pytest.mark.parametrize(("size_um", "points"), [("9.5,9.5", (10, 10)), ("37.4,1.6", (38, 3))],
                         ids=["at the limit", "over it"])
def test_mmt_synth_counts_the_points_of_the_grid_it_lays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        size_um: str, points: tuple[int, int]) -> None:
    """Its limit had been checked against (size / step + 1) a side, while the grid runs to
    the size and half a step: 9.5 µm at 1 µm is 10 points, not 10.5, and 1.6 µm is 3, not
    2.6. A grid at the limit was refused, and one over it laid, computed and written."""
    import smm_daq.cli.mmt as mmt_cli

    monkeypatch.setattr(mmt_cli, "SYNTH_MAX_POINTS", 100)
    code = main(_synth(tmp_path, size_um))
    err = capsys.readouterr().err
    if points[0] * points[1] <= 100:
        assert code == 0, err
        assert read_map(tmp_path / "s.h5", "scan").shape == points[::-1]
    else:
        assert code == 2
        assert f"makes {points[0]} × {points[1]} points; expected at most 100" in err
        assert not (tmp_path / "s.h5").exists()
