"""Scan set-up: plans validated as on the command line, messages beside the wrong field."""

from __future__ import annotations

import pytest
from PyQt6 import QtCore

from gui.scan_form import ScanForm, field_of_message, format_duration
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.instruments.profile import load_profile

UM = 1e-6
UT = 1e-6


@pytest.fixture
def profile():
    return load_profile()


@pytest.fixture
def form(qtbot, profile):
    f = ScanForm(profile)
    qtbot.addWidget(f)
    return f


def test_the_default_plan_is_valid_and_has_a_duration(form, profile):
    plan = form.checked_plan()
    assert plan is not None
    assert all(form.error_text(k) == "" for k in form.errors)
    assert form.duration.text() == format_duration(plan.estimate_duration(profile))


def test_a_grid_leaving_the_stage_travel_is_reported_beside_x(form, profile):
    form.x0.setValue(profile.stage.travel[0, 1] / UM - 50.0)
    assert form.checked_plan() is None
    assert "stage travel" in form.error_text("x0")
    assert form.duration.text() == "–"
    form.x0.setValue(1000.0)
    assert form.error_text("x0") == ""


def test_a_field_above_the_limit_is_reported_beside_the_field(form, profile):
    form.field[2].setValue(profile.coils.max_field / UT + 1.0)
    assert form.checked_plan() is None
    assert "max_field" in form.error_text("field")


@pytest.mark.parametrize(
    ("row", "set_bad"),
    [
        ("nx", lambda f: f.nx.setValue(0)),
        ("step_y", lambda f: f.step_y.setValue(0.001)),
        ("height", lambda f: f.height.setValue(-5.0)),
        ("settle_tau", lambda f: f.settle_tau.setValue(-1.0)),
        ("name", lambda f: f.name.setText("a/b")),
    ],
)
def test_each_message_lands_by_its_field(form, row, set_bad):
    set_bad(form)
    assert form.checked_plan() is None
    assert form.error_text(row) != ""
    assert [k for k in form.errors if form.error_text(k)] == [row]


def test_the_message_is_the_one_the_command_line_gives(form, profile):
    form.ny.setValue(0)
    with pytest.raises(Exception) as raised:
        form.plan().validate(profile)
    form.checked_plan()
    assert form.error_text("ny") == str(raised.value)


def test_field_of_message_reads_the_plan_key():
    assert field_of_message("plan step_x is 0.001 µm; expected ...") == "step_x"
    assert field_of_message("plan y range 1 .. 2 µm leaves the stage travel") == "y0"
    assert field_of_message("something else") is None


def test_a_dragged_area_becomes_the_grid(form):
    form.step_x.setValue(20.0)
    form.step_y.setValue(10.0)
    form.use_area(1000 * UM, 2000 * UM, 1400 * UM, 2105 * UM)
    plan = form.checked_plan()
    assert plan is not None
    assert (plan.x0, plan.y0) == pytest.approx((1000 * UM, 2000 * UM))
    assert (plan.nx, plan.ny) == (21, 11)
    assert plan.x[-1] <= 1400 * UM + 1e-12 and plan.y[-1] <= 2105 * UM


def test_a_dragged_area_of_no_whole_steps_names_the_area_the_grid_covers(form):
    """The grid has whole steps: a 105 µm high area at 10 µm is scanned over 100 µm."""
    form.step_x.setValue(20.0)
    form.step_y.setValue(10.0)
    form.use_area(1000 * UM, 2000 * UM, 1400 * UM, 2105 * UM)
    assert form.error_text("nx") == (
        "the area drawn: a size of 400 × 105 µm is no whole number of steps of 20 × 10 µm: "
        "the grid of 21 × 11 points covers 400 × 100 µm instead (sizes that fit: 100 or 110 "
        "µm along y)")
    form.use_area(1000 * UM, 2000 * UM, 1400 * UM, 2110 * UM)
    assert form.error_text("nx") == ""


