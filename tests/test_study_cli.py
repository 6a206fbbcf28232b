"""`mmt study` and the `mmt invert` tiling options, on a parser of their own."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
from test_study_run import _boxes

from smm_daq.analysis.mmt.tiles.cluster import open_client
from smm_daq.cli.mmt_study import add_study_command, add_tiling_options, tiled_result_or_none
from smm_daq.errors import InputError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smm-daq mmt")
    sub = parser.add_subparsers(dest="action")
    add_study_command(sub, _boxes)
    invert = sub.add_parser("invert")
    add_tiling_options(invert)
    return parser


def test_study_rejects_bad_values_naming_the_option(tmp_path) -> None:
    parser = _parser()
    for option, value in (("--intervals-um", "1,2.5"), ("--noise-nT", "5,x"),
                          ("--densities-per-mm3", "-3"), ("--height-um", "0"),
                          ("--sensor-um", "-1"), ("--height-um", "nan")):
        args = parser.parse_args(["study", "--out", str(tmp_path), option, value])
        with pytest.raises(InputError, match=option):
            args.func(args)


def test_study_help_shows_the_table_1_values_each_list_defaults_to() -> None:
    """With no options the study runs all of Table 1 (hours); --help says what that is."""
    import re

    from smm_daq.analysis.mmt.study.grid import TABLE1_DENSITIES_PER_MM3, TABLE1_NOISE_NT

    study = next(a for a in _parser()._actions
                 if isinstance(a, argparse._SubParsersAction)).choices["study"]
    text = " ".join(study.format_help().split())
    densities = ",".join(f"{v:g}" for v in TABLE1_DENSITIES_PER_MM3)
    noise = ",".join(f"{v:g}" for v in TABLE1_NOISE_NT)
    for option in ("--surface-um", "--thickness-um", "--intervals-um"):
        assert re.search(rf"{option} \S+ (?:(?! --).)*\(default: Table 1's [\d,.]+\)", text), option
    assert f"(default: Table 1's {densities})" in text
    assert f"(default: Table 1's {noise})" in text


def test_study_command_runs_a_subset_on_the_scheduler_given(tmp_path, capsys) -> None:
    with open_client(processes=False, n_workers=1) as client:
        args = _parser().parse_args([
            "study", "--out", str(tmp_path / "s"), "--surface-um", "30", "--thickness-um", "8",
            "--densities-per-mm3", "400000", "--intervals-um", "1,3", "--noise-nT", "5",
            "--repeats", "2", "--height-um", "2", "--sensor-um", "0",
            "--directions", "uniform-theta", "--scheduler", client.scheduler.address])
        assert args.func(args) == 0
    with open(tmp_path / "s" / "study.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["interval_um"] for r in rows] == ["1", "3"]
    assert "study samples: 2/2" in capsys.readouterr().err
    settings = json.loads((tmp_path / "s" / "study.json").read_text())["settings"]
    assert settings["height_um"] == 2 and settings["sensor_size_um"] == [0, 0]
    assert settings["directions"] == "uniform-theta"  # the draw the samples were made with


def test_invert_uses_tiles_only_when_asked() -> None:
    parser = _parser()
    args = parser.parse_args(["invert"])
    assert tiled_result_or_none(args, None, None, height=1e-6, sensor_size=(0, 0),
                                sigma=None) is None  # type: ignore[arg-type]
    args = parser.parse_args(["invert", "--scheduler", "tcp://127.0.0.1:8786"])
    with pytest.raises(InputError, match="--scheduler needs --tile-um"):
        tiled_result_or_none(args, None, None, height=1e-6, sensor_size=(0, 0),
                             sigma=None)  # type: ignore[arg-type]
    args = parser.parse_args(["invert", "--tile-um", "-5"])
    with pytest.raises(InputError, match="--tile-um"):
        tiled_result_or_none(args, None, None, height=1e-6, sensor_size=(0, 0),
                             sigma=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_scheduler_is_refused_not_taken_for_a_local_cluster(tmp_path, value) -> None:
    parser = _parser()
    args = parser.parse_args(["invert", "--tile-um", "50", "--scheduler", value])
    with pytest.raises(InputError, match=r"--scheduler is .*expected the address"):
        tiled_result_or_none(args, None, None, height=1e-6, sensor_size=(0, 0),
                             sigma=None)  # type: ignore[arg-type]
    out = tmp_path / "study"
    args = parser.parse_args(["study", "--out", str(out), "--scheduler", value])
    with pytest.raises(InputError, match=r"--scheduler is .*expected the address"):
        args.func(args)
    assert not out.exists()
