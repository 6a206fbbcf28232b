"""Fuzzing the text inputs: profiles, recipes, grain files, community scans, command-line
values. Each malformed input must be refused by the command that reads it with one message
naming the file and key, line or option, exit 2, and nothing written.

The cases are generated: every key of the shipped profile and recipe with every kind of bad
value, cuts at seeded random places, seeded byte corruption; the counts per input kind are
printed (pytest -s) for the record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all
from shipped_recipe import shipped_recipe_text

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

REPO = Path(__file__).resolve().parents[1]
BAD_NUMBERS = ["nan", "inf", "-inf", "1e308", "-1e308", '"3"', "true", "[1, 2]", "{a = 1}"]
NON_UTF8 = b"\xff\xfe\x80 not text \xc3\x28\n"
SEED = 20261204


def _cuts(text: str, n: int, rng: np.random.Generator) -> Iterator[tuple[str, str]]:
    """The text cut at n seeded places mid-line (as a copy or a download that stopped)."""
    for at in sorted(rng.integers(1, len(text) - 1, size=n)):
        if text[at - 1] != "\n":
            yield f"cut at {at / len(text):.0%}", text[:at]


def _flips(text: str, n: int, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    """The file with a byte replaced by one that is not UTF-8."""
    data = text.encode()
    for at in rng.integers(0, len(data), size=n):
        yield f"byte {at} not UTF-8", data[:at] + b"\xff" + data[at + 1:]


# -- profiles ---------------------------------------------------------------------------------

PROFILE = (REPO / "configs" / "simulator.toml").read_text()
# Values out of what any rig can do, per key (the shipped profile's value is replaced).
ABSURD = {
    "max_field_uT": ["1e308", "-100.0", "0.0", "1e6"],
    "max_current_A": ["1e308", "-3.0", "0.0", "1e4"],
    "max_ramp_A_per_s": ["1e308", "0.0", "-1.0", "1e5"],
    "height_um": ["1e308", "0.0", "-100.0", "1e9"],
    "velocity_um_per_s": ["1e308", "0.0", "1e12"],
    "time_constant_s": ["1e308", "0.0", "-0.03", "1e-12", "1e9"],
    "sensitivity_V": ["1e308", "0.0", "5.0"],
    "reference_frequency_Hz": ["1e308", "0.0", "1e9"],
    "reference_amplitude_V": ["1e308", "0.0", "100.0"],
    "resolution_nm": ["1e308", "0.0", "1e-30"],
    "settle_time_s": ["1e308", "-1.0", "1e6"],
    "sensitivity_V_per_T": ["1e308", "0.0", "1e-300"],
    "field_tolerance_nT": ["1e308", "0.0", "-50.0"],
    "baud_rate": ["0", "-9600", "99999999999", "115200.5"],
    "channels": ["[1, 1, 1]", "[1, 2, 2]", "[-1, 2, 3]", "[1e308, 2, 3]", "[1, 2]"],
    "ambient_field_uT": ["[1e308, 0.0, 0.0]", "[0.0, 0.0]", "[nan, 0.0, 0.0]"],
    "calibration_T_per_A": ["[[1e308, 0.0, 0.0], [0.0, 5.0e-5, 0.0], [0.0, 0.0, 5.0e-5]]",
                            "[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]"],
    "travel_um": ["[[0.0, 1e308], [0.0, 25000.0], [0.0, 10000.0]]"],
    "active_area_um": ["[1e308, 30.0]", "[-1.0, 30.0]", "[30.0]"],
    "offset_V": ["[1e308, 0.0, 0.0]"],
    "axis_sign": ["[1, 0, 1]", "[2, 1, 1]"],
}
_KEY_LINE = re.compile(r"^(\w+) = (.+)$", re.MULTILINE)


def _profile_cases(tmp: Path) -> Iterator[tuple[str, bytes, str]]:
    """(what is wrong, file content, a word the message must name)."""
    keys = [m.group(1) for m in _KEY_LINE.finditer(PROFILE)]
    for key in dict.fromkeys(keys):
        line = re.search(rf"^{key} = .+$", PROFILE, re.MULTILINE)
        assert line is not None
        value = line.group(0).split(" = ", 1)[1]
        for bad in [*BAD_NUMBERS, *ABSURD.get(key, [])]:
            if (bad.startswith('"') and value.startswith('"')) or (
                    bad == "true" and value in ("true", "false")) or (
                    bad == "[1, 2]" and value.count(",") == 1 and "[[" not in value):
                continue  # a string for a string, a flag for a flag: not malformed
            text = PROFILE.replace(line.group(0), f"{key} = {bad}", 1)
            yield f"{key} = {bad}", text.encode(), key
    for table in ("rig", "sensor", "lockin", "stage", "coils"):
        yield f"[{table}] missing", re.sub(rf"^\[{table}\]$", "[unused]", PROFILE,
                                           flags=re.MULTILINE).encode(), table
        yield f"[{table}] twice", (PROFILE + f"\n[{table}]\nx = 1\n").encode(), "TOML"
    rng = np.random.default_rng(SEED)
    for label, text in _cuts(PROFILE, 25, rng):
        yield label, text.encode(), "profile"
    for label, data in _flips(PROFILE, 6, rng):
        yield label, data, "profile"
    yield "empty", b"", "rig"
    yield "not UTF-8", NON_UTF8, "profile"


def _profile_fuzz(tmp: Path) -> Iterator[Case]:
    out = tmp / "out.h5"
    for i, (label, content, word) in enumerate(_profile_cases(tmp)):
        path = tmp / f"profile{i}.toml"
        path.write_bytes(content)
        argv = ["scan", "--profile", str(path), "--center-um", "12500,12500", "--size-um",
                "20,20", "--step-um", "10", "--name", "s", "--out", str(out)]
        mention = [path.name] if word in ("profile", "TOML") else [path.name, word]
        yield Case("profile", label, argv, [path], [out], mention)


# -- recipes ----------------------------------------------------------------------------------

# The shipped recipe on a small grid, so that a case wrongly accepted ends soon.
RECIPE = shipped_recipe_text().replace(
    "size_um = [2200.0, 2200.0]", "size_um = [40.0, 40.0]")
RECIPE_VALUES = {  # key -> bad values (wait, settle_tau and dwell_tau are time limits: elsewhere)
    "center_um": ["[nan, 0.0]", "[1e308, 1e308]", "[1.0]", '"middle"', "[-1e9, 0.0]"],
    "size_um": ["[nan, 2200.0]", "[1e308, 1e308]", "[-10.0, 2200.0]", "[2200.0]"],
    "step_um": ["nan", "inf", "0.0", "-20.0", "1e-310", "1e308", '"fine"', "[20.0]",
                "[0.0, 20.0]", "1e-9"],
    "raster": ['"spiral"', "1", "true"],
    "field_uT": ["[nan, 40.0, 0.0]", "[1e308, 0.0, 0.0]", "[0.0, 40.0]", "[0.0, 1e5, 0.0]",
                 '"north"'],
    "name": ['""', '"a/b"', "1"],
    "kind": ['"dance"', "1", '""'],
    "in_field": ['"nowhere"', "2"],
    "title": ["1", "[1, 2]"],
}


def _recipe_cases() -> Iterator[tuple[str, str, str]]:
    lines = RECIPE.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.match(r"^(\w+) = (.+)$", line)
        if not m or m.group(1) not in RECIPE_VALUES:
            continue
        for bad in RECIPE_VALUES[m.group(1)]:
            text = "".join([*lines[:i], f"{m.group(1)} = {bad}\n", *lines[i + 1:]])
            yield f"line {i + 1}: {m.group(1)} = {bad}", text, m.group(1)
    yield "no steps", "[recipe]\ntitle = 't'\n", "step"
    yield "step not a table", "step = 3\n", "step"
    yield "unknown key", RECIPE.replace('kind = "zero_field"', 'kind = "zero_field"\nx = 1'), "x"
    yield "subtract of unknown entry", RECIPE.replace('in_field = "in_field_y"',
                                                      'in_field = "in_field_z"'), "in_field_z"
    yield "two scans of one name", RECIPE.replace('name = "in_field_y"', 'name = "remanent"'), \
        "remanent"
    rng = np.random.default_rng(SEED + 1)
    for label, text in _cuts(RECIPE, 20, rng):
        yield label, text, ""


def _recipe_fuzz(tmp: Path) -> Iterator[Case]:
    out = tmp / "out.h5"
    for i, (label, text, word) in enumerate(_recipe_cases()):
        path = tmp / f"recipe{i}.toml"
        path.write_text(text)
        yield Case("recipe", label, ["run", str(path), "--out", str(out), "--yes"], [path],
                   [out], [path.name], any_of=[word, "step"] if word else [])
    rng = np.random.default_rng(SEED + 2)
    for i, (label, data) in enumerate([*_flips(RECIPE, 4, rng), ("not UTF-8", NON_UTF8)]):
        path = tmp / f"recipe_bytes{i}.toml"
        path.write_bytes(data)
        yield Case("recipe", label, ["run", str(path), "--out", str(out)], [path], [out],
                   [path.name])


# Every key of every step kind (the shipped recipe shows few of them), given values of every
# type and size; those a key takes (a settle of 0 τ, any title) are left out per key.
SCAN_STEP = ('kind = "scan"\nname = "a"\ncenter_um = [12500.0, 12500.0]\n'
             "size_um = [20.0, 20.0]\nstep_um = 10.0\n")
STEP_KEYS = {  # kind -> (the step's other lines, its keys fuzzed)
    "scan": (SCAN_STEP, ("height_um", "settle_tau", "dwell_tau", "fly", "raster", "title")),
    "fly": (SCAN_STEP + "fly = true\n", ("pixel_time_s", "oversample", "line_baselines",
                                         "fly_trigger")),
    "set_field": ('kind = "set_field"\n', ("field_uT",)),
    "wait": ('kind = "wait"\n', ("seconds",)),
    "prompt": ('kind = "prompt"\n', ("message",)),
}
STEP_VALUES = ["nan", "inf", "-inf", "1e308", "-1", "0", "-0.0", "1e-310", '"x"', '""', "true",
               "[1.0]", "{a = 1}", "9223372036854775807", "1" + "0" * 400, "-1" + "0" * 400]
STEP_VALID = {  # key -> values it takes
    "settle_tau": ("0", "-0.0", "1e-310"), "dwell_tau": ("0", "-0.0", "1e-310"),
    "fly": ("true",), "line_baselines": ("true",), "title": ('"x"', '""'),
    "seconds": ("0", "-0.0", "1e-310"), "message": ('"x"',),
}


def _recipe_step_cases() -> Iterator[tuple[str, str, str]]:
    for kind, (lines, keys) in STEP_KEYS.items():
        for key in keys:
            for bad in STEP_VALUES:
                if bad not in STEP_VALID.get(key, ()):
                    yield f"{kind} {key} = {bad[:12]}", f"[[step]]\n{lines}{key} = {bad}\n", key
    for key in ("title", "description"):
        for bad in ("1", "[1, 2]", "true", "{a = 1}"):
            yield f"[recipe] {key} = {bad}", f"[recipe]\n{key} = {bad}\n[[step]]\n{SCAN_STEP}", key


def _recipe_step_fuzz(tmp: Path) -> Iterator[Case]:
    out = tmp / "out.h5"
    for i, (label, text, key) in enumerate(_recipe_step_cases()):
        path = tmp / f"steps{i}.toml"
        path.write_text(text)
        yield Case("recipe step key", label, ["run", str(path), "--out", str(out), "--yes"],
                   [path], [out], [path.name], any_of=[key, key.removesuffix("_um"), "fly"])


# -- grain files ------------------------------------------------------------------------------

CSV_HEADER = "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
CSV_ROW = "1,55,55,-10,8,8,8\n"
MMT_ROW = "55 55 10 4 4 4 1\n"  # x y depth hx hy hz grain


def _grain_cases() -> Iterator[tuple[str, str, bytes]]:
    """(what is wrong, format, file content)."""
    fields = CSV_ROW.strip().split(",")
    for col in range(7):
        for bad in ("nan", "inf", "-inf", "1e308", "-1e308", "1e-200", "abc", "", "1e30"):
            if col >= 4 and bad == "-1e308":
                bad = "-8"
            row = fields.copy()
            row[col] = bad
            if col == 0 and bad == "1e-200":
                bad = "1.5"
                row[col] = bad
            if col in (1, 2) and bad == "1e-200":
                continue  # a position of 1e-200 µm is just 0
            yield f"csv column {col} = {bad!r}", "csv", (CSV_HEADER + ",".join(row)
                                                         + "\n").encode()
    cells = MMT_ROW.split()
    for col in range(7):
        for bad in ("nan", "inf", "1e308", "1e-200", "x", "1e30"):
            if col in (0, 1) and bad == "1e-200":
                continue
            row = cells.copy()
            row[col] = bad
            yield f"mmt column {col} = {bad!r}", "mmt", (" ".join(row) + "\n").encode()
    yield "csv missing column", "csv", b"grain,x_um,y_um,z_um,dx_um,dy_um\n1,2,3,-4,5,6\n"
    yield "csv repeated column", "csv", b"grain,x_um,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
    yield "csv header only", "csv", CSV_HEADER.encode()
    yield "csv short row", "csv", (CSV_HEADER + "1,2,3\n").encode()
    yield "csv empty", "csv", b""
    yield "csv above the sample", "csv", (CSV_HEADER + "1,55,55,10,8,8,8\n").encode()
    yield "csv grain overlaps itself", "csv", (CSV_HEADER + CSV_ROW + CSV_ROW).encode()
    yield "csv not UTF-8", "csv", NON_UTF8
    yield "csv given as mmt", "mmt", (CSV_HEADER + CSV_ROW).encode()
    yield "mmt given as csv", "csv", MMT_ROW.encode()
    yield "mmt six values", "mmt", b"55 55 10 4 4 4\n"
    yield "mmt not UTF-8", "mmt", NON_UTF8
    yield "mmt truncated", "mmt", (MMT_ROW * 3)[:40].encode()
    yield "mmt above the sensor", "mmt", b"55 55 -500 4 4 4 1\n"


@pytest.fixture
def session(tmp_path: Path) -> Path:
    """A session file with one good map for the grain and CLI-value cases."""
    path = tmp_path / "s.h5"
    x = np.arange(12) * 10e-6
    bz = 1e-6 * np.exp(-((x[None, :] - 55e-6) ** 2 + (x[:, None] - 55e-6) ** 2) / 4e-10)
    write_map_entry(path, MapData(bz, x, x, height=20e-6, sensor_size=(0.0, 0.0),
                                  applied_field=np.array([0.0, 4e-5, 0.0]), name="ok"),
                    kind="scan")
    return path


def _grain_fuzz(tmp: Path, session: Path) -> Iterator[Case]:
    out = tmp / "r.csv"
    for i, (label, fmt, content) in enumerate(_grain_cases()):
        path = tmp / f"grains{i}.{'csv' if fmt == 'csv' else 'txt'}"
        path.write_bytes(content)
        argv = ["mmt", "invert", str(session), "--entry", "ok", "--grains", str(path),
                "--grain-format", fmt, "--out", str(out)]
        yield Case("grain file", label, argv, [path, session], [out], [path.name])


# -- scans in the MMT community's format ------------------------------------------------------

PARAMS = {"Sensor center domain LL-x-y": [0.0, 0.0], "Sensor center domain UR-x-y": [3e-6, 2e-6],
          "Scan spacing": 1e-6, "Scan delta-x": 5e-7, "Scan delta-y": 5e-7, "Scan area": 1e-12,
          "Scan height": 6e-6}
MAP = "1e-6 2e-6 3e-6 4e-6\n1e-6 2e-6 3e-6 4e-6\n1e-6 2e-6 3e-6 4e-6\n"


def _import_cases() -> Iterator[tuple[str, str, bytes, str]]:
    """(what is wrong, 'map' or 'params', content, a word the message must name)."""
    for key in PARAMS:
        for bad in (float("nan"), float("inf"), 1e308, -1e-6, 0.0, "x", None, [1, 2, 3], True,
                    1e-310):
            if key.startswith("Sensor center") and not isinstance(bad, list):
                value: object = [bad, 0.0]
            else:
                value = bad
            if key.startswith("Scan delta") and bad == 0.0:
                continue  # a point sensor
            if key.startswith("Sensor center") and bad in (-1e-6, 0.0, 1e-310):
                continue  # positions may be anywhere small
            if key == "Scan height" and bad == -1e-6:
                continue  # the cuboid library's z-down frame: 1 µm above the top
            params = {**PARAMS, key: value}
            yield f"{key} = {value!r}", "params", json.dumps(params).encode(), key
    yield "params not JSON", "params", b"{'a': 1", ""
    yield "params a list", "params", b"[1, 2]", ""
    yield "params not UTF-8", "params", NON_UTF8, ""
    for bad in ("inf", "-inf", "1e308", "x", "1e-6 2e-6"):  # NaN is a masked pixel
        yield f"map value {bad}", "map", MAP.replace("3e-6", bad, 1).encode(), "line"
    yield "map not UTF-8", "map", NON_UTF8, ""
    yield "map empty", "map", b"", ""
    yield "map of wrong size", "map", (MAP + MAP).encode(), ""
    yield "map truncated", "map", MAP[:30].encode(), ""


def _import_fuzz(tmp: Path) -> Iterator[Case]:
    out = tmp / "imported.h5"
    for i, (label, which, content, word) in enumerate(_import_cases()):
        map_path, params = tmp / f"map{i}.txt", tmp / f"params{i}.json"
        map_path.write_bytes(content if which == "map" else MAP.encode())
        params.write_bytes(content if which == "params" else json.dumps(PARAMS).encode())
        bad = map_path if which == "map" else params
        argv = ["import", "mmt-scan", str(map_path), "--params", str(params), "--out", str(out),
                "--name", "q"]
        yield Case("import mmt-scan", label, argv, [map_path, params], [out],
                   [w for w in (bad.name, word) if w])


# -- command-line values ----------------------------------------------------------------------

CLI_NUMBERS = ["nan", "inf", "-inf", "1e308", "-1e308", "1e-310", "-1", "0", "abc"]


def _cli_cases(tmp: Path, session: Path, grains: Path) -> Iterator[tuple[str, list[str], str]]:
    s, out = str(session), str(tmp / "o.h5")
    synth = ["mmt", "synth", "--out", out, "--grains-out", str(tmp / "g.csv"), "--truth-out",
             str(tmp / "t.csv"), "--size-um", "20,20", "--thickness-um", "5"]
    scan = ["scan", "--center-um", "12500,12500", "--size-um", "20,20", "--step-um", "10",
            "--name", "s", "--out", out]
    study = ["mmt", "study", "--out", str(tmp / "study")]
    invert = ["mmt", "invert", s, "--entry", "ok", "--grains", str(grains), "--out",
              str(tmp / "r.csv")]
    per_option: list[tuple[list[str], str, list[str]]] = [
        (synth, "--seed", ["-1", "-99999999999999999999", "1.5", "abc"]),
        (synth, "--size-um", ["nan,20", "1e308,1e308", "-5,20", "0,20", "20"]),
        (synth, "--step-um", CLI_NUMBERS),
        (synth, "--height-um", CLI_NUMBERS),
        (synth, "--thickness-um", CLI_NUMBERS),
        (synth, "--density-per-mm3", CLI_NUMBERS),
        (synth, "--noise-nT", ["nan", "inf", "-1", "1e308", "abc"]),
        (synth, "--sensor-size-um", ["nan,1", "1e308,1", "-1,1", "1", "1,0"]),
        (scan, "--center-um", ["nan,0", "1e308,0", "0", "inf,inf"]),
        (scan, "--size-um", ["nan,20", "1e308,1e308", "-20,20"]),
        (scan, "--step-um", [*CLI_NUMBERS, "1e-310,10"]),
        (scan, "--field-uT", ["nan,0,0", "1e308,0,0", "0,0", "0,1e5,0"]),
        (scan, "--height-um", CLI_NUMBERS),
        (scan, "--time-scale", ["nan", "-1", "inf"]),
        (invert, "--height-um", CLI_NUMBERS),
        (invert, "--sigma-nT", CLI_NUMBERS),
        (invert, "--damping", ["nan", "inf", "-1", "1e308", "abc"]),
        (invert, "--sensor-size-um", ["nan,1", "1e308,1e308", "-1,1", "1"]),
        (invert, "--tile-um", CLI_NUMBERS),
        (invert, "--workers", ["0", "-1", "1000000", "abc"]),
        (["crop", s, "--entry", "ok", "--name", "c", "--y-um", "0,50"], "--x-um",
         ["nan,50", "1e308,1e309", "500,600", "0"]),
        (["background", s, "--entry", "ok", "--name", "b"], "--border-um", CLI_NUMBERS),
        (["background", s, "--entry", "ok", "--name", "b"], "--background-rect",
         ["nan,1,0,1", "0,1,0", "500,600,500,600"]),
        (["level", s, "--entry", "ok", "--name", "b"], "--sample-polygon",
         ["0,0;1,1", "nan,0;1,1;2,0", "0,0;1e308,1;2,0"]),
        (["susceptibility", s, "--entry", "ok", "--name", "c"], "--thickness-um", CLI_NUMBERS),
        (["susceptibility", s, "--entry", "ok", "--name", "c", "--thickness-um", "5"],
         "--noise-nT", CLI_NUMBERS),
        (["susceptibility", s, "--entry", "ok", "--name", "c", "--thickness-um", "5"],
         "--correlation-length-um", ["nan", "inf", "-1", "1e308"]),
        (["magnetization", s, "--entry", "ok", "--name", "c", "--thickness-um", "5"],
         "--direction", ["0,0,0", "nan,0,1", "1e308,1e308,1e308", "1,1"]),
        (["serve-sim", "--duration-s", "0.01"], "--time-scale", ["nan", "-1", "inf", "1e308"]),
        (["serve-sim", "--time-scale", "1"], "--duration-s", ["nan", "-1", "inf", "1e308"]),
        (study, "--surface-um", ["nan", "-5", "1e308", "1e5"]),
        (study, "--thickness-um", ["0", "1e308"]),
        (study, "--densities-per-mm3", ["inf", "1e308"]),
        (study, "--intervals-um", ["0", "1.5", "1e9"]),
        (study, "--noise-nT", ["-1", "1e308"]),
        (study, "--repeats", ["0", "-1", "100000", "abc"]),
        (study, "--seed", ["-1"]),
        (study, "--height-um", ["nan", "-1", "1e308"]),
        (study, "--sensor-um", ["nan", "-1", "1e308"]),
        (study, "--workers", ["0", "1000000"]),
    ]
    for base, option, values in per_option:
        for v in values:
            yield f"{option} {v}", [*base, f"{option}={v}"], option


def _cli_fuzz(tmp: Path, session: Path) -> Iterator[Case]:
    grains = tmp / "grains.csv"
    grains.write_text(CSV_HEADER + CSV_ROW)
    outputs = [tmp / n for n in ("o.h5", "g.csv", "t.csv", "r.csv", "study")]
    for label, argv, option in _cli_cases(tmp, session, grains):
        yield Case("command-line value", label, argv, [session, grains], outputs, [option])


# -- the tests --------------------------------------------------------------------------------


def _check(cases: Iterator[Case]) -> None:
    counts, failures = run_all(cases)
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


def test_every_malformed_profile_is_refused_before_the_rig_is_touched(tmp_path: Path) -> None:
    _check(_profile_fuzz(tmp_path))


def test_every_malformed_recipe_is_refused_before_its_first_step(tmp_path: Path) -> None:
    _check(_recipe_fuzz(tmp_path))


def test_every_step_key_of_every_kind_refuses_a_malformed_value(tmp_path: Path) -> None:
    _check(_recipe_step_fuzz(tmp_path))


def test_every_malformed_grain_file_is_refused(tmp_path: Path, session: Path) -> None:
    _check(_grain_fuzz(tmp_path, session))


def test_every_malformed_community_scan_is_refused(tmp_path: Path) -> None:
    _check(_import_fuzz(tmp_path))


def test_every_absurd_command_line_value_is_refused(tmp_path: Path, session: Path) -> None:
    _check(_cli_fuzz(tmp_path, session))
