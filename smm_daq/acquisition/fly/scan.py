"""The fly path of the sequencer: each line flown at constant velocity and reconstructed.

Per line: move to the run-up start (the first line also to the plan's height), start the
lock-in's buffer (by software, or armed for the stage's trigger edge where the cable is
wired), move along x at constant velocity while the stage records its position, read both
back, place each sample at the recorded position at its time less the lag
(`reconstruct.sample_positions`), average the samples in each pixel, and write the line with
its raw streams. The lag is the filter's model lag, refined from adjacent forward and backward
lines once two exist and kept only where it fits them clearly better; the lag used is stored
per line, so a map can be rebinned from the streams later.

Lines are the unit of pausing, resuming and aborting, exactly as for a step scan: a line
interrupted midway is flown again. So is a line whose motion ended before an abort, if it
was not yet stored: from the line's end on, the abort is asked before each read of it (the
lock-in's buffer, and between its pieces: minutes on a slow serial line; then the stage's
recording: `DRR?`, a long reply, seconds on a serial line) and before its checks, so that
nothing of the line delays the rig's making safe; the line is not stored, and a resume flies
it again. So is a line whose start lost the reply to one of the
stage's error checks (`ReplyUnknown`: `ERR?` clears what it reports, so it is not asked
again): whether the controller took a set-up command or the motion's start is unknown, so the
stage is stopped and the line flown again from its run-up start, its set-up (idempotent) sent
again and checked; lost on the next try too, the scan fails safe.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np

from smm_daq.acquisition.fly.checks import (
    FlyLimits,
    check_controller,
    check_fly_plan,
    require_fly_kinds,
)
from smm_daq.acquisition.fly.reconstruct import (
    LineStreams,
    bin_line,
    lag_mismatch,
    refine_lag,
    sample_positions,
)
from smm_daq.acquisition.fly.settings import FlyLine
from smm_daq.errors import (
    InputError,
    InstrumentError,
    InstrumentTimeout,
    RangeError,
    ReadStopped,
    ReplyUnknown,
)
from smm_daq.instruments import driver_calls
from smm_daq.instruments.interfaces import STOP_SLICE_S, least_stored

REFINE_LINES = 8  # the most recent lines the lag is refined over
ADOPT_BELOW = 0.9  # a refined lag is kept when its mismatch is below this × the model's
SIGNAL_ABOVE = 1.25  # ... and the mismatch at the search's ends is above this × its own
LINE_TIMEOUT_FACTOR = 1.5  # the motion must end within this × its duration + 1 s


class FlyScan:
    """Mixed into `Sequencer`: the checks and the line loop of a flown plan."""

    # It uses the Sequencer's rig, plan, writer, counters and helpers (_call, _move, _checkpoint,
    # _pause_and_wait, _raise_range, _pause_for_range, _check_field_held, _check_lockin_held,
    # _store_line, _account_time, _emit, _abort_pending).
    rig: Any
    plan: Any
    _fly: FlyLine | None = None
    _overload_unknown: bool  # the last overload query's reply was lost (`_lockin_overloaded`)
    _start_unknown = False  # the last line's start lost a check's reply (`_start_line`)
    notes: list[str]
    _line: int

    def _plan_fly(self) -> FlyLine:
        """The fly line: the plan's checks (`check_fly_plan`, also run before connecting) on
        the connected instruments' own limits, then what only the stage controller can tell
        (`check_controller`); InputError naming the limit. Only asks the instruments."""
        rig, plan = self.rig, self.plan
        require_fly_kinds(type(rig.lockin), type(rig.stage))
        line = check_fly_plan(plan, rig.profile,
                              FlyLimits(self._call(rig.lockin.buffer_limits),
                                        self._call(rig.stage.velocity_limit)))
        self._call(check_controller, plan, rig.stage)  # unknown before connecting
        self._fly = line
        return line

    def _set_up_fly_lockin(self) -> None:
        """The lock-in set to the line's time constant and buffer rate, which it may refuse
        (a capture ceiling lower than its driver states): InputError naming the limit,
        before the entry is written or the field set. A capture left running (an SR860's
        runs on to its block's end, up to 215 s) is waited for with the abort asked: an
        abort meanwhile is `_Aborted`, as at a checkpoint (a field set by hand before the
        scan is ramped down then, not held through the wait)."""
        rig, line = self.rig, self._fly
        assert line is not None
        self._call(rig.lockin.set_time_constant, line.time_constant)
        tau = self._call(rig.lockin.time_constant)
        if not math.isclose(tau, line.time_constant, rel_tol=1e-6):
            raise InputError(f"the lock-in took time constant {tau:g} s for "
                             f"{line.time_constant:g} s; expected one of the time constants "
                             "its driver lists (another model or firmware than the profile's "
                             "implementation?)")
        try:
            self._call(driver_calls.configure_buffer, rig.lockin, line.rate,
                       stop=self._abort_pending)
        except ReadStopped:  # an abort while a capture under way stopped
            self._checkpoint(pausable=False)
            raise
        except RangeError as exc:
            raise InputError(f"fly plan: {exc}; expected a rate the lock-in captures at (a "
                             "longer pixel time or fewer samples per pixel)") from None

    def _fly_layout(self) -> tuple[int, int, str]:
        line = self._fly
        assert line is not None
        settings = {"time_constant_s": line.time_constant, "poles": line.poles,
                    "rate_Hz": line.rate, "velocity_m_per_s": line.velocity,
                    "model_lag_s": line.lag, "run_up_m": line.run_up,
                    "line_duration_s": line.duration}
        recorded = self._call(self.rig.stage.recorder_points)
        return line.samples + 16, recorded, json.dumps(settings, sort_keys=True)

    def _execute_fly(self, todo: list[int]) -> None:
        line = self._fly
        assert line is not None
        history: list[LineStreams] = []
        lag = line.lag
        for iy in todo:
            self._line = iy
            while True:
                self._checkpoint()
                flown = self._fly_once(iy)
                if flown is None:  # its start unknown: flown again
                    continue
                streams, trace_x, trace_y, t_pos, x_pos = flown
                problem = self._range_problem_fly(trace_x, trace_y)
                if problem is None:
                    break
                if self._overload_unknown:  # no overload known: flown again as it was
                    continue
                if self.auto_range and self._raise_range(problem):
                    continue
                self._pause_for_range(problem)
            history = [*history, streams][-REFINE_LINES:]
            lag = self._lag(history, lag)
            self._store_fly_line(iy, streams, trace_x, trace_y, t_pos, x_pos, lag)

    def _fly_once(self, iy: int) -> tuple[LineStreams, np.ndarray, np.ndarray, np.ndarray,
                                         np.ndarray] | None:
        """Line `iy` flown: its streams, the lock-in's X and Y and the recorded motion; None
        when its start is unknown (`_start_line`) and it is to be flown again."""
        rig, plan, line = self.rig, self.plan, self._fly
        assert line is not None
        forward = int(plan.line_order(iy)[0]) == 0
        lo, hi = plan.x[0] - line.run_up, plan.x[-1] + line.run_up
        start, end = (lo, hi) if forward else (hi, lo)
        y = float(plan.y[iy])
        if self._z_pending:
            self._move(start, y, plan.height)  # type: ignore[attr-defined]
            self._z_pending = False
        else:
            self._move(start, y)  # type: ignore[attr-defined]
        if not self._run_paced:
            # the run's first move came from wherever the stage was (down from its reference
            # to the scan height, seconds): the pace counts from the first line's start
            self._run_start, self._run_points, self._run_paced = rig.clock.now(), 0, True
        before = rig.clock.now()
        try:  # a last capture still running on to its block's end is waited for
            started = self._call(driver_calls.start_buffer, rig.lockin,
                                 on_trigger=plan.fly.trigger, pixel_time=plan.fly.pixel_time,
                                 stop=self._abort_pending)
        except ReadStopped:  # an abort meanwhile: `_Aborted`, as at a checkpoint
            self._checkpoint(pausable=False)
            raise
        buffer_start = before if started is None else started
        motion_start = self._start_line(end)
        if motion_start is None:
            self._restore_velocity()
            return None
        if plan.fly.trigger:
            buffer_start = motion_start  # the stage's trigger edge starts the buffer
        try:
            self._wait_motion(line.duration)
        except BaseException:  # an abort, or a line that does not end, mid-line
            self._stop_then_restore_velocity()
            raise
        self._restore_velocity()
        # an abort from the line's end on drops the line (the module's docstring says why)
        self._checkpoint(pausable=False)
        try:
            trace = self._call(driver_calls.read_buffer, rig.lockin,
                               stop=self._abort_pending)
        except ReadStopped:  # an abort between its pieces: `_Aborted`, as at a checkpoint
            self._checkpoint(pausable=False)
            raise
        self._check_buffer(trace.x.size, trace.rate)
        self._checkpoint(pausable=False)
        motion = self._call(rig.stage.read_recorded, motion_start)
        self._check_recording(motion.x, forward)
        self._checkpoint(pausable=False)
        sensor = rig.profile.sensor
        volts = trace.x if sensor.channel == "X" else np.hypot(trace.x, trace.y)
        bz = (volts - sensor.offset_V) / sensor.sensitivity_V_per_T
        streams = LineStreams(t=trace.times(buffer_start), bz=bz, t_pos=motion.t,
                              x_pos=motion.x, forward=forward)
        return streams, trace.x, trace.y, motion.t, motion.x

    def _start_line(self, end: float) -> float | None:
        """The line's recording set up and its motion to `end` started (`fly_x`): the
        rig-clock time the motion started. One of the stage's checks having its reply lost
        (`ReplyUnknown`), whether the controller took that command is unknown (the motion may
        be under way): the stage is stopped, and None says the line is to be flown again;
        lost on the next try too (with no pause between: `_pause_and_wait` forgets the first),
        it is raised (the stage taken as lost, the rig made safe)."""
        rig, line = self.rig, self._fly
        assert line is not None
        try:
            started = self._call(rig.stage.fly_x, end, line.velocity, line.duration)
        except ReplyUnknown as exc:
            if self._start_unknown:
                raise
            self._start_unknown = True
            self.notes.append(f"at line {self._line + 1}, {exc}: the stage stopped, the line "
                              "flown again")
            self._call(rig.stage.stop)
            return None
        self._start_unknown = False
        return started

    def _stop_then_restore_velocity(self) -> None:
        """A line cut short: the stage stopped before its velocity is set back, since `VEL` to
        an axis still flying the line changes the speed it moves on at (on a C-884). A stop
        that fails still has the velocity set back: the moves after the scan (a later scan's,
        timed from the profile's velocity) would otherwise run at the line's."""
        try:
            self._call(self.rig.stage.stop)
        finally:
            self._restore_velocity()

    def _restore_velocity(self) -> None:
        """The stage back at the profile's velocity for its moves between lines. `VEL` is
        absolute: its check's reply lost (`ReplyUnknown`), it is sent once more and checked;
        lost again, raised."""
        stage, velocity = self.rig.stage, self.rig.profile.stage.velocity
        try:
            self._call(stage.set_velocity, velocity)
        except ReplyUnknown as exc:
            self.notes.append(f"at line {self._line + 1}, {exc}: the velocity sent again")
            self._call(stage.set_velocity, velocity)

    def _check_buffer(self, count: int, rate: float) -> None:
        """The lock-in's buffer, read once the line has ended, holds the whole line: fewer
        samples is a count no lock-in gives (a corrupted reply), and refused naming it."""
        line = self._fly
        assert line is not None
        least = max(2, least_stored(line.duration, rate))  # the lock-in's clock, not ours
        if count < least:
            lockin = self.rig.lockin
            query = getattr(lockin, "BUFFER_COUNT_QUERY", "the buffer's count")
            raise InstrumentError(
                f"the buffer held {count} samples after the line ({query}); the "
                f"{line.duration:.4g} s line at {rate:g} Hz holds at least {least}",
                instrument=getattr(getattr(lockin, "link", None), "name", "lock-in"))

    def _check_recording(self, x: np.ndarray, forward: bool) -> None:
        """The stage's recording of the line reaches past its last pixel: a recording cut
        short (a controller that stopped recording early, too few points read) would give
        every later sample its last position, so those samples would land in wrong pixels."""
        plan = self.plan
        half = (plan.x[1] - plan.x[0]) / 2 if plan.x.size > 1 else 0.0
        need = plan.x[-1] + half if forward else plan.x[0] - half
        if x.size == 0:
            reached = -np.inf if forward else np.inf
        else:
            reached = float(np.max(x)) if forward else float(np.min(x))
        short = (need - reached) if forward else (reached - need)
        if short > 0:
            stage = self.rig.stage
            raise InstrumentError(
                f"the recording of the line ({x.size} points) ends at x = {reached / 1e-6:.6g} "
                f"µm, {short / 1e-6:.3g} µm short of its last pixel's edge at "
                f"{need / 1e-6:.6g} µm; expected the whole line recorded",
                instrument=getattr(stage, "name", "stage"))

    def _check_every_pixel(self, counts: np.ndarray, streams: LineStreams) -> None:
        """Every pixel of the line got a sample: a line stored done is measured whole (a
        resumed scan flies only the lines not done), so one with a pixel no sample fell in (the
        lock-in's samples and the stage's recording timed apart) fails the scan unstored."""
        empty = np.flatnonzero(counts == 0)
        if empty.size == 0:
            return
        x = self.plan.x[empty] / 1e-6
        raise InstrumentError(
            f"no sample of the line fell in {empty.size} of its {counts.size} pixels (x = "
            f"{x.min():.6g} .. {x.max():.6g} µm): the lock-in's samples, timed "
            f"{streams.t[0]:.6g} .. {streams.t[-1]:.6g} s, and the stage's recording, timed "
            f"{streams.t_pos[0]:.6g} .. {streams.t_pos[-1]:.6g} s, do not cover the line "
            "together; expected a sample in every pixel")

    def _wait_motion(self, duration: float) -> None:
        """Wait out the line on the rig clock, noticing an abort between slices of
        `STOP_SLICE_S`, as a point's move does: the rig is made safe from within one of it."""
        clock, stage = self.rig.clock, self.rig.stage
        deadline = clock.now() + LINE_TIMEOUT_FACTOR * duration + 1.0
        end = clock.now() + duration
        while clock.now() < end:
            self._checkpoint(pausable=False)
            clock.sleep(min(STOP_SLICE_S, end - clock.now()))
        while not self._call(stage.on_target):
            if clock.now() >= deadline:
                raise InstrumentTimeout(f"the fly line did not end within "
                                        f"{deadline - end + duration:.3g} s: an axis still "
                                        "reports it is not on target",
                                        instrument=getattr(stage, "name", "stage"))
            self._checkpoint(pausable=False)
            clock.sleep(0.01)

    def _range_problem_fly(self, x: np.ndarray, y: np.ndarray) -> str | None:
        rig = self.rig
        if self._lockin_overloaded():  # type: ignore[attr-defined]
            return "lock-in overload during the fly line"
        limit = rig.profile.lockin.overrange_fraction * self._full_scale
        worst = float(np.max(np.abs(np.concatenate([x, y])))) if x.size else 0.0
        if worst > limit:
            return (f"lock-in reading {worst:.4g} V is beyond "
                    f"{rig.profile.lockin.overrange_fraction:.0%} of the "
                    f"{self._full_scale:.4g} V full scale")
        return None

    def _lag(self, history: list[LineStreams], current: float) -> float:
        """The lag refined over the recent lines, kept only where it fits them clearly
        better than the model's and the lines hold enough signal for the fit to mean
        something (on a blank region the mismatch is flat noise, and the model stands)."""
        line = self._fly
        assert line is not None
        if not any(a.forward != b.forward for a, b in itertools.pairwise(history)):
            return current
        span = max(self.plan.fly.pixel_time, 2 * line.time_constant)
        refined = refine_lag(history, line.lag, span)
        best = lag_mismatch(history, refined)
        ends = min(lag_mismatch(history, line.lag - span), lag_mismatch(history, line.lag + span))
        if best < ADOPT_BELOW * lag_mismatch(history, line.lag) and ends > SIGNAL_ABOVE * best:
            return refined
        return line.lag

    def _store_fly_line(self, iy: int, streams: LineStreams, x: np.ndarray, y: np.ndarray,
                        t_pos: np.ndarray, x_pos: np.ndarray, lag: float) -> None:
        plan = self.plan
        where = sample_positions(streams, lag)
        bz, counts = bin_line(where, streams.bz, plan.x)
        self._check_every_pixel(counts, streams)
        lx, _ = bin_line(where, x, plan.x)
        ly, _ = bin_line(where, y, plan.x)
        t, _ = bin_line(where, streams.t, plan.x)
        if plan.fly.baselines:
            bz = bz - np.median(bz)
        fs = np.full(plan.nx, self._full_scale)
        self._check_field_held()
        self._check_lockin_held()
        said = self._store_line(  # type: ignore[attr-defined]
            iy, bz, lx, ly, fs, t,
            streams={"time": streams.t, "lockin_x": x, "lockin_y": y,
                     "position_time": t_pos, "position_x": x_pos, "lag": np.float64(lag)})
        self._account_time()
        self._points_done += plan.nx
        self._run_points += plan.nx
        for ix in plan.line_order(iy).tolist():
            self._emit("point", line=iy, index=(iy, int(ix)), bz=float(bz[ix]))
        self._emit("line_done", line=iy, message=said)
