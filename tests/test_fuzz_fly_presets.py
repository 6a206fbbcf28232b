"""Fuzzing the PI replies a fly line reads since controllers listing fewer parameters fly
(`drivers/pi_presets.py`): `*IDN?` (the model a preset is taken by), `HPA?` with and without
0x0E000200, 0x16000200 and 0x16000300, `SPA?` of those, `TNR?`, and under a preset servo cycle
the recording's SAMPLE_TIME and `DRL?` count, over loopback TCP to the emulator.

Each drawn set of replies must fly a line read back whole (at least 2 points, inside the
travel), or end in an `InstrumentError` naming the stage, with no traceback, the stage left
still; once the controller answers well again, a line flies again.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import test_pi_fly_presets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_pi_fly_presets import RECORDER_POINTS, RECORDER_TABLES, SERVO_TIME, Unlisting, served

from simulators.pi_emulator import C884, E727
from smm_daq.errors import InstrumentError

FUZZ = settings(max_examples=18, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNTS = ["0", "-1", "1", "2", "3", "7", "15", "16", "64", "4096", "262144", "16777217", "1e9",
          "1.5", "nan", "x", "", "8 \n9"]
TIMES = ["0", "-2e-5", "1e300", "nan", "abc", "", "2e-5", "5e-5", "1e-4"]
MODELS = ["E-727", "e-727.3cd", "E-7270", "C-884.4DC", "C-884.4D", "c-884", "C-867.1U",
          "C-877.2U12", "E-753.1CD", "", " ", "E-727\x00", "x" * 300, "C-884, extra", "C-880"]


class Crafted(Unlisting):
    """The emulator with some replies crafted: a command starting with a key of `crafted` is
    answered its value instead."""

    crafted: ClassVar[dict[str, str]] = {}

    def handle(self, message: str) -> str | None:
        for prefix, reply in self.crafted.items():
            if message.strip().startswith(prefix):
                self.heard.append(message.strip())
                return reply
        return super().handle(message)


@st.composite
def replies(draw: st.DrawFn) -> tuple[str, frozenset[int], dict[str, str]]:
    controller = draw(st.sampled_from(["E-727", "C-884"]))
    unlisted = draw(st.sets(st.sampled_from([SERVO_TIME, RECORDER_POINTS, RECORDER_TABLES])))
    crafted: ClassVar[dict[str, str]] = {}
    if draw(st.booleans()):
        crafted["*IDN?"] = f"(c)2020 Physik Instrumente (PI) GmbH & Co. KG, " \
                           f"{draw(st.sampled_from(MODELS))}, 1, 1.0"
    for query, values in ((f"SPA? 1 0x{SERVO_TIME:08X}", TIMES),
                          (f"SPA? 1 0x{RECORDER_POINTS:08X}", COUNTS),
                          (f"SPA? 1 0x{RECORDER_TABLES:08X}", COUNTS), ("TNR?", COUNTS)):
        if draw(st.booleans()):
            pid = query.split()[-1]
            value = draw(st.sampled_from(values))
            crafted[query] = value if query == "TNR?" else f"1 {pid}={value}"
    if draw(st.booleans()):
        crafted["DRL? 1"] = f"1={draw(st.sampled_from(COUNTS))}"
    elif draw(st.booleans()):  # a recording of ROWS points, its SAMPLE_TIME drawn
        crafted["DRL? 1"] = f"1={ROWS}"
        crafted["DRR? 1"] = _recording(controller, draw(st.sampled_from(TIMES)))
    return controller, frozenset(unlisted), crafted


ROWS = 5


def _recording(controller: str, sample_time: str) -> str:
    """A `DRR? 1 ROWS 1` reply in the GCS array format, positions along the line."""
    x0 = 5.0 if controller == "C-884" else 500.0  # controller units: mm, µm
    lines = ["# TYPE = 1", "# SEPARATOR = 32", "# DIM = 1", f"# SAMPLE_TIME = {sample_time}",
             f"# NDATA = {ROWS}", "# NAME0 = Actual Position of axis 1", "# END_HEADER"]
    lines += [f"{x0 + 0.001 * k:.7f}" for k in range(ROWS)]
    return " \n".join(lines)


@FUZZ
@given(drawn=replies())
# an E-727's 0x16000200 shared among its 8 tables leaving 0, or 1, a table (was a
# ZeroDivisionError as the line was started, or a line of one point read back as whole)
@example(drawn=("E-727", frozenset(), {f"SPA? 1 0x{RECORDER_POINTS:08X}": "1 0x16000200=7"}))
@example(drawn=("E-727", frozenset({RECORDER_TABLES}), {"TNR?": "4096",
                                                         f"SPA? 1 0x{RECORDER_POINTS:08X}":
                                                         "1 0x16000200=4096"}))
# a TNR? reply going on past its count (its line ending ' '): was taken as its first line's
@example(drawn=("E-727", frozenset({RECORDER_TABLES}), {"TNR?": "8 \n9"}))
def test_fly_replies_of_fewer_parameters_fly_or_are_refused_naming_the_stage(
        monkeypatch: pytest.MonkeyPatch, drawn: tuple[str, frozenset[int], dict[str, str]]
        ) -> None:
    controller, unlisted, crafted = drawn
    monkeypatch.setattr(test_pi_fly_presets, "Unlisting", Crafted)
    monkeypatch.setattr(Crafted, "crafted", crafted)
    spec = dataclasses.replace(C884, servo_cycle=50e-6) if controller == "C-884" else E727
    x0, x1, duration = (5e-3, 8e-3, 3.0) if controller == "C-884" else (500e-6, 900e-6, 0.5)
    with served(spec, *unlisted) as (stage, emulator, clock):
        stage.move_to(x0, x0, 0.1e-3)
        try:
            start = stage.fly_x(x1, abs(x1 - x0) / duration, duration)
            clock.advance(duration + 1.0)
            motion = stage.read_recorded(start)
        except InstrumentError as exc:
            message = str(exc)
            assert message.startswith(f"{stage.name}: "), message
            assert "expected" in message or "no reply within" in message, message
            assert len(message) <= 800, message
        else:
            several = [q for q, r in crafted.items() if "\n" in r and q != "DRR? 1"
                       and any(h.startswith(q) for h in emulator.heard)]
            assert not several, (several, "a reply of several lines taken as one value")
            assert motion.x.size >= 2, (motion.x.size, crafted)
            assert np.all(np.isfinite(motion.x)) and np.all(np.diff(motion.t) > 0)
        clock.advance(duration + 1.0)
        assert stage.on_target()  # the stage still: no line left running
        emulator.crafted = {}  # type: ignore[misc]  # the controller answers well again: a line flies again
        stage.stop()
        if not stage.fly_refused():
            stage.move_to(x0, x0, 0.1e-3)
            start = stage.fly_x(x1, abs(x1 - x0) / duration, duration)
            clock.advance(duration + 1.0)
            assert stage.read_recorded(start).x.size >= 2
