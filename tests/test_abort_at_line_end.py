"""An abort that comes as a line ends, before the line is stored: nothing more is asked of the
line (a fly line's lock-in buffer and the stage's recording, `DRR?`, a long reply; the
coils' and the lock-in's checks), so that the rig is made safe after the exchange under way;
the line is not stored (a resume measures it again)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import pytest

from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import DEFAULT_PROFILE, Profile, load_profile, parse_profile
from smm_daq.instruments.rig import Rig, open_rig

CENTRE = (12.5e-3, 12.5e-3)


def _asked(rig: Rig, monkeypatch, calls: list[str], *names: tuple[Any, str]) -> None:
    """Each call of the instruments' methods `names` noted in `calls` by its name."""
    for instrument, name in names:
        method = getattr(instrument, name)

        def noted(*args: Any, _method: Any = method, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _method(*args, **kw)

        monkeypatch.setattr(instrument, name, noted)


def _made_safe_after(rig: Rig, monkeypatch, calls: list[str]) -> None:
    make_safe = rig.make_safe

    def noted() -> list[str]:
        calls.append("make_safe")
        return make_safe()

    monkeypatch.setattr(rig, "make_safe", noted)


def _lines_done(path, entry: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[f"{entry}/data/line_done"][()].astype(bool)


def _aborted_at_the_first_lines_check(
        tmp_path, monkeypatch, instrument_of: Callable[[Rig], Any], name: str,
        asked: Callable[[Rig], list[tuple[Any, str]]],
        found: Callable[[Any], Any] = lambda value: value) -> tuple[Rig, Sequencer, list[str]]:
    """A step scan of two lines aborted while the instrument's `name` is read at the first
    line's end (what that read returns passed on through `found`), with the calls of `asked`
    and the making safe noted: the closed rig, the sequencer and the calls."""
    plan = ScanPlan.from_center("step", CENTRE, (40e-6, 40e-6), 20e-6, field=(0, 0, 20e-6))
    rig = open_rig(load_profile())
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    calls: list[str] = []
    instrument = instrument_of(rig)
    read = getattr(instrument, name)

    def aborted_meanwhile() -> Any:
        value = read()
        if seq._points_done == plan.nx and "abort" not in calls:  # the first line's check
            calls.append("abort")
            seq.abort("test abort")
            return found(value)
        return value

    monkeypatch.setattr(instrument, name, aborted_meanwhile)
    _asked(rig, monkeypatch, calls, *asked(rig))
    _made_safe_after(rig, monkeypatch, calls)
    try:
        assert seq.run() == "aborted"
    finally:
        rig.close()
    return rig, seq, calls


def test_an_abort_as_a_fly_lines_buffer_is_read_reads_nothing_more_of_the_line(
        tmp_path, monkeypatch) -> None:
    """Aborted while the first line's lock-in buffer is read (its motion ended): the stage's
    recording (`DRR?`) is not read, nor the line's checks run, before the rig is made safe,
    and the line is not stored. Unfixed, the worker read the recording, the overload latch,
    the coils and the lock-in's settings first, and the rig was made safe only as the line
    was written."""
    plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6),
                                fly=FlySettings(pixel_time=0.05))
    rig = open_rig(load_profile())
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    calls: list[str] = []
    read_buffer = rig.lockin.read_buffer

    def aborted_meanwhile(*args: Any, **kw: Any) -> Any:
        trace = read_buffer(*args, **kw)
        calls.append("abort")
        seq.abort("test abort")
        return trace

    monkeypatch.setattr(rig.lockin, "read_buffer", aborted_meanwhile)
    _asked(rig, monkeypatch, calls, (rig.stage, "read_recorded"), (rig.lockin, "overloaded"),
           (rig.coils, "field"), (rig.lockin, "time_constant"), (rig.lockin, "reference"))
    _made_safe_after(rig, monkeypatch, calls)
    try:
        assert seq.run() == "aborted"
    finally:
        rig.close()
    after = calls[calls.index("abort") + 1:]
    assert after[0] == "make_safe", calls
    assert "read_recorded" not in after, calls
    assert not _lines_done(tmp_path / "s.h5", "fly").any()
    np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)


def test_an_abort_during_a_lines_field_check_asks_the_lock_in_nothing_more(
        tmp_path, monkeypatch) -> None:
    """Aborted while the coils are read at the first line's end (the field check before it is
    stored): the lock-in's settings are not checked, the rig is made safe next, and the line
    is not stored. Unfixed, the lock-in was asked its time constant and reference first
    (three more exchanges, on a link outside the make-safe path's deadline)."""
    rig, _seq, calls = _aborted_at_the_first_lines_check(
        tmp_path, monkeypatch, lambda rig: rig.coils, "field",
        lambda rig: [(rig.coils, "currents"), (rig.lockin, "time_constant"),
                     (rig.lockin, "reference")])
    assert "abort" in calls, calls
    assert calls[calls.index("abort") + 1] == "make_safe", calls
    assert not _lines_done(tmp_path / "s.h5", "step").any()
    np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)


def test_an_abort_during_a_lines_lock_in_check_asks_nothing_more(tmp_path, monkeypatch) -> None:
    """Aborted while the lock-in's time constant is read at the first line's end (its settings
    checked before the line is stored): neither its reference nor the fluxgate is read, the
    rig is made safe next, and the line is not stored. Unfixed, the reference and the
    fluxgate's reading came first, and the rig was made safe only as the line was written."""
    _rig, _seq, calls = _aborted_at_the_first_lines_check(
        tmp_path, monkeypatch, lambda rig: rig.lockin, "time_constant",
        lambda rig: [(rig.lockin, "reference"), (rig.fluxgate, "read_field")])
    assert "abort" in calls, calls
    assert calls[calls.index("abort") + 1] == "make_safe", calls
    assert not _lines_done(tmp_path / "s.h5", "step").any()


