"""Fuzzing the text a person writes that the other fuzz tests leave out: a scan's title
(`scan --title`, a recipe step's or [scan_defaults]' title, never fuzzed before), `export
--dataset`, a profile's rig.calibration_file, keys of any spelling where none is expected in a
profile or a recipe, values of hundreds of digits or thousands of characters, a recipe step
missing a key it needs, and the fly settings (a recipe step's keys, `scan`'s options) given
to a scan that does not fly, which it would leave unread. Titles and names are drawn with
the characters a session file's text cannot hold: a NUL (a TOML "\\u0000") and a byte that is
not UTF-8 in the command line (a Latin-1 terminal's é, which Python reads as a lone
surrogate). Each must be taken, or refused with one message naming the option, file or key,
exit 2, no traceback and nothing written; a message quotes a key of control characters or of
thousands of characters escaped and cut short, so that it stays one readable line.
"""

from __future__ import annotations

import io
import re
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

REPO = Path(__file__).resolve().parents[1]
PROFILE = (REPO / "configs" / "simulator.toml").read_text()
SCAN = ['--center-um', '12500,12500', '--size-um', '10,10', '--step-um', '10', '--name', 's',
        '--time-scale', '0']
STEP = ('[[step]]\nkind = "scan"\nname = "a"\ncenter_um = [12500.0, 12500.0]\n'
        'size_um = [10.0, 10.0]\nstep_um = 10.0\n')
# What a title may hold, weighted to what HDF5 text cannot: a NUL, a byte that is not UTF-8
# (Python's stand-in for it, U+DC80..U+DCFF), a lone surrogate, and other text around them.
TITLE_CHARS = st.one_of(st.sampled_from(["\0", "\udcff", "\udc80", "\ud800", "é", " ", "\t",
                                         "\x1b", "µ"]),
                        st.characters(codec="utf-8"))