@pytest.mark.parametrize("zero", ["step_x", "step_y"])
def test_a_dragged_area_with_a_zero_step_names_that_step(form, zero):
    """A zero y step was said beside the x step, which was fine."""
    other = "step_y" if zero == "step_x" else "step_x"
    getattr(form, other).setValue(20.0)
    getattr(form, zero).setValue(0.0)
    nx, ny = form.nx.value(), form.ny.value()
    form.use_area(1000 * UM, 2000 * UM, 1400 * UM, 2105 * UM)
    assert form.error_text(zero) == f"plan {zero} must be > 0 to fit a grid into the area"
    assert "must be > 0" not in form.error_text(other)
    assert (form.nx.value(), form.ny.value()) == (nx, ny)  # the grid as it was


def test_the_plan_carries_si_values(form):
    form.field[0].setValue(12.5)
    form.raster.setCurrentText("unidirectional")
    plan = form.plan()
    assert plan.field == pytest.approx((12.5 * UT, 0.0, 0.0))
    assert plan.raster == "unidirectional"


def test_the_plan_persists_in_settings(qtbot, profile, tmp_path):
    store = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    first = ScanForm(profile)
    qtbot.addWidget(first)
    first.set_plan(
        ScanPlan(
            name="kept",
            x0=1e-3,
            y0=2e-3,
            nx=7,
            ny=5,
            step_x=5e-6,
            step_y=6e-6,
            field=(0, 0, 20e-6),
            raster="unidirectional",
        )
    )
    first.save(store)
    second = ScanForm(profile)
    qtbot.addWidget(second)
    second.restore(store)
    assert second.plan() == first.plan()


def test_format_duration():
    assert format_duration(12.4) == "12 s"
    assert format_duration(250) == "4 min 10 s"
    assert format_duration(2 * 3600 + 300) == "2 h 05 min"


def test_fly_mode_makes_a_fly_plan_and_round_trips(form):
    assert form.plan().fly is None
    assert not form.pixel_time.isEnabled()
    form.mode.setCurrentText("fly")
    form.pixel_time.setValue(0.2)
    form.oversample.setValue(16)
    form.fly_trigger.setChecked(True)
    plan = form.plan()
    assert plan.fly is not None
    assert (plan.fly.pixel_time, plan.fly.oversample, plan.fly.trigger) == (0.2, 16, True)
    assert not form.settle_tau.isEnabled() and form.pixel_time.isEnabled()
    form.mode.setCurrentText("step")
    assert form.plan().fly is None
    form.set_plan(plan)
    assert form.mode.currentText() == "fly" and form.plan().fly == plan.fly


def test_line_baselines_are_a_fly_option_carried_into_the_plan(form):
    """The command line's --line-baselines (subtract each flown line's median): offered only
    for fly scans, carried into the plan's fly settings and back into the form."""
    assert not form.line_baselines.isEnabled()
    form.line_baselines.setChecked(True)
    assert form.plan().fly is None  # a step scan has no lines to level this way
    form.mode.setCurrentText("fly")
    assert form.line_baselines.isEnabled()
    plan = form.plan()
    assert plan.fly is not None and plan.fly.baselines
    form.line_baselines.setChecked(False)
    assert not form.plan().fly.baselines
    form.set_plan(plan)
    assert form.line_baselines.isChecked() and form.plan() == plan


def test_a_bad_fly_pixel_time_lands_by_its_field(form):
    form.mode.setCurrentText("fly")
    form.pixel_time.setValue(-1.0)
    assert form.checked_plan() is None
    assert "pixel_time_s" in form.error_text("pixel_time")
    assert [k for k in form.errors if form.error_text(k)] == ["pixel_time"]


