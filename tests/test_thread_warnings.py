"""Warnings recorded per thread: the project's catchers (an image's reader, a mask image's
reader, the command line's warnings on stderr, the MMT tab's notes) take the warnings of
their own thread alone, and never lose another thread's. Two threads are interleaved by
events, at the point where one of them is inside its catcher."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smm_daq.analysis.grains import GeometryWarning
from smm_daq.analysis.mmt import masks
from smm_daq.analysis.optical import read_image
from smm_daq.cli.mmt import _warnings_to_stderr
from smm_daq.storage.mapdata import MapData
from smm_daq.thread_warnings import recorded

WAIT_S = 30.0  # a hung interleaving fails instead of hanging; never reached when all is well


class Note(UserWarning):
    """A warning of the other thread's work (an inversion's note)."""


def _wait(event: threading.Event) -> None:
    assert event.wait(WAIT_S), "the other thread never got there"


class Paused(threading.Thread):
    """Runs `work` in a thread that stops where `pause` is called until `go` is set."""

    def __init__(self, work: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.inside = threading.Event()
        self.go = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None

    def pause(self) -> None:
        if threading.current_thread() is self:
            self.inside.set()
            _wait(self.go)

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # handed to the test's thread
            self.error = exc

    def finish(self) -> object:
        self.go.set()
        self.join(WAIT_S)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def pause_in(thread: Paused, monkeypatch: pytest.MonkeyPatch, owner: object,
             name: str) -> None:
    """`owner.name`, called in `thread`, pauses it there before doing its work."""
    original = getattr(owner, name)

    def held(*args: object, **kwargs: object) -> object:
        thread.pause()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)


def test_an_image_read_in_one_thread_says_its_own_warning_alone(tmp_path: Path, monkeypatch,
                                                                recwarn) -> None:
    """A worker reads an image Pillow warns of (above its pixel limit) while another thread,
    inside its own record, warns: the image's message says Pillow's warning alone and the
    other thread's record holds its warning alone. `catch_warnings` gave the image's
    message the other thread's note."""
    path = tmp_path / "picture.png"
    Image.new("RGB", (10, 8), "white").save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 79)  # warns of 80 pixels; refuses 160
    reader = Paused(lambda: read_image(path))
    pause_in(reader, monkeypatch, Image.Image, "convert")
    with recorded() as mine:
        reader.start()
        _wait(reader.inside)
        warnings.warn("grain 3 overlaps grain 4", Note, stacklevel=1)
        _rgb, said = reader.finish()
    assert [str(w.message) for w in mine] == ["grain 3 overlaps grain 4"]
    assert said.startswith(f"{path}: read, but Pillow warned: Image size (80 pixels) exceeds")
    assert "grain" not in said
    assert len(recwarn) == 0


def scan() -> MapData:
    x = np.arange(10) * 1e-6
    return MapData(bz=np.zeros((8, 10)), x=x, y=x[:8], name="scan")