UNSTORABLE = re.compile("[\0\ud800-\udfff]")
FAST = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _toml_string(text: str) -> str:
    """`text` as a TOML basic string: escapes for quotes, backslashes and control characters."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@settings(FAST, max_examples=4)
@given(title=st.text(TITLE_CHARS, min_size=1, max_size=8))
@example(title="caf\udce9")  # a Latin-1 terminal's é: no draw of ten had a byte not UTF-8
@example(title="\ud800a")  # nor a lone surrogate
def test_a_scan_title_is_stored_or_refused_naming_title(tmp_path: Path, title: str) -> None:
    """A title with a NUL or a byte that is not UTF-8 reached h5py, which raised (ValueError:
    VLEN strings do not support embedded NULLs; UnicodeEncodeError) as the scan's entry was
    made: a traceback after the rig had been connected. Each storable title drawn runs a
    scan: four draws (three storable, one with a NUL) and the two kinds they miss."""
    out = tmp_path / "s.h5"
    out.unlink(missing_ok=True)
    bad = bool(UNSTORABLE.search(title))
    case = Case("title", repr(title), ["scan", *SCAN, "--out", str(out), f"--title={title}"],
                [], [out] if bad else [], ["--title", "title"], may_pass=not bad)
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)
    assert out.exists() != bad


@settings(FAST, max_examples=8)
@given(title=st.text(TITLE_CHARS.filter(lambda c: not "\ud800" <= c <= "\udfff"), min_size=1,
                     max_size=8),
       where=st.sampled_from(["step", "scan_defaults"]))
def test_a_recipe_title_is_stored_or_refused_naming_the_step(tmp_path: Path, title: str,
                                                             where: str) -> None:
    recipe = tmp_path / "r.toml"
    text = (STEP + f"title = {_toml_string(title)}\n" if where == "step"
            else f"[scan_defaults]\ntitle = {_toml_string(title)}\n" + STEP)
    recipe.write_text(text)
    out = tmp_path / "s.h5"
    out.unlink(missing_ok=True)
    bad = "\0" in title
    case = Case("recipe title", repr(title), ["run", str(recipe), "--out", str(out), "--yes",
                                              "--time-scale", "0"],
                [recipe], [out] if bad else [], [recipe.name, "step 1", "title"],
                may_pass=not bad)
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "m.h5"
    x = np.arange(6) * 10e-6
    write_map_entry(path, MapData(np.zeros((6, 6)), x, x, height=20e-6,
                                  sensor_size=(0.0, 0.0), applied_field=np.zeros(3),
                                  name="ok"), kind="scan")
    return path


def test_a_dataset_named_with_a_byte_that_is_not_utf8_is_refused(tmp_path: Path,
                                                                 session: Path) -> None:
    """h5py raised UnicodeEncodeError looking the name up in the entry."""
    csv = tmp_path / "x.csv"
    cases = [Case("--dataset", ascii(v), ["export", str(session), "--entry", "ok", "--csv",
                                          str(csv), f"--dataset={v}"], [session], [csv],
                  ["--dataset", "UTF-8"]) for v in ("\udcff", "Bz\udce9", "chi/\udc80")]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", ["a" * 300, "a/" * 2100 + "c.toml", "a\\u0000b"])
def test_a_calibration_file_the_system_cannot_look_up_is_refused(tmp_path: Path,
                                                                 name: str) -> None:
    """A name (or path) longer than the system allows raised OSError (File name too long) from
    `Path.exists`, a traceback from every command that reads the profile; one with a NUL was
    taken as missing, and calibrate-coils would have stored there."""
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE.replace("simulated = true\n",
                                       f'simulated = true\ncalibration_file = "{name}"\n'))
    out = tmp_path / "o.h5"
    commands = [["check"], ["safe"], ["scan", *SCAN, "--out", str(out)],
                ["calibrate-coils", "--time-scale", "0"]]
    cases = [Case("calibration file", f"{name[:12]} / {argv[0]}",
                  [*argv, "--profile", str(profile)], [profile], [out],
                  [profile.name, "rig.calibration_file"]) for argv in commands]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


KEYS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12) | \
    st.sampled_from(["\x1b[2J", "a\nb", "k" * 5000, "\u202e", "'", '"'])


def _one_clean_line(text: str) -> str | None:
    """What is wrong with an error message as a terminal shows it, or None."""
    if not text.endswith("\n") or re.search(r"[\x00-\x1f\x7f\u202e]", text[:-1]):
        return f"not one line of printable text: {text[:200]!r}"
    if len(text) > 1000:
        return f"{len(text)} characters"
    return None


@FAST
@given(key=KEYS, table=st.sampled_from(["step", "scan_defaults", "recipe", "top"]))
def test_an_unknown_recipe_key_is_quoted_on_one_short_line(tmp_path: Path, key: str,
                                                           table: str) -> None:
    """An unknown key was quoted as written: an escape sequence (the ESC of '\\x1b[2J') went
    to the terminal as it is, a line break split the message, and a key of 5,000 characters
    made a message of 5,000."""
    line = f"{_toml_string(key)} = 1\n"
    text = {"step": STEP + line, "scan_defaults": "[scan_defaults]\n" + line + STEP,
            "recipe": "[recipe]\n" + line + STEP, "top": line + STEP}[table]
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    out = tmp_path / "o.h5"
    err = _refusal(["run", str(recipe), "--out", str(out), "--yes"], [recipe], [out],
                   [recipe.name, "unknown key"])
    assert _one_clean_line(err) is None, _one_clean_line(err)


@FAST
@given(key=KEYS, table=st.sampled_from(["rig", "sensor", "lockin", "stage", "coils",
                                        "fluxgate", "top"]))
def test_an_unknown_profile_key_is_quoted_on_one_short_line(tmp_path: Path, key: str,
                                                            table: str) -> None:
    line = f"{_toml_string(key)} = 1\n"
    text = line + PROFILE if table == "top" else PROFILE.replace(f"[{table}]\n",
                                                                 f"[{table}]\n{line}", 1)
    profile = tmp_path / "p.toml"
    profile.write_text(text)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # the key is one the table has (e.g. 'name' in [rig]): named twice
    err = _refusal(["check", "--profile", str(profile)], [profile], [],
                   [profile.name, "unknown key"], may_pass_known=True)
    if err:
        assert _one_clean_line(err) is None, _one_clean_line(err)


def _refusal(argv: list[str], watched: list[Path], absent: list[Path], mention: list[str],
             *, may_pass_known: bool = False) -> str:
    """The refusal's stderr, once `run_all` finds it clean ("" when a key the table knows was
    drawn and `may_pass_known`)."""
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        main(argv)
    text = err.getvalue()
    if may_pass_known and "unknown key" not in text:
        return ""
    _, failures = run_all([Case("unknown key", argv[1], argv, watched, absent, mention)])
    assert not failures, "\n".join(failures)
    return text


RECIPE_NEEDS = {  # kind -> the step without each key it needs
    "scan": [(k, STEP.replace(f"{k} = ", "#", 1)) for k in ("name", "center_um", "size_um",
                                                             "step_um")],
    "set_field": [("field_uT", '[[step]]\nkind = "set_field"\n')],
    "wait": [("seconds", '[[step]]\nkind = "wait"\n')],
    "prompt": [("message", '[[step]]\nkind = "prompt"\n')],
    "subtract": [(k, '[[step]]\nkind = "subtract"\n' + "".join(
        f'{o} = "x"\n' for o in ("in_field", "remanent", "name") if o != k))
        for k in ("in_field", "remanent", "name")],
    "": [("kind", '[[step]]\nname = "a"\n')],
}


@pytest.mark.parametrize("kind", sorted(RECIPE_NEEDS))
def test_a_step_missing_a_key_says_what_was_expected(tmp_path: Path, kind: str) -> None:
    """'step 1: key 'kind' is missing' said what was wrong, not what was expected."""
    cases = []
    for i, (key, text) in enumerate(RECIPE_NEEDS[kind]):
        recipe = tmp_path / f"r{i}.toml"
        recipe.write_text(text)
        out = tmp_path / "o.h5"
        cases.append(Case("missing key", f"{kind} without {key}",
                          ["run", str(recipe), "--out", str(out), "--yes"], [recipe], [out],
                          [recipe.name, f"'{key}' is missing", "expected"]))
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)



HUGE_VALUES = ["1" + "0" * 400, '"' + "x" * 5000 + '"', "[" + ", ".join(["1.5"] * 1000) + "]"]


@FAST
@given(key=st.sampled_from(["height_um", "harmonic", "channel", "max_current_A", "axes",
                            "travel_um"]), value=st.sampled_from(HUGE_VALUES))
def test_a_huge_profile_value_is_quoted_cut_short(tmp_path: Path, key: str,
                                                 value: str) -> None:
    """A value of 400 digits or 5,000 characters was quoted whole: a message of 5,000."""
    profile = tmp_path / "p.toml"
    profile.write_text(re.sub(rf"(?m)^{key} = .+$", lambda _: f"{key} = {value}", PROFILE,
                              count=1))
    err = _refusal(["check", "--profile", str(profile)], [profile], [], [profile.name, key])
    assert _one_clean_line(err) is None, _one_clean_line(err)


@FAST
@given(key=st.sampled_from(["step_um", "center_um", "raster", "kind"]),
       value=st.sampled_from(HUGE_VALUES))
def test_a_huge_recipe_value_is_quoted_cut_short(tmp_path: Path, key: str, value: str) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(re.sub(rf"(?m)^{key} = .+$", lambda _: f"{key} = {value}",
                             STEP + 'raster = "serpentine"\n', count=1))
    out = tmp_path / "o.h5"
    err = _refusal(["run", str(recipe), "--out", str(out), "--yes"], [recipe], [out],
                   [recipe.name, key])
    assert _one_clean_line(err) is None, _one_clean_line(err)


FLY_VALUES = {"pixel_time_s": "0.1", "oversample": "4", "line_baselines": "true",
              "fly_trigger": "false"}


@settings(FAST, max_examples=8)
@given(key=st.sampled_from(sorted(FLY_VALUES)), fly=st.sampled_from(["", "fly = false\n"]),
       defaults=st.booleans())
def test_a_fly_key_in_a_step_that_does_not_fly_is_refused(tmp_path: Path, key: str, fly: str,
                                                          defaults: bool) -> None:
    """A step giving pixel_time_s (or another fly key) without fly = true was measured point
    by point, the key left unread without a word. The same key in [scan_defaults] of a recipe
    none of whose steps flies is refused too (it had been left unread); with a step that
    flies, it is taken: it serves that step."""
    line = f"{key} = {FLY_VALUES[key]}\n"
    recipe = tmp_path / "r.toml"
    out = tmp_path / "o.h5"
    out.unlink(missing_ok=True)
    if defaults:
        recipe.write_text("[scan_defaults]\n" + line + STEP + fly)
        _refusal(["run", str(recipe), "--out", str(out), "--yes"], [recipe], [out],
                 [recipe.name, "[scan_defaults]", key, "no scan step of the recipe flies"])
        recipe.write_text("[scan_defaults]\n" + line + STEP + fly
                          + STEP.replace('"a"', '"f"') + "fly = true\n")
        code = _run_quietly(["run", str(recipe), "--out", str(out), "--yes",
                             "--time-scale", "0"])
        assert code == 0 and out.exists()
        return
    recipe.write_text(STEP + fly + line)
    _refusal(["run", str(recipe), "--out", str(out), "--yes"], [recipe], [out],
             [recipe.name, "step 1", key, "fly = true"])


def _run_quietly(argv: list[str]) -> int:
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        return main(argv)


FLY_OPTIONS = [("--pixel-time-s", "0.1"), ("--oversample", "4"), ("--line-baselines",),
               ("--fly-trigger",)]


@settings(FAST, max_examples=6)
@given(options=st.lists(st.sampled_from(FLY_OPTIONS), min_size=1, max_size=3, unique=True))
def test_a_fly_option_without_fly_is_refused(tmp_path: Path,
                                            options: list[tuple[str, ...]]) -> None:
    """`scan --pixel-time-s 0.1` (or --oversample, --line-baselines, --fly-trigger) without
    --fly measured point by point, the option left unread without a word."""
    out = tmp_path / "o.h5"
    argv = ["scan", *SCAN, "--out", str(out), *[w for o in options for w in o]]
    _, failures = run_all([Case("fly option", " ".join(argv[-3:]), argv, [], [out],
                                [options[0][0], "without --fly"])])
    assert not failures, "\n".join(failures)