def _sr860_profile() -> Profile:
    text = DEFAULT_PROFILE.read_text().replace('implementation = "sr830"',
                                               'implementation = "sr860"')
    return parse_profile(re.sub(r"reserve = .*\n", "", text), DEFAULT_PROFILE)


@pytest.mark.parametrize("model", ["sr830", "sr860"])
def test_an_abort_during_a_fly_lines_buffer_read_waits_for_the_piece_under_way_only(
        model: str, tmp_path, monkeypatch) -> None:
    """Aborted as the first piece of a fly line's lock-in buffer comes (an SR830 reads it in
    pieces, `TRCA?`, each within half a timeout on a serial line, where a full buffer takes
    minutes at 9600 baud; an SR860 in blocks, `CAPTUREGET?`): no further piece is asked
    before the rig is made safe, and the line is not stored. Unfixed, every piece of both
    channels was read first, which on such a line held the making safe past the bound
    `smm-daq safe` prints."""
    plan = ScanPlan.from_center("fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, field=(0, 0, 20e-6),
                                fly=FlySettings(pixel_time=0.05))
    rig = open_rig(load_profile() if model == "sr830" else _sr860_profile())
    piece = "TRCA?" if model == "sr830" else "CAPTUREGET?"
    if model == "sr830":
        rig.lockin.trace_chunk = 4  # type: ignore[attr-defined]  # as small as a slow line's
    else:
        rig.lockin.get_kb = 1  # type: ignore[attr-defined]  # the driver's, sized at connect
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    calls: list[str] = []
    link = rig.lockin.link  # type: ignore[attr-defined]
    attempt = link._attempt

    def noted(action: Any, command: str, **kw: Any) -> Any:
        reply = attempt(action, command, **kw)
        if command.startswith(piece):
            calls.append(piece)
            if "abort" not in calls:
                calls.append("abort")
                seq.abort("test abort")
        return reply

    monkeypatch.setattr(link, "_attempt", noted)
    _made_safe_after(rig, monkeypatch, calls)
    try:
        assert seq.run() == "aborted"
    finally:
        rig.close()
    assert calls[:3] == [piece, "abort", "make_safe"], calls
    assert calls.count(piece) == 1, calls
    assert not _lines_done(tmp_path / "s.h5", "fly").any()
    np.testing.assert_allclose(rig.coils.field_setpoint(), 0.0, atol=1e-12)


def test_a_field_found_off_by_a_check_an_abort_ends_is_said_all_the_same(
        tmp_path, monkeypatch) -> None:
    """Aborted while the coils are read at the first line's end, and they no longer make the
    field (a supply that tripped): the currents are not read again and the rig is made safe
    next, but the scan's message says the field was off, by how much. Unfixed, the abort
    dropped what the read found: the scan ended "aborted", the trip untold."""
    _rig, seq, calls = _aborted_at_the_first_lines_check(
        tmp_path, monkeypatch, lambda rig: rig.coils, "field",
        lambda rig: [(rig.coils, "currents")],
        found=lambda held: np.asarray(held) * 0.0)  # every coil's current gone
    assert calls[calls.index("abort") + 1] == "make_safe", calls
    assert "the coils no longer held the field at the end of line 1" in seq.message
    assert "off by 20000 nT" in seq.message, seq.message
    assert not _lines_done(tmp_path / "s.h5", "step").any()


def test_a_lock_in_change_found_by_a_check_an_abort_ends_is_said_all_the_same(
        tmp_path, monkeypatch) -> None:
    """Aborted while the lock-in's time constant is read at the first line's end, and it is
    no longer the scan's (the lock-in restarted): its reference is not asked and the rig is
    made safe next, but the scan's message says the time constant changed. Unfixed, the
    abort dropped what the read found."""
    _rig, seq, calls = _aborted_at_the_first_lines_check(
        tmp_path, monkeypatch, lambda rig: rig.lockin, "time_constant",
        lambda rig: [(rig.lockin, "reference")], found=lambda tau: tau * 10)
    assert calls[calls.index("abort") + 1] == "make_safe", calls
    assert "the lock-in's settings changed during line 1: time constant" in seq.message, \
        seq.message
    assert not _lines_done(tmp_path / "s.h5", "step").any()


def test_an_abort_between_the_lock_in_references_two_queries_asks_not_the_second(
        tmp_path, monkeypatch) -> None:
    """Aborted as the lock-in's reference frequency (`FREQ?`) is read at the first line's end
    (its settings checked before the line is stored): its amplitude (`SLVL?`) is not asked,
    the rig is made safe next, and the line is not stored. Unfixed, `reference()` asked both
    queries whatever came between them."""
    plan = ScanPlan.from_center("step", CENTRE, (40e-6, 40e-6), 20e-6, field=(0, 0, 20e-6))
    rig = open_rig(load_profile())
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    calls: list[str] = []
    link = rig.lockin.link  # type: ignore[attr-defined]
    attempt = link._attempt

    def noted(action: Any, command: str, **kw: Any) -> Any:
        reply = attempt(action, command, **kw)
        if command in ("FREQ?", "SLVL?") and seq._points_done == plan.nx:
            calls.append(command)
            if "abort" not in calls:
                calls.append("abort")
                seq.abort("test abort")
        return reply

    monkeypatch.setattr(link, "_attempt", noted)
    _made_safe_after(rig, monkeypatch, calls)
    try:
        assert seq.run() == "aborted"
    finally:
        rig.close()
    assert calls[:3] == ["FREQ?", "abort", "make_safe"], calls
    assert "SLVL?" not in calls, calls
    assert not _lines_done(tmp_path / "s.h5", "step").any()
