"""Fuzzing the command-line options that tests/test_fuzz_text_inputs.py leaves out: every
other option of every command that takes a value, given NaN, infinities, huge, negative, zero,
tiny, empty and wrongly typed values. Each must be refused with one message naming the option,
exit 2, no traceback, the files given unchanged and nothing written.

Values an option accepts (a zero where zero means "none", a negative coordinate) are not
malformed and are left out per option. The counts are printed (pytest -s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

NUMBERS = ["nan", "inf", "-inf", "1e308", "-1e308", "1e-310", "-1", "0", "abc", ""]
INTEGERS = ["-1", "0", "1.5", "1e3", "99999999999999999999", "abc", ""]
NAMES = ["", "a/b", ".", "..", " ", " a", "a\nb", "a\tb"]
N = 12


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    x = np.arange(N) * 10e-6
    bz = 1e-6 * np.exp(-((x[None, :] - 55e-6) ** 2 + (x[:, None] - 55e-6) ** 2) / 4e-10)
    for name, field in (("ok", 0.0), ("in", 40e-6)):
        write_map_entry(path, MapData(bz * (1 + field * 1e4), x, x, height=20e-6,
                                      sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, field, 0.0]), name=name),
                        kind="scan")
    return path


def _except(values: list[str], *fine: str) -> list[str]:
    return [v for v in values if v not in fine]


def _cases(tmp: Path, s: str, grains: str, points: str, recipe: str
           ) -> Iterator[tuple[list[str], str, list[str]]]:
    out = str(tmp / "o.h5")
    scan = ["scan", "--center-um", "12500,12500", "--size-um", "20,20", "--step-um", "10",
            "--name", "s", "--out", out]
    fly = [*scan, "--fly"]
    invert = ["mmt", "invert", s, "--entry", "ok", "--grains", grains, "--out",
              str(tmp / "r.csv")]
    point_invert = ["mmt", "invert", s, "--entry", "ok", "--grains", points, "--grain-format",
                    "points", "--model", "dipole", "--out", str(tmp / "r.csv")]
    dragonfly = ["mmt", "invert", s, "--entry", "ok", "--grains",
                 points.replace("points.txt", "dragonfly.csv"), "--grain-format",
                 "dragonfly", "--model", "dipole", "--out", str(tmp / "r.csv")]
    synth = ["mmt", "synth", "--out", out, "--grains-out", str(tmp / "g.csv"), "--truth-out",
             str(tmp / "t.csv"), "--size-um", "20,20", "--thickness-um", "5"]
    per_option: list[tuple[list[str], str, list[str]]] = [
        (scan, "--settle-tau", _except(NUMBERS, "0", "1e-310")),
        (scan, "--dwell-tau", _except(NUMBERS, "0", "1e-310")),
        (scan, "--raster", ["spiral", "", "1"]),
        (scan, "--name", NAMES),
        (fly, "--pixel-time-s", NUMBERS),
        (fly, "--oversample", [*INTEGERS, "1000001", "1" + "0" * 400]),
        (["demo", "--out", out], "--time-scale", ["nan", "-1", "inf", "abc"]),
        (["run", recipe, "--out", out, "--yes"], "--time-scale", ["nan", "-1", "inf", "abc"]),
        (["calibrate-coils", "--out", str(tmp / "c.toml")], "--time-scale",
         ["nan", "-1", "inf", "abc"]),
        (invert, "--sensor-thickness-um", _except(NUMBERS, "0")),
        (invert, "--result-entry", NAMES),
        (invert, "--sigma-nT", ["1,2", "nan,1", "1,", ","]),
        (invert, "--height-um", ["1,2", ","]),
        (invert, "--scheduler", ["tcp://", "not a url", "", " "]),
        (point_invert, "--sensor-thickness-um", _except(NUMBERS, "0")),
        (dragonfly, "--min-voxels", _except(INTEGERS, "0", "1e3")),
        (dragonfly, "--z-top-um", ["nan", "inf", "-inf", "1e308", "-1e308", "abc", ""]),
        ([*dragonfly, "--crop-to-scan"], "--crop-magnetization-kA-per-m",
         ["nan", "inf", "-1", "0", "1e308", "abc", ""]),
        (["level", s, "--entry", "ok", "--name", "n", "--border-um", "20"], "--order",
         ["-1", "1e3", "99", "1.5", "abc", ""]),
        (["level", s, "--entry", "ok", "--border-um", "20"], "--name", NAMES),
        (["noise", s, "--entry", "ok", "--border-um", "20"], "--repeat", ["", "nowhere"]),
        (["susceptibility", s, "--entry", "in", "--name", "c", "--thickness-um", "5"],
         "--criterion", ["", "best", "1"]),
        (["susceptibility", s, "--entry", "in", "--name", "c", "--thickness-um", "5"],
         "--support-polygon", ["0,0;1,1", "nan,0;1,1;2,0", "0,0;1e308,1;2,0", "a,b;c,d;e,f",
                               ""]),
        (["magnetization", s, "--entry", "ok", "--name", "c", "--thickness-um", "5",
          "--direction", "0,0,1"], "--noise-nT", _except(NUMBERS, "0")),
        (["magnetization", s, "--entry", "ok", "--name", "c", "--thickness-um", "5",
          "--direction", "0,0,1"], "--correlation-length-um", ["nan", "inf", "-1", "1e308"]),
        (["crop", s, "--entry", "ok", "--name", "c", "--x-um", "0,50"], "--y-um",
         ["nan,50", "1e308,1e309", "500,600", "0", ""]),
        (["export", s, "--entry", "ok", "--csv", str(tmp / "x.csv")], "--dataset",
         ["", "nowhere", "/", "../ok"]),
        (["subtract", s, "--in-field", "in", "--remanent", "ok", "--no-register"], "--name",
         NAMES),
        (synth, "--name", NAMES),
        (synth, "--model", ["", "sextupole"]),
        (synth[:-2], "--thickness-um", ["5"]),  # 20 × 20 × 5 µm at 1e4/mm³: not one grain
        (["mmt", "study", "--out", str(tmp / "study")], "--surface-um",
         ["", "100,", "100,nan"]),
    ]
    for base, option, values in per_option:
        for v in values:
            yield [*base, f"{option}={v}"], option, [out, str(tmp / "r.csv")]


def _fuzz(tmp: Path, session: Path) -> Iterator[Case]:
    grains = tmp / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    points = tmp / "points.txt"
    points.write_text("5.5e-05 5.5e-05 -1e-05 1e-16 1\n")
    (tmp / "dragonfly.csv").write_text(
        "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
        "Center Of Mass Z (mm)\n1;100;1e-7;0.055;0.055;-0.01\n")
    recipe = tmp / "r.toml"
    recipe.write_text('[[step]]\nkind = "scan"\nname = "a"\ncenter_um = [12500.0, 12500.0]\n'
                      "size_um = [20.0, 20.0]\nstep_um = 10.0\n")
    outputs = [tmp / n for n in ("o.h5", "g.csv", "t.csv", "r.csv", "x.csv", "c.toml", "study")]
    for argv, option, _ in _cases(tmp, str(session), str(grains), str(points), str(recipe)):
        label = f"{option} {argv[-1].split('=', 1)[1]!r}"
        mention = ["--density-per-mm3"] if label == "--thickness-um '5'" else [option]
        yield Case("command-line value", label, argv, [session, grains, points, recipe],
                   outputs, mention)


def _registration_cases(tmp: Path, session: Path) -> Iterator[Case]:
    """`mmt invert`'s registration options (--grains-shift-um, --grains-rotation-deg,
    --grains-rotation-origin-um) given malformed values, and values that move the grains
    where none can be: (argv, the words the message names)."""
    cuboids, points = tmp / "grains.csv", tmp / "points.txt"
    cuboids.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    points.write_text("5.5e-05 5.5e-05 -1e-05 1e-16 1\n")
    out = tmp / "r.csv"
    base = {"cuboids": ["--grains", str(cuboids)],
            "points": ["--grains", str(points), "--grain-format", "points"]}
    shifts = ["nan,0", "inf,0", "1e308,0", "0", "1,2,3,4", "", ",", "1,,2", "abc,0", "1e7,0"]
    angles = ["nan", "inf", "-inf", "1e308", "361", "-360.5", "abc", ""]
    origins = ["nan,0", "0", "1,2,3", "abc", "", "1e7,0"]
    # the values are parsed alike for every grain format: once, with point grains
    cases = [("points", [f"--grains-shift-um={v}"], ["--grains-shift-um"]) for v in shifts]
    cases += [("points", [f"--grains-rotation-deg={v}"], ["--grains-rotation-deg"])
              for v in angles]
    cases += [("points", ["--grains-rotation-deg=90", f"--grains-rotation-origin-um={v}"],
               ["--grains-rotation-origin-um"]) for v in origins]
    cases.append(("points", ["--grains-rotation-origin-um=55,55"],
                  ["--grains-rotation-origin-um", "--grains-rotation-deg"]))
    # lifted above the sample top; cuboids beyond the metre their positions are read within
    cases += [(grains, [f"--grains-shift-um={v}"], ["--grains-shift-um"])
              for grains in base for v in ("0,0,15", "0,0,1e6")]
    cases.append(("cuboids", ["--grains-shift-um=1e6,0,-1e6"], ["--grains-shift-um"]))
    # cuboids turned by no quarter, the angle said as given (not rounded to the 90 expected)
    cases += [("cuboids", [f"--grains-rotation-deg={v}"], ["--grains-rotation-deg", v])
              for v in ("45", "1e-14", "89.99999999999999", "270.0000000000001")]
    # grains shifted away from the scans, then cropped to them: none left, the shift named
    cases += [("points", ["--crop-to-scan", f"--grains-shift-um={v}"], ["--grains-shift-um"])
              for v in ("5000,5000", "0,0,-1e6")]
    for grains, options, mention in cases:
        argv = ["mmt", "invert", str(session), "--entry", "ok", *base[grains], "--out",
                str(out), *options]
        yield Case("registration", f"{grains} {' '.join(options)}", argv,
                   [session, cuboids, points], [out], mention)


def test_every_malformed_or_impossible_registration_is_refused(tmp_path: Path,
                                                               session: Path) -> None:
    counts, failures = run_all(_registration_cases(tmp_path, session))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


def test_every_other_absurd_command_line_value_is_refused(tmp_path: Path,
                                                          session: Path) -> None:
    counts, failures = run_all(_fuzz(tmp_path, session))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
