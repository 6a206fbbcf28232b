"""The acquisition commands as a user runs them: scan, run, resume, info, demo, bad input."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from simulators.sample import LARGE_MAGNETITE, VirtualSample
from smm_daq import __version__
from smm_daq.cli.acquisition import ProgressBar, format_duration
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.nexus import list_entries, read_map
from smm_daq.storage.scan_entry import ScanEntryWriter
from smm_daq.storage.staging import REPLACED, STAGING, aside_name, staged_name

SCAN = [
    "scan",
    "--center-um",
    "12500,12500",
    "--size-um",
    "60,40",
    "--step-um",
    "20",
    "--field-uT",
    "0,40,0",
    "--name",
    "s1",
]


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_scan_writes_a_finished_entry_and_info_lists_it(tmp_path, capsys):
    path = tmp_path / "s.h5"
    code, _, err = _run(capsys, [*SCAN, "--out", str(path)])
    assert code == 0, err
    assert "scan 's1': 4 × 3 points" in err and "scan 's1' finished" in err
    m = read_map(path, "s1")
    assert m.shape == (3, 4) and np.isfinite(m.bz).all()
    np.testing.assert_allclose(m.applied_field, [0, 40e-6, 0])
    code, out, _ = _run(capsys, ["info", str(path)])
    assert code == 0
    assert out.splitlines()[0] == f"{path}: 1 entry"  # not "1 entries"
    assert "s1  [scan, finished]  4 × 3 step 20 × 20 µm  lines 3/3  field (0, 40, 0) µT" in out


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--center-um", "a,b"], ["--center-um is 'a,b'", "2 comma-separated numbers"]),
        (["--step-um", "nan"], ["--step-um is 'nan'", "expected a number, finite"]),
        (["--step-um", "10;20"], ["--step-um is '10;20'", "expected a number"]),
        (["--field-uT", "0,0,500"], ["plan field", "max_field 100 µT"]),
        (["--step-um", "0"], ["--step-um is 0.0", "> 0"]),
        (["--step-um", "0.001"], ["step_x is 0.001 µm", "stage resolution 0.01 µm"]),
        (["--center-um", "24990,12500"], ["plan x range", "stage travel"]),
        (["--height-um", "0"], ["--height-um", "plan height is 0 µm", "active layer",
                                "stand-off"]),
        (["--time-scale", "-1"], ["--time-scale is -1.0"]),
        (["--profile", "/nonexistent.toml"], ["profile file not found"]),
    ],
)
def test_bad_scan_input_exits_2_with_one_clear_message(tmp_path, capsys, extra, words):
    path = tmp_path / "s.h5"
    code, _, err = _run(capsys, [*SCAN, "--out", str(path), *extra])
    assert code == 2
    assert "Traceback" not in err and err.startswith("smm-daq: error: ")
    for w in words:
        assert w in err
    assert not path.exists()


def test_an_unusable_entry_name_is_refused_by_its_option(tmp_path, capsys):
    path = tmp_path / "s.h5"
    with pytest.raises(SystemExit) as stop:
        main([*SCAN, "--out", str(path), "--name", "a/b"])
    assert stop.value.code == 2
    assert "argument --name: 'a/b' is not usable as an entry name" in capsys.readouterr().err
    assert not path.exists()


def test_existing_entry_is_refused_and_nothing_is_lost(tmp_path, capsys, monkeypatch):
    """Refused before the rig is connected: a motor stage may reference itself at connect."""
    from smm_daq.instruments import rig

    path = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(path)]) == 0
    before = read_map(path, "s1").bz

    def never(*_, **__):
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(rig, "open_rig", never)
    code, _, err = _run(capsys, [*SCAN, "--out", str(path)])
    assert code == 2 and "entry 's1' already exists" in err
    # finished: no resume advised (it would be refused), another name is
    assert "smm-daq resume" not in err and "expected another scan name" in err
    assert "is a finished scan, which nothing resumes or writes over" in err
    np.testing.assert_array_equal(read_map(path, "s1").bz, before)


def test_bad_files_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    for argv, words in (
        (["info", str(tmp_path / "none.h5")], "file not found"),
        (["info", str(junk)], "cannot open as HDF5"),
        (["resume", str(junk), "--entry", "x"], "cannot open as HDF5"),
        (
            ["run", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o.h5")],
            "recipe file not found",
        ),
    ):
        code, _, err = _run(capsys, argv)
        assert code == 2 and words in err and "Traceback" not in err, argv
    assert junk.read_text() == "hello"


def test_resume_of_a_finished_scan_exits_2(tmp_path, capsys):
    path = tmp_path / "s.h5"
    main([*SCAN, "--out", str(path)])
    code, _, err = _run(capsys, ["resume", str(path), "--entry", "s1"])
    assert code == 2 and "finished already" in err
    code, _, err = _run(capsys, ["resume", str(path), "--entry", "nope"])
    assert code == 2 and "entry 'nope'" in err


def test_resume_refuses_a_scan_cut_off_while_written(tmp_path, capsys, monkeypatch):
    """Killed between moving its layout in and taking the being-written mark off: hidden
    from listings, deleted by the next writer of its name and by repair. Resumed, its lines
    went into it and were lost with it; now refused before the rig connects, and by the
    writer too, the file unchanged."""
    path = tmp_path / "s.h5"
    main([*SCAN, "--out", str(path)])
    with h5py.File(path, "a") as f:  # as the killed writer left it
        f["s1/status"][()] = "interrupted"
        f["s1/data/line_done"][:] = False
        f["s1"].attrs[STAGING] = 1
    before = path.read_bytes()
    from smm_daq.instruments import rig

    def never(*_, **__):
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(rig, "open_rig", never)
    code, _, err = _run(capsys, ["resume", str(path), "--entry", "s1"])
    assert code == 2 and "Traceback" not in err
    assert "entry 's1': was cut off while written, before its first line" in err
    with pytest.raises(InputError, match="cut off while written"):
        ScanEntryWriter.reopen(path, "s1")
    assert path.read_bytes() == before


@pytest.mark.parametrize("step", ["marked", "moved_aside", "moved_in"])
def test_a_new_scan_over_a_scan_swapped_in_part_way_is_told_what_finishes_it(
        tmp_path, capsys, step):
    """A scan's writer swapping its empty layout in over an earlier entry of its name (an
    earlier release's leftover moved in), killed at `step`: a new scan of that name is
    refused, naming `repair` and then `resume`, and those finish it (resume alone refuses
    the scan until the swap is finished: the advice was `resume` alone)."""
    path = tmp_path / "s.h5"
    main([*SCAN, "--out", str(path)])
    with h5py.File(path, "a") as f:  # as the killed writer left it
        f["s1/status"][()] = "interrupted"
        f["s1/data/line_done"][:] = False
        f["s1"].attrs[STAGING] = 1
        f.copy("s1", "old")
        f["old"].attrs["kind"] = "induced"
        del f["old"].attrs[STAGING]
        f["old"].attrs[REPLACED] = 1
        if step == "marked":
            f.move("s1", staged_name("s1"))
            f.move("old", "s1")
        elif step == "moved_aside":
            f.move("s1", staged_name("s1"))
            f.move("old", aside_name("s1"))
        else:
            f.move("old", aside_name("s1"))
    before = path.read_bytes()
    capsys.readouterr()
    code, _, err = _run(capsys, [*SCAN, "--out", str(path)])
    repair = command_line(["smm-daq", "repair", str(path)])
    assert code == 2 and "Traceback" not in err
    assert f"`{repair}` to finish the swap, then `{resume_command(path, 's1')}`" in err, err
    assert path.read_bytes() == before
    if step == "moved_in":  # resumed before the repair: told to repair first
        code, _, err = _run(capsys, ["resume", str(path), "--entry", "s1"])
        assert code == 2 and f"run `{repair}` first, then resume it" in err, err
        assert path.read_bytes() == before
    assert main(["repair", str(path)]) == 0
    assert main(["resume", str(path), "--entry", "s1"]) == 0
    with h5py.File(path, "r") as f:
        assert list(f) == ["s1"] and f["s1/data/line_done"][()].all()


def test_resume_refuses_another_profile(tmp_path, capsys, repo, monkeypatch):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w", libver="latest"):
        pass
    main([*SCAN, "--out", str(path)])
    with h5py.File(path, "a") as f:  # make it look interrupted
        f["s1/status"][()] = "aborted"
    other = tmp_path / "other.toml"
    other.write_text(
        (repo / "configs" / "simulator.toml")
        .read_text()
        .replace("sensitivity_V_per_T = 2000.0", "sensitivity_V_per_T = 1000.0")
    )
    from smm_daq.instruments import rig

    def never(*_, **__):
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(rig, "open_rig", never)  # refused before connecting
    code, _, err = _run(capsys, ["resume", str(path), "--entry", "s1", "--profile", str(other)])
    assert code == 2 and "another instrument profile" in err
    assert "sensor_sensitivity_V_per_T was 2000, now 1000" in err  # as people write numbers


def test_resume_after_a_recalibration_names_the_calibration(tmp_path, capsys, repo):
    profile = tmp_path / "lab.toml"
    profile.write_text((repo / "configs" / "simulator.toml").read_text().replace(
        "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"'))
    path = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(path), "--profile", str(profile)]) == 0
    with h5py.File(path, "a") as f:  # make it look interrupted
        f["s1/status"][()] = "aborted"
    (tmp_path / "coils.toml").write_text(
        "calibration_T_per_A = [[1e-4, 0, 0], [0, 1e-4, 0], [0, 0, 1e-4]]\n"
        "ambient_field_uT = [0, 0, 0]\n")
    code, _, err = _run(capsys, ["resume", str(path), "--entry", "s1"])
    assert code == 2
    assert "coil_calibration_T_per_A was" in err and "calibration file was rewritten" in err


def test_resume_finds_the_calibration_beside_a_profile_named_in_no_utf8(tmp_path, repo):
    """A profile in a folder named with a byte that is not UTF-8 (a Latin-1 terminal's é) is
    stored with the byte escaped: the resume took the escape for the folder's name, missed
    the calibration file beside the profile, and refused the profile as another (before the
    rig is connected: `check_resume`). It finds it."""
    from smm_daq.acquisition.resumable import check_resume, load_resumable

    folder = os.fsencode(tmp_path) + b"/r\xe9ig"
    try:
        os.mkdir(folder)
    except OSError:
        pytest.skip("this file system refuses a name that is not UTF-8")
    rig = Path(os.fsdecode(folder))
    (rig / "lab.toml").write_text((repo / "configs" / "simulator.toml").read_text().replace(
        "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"'))
    (rig / "coils.toml").write_text(  # (nominal 5e-5: missed, the profile reads as another)
        "calibration_T_per_A = [[5.0001e-5, 0, 0], [0, 5.0001e-5, 0], [0, 0, 5.0001e-5]]\n"
        "ambient_field_uT = [0, 0, 0]\n")
    path = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(path), "--profile", str(rig / "lab.toml")]) == 0
    with h5py.File(path, "a") as f:  # make it look interrupted
        f["s1/status"][()] = "aborted"
    stored = load_resumable(path, "s1").stored_profile()
    assert stored.calibration_file == rig / "coils.toml"
    check_resume(path, "s1", stored, hint="")


RECIPE = textwrap.dedent(
    """
    [scan_defaults]
    center_um = [12500.0, 12500.0]
    size_um = [40.0, 40.0]
    step_um = 20.0
    [[step]]
    kind = "zero_field"
    [[step]]
    kind = "scan"
    name = "rem"
    [[step]]
    kind = "prompt"
    message = "Turn the sample over"
    [[step]]
    kind = "scan"
    name = "inf"
    field_uT = [0.0, 40.0, 0.0]
    [[step]]
    kind = "subtract"
    in_field = "inf"
    remanent = "rem"
    name = "ind"
    register = false
    """
)


def test_run_a_recipe_with_yes(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    path = tmp_path / "s.h5"
    code, _, err = _run(capsys, ["run", str(recipe), "--out", str(path), "--yes"])
    assert code == 0, err
    assert "step 3/5: prompt: Turn the sample over" in err
    assert [e.name for e in list_entries(path)] == ["rem", "inf", "ind"]
    with h5py.File(path, "r") as f:  # how the subtraction was made, as `subtract` records it
        made = f["ind/process/parameters"]
        assert made["command"].asstr()[()] == command_line(
            ["smm-daq", "run", str(recipe), "--out", str(path), "--yes"])
        assert made["recipe"].asstr()[()] == RECIPE
        assert made["recipe_file"].asstr()[()] == str(recipe)
        assert f["rem/recipe"].attrs["path"] == str(recipe)
    code, out, _ = _run(capsys, ["info", str(path)])  # what a user cites the data with
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    recipe = "recipe untitled (r.toml, its text stored)"
    for scan in ("rem", "inf"):
        assert f"  smm-daq {__version__}, profile 'smm-daq simulator' (simulator.toml), " \
            f"{recipe}  " in lines[scan], lines[scan]
    assert f"  smm-daq {__version__}, {recipe}  " in lines["ind"], lines["ind"]


def test_run_refuses_a_prompt_without_yes_when_no_one_can_answer(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    path = tmp_path / "s.h5"
    code, _, err = _run(capsys, ["run", str(recipe), "--out", str(path)])  # stdin not a tty
    assert code == 2 and "step 3 (prompt): needs an operator" in err
    assert not path.exists()


def test_a_pause_with_no_operator_aborts_with_a_resume_hint(tmp_path, capsys, repo):
    touchy = tmp_path / "touchy.toml"
    touchy.write_text(
        (repo / "configs" / "simulator.toml")
        .read_text()
        .replace("sensitivity_V = 0.5", "sensitivity_V = 0.002")
    )  # the sample overloads this range
    path = tmp_path / "s.h5"
    argv = [
        "scan",
        "--center-um",
        "12500,12500",
        "--size-um",
        "400,400",
        "--step-um",
        "100",
        "--name",
        "t",
        "--out",
        str(path),
        "--profile",
        str(touchy),
    ]
    code, _, err = _run(capsys, argv)
    assert code == 1
    assert "then aborted with no operator" in err and f"smm-daq resume {path} --entry t" in err
    assert list_entries(path)[0].status == "aborted"
    code, _, err = _run(capsys, ["resume", str(path), "--entry", "t", "--auto-range"])
    assert code == 0, err
    assert np.isfinite(read_map(path, "t").bz).all()


def test_names_and_paths_beyond_ascii_are_scanned_resumed_and_read(tmp_path, capsys, repo):
    """The status message names the file and the entry, and is kept in a fixed-length field:
    an accent in either must be written as UTF-8, when the scan starts, ends and resumes."""
    touchy = tmp_path / "touchy.toml"
    touchy.write_text((repo / "configs" / "simulator.toml").read_text()
                      .replace("sensitivity_V = 0.5", "sensitivity_V = 0.002"))
    path = tmp_path / "échantillon_µ.h5"
    argv = ["scan", "--center-um", "12500,12500", "--size-um", "400,400", "--step-um", "100",
            "--name", "rémanent", "--out", str(path), "--profile", str(touchy)]
    code, _, err = _run(capsys, argv)
    assert code == 1 and f"smm-daq resume {path} --entry rémanent" in err
    (info,) = list_entries(path)
    assert (info.name, info.status) == ("rémanent", "aborted")
    code, _, err = _run(capsys, ["resume", str(path), "--entry", "rémanent", "--auto-range"])
    assert code == 0, err
    assert np.isfinite(read_map(path, "rémanent").bz).all()


@pytest.mark.slow
def test_demo_writes_three_entries_and_a_summary(tmp_path, capsys, cli_demo):
    path, code, out, err = cli_demo.path, cli_demo.code, cli_demo.out, cli_demo.err
    assert code == 0, err
    infos = {e.name: e for e in list_entries(path)}
    assert set(infos) == {"remanent", "in_field", "induced"}
    assert infos["induced"].sources == ("in_field", "remanent")
    np.testing.assert_allclose(infos["in_field"].applied_field, [0, 40e-6, 0])
    assert "demo written to" in out and "induced" in out
    # what it says to view the file with is installed with smm-daq (silx is a test extra)
    assert f"view it: smm-daq gui {path} (its Session tab)" in out and "silx" not in out, out
    induced = read_map(path, "induced").bz
    rem = read_map(path, "remanent").bz
    # the induced map is far weaker than the remanent one: remanence cancelled, not doubled
    assert np.nanmax(np.abs(induced)) < 0.2 * np.nanmax(np.abs(rem))
    # seed 000's Figure 4d: the large magnetite's edges across the +y field, + above and −
    # below, far above the difference's noise (√2 × 0.25 µT)
    m = read_map(path, "induced")
    for x, y, _, _, dy, _ in VirtualSample.builtin().cuboids[-len(LARGE_MAGNETITE):]:
        ix = int(np.argmin(np.abs(m.x - x)))
        top, bottom = (int(np.argmin(np.abs(m.y - v))) for v in (y + dy / 2, y - dy / 2))
        assert m.bz[top, ix] > 5 * 0.36e-6 and m.bz[bottom, ix] < -5 * 0.36e-6
    with h5py.File(path, "r") as f:
        assert f.attrs["default"] == "induced"  # the file opens on that map
    again = cli_demo.copy_to(tmp_path)
    code, _, err = _run(capsys, ["demo", "--out", str(again)])
    assert code == 2 and "exists already" in err


@pytest.mark.slow
def test_the_demos_subtraction_records_how_it_was_made(cli_demo):
    """A subtraction made by `smm-daq subtract` recorded its command; the demo's recorded
    none. It records the demo's, with the parameters a `subtract` records."""
    path = cli_demo.path
    with h5py.File(path, "r") as f:
        demo = {k: v[()] for k, v in f["induced/process/parameters"].items()}
    assert demo.pop("command").decode() == command_line(["smm-daq", "demo", "--out", str(path)])
    assert demo.pop("applied_field_from").decode() == "in-field − remanent"
    np.testing.assert_allclose(demo.pop("in_field_applied_field"), [0.0, 40e-6, 0.0], rtol=1e-12)
    np.testing.assert_array_equal(demo.pop("remanent_applied_field"), [0.0, 0.0, 0.0])
    assert demo == {"register": 1, "fit_rotation": 0, "apply_insignificant_shift": 0}


def test_progress_bar_and_durations():
    assert format_duration(59.4) == "59s"
    assert format_duration(3 * 3600 + 125) == "3h02m"
    assert format_duration(None) == "--"

    class Stream:
        text = ""

        def write(self, s):
            Stream.text += s

        def flush(self):
            pass

    from smm_daq.acquisition.events import ScanEvent

    bar = ProgressBar(Stream())
    bar(ScanEvent("started", "e", 0, message="3 of 3 lines to measure"))
    for i in range(1, 11):
        bar(ScanEvent("point", "e", 0, progress=i / 10))
    bar(ScanEvent("finished", "e", 2, progress=1.0))
    assert Stream.text.count("ETA") == 10 and "scan 'e' finished" in Stream.text


def test_progress_bar_on_a_terminal_redraws_one_line_from_where_a_resume_starts():
    import io

    from smm_daq.acquisition.events import ScanEvent

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    bar = ProgressBar(out, min_interval=0)
    bar(ScanEvent("started", "e", 3, message="7 of 10 lines to measure", progress=0.3))
    for line in range(3, 10):
        bar(ScanEvent("line_done", "e", line, progress=(line + 1) / 10))
    bar(ScanEvent("finished", "e", 9, progress=1.0))
    text = out.getvalue()
    assert "e line 4:  40.0%" in text and "e line 10: 100.0%" in text
    assert " 10.0%" not in text  # the bar started at the 3 lines already measured
    assert text.endswith("\nscan 'e' finished\n") and text.count("\n") == 3


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bar_says_a_warning_at_a_lines_end(terminal: bool) -> None:
    import io

    from smm_daq.acquisition.events import ScanEvent

    class Stream(io.StringIO):
        def isatty(self):
            return terminal

    out = Stream()
    bar = ProgressBar(out, min_interval=0)
    bar(ScanEvent("started", "e", 0, message="2 of 2 lines to measure"))
    bar(ScanEvent("line_done", "e", 0, progress=0.5))
    bar(ScanEvent("line_done", "e", 1, progress=1.0, message="the field drifted 140 nT"))
    bar(ScanEvent("finished", "e", 1, progress=1.0))
    text = out.getvalue()
    assert text.count("warning") == 1
    assert "scan 'e': warning: the field drifted 140 nT\n" in text


def test_time_scale_with_real_instruments_is_refused_before_connecting(tmp_path, capsys,
                                                                       monkeypatch, repo):
    """Real instruments keep their own time: the option would be ignored without a word."""
    from smm_daq.instruments import rig

    def never(*_, **__):
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(rig, "open_rig", never)
    lab = str(repo / "configs" / "example-lab.toml")
    for argv in ([*SCAN, "--out", str(tmp_path / "s.h5")], ["calibrate-coils"]):
        code, _, err = _run(capsys, [*argv, "--profile", lab, "--time-scale", "10"])
        assert code == 2 and "--time-scale applies to simulated profiles" in err, err
    assert not (tmp_path / "s.h5").exists()


def test_time_scale_with_real_instruments_is_the_only_thing_said(tmp_path, capsys, monkeypatch,
                                                                 repo):
    """A scan, a recipe or a resume on real instruments given --time-scale is refused before
    it announces itself: no plan with its duration, no "resuming", which read as if the scan
    had begun (the profile, a recipe's or one stored with a scan, is what tells)."""
    from smm_daq.instruments import rig

    lab = str(repo / "configs" / "example-lab.toml")
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    path = tmp_path / "s.h5"
    main([*SCAN, "--out", str(path)])
    capsys.readouterr()
    with h5py.File(path, "a") as f:  # as a killed scan on real instruments left it
        f["s1/status"][()] = "interrupted"
        f["s1/data/line_done"][-1] = False
        for name in ("profile", "profile_fingerprint"):
            text = f[f"s1/{name}"][()].decode()
            text = text.replace("simulated = true", "simulated = false").split("[simulation]")[0]
            del f[f"s1/{name}"]
            f["s1"].create_dataset(name, data=text.replace('"simulated": true',
                                                           '"simulated": false'))

    def never(*_, **__):
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(rig, "open_rig", never)
    refused = "smm-daq: error: --time-scale applies to simulated profiles"
    for argv in ([*SCAN[:-1], "s2", "--out", str(tmp_path / "n.h5"), "--profile", lab],
                 ["run", str(recipe), "--out", str(tmp_path / "n.h5"), "--profile", lab,
                  "--yes"],
                 ["resume", str(path), "--entry", "s1"]):
        code, out, err = _run(capsys, [*argv, "--time-scale", "10"])
        said = [line for line in err.splitlines() if "warning" not in line]
        assert code == 2 and len(said) == 1 and said[0].startswith(refused), err
        assert out == ""
    assert not (tmp_path / "n.h5").exists()


def test_scan_and_run_warn_when_the_coil_calibration_file_is_missing(tmp_path, capsys):
    """A misspelt rig.calibration_file leaves the nominal coil matrix and ambient field in
    use: a "zero-field" scan would be taken in what they miss. `check` says so; a scan and a
    recipe, which are what it harms, must say so too, before they start."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
    profile = tmp_path / "lab.toml"
    profile.write_text(shipped.read_text().replace(
        "simulated = true", 'simulated = true\ncalibration_file = "coils.tom"'))
    warning = f"rig.calibration_file {tmp_path / 'coils.tom'} does not exist"
    code, _, err = _run(capsys, [*SCAN, "--out", str(tmp_path / "s.h5"), "--profile",
                                 str(profile)])
    assert code == 0 and warning in err
    assert err.index(warning) < err.index("scan 's1' finished")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\ntitle = "t"\n\n[[step]]\nkind = "zero_field"\n')
    code, _, err = _run(capsys, ["run", str(recipe), "--out", str(tmp_path / "r.h5"),
                                 "--profile", str(profile)])
    assert code == 0 and warning in err
    code, _, err = _run(capsys, [*SCAN[:-1], "s2", "--out", str(tmp_path / "s.h5")])
    assert code == 0 and "calibration_file" not in err


NOT_WHOLE = ("a size of 110 × 60 µm is no whole number of steps of 25 µm: the grid of 5 × 3 "
             "points covers 100 × 50 µm instead (sizes that fit: 100 or 125 µm along x; 50 "
             "or 75 µm along y)")


def test_a_size_of_no_whole_steps_is_warned_of_naming_the_area_scanned(tmp_path, capsys):
    """The grid has whole steps: 110 × 60 µm at 25 µm gave 5 × 3 points over 100 × 50 µm,
    silently. The scan and a recipe's scan step say which area is scanned."""
    size = ["--center-um", "12500,12500", "--step-um", "25", "--name", "s"]
    code, _, err = _run(capsys, ["scan", *size, "--size-um", "110,60",
                                 "--out", str(tmp_path / "s.h5")])
    assert code == 0
    assert f"smm-daq: warning: --size-um 110,60, --step-um 25: {NOT_WHOLE}\n" in err
    assert read_map(tmp_path / "s.h5", "s").shape == (3, 5)
    code, _, err = _run(capsys, ["scan", *size, "--size-um", "100,50",
                                 "--out", str(tmp_path / "t.h5")])
    assert code == 0 and "warning" not in err
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\ntitle = "t"\n\n[[step]]\nkind = "scan"\nname = "a"\n'
                      'center_um = [12500, 12500]\nsize_um = [110, 60]\nstep_um = 25\n')
    code, _, err = _run(capsys, ["run", str(recipe), "--yes", "--out", str(tmp_path / "r.h5")])
    assert code == 0
    assert f"smm-daq: warning: {recipe}, step 1 (scan 'a'): {NOT_WHOLE}\n" in err
    assert f"step 1/1: scan 'a' 5 × 3 points at (0, 0, 0) µT; {NOT_WHOLE}\n" in err