@pytest.mark.parametrize(
    ("row", "set_bad", "words"),
    [
        ("fly_trigger", lambda f: f.fly_trigger.setChecked(True), "trigger_wired = true"),
        ("oversample", lambda f: f.oversample.setValue(64), "highest rate is 512 Hz"),
        ("pixel_time", lambda f: f.pixel_time.setValue(0.002), "maximum velocity"),
    ],
)
def test_what_the_rig_cannot_fly_lands_by_its_field_before_connecting(form, row, set_bad,
                                                                      words):
    form.mode.setCurrentText("fly")
    form.step_x.setValue(40.0)  # at 2 ms a pixel: 20 mm/s, beyond the stage's 10 mm/s
    form.oversample.setValue(1)
    set_bad(form)
    assert form.checked_plan() is None
    assert words in form.error_text(row)
    assert [k for k in form.errors if form.error_text(k)] == [row]


def centre_um(profile, axis: int) -> float:
    return float(profile.stage.travel[axis].mean()) / UM


@pytest.mark.parametrize(
    ("row", "set_bad", "words"),
    [
        ("nx", lambda f, p: (f.step_x.setValue(0.01), f.step_y.setValue(0.01),
                             f.nx.setValue(10_000), f.ny.setValue(3_000)), "points"),
        ("duration", lambda f, p: (f.nx.setValue(1000), f.ny.setValue(1000),
                                   f.settle_tau.setValue(1000.0)), "estimated to take"),
    ],
)
def test_grid_and_duration_messages_land_by_their_rows(form, profile, row, set_bad, words):
    set_bad(form, profile)
    assert form.checked_plan() is None
    assert words in form.error_text(row)
    assert [k for k in form.errors if form.error_text(k)] == [row]


@pytest.mark.parametrize(
    ("row", "set_bad", "words"),
    [
        ("x0", lambda f, p: f.x0.setValue(p.stage.travel[0, 1] / UM - 20 * 10.0),
         "run-up"),
        ("nx", lambda f, p: (f.step_x.setValue(1.0), f.nx.setValue(5000),
                             f.x0.setValue(centre_um(p, 0) - 2500.0)), "lock-in buffer"),
    ],
)
def test_fly_line_messages_land_by_their_rows(form, profile, row, set_bad, words):
    form.mode.setCurrentText("fly")
    set_bad(form, profile)
    assert form.checked_plan() is None
    assert words in form.error_text(row)
    assert [k for k in form.errors if form.error_text(k)] == [row]


def test_every_step_the_command_line_takes_can_be_entered(form):
    """The command line takes any step (µm, as a float) down to the finest stage resolution
    a profile may declare (RESOLUTION_NM); the form must not round it."""
    from smm_daq.instruments.profile import RESOLUTION_NM

    finest_um = RESOLUTION_NM[0] * 1e-3
    for value_um in (2.0005, 0.0123456, 1.234567, finest_um):
        form.step_x.setValue(value_um)
        form.step_y.setValue(value_um)
        plan = form.plan()
        assert plan.step_x == pytest.approx(value_um * UM, rel=1e-12), value_um
        assert plan.step_y == pytest.approx(value_um * UM, rel=1e-12), value_um
    form.step_x.setValue(2.5)
    assert form.step_x.text() == "2.5 µm"  # no row of trailing zeros


def test_a_fly_pixel_time_is_taken_to_the_microsecond(form):
    """As `--pixel-time-s 0.0025` takes it: a rounded pixel time would fly another speed,
    rate and time constant than the user asked for."""
    form.mode.setCurrentText("fly")
    for seconds in (0.0025, 0.000125, 1.234567):
        form.pixel_time.setValue(seconds)
        assert form.plan().fly.pixel_time == pytest.approx(seconds, rel=1e-12), seconds
    assert form.pixel_time.text() == "1.234567 s"