def test_a_mask_image_read_in_one_thread_takes_no_warning_of_another(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """A worker reads a mask image while the MMT tab's worker, inside its record of notes,
    warns: each warning stays with its thread. `catch_warnings` in the mask's reader gave the
    mask a "Pillow warned" about the other thread's note, and the notes lost it."""
    path = tmp_path / "mask.png"
    painted = np.full((8, 10), 255, np.uint8)
    painted[0, 0] = 0
    Image.fromarray(painted).save(path)
    reader = Paused(lambda: masks.read_mask(path, scan()))
    pause_in(reader, monkeypatch, masks, "_whiteness_of_file")
    with recorded() as notes, recorded() as theirs:
        reader.start()
        _wait(reader.inside)
        warnings.warn("the system is singular", Note, stacklevel=1)
        with warnings.catch_warnings(record=True) as mask_said:  # the reader's, if any
            mask = reader.finish()
    assert [str(w.message) for w in theirs] == ["the system is singular"]
    assert notes == [] and mask_said == []
    assert np.count_nonzero(mask) == 1


def test_the_command_lines_warnings_are_its_threads_and_no_other_is_lost(capsys,
                                                                         recwarn) -> None:
    """While the command line says its run's warnings on stderr, another thread's warning is
    left to Python's own showing, not printed as the run's; `catch_warnings` printed it as
    one of the run's (a category of smm-daq's own, said as its own: "smm-daq: warning: ...")."""
    other = Paused(lambda: warnings.warn("from the sequencer", GeometryWarning, stacklevel=1))
    with _warnings_to_stderr():
        warnings.warn("grain 2 overlaps grain 5", GeometryWarning, stacklevel=1)
        other.start()
        other.finish()
    assert capsys.readouterr().err == "smm-daq: warning: grain 2 overlaps grain 5\n"
    assert [str(w.message) for w in recwarn] == ["from the sequencer"]


def test_records_closed_out_of_order_leave_warnings_as_they_were(recwarn) -> None:
    """Thread A opens a record, B opens one, A closes first, then B: each record holds its
    own thread's warnings, a warning between is shown as before, and after both the
    process's filters and showwarning are what they were (a catcher left for good would
    swallow every later warning)."""
    filters, shown = list(warnings.filters), warnings.showwarning
    opened, a_closed = threading.Event(), threading.Event()
    b: dict[str, list[warnings.WarningMessage]] = {}

    def thread_b() -> None:
        with recorded() as record:
            b["record"] = record
            opened.set()
            _wait(a_closed)
            warnings.warn("b after a closed", Note, stacklevel=1)

    other = Paused(thread_b)
    with recorded() as a:
        warnings.warn("a", Note, stacklevel=1)
        other.start()
        _wait(opened)
    warnings.warn("between", Note, stacklevel=1)
    a_closed.set()
    other.finish()
    warnings.warn("after", Note, stacklevel=1)
    assert [str(w.message) for w in a] == ["a"]
    assert [str(w.message) for w in b["record"]] == ["b after a closed"]
    assert [str(w.message) for w in recwarn] == ["between", "after"]
    assert warnings.filters == filters and warnings.showwarning is shown


def test_a_warning_repeated_is_recorded_each_time_and_nested_records_take_their_own() -> None:
    """The innermost record of a thread takes its warnings; a warning shown once before (a
    registry would hold it back) is recorded each time it is raised; an "always" filter put
    in before the records is left in."""

    def warn() -> None:
        warnings.warn("the same", Note, stacklevel=1)

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        warn()  # in the registry now
        with recorded() as outer:
            warn()
            with recorded() as inner:
                warn()
                warn()
        assert [len(outer), len(inner)] == [1, 2]
        warnings.simplefilter("always")
        with recorded():
            pass
        assert warnings.filters[0] == ("always", None, Warning, None, 0)


def _recording_in_a_thread() -> Paused:
    """A thread that opens a record, pauses inside it, then warns and closes it; its result
    is what it recorded."""
    def work() -> list[str]:
        with recorded() as record:
            thread.pause()
            warnings.warn("the thread's own", Note, stacklevel=1)
        return [str(w.message) for w in record]

    thread = Paused(work)
    return thread  # `work` pauses in it: the name is needed before it runs


def test_another_threads_filters_decide_its_warnings_while_a_record_is_open() -> None:
    """Filters set before a record opens in another thread (`-W error`, an "ignore", the
    default's once) still decide this thread's warnings: a filter leading with "always" for
    every thread printed the error instead of raising it, showed what was ignored and showed
    a repeat each time."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", "noise", Note)
        warnings.filterwarnings("error", "fatal", Note)
        other = _recording_in_a_thread()
        other.start()
        _wait(other.inside)
        try:
            with pytest.raises(Note, match="fatal"):
                warnings.warn("fatal", Note, stacklevel=1)
            warnings.warn("noise", Note, stacklevel=1)
            for _ in range(2):
                warnings.warn("repeated", Note, stacklevel=1)
        finally:  # the record closed whatever happened, not left open for the next test
            its_own = other.finish()
    assert [str(w.message) for w in shown] == ["repeated"]
    assert its_own == ["the thread's own"]


def test_a_catcher_that_outlives_a_record_puts_back_nothing_that_acts() -> None:
    """A `catch_warnings` entered while another thread's record is open and left after it
    closed puts back the filters it saved, the record's among them: that filter then acts in
    no thread (a repeat is shown once, as "default" says), where one that said "always" to
    every thread stayed in force for good."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        other = _recording_in_a_thread()
        other.start()
        _wait(other.inside)
        with warnings.catch_warnings():  # a library's own, saving the filters as they are
            assert other.finish() == ["the thread's own"]
        for _ in range(2):
            warnings.warn("repeated", Note, stacklevel=1)
    assert [str(w.message) for w in shown] == ["repeated"]


def test_the_filters_decide_what_a_record_takes() -> None:
    """In the recording thread too an "error" filter raises and an "ignore" drops; what a
    filter would show once is recorded each time. Unfixed, a record took every warning,
    whatever the filters (-W error, -W ignore), and its catcher showed it anyway."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", "noise", Note)
        warnings.filterwarnings("error", "fatal", Note)
        with recorded() as record:
            with pytest.raises(Note, match="fatal"):
                warnings.warn("fatal", Note, stacklevel=1)
            warnings.warn("noise", Note, stacklevel=1)
            for _ in range(2):
                warnings.warn("repeated", Note, stacklevel=1)
            with recorded(whatever_the_filters=True) as every:
                warnings.warn("fatal", Note, stacklevel=1)
                warnings.warn("noise", Note, stacklevel=1)
                with recorded() as inner:
                    warnings.warn("noise", Note, stacklevel=1)
            warnings.warn("after the inner ones", UserWarning, stacklevel=1)
    assert [str(w.message) for w in record] == ["repeated", "repeated", "after the inner ones"]
    assert [str(w.message) for w in every] == ["fatal", "noise"]
    assert inner == [] and shown == []


def test_a_warning_made_an_error_or_ignored_is_not_said_by_the_command_line(capsys) -> None:
    """`-W ignore`: the command line says nothing of a warning; `-W error`: it raises, as
    any warning does (unfixed: "smm-daq: warning: ..." on stderr either way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _warnings_to_stderr():
            warnings.warn("grain 2 overlaps grain 5", GeometryWarning, stacklevel=1)
        warnings.simplefilter("error")
        with pytest.raises(GeometryWarning), _warnings_to_stderr():
            warnings.warn("grain 2 overlaps grain 5", GeometryWarning, stacklevel=1)
    assert capsys.readouterr().err == ""