@pytest.mark.parametrize("title", ["a\0b", "a fly line of\0", "plan grid\0"])
def test_a_title_a_session_file_cannot_hold_is_reported_beside_the_title(form, title):
    """The plan refuses a title with a NUL (HDF5 text ends there): said by the Title row,
    whatever words the title holds, not by the entry name's."""
    form.title.setText(title)
    assert form.checked_plan() is None
    assert "NUL" in form.error_text("title")
    assert [k for k in form.errors if form.error_text(k)] == ["title"]


def type_into(qtbot, box, text: str) -> None:
    """Types `text` over what `box` shows, as a user would, and Return."""
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, QtCore.Qt.Key.Key_Return)


def form_box(form, row: str):
    return form.field[1] if row == "field" else form.inputs[row]


@pytest.mark.parametrize(("row", "text", "value", "error"), [
    ("field", "2,5", 2.5, ""), ("step_x", "0,5", 0.5, ""), ("field", "5 uT", 5.0, ""),
    ("field", "1e3", 1000.0, "expected |B| <= max_field"),
    ("nx", "-5", 0, "plan nx is 0; expected a whole number >= 1")])
def test_a_number_typed_into_the_plan_is_the_number_typed(form, qtbot, row, text, value,
                                                          error):
    """2,5 µT was a scan at 25 µT and a step of 0,5 µm one of 5 µm (the comma taken for a
    thousands separator), 1e3 µT was 13 µT (its e dropped), -5 lines were 5: each without
    a word."""
    type_into(qtbot, form_box(form, row), text)
    assert form_box(form, row).value() == pytest.approx(value)
    assert error in form.error_text(row) and bool(error) == bool(form.error_text(row))


@pytest.mark.parametrize(("row", "text"), [("field", "1,000"), ("field", "nan"),
                                           ("step_x", "abc"), ("nx", "1,5"), ("height", "")])
def test_text_the_plan_cannot_read_is_refused_beside_its_row(form, qtbot, row, text):
    """1,000 µT (a thousand, or 1?) became 1 µT, 1,5 lines 15; now refused, said by the row,
    and the value before kept (an emptied box keeps it without a word)."""
    box = form_box(form, row)
    before = box.value()
    type_into(qtbot, box, text)
    assert box.value() == before
    assert form.error_text(row).startswith(f"'{text}" if text else "")
    assert bool(form.error_text(row)) == bool(text)


def _scan_tab(qtbot, *, shown: bool = False):
    """A Scan tab on the simulator's profile, with no rig (shown: on screen, for focus)."""
    from gui.rig_holder import RigHolder
    from gui.scan_tab import ScanTab

    tab = ScanTab(RigHolder(load_profile()))
    qtbot.addWidget(tab)
    if shown:
        tab.show()
        qtbot.waitExposed(tab)
    return tab


def test_a_session_file_typed_from_the_home_folder_is_there(qtbot, tmp_path, monkeypatch):
    """~/s.h5 typed on the Scan tab, as the command line takes it, was a file in a folder
    named ~ under the current one: the scan failed, on a scratch file's name there."""
    monkeypatch.setenv("HOME", str(tmp_path))
    tab = _scan_tab(qtbot)
    qtbot.keyClicks(tab.file_edit, "~/s.h5")
    assert tab.path == tmp_path / "s.h5"
    tab.live.timer.stop()


def test_a_session_file_under_a_user_there_is_not_is_left_as_typed(qtbot):
    """~name/s.h5 of no user named so raised from the home folder's look-up on every key
    typed (a box saying the window's own code failed), and Start or a recipe opened raised
    too; the name is left as typed, as the shell leaves it, for the place's check to refuse."""
    from pathlib import Path

    tab = _scan_tab(qtbot)
    qtbot.keyClicks(tab.file_edit, "~no-such-user-of-smm/s.h5")
    assert tab.path == Path("~no-such-user-of-smm/s.h5")
    tab.live.timer.stop()


def test_start_takes_the_number_typed_without_return(qtbot):
    """A field typed and Start's key (F5) pressed with the focus still in the box started the
    scan with the field before (the box takes its number on Return or as it is left, so that
    a number half typed is none); text the box refuses is said there, and nothing starts."""
    tab = _scan_tab(qtbot)
    box = tab.form.field[1]
    for text, value, said in (("abc", 0.0, "The plan is not valid"),
                              ("40", 40.0, "Choose the session file")):
        box.setFocus()
        box.lineEdit().selectAll()
        qtbot.keyClicks(box, text)
        assert not tab.start()  # no file chosen: the plan is read all the same
        assert box.value() == value
        assert tab.status.text().startswith(said)
        assert tab.form.error_text("field").startswith("'abc" if text == "abc" else "")
    tab.live.timer.stop()


@pytest.mark.parametrize("before", [2.0, 1000.0])
def test_start_takes_no_number_clamped_unseen(qtbot, before):
    """5000 τ typed and Start's key pressed with the focus still in the box started a scan
    settling 1000 τ, the box's end: what was said of it was wiped as Start checked the plan
    (and never said when the box held 1000 τ already)."""
    tab = _scan_tab(qtbot)
    box = tab.form.settle_tau
    box.setValue(before)
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "5000")
    assert not tab.start()
    assert tab.status.text().startswith("The plan is not valid")
    assert tab.form.error_text("settle_tau") == ("5000 τ is beyond this box's range; 1000 τ "
                                                 "is used")
    assert not tab.start() and tab.status.text().startswith("Choose the session file")
    assert box.value() == 1000.0
    tab.live.timer.stop()


def test_the_plan_saved_holds_the_number_typed_without_return(form, qtbot, settings):
    """The window's settings are saved as it closes, the focus still in the box typed into:
    the plan kept the number before (the box takes its number on Return or as it is left)."""
    box = form.field[1]
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "40")
    form.save(settings)
    assert ScanPlan.from_text(settings.value("scan/plan")).field[1] == pytest.approx(40 * UT)


def _typed_into(qtbot, box, text: str) -> None:
    """`text` typed into `box` as a person does: the box focused, its text selected, keys."""
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, text)


@pytest.mark.parametrize(("row", "text", "said"), [
    ("field", "1,000", "'1,000 µT' is not taken"),
    ("settle_tau", "5000", "5000 τ is beyond this box's range; 1000 τ is used")])
def test_start_clicked_from_a_box_takes_no_number_unseen(qtbot, row, text, said):
    """Start clicked with the mouse: the box is left as the button is pressed, and what it
    refused or clamped then was said by its row and wiped at once as Start checked the plan,
    which started with the field before (or 1000 τ for the 5000 typed)."""
    tab = _scan_tab(qtbot, shown=True)
    box = form_box(tab.form, row)
    _typed_into(qtbot, box, text)
    tab.start_button.setEnabled(True)  # as once connected
    qtbot.mouseClick(tab.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert not box.hasFocus()
    assert tab.status.text().startswith("The plan is not valid")
    assert tab.form.error_text(row).startswith(said)
    qtbot.mouseClick(tab.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert tab.status.text().startswith("Choose the session file")
    tab.live.timer.stop()


def test_a_refusal_as_one_field_box_is_left_stays_when_the_next_is_typed_into(qtbot):
    """Bx typed 1,000 and left for By, By typed 5: Start said Bx's refusal again and started
    not; typing into By forgot it (one row, three boxes), the scan started with Bx before."""
    tab = _scan_tab(qtbot, shown=True)
    for box, text in zip(tab.form.field[:2], ("1,000", "5"), strict=True):
        _typed_into(qtbot, box, text)
    tab.start_button.setEnabled(True)  # as once connected
    qtbot.mouseClick(tab.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert tab.status.text().startswith("The plan is not valid")
    assert tab.form.error_text("field").startswith("'1,000 µT' is not taken")
    assert tab.form.field[1].value() == 5.0
    tab.live.timer.stop()
