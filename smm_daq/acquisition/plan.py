"""Scan plans: the grid, raster, settling and field of one scan, checked against a profile.

A plan is frozen: once a scan starts, what it does is fixed and stored with the data (as JSON
with unit-suffixed keys), so a scan can be resumed and its file explains itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from smm_daq.acquisition.duration import scan_duration
from smm_daq.acquisition.fly.checks import check_fly_plan, profile_fly_limits
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.errors import InputError
from smm_daq.finite import finite_number
from smm_daq.instruments.profile import HEIGHT_NOT_ZERO, Profile
from smm_daq.storage.limits import MAX_MAP_PIXELS
from smm_daq.storage.names import ENTRY_NAME_RULE, entry_name_usable
from smm_daq.text_files import load_json, shown

UM = 1e-6
UT = 1e-6
MAX_POINTS = MAX_MAP_PIXELS  # a scan's points are its map's pixels, which are read back
RASTERS = ("serpentine", "unidirectional")
# Time-like values are bounded before anything moves: a typo (1e300, 1e12) must not hold the
# field on for ever. 1000 time constants is far beyond any settling a 12 dB/oct filter needs
# (8 reach 0.3 %) and any averaging worth doing at one point; a week is longer than any scan
# one sample session holds (4 to 8 hours each).
MAX_SETTLE_TAU = 1000.0
MAX_DWELL_TAU = 1000.0
MAX_DURATION_S = 7 * 24 * 3600.0
DEFAULT_SETTLE_TAU = 8.0  # a 12 dB/oct lock-in is then within 0.3 % of a step in its input


@dataclass(frozen=True)
class ScanPlan:
    """One raster scan of Bz at a fixed applied field (SI units).

    Lines run along x at fixed y; line `iy` is at y0 + iy * step_y. A serpentine raster runs
    odd lines backwards (no flyback); a unidirectional one returns to x0 before every line.
    At each point the sequencer waits `settle_tau` lock-in time constants after the stage is
    on target, then reads the lock-in, averaging over `dwell_tau` time constants if > 0.
    With `fly` set, lines are flown instead (`smm_daq.acquisition.fly`); settle and dwell
    then play no part.
    """

    name: str  # the entry the scan is stored in
    x0: float  # first point, m (sample frame)
    y0: float
    nx: int
    ny: int
    step_x: float  # m
    step_y: float
    field: tuple[float, float, float] = (0.0, 0.0, 0.0)  # applied field at the sample, T
    height: float = 100e-6  # sensor plane above the sample top, m (stage z)
    raster: str = "serpentine"
    settle_tau: float = DEFAULT_SETTLE_TAU
    dwell_tau: float = 0.0
    title: str = ""
    fly: FlySettings | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", tuple(float(b) for b in np.ravel(self.field)))
        for key in ("x0", "y0", "step_x", "step_y", "height", "settle_tau", "dwell_tau"):
            object.__setattr__(self, key, float(getattr(self, key)))

    @classmethod
    def from_center(
        cls,
        name: str,
        center: tuple[float, float],
        size: tuple[float, float],
        step: float | tuple[float, float],
        **kw: Any,
    ) -> ScanPlan:
        """A grid of `size` (w, h) m centred on `center` (x, y) m with `step` m (or (sx, sy))."""
        sx, sy = (step, step) if np.isscalar(step) else tuple(step)  # type: ignore[misc]
        for label, value in (("step_x", sx), ("step_y", sy)):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"plan {label} is {value!r} m; expected a step > 0")
        for label, value in (("size w", size[0]), ("size h", size[1])):
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"plan {label} is {value!r} m; expected a size >= 0")
        for label, span, value in (("x", size[0], sx), ("y", size[1], sy)):
            # Before counting: the ratio may not fit an int, or overflow to inf (1e-310 m).
            if not span / value < MAX_POINTS:
                raise InputError(
                    f"plan {label}: a size of {span / UM:g} µm at a step of {value / UM:g} µm "
                    f"makes {span / value:g} points along {label}; expected at most "
                    f"{MAX_POINTS:,} points in all (a larger step, or a smaller size)"
                )
        nx = round(float(size[0]) / sx) + 1
        ny = round(float(size[1]) / sy) + 1
        return cls(
            name=name,
            x0=center[0] - (nx - 1) * sx / 2,
            y0=center[1] - (ny - 1) * sy / 2,
            nx=nx,
            ny=ny,
            step_x=sx,
            step_y=sy,
            **kw,
        )

    @property
    def x(self) -> np.ndarray:
        """Grid x positions (nx,), m."""
        return self.x0 + self.step_x * np.arange(self.nx)

    @property
    def y(self) -> np.ndarray:
        """Grid y positions (ny,), m."""
        return self.y0 + self.step_y * np.arange(self.ny)

    @property
    def points(self) -> int:
        return self.nx * self.ny

    def line_order(self, iy: int) -> np.ndarray:
        """Column indices of line `iy` in the order the stage visits them."""
        cols = np.arange(self.nx)
        return cols[::-1] if self.raster == "serpentine" and iy % 2 == 1 else cols

    def validate(self, profile: Profile) -> None:
        """Check the plan against the profile's limits before anything moves (a fly plan also
        against the limits of the lock-in and stage the profile names; nothing connects).

        Raises InputError naming the plan field, its value and the limit it breaks.
        """
        if not entry_name_usable(self.name):
            raise InputError(f"plan name {self.name!r} is not usable as an entry name; "
                             f"expected {ENTRY_NAME_RULE}")
        if self.raster not in RASTERS:
            raise InputError(f"plan raster is {self.raster!r}; expected one of "
                             + ", ".join(repr(r) for r in RASTERS))
        unstorable = title_unstorable(self.title)
        if unstorable:
            raise InputError(f"plan title {shown(self.title)} holds {unstorable}: a session "
                             "file's text cannot hold it; expected a title without it")
        for key in ("nx", "ny"):
            n = getattr(self, key)
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
                raise InputError(f"plan {key} is {n!r}; expected a whole number >= 1")
        named = {"x0": self.x0, "y0": self.y0, "step_x": self.step_x, "step_y": self.step_y,
                 "height": self.height, "settle_tau": self.settle_tau,
                 "dwell_tau": self.dwell_tau, "field": float(np.sum(np.abs(self.field)))}
        for key, v in named.items():
            if not math.isfinite(v):
                raise InputError(f"plan {key} is {v!r}; expected a finite number")
        stage = profile.stage
        res_um = stage.resolution / UM
        for key, n in (("step_x", self.nx), ("step_y", self.ny)):
            step = getattr(self, key)
            if n > 1 and step < stage.resolution * (1 - 1e-9):
                raise InputError(
                    f"plan {key} is {step / UM:g} µm; expected at least the stage resolution "
                    f"{res_um:g} µm"
                )
        if self.nx * self.ny > MAX_POINTS:
            raise InputError(
                f"plan grid is {self.nx} × {self.ny} = {self.nx * self.ny:,} points; expected at "
                f"most {MAX_POINTS:,} (a larger step, or several scans)"
            )
        for axis, key in ((0, "step_x"), (1, "step_y")):
            span = float(np.ptp(stage.travel[axis]))
            if getattr(self, key) > span:
                raise InputError(f"plan {key} is {getattr(self, key) / UM:g} µm; expected at "
                                 f"most the stage travel {span / UM:g} µm")
        for axis, key, first, step, n in (
            (0, "x", self.x0, self.step_x, self.nx),
            (1, "y", self.y0, self.step_y, self.ny),
        ):
            lo, hi = sorted((first, first + step * (n - 1)))
            tmin, tmax = stage.travel[axis]
            if lo < tmin or hi > tmax:
                raise InputError(
                    f"plan {key} range {lo / UM:g} .. {hi / UM:g} µm leaves the stage travel; "
                    f"expected it within {tmin / UM:g} .. {tmax / UM:g} µm"
                )
        zmin, zmax = stage.travel[2]
        if not (self.height >= stage.resolution and zmin <= self.height <= zmax):
            why = f" ({HEIGHT_NOT_ZERO})" if self.height <= 0 else ""
            raise InputError(
                f"plan height is {self.height / UM:g} µm; expected a height above the sample "
                f"top of at least the stage resolution {res_um:g} µm and within the stage "
                f"z travel {zmin / UM:g} .. {zmax / UM:g} µm{why}"
            )
        for key, most in (("settle_tau", MAX_SETTLE_TAU), ("dwell_tau", MAX_DWELL_TAU)):
            if not 0 <= getattr(self, key) <= most:
                raise InputError(f"plan {key} is {getattr(self, key)!r}; expected 0 to "
                                 f"{most:g} lock-in time constants")
        check_field(self.field, profile, label="plan field")
        if self.fly is not None:  # against the profile's drivers, nothing connected
            check_fly_plan(self, profile, profile_fly_limits(profile))
        duration = self.estimate_duration(profile)
        if not duration <= MAX_DURATION_S:  # also catches an overflow to inf or NaN
            if self.fly is None:
                made = (f"{self.nx} × {self.ny} points at {self.seconds_per_point(profile):.3g}"
                        " s each")
                shorter = "fewer settle/dwell time constants"
            else:  # flown: lines of pixels, no settle or dwell at a point
                made = (f"{self.ny} lines of {self.nx} pixels flown at "
                        f"{self.fly.pixel_time:.3g} s a pixel")
                shorter = "a shorter pixel time"
            raise InputError(
                f"plan '{self.name}' is estimated to take {format_seconds(duration)} ({made});"
                f" expected at most {format_seconds(MAX_DURATION_S)} (a coarser step, a "
                f"smaller area, {shorter}, or several scans)"
            )

    def estimate_duration(self, profile: Profile, time_constant: float | None = None, *,
                          start: tuple[float, ...] | None = None) -> float:
        """Seconds the scan should take on the rig (`smm_daq.acquisition.duration`: the
        field's ramps up and back down, the way to the first point, the lines).

        `time_constant` is the lock-in's (s), the profile's when None; `start` the field (T)
        the coils are at before the scan (a recipe's set_field step's), the safe state's
        when None. Instrument communication is not included; the sequencer's ETA learns it
        as the scan runs.
        """
        return scan_duration(self, profile, time_constant, start=start).total_s

    def seconds_per_point(self, profile: Profile, time_constant: float | None = None) -> float:
        """The move to a point, the stage's settling and the lock-in's settle and dwell (s)."""
        tau = profile.lockin.time_constant if time_constant is None else time_constant
        stage = profile.stage
        return (self.step_x / stage.velocity + stage.settle_time
                + (self.settle_tau + self.dwell_tau) * tau)

    def to_dict(self) -> dict[str, Any]:
        """Human-facing form (unit-suffixed keys), stored as text in the scan entry."""
        out: dict[str, Any] = {"name": self.name, "title": self.title}
        out["x0_um"] = self.x0 / UM
        out["y0_um"] = self.y0 / UM
        out["nx"] = self.nx
        out["ny"] = self.ny
        out["step_x_um"] = self.step_x / UM
        out["step_y_um"] = self.step_y / UM
        out["field_uT"] = [b / UT for b in self.field]
        out["height_um"] = self.height / UM
        out["raster"] = self.raster
        out["settle_tau"] = self.settle_tau
        out["dwell_tau"] = self.dwell_tau
        if self.fly is not None:
            out["fly"] = self.fly.to_dict()
        return out

    def difference(self, other: ScanPlan) -> str | None:
        """The first key (human form) in which two plans differ beyond rounding, or None."""
        a, b = self.to_dict(), other.to_dict()
        if a.get("fly") != b.get("fly"):
            return f"fly {a.get('fly')} != {b.get('fly')}"
        a.pop("fly", None)
        for key in a:
            va, vb = np.atleast_1d(a[key]), np.atleast_1d(b[key])
            if va.dtype.kind in "iuf" and vb.dtype.kind in "iuf":
                if va.shape != vb.shape or not np.allclose(va, vb, rtol=1e-9, atol=1e-9):
                    return f"{key} {a[key]} != {b[key]}"
            elif a[key] != b[key]:
                return f"{key} {a[key]!r} != {b[key]!r}"
        return None

    def to_text(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "plan") -> ScanPlan:
        """Inverse of `to_dict`; InputError naming `source` and the key when malformed (a
        count that is not a whole number, a length or time that is not finite)."""
        for key in ("nx", "ny"):
            if key in d and (isinstance(d[key], bool) or not isinstance(d[key], int)):
                raise InputError(f"plan key '{key}' is {d[key]!r}; expected a whole number",
                                 source=source)
        for key in ("x0_um", "y0_um", "step_x_um", "step_y_um", "height_um", "settle_tau",
                    "dwell_tau"):
            if key in d and not finite_number(d[key]):
                raise InputError(f"plan key '{key}' is {d[key]!r}; expected a finite number",
                                 source=source)
        for key in ("name", "title", "raster"):
            if key in d and not isinstance(d[key], str):
                raise InputError(f"plan key '{key}' is {d[key]!r}; expected text",
                                 source=source)
        field = d.get("field_uT", [0.0] * 3)
        if not (isinstance(field, list) and len(field) == 3
                and all(finite_number(b) for b in field)):
            raise InputError(f"plan key 'field_uT' is {field!r}; expected three finite numbers "
                             "(µT)", source=source)
        try:
            return cls(
                name=str(d["name"]),
                title=str(d.get("title", "")),
                x0=float(d["x0_um"]) * UM,
                y0=float(d["y0_um"]) * UM,
                nx=int(d["nx"]),
                ny=int(d["ny"]),
                step_x=float(d["step_x_um"]) * UM,
                step_y=float(d["step_y_um"]) * UM,
                field=tuple(float(b) * UT for b in d["field_uT"]),  # type: ignore[arg-type]
                height=float(d["height_um"]) * UM,
                raster=str(d["raster"]),
                settle_tau=float(d["settle_tau"]),
                dwell_tau=float(d["dwell_tau"]),
                fly=(FlySettings.from_dict(d["fly"], source=source) if d.get("fly") is not None
                     else None),
            )
        except KeyError as exc:
            raise InputError(f"plan key {exc} is missing; expected every key a plan is written "
                             "with", source=source) from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"plan is malformed ({exc}); expected the plan as written",
                             source=source) from None

    @classmethod
    def from_text(cls, text: str, *, source: str = "plan") -> ScanPlan:
        try:
            d = load_json(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"plan text is not JSON ({exc}); expected the plan as written",
                             source=source) from None
        if not isinstance(d, dict):
            raise InputError("plan text is not a JSON object; expected the plan as written",
                             source=source)
        return cls.from_dict(d, source=source)


def check_field(field: tuple[float, float, float] | np.ndarray, profile: Profile, *,
                label: str) -> None:
    """InputError (naming `label`) when a field (T) is beyond max_field or max_current, or
    is what a field within max_field typed in tesla where µT is asked reads as (4e-05 for
    40 µT: 0.04 nT, an "in field" scan in zero field). Such a field is at most max_field
    × 1e-6 (0.1 nT for 100 µT), below any coil's resolution; one of a few tenths of a nT
    and more (a residual left after nulling the ambient field, set against it) is taken."""
    coils = profile.coils
    b = np.asarray(field, dtype=float)
    if b.shape != (3,) or not np.all(np.isfinite(b)) or np.any(np.abs(b) > 1.0):
        raise InputError(f"{label} is {b.tolist()!r} T; expected three finite components, "
                         f"|B| <= max_field {coils.max_field / UT:g} µT")
    magnitude = float(np.linalg.norm(b))
    in_tesla = coils.max_field * UT  # the largest |B| a field in tesla reads as in µT
    if 0 < magnitude <= in_tesla * (1 + 1e-9):
        raise InputError(
            f"{label} is {_ut(b)} µT (|B| = {magnitude / UT:g} µT), a field no coil sets; "
            f"expected 0 (zero field) or |B| above {in_tesla / UT:g} µT: fields are "
            f"given in µT (a field in tesla? {magnitude / UT:g} T is {magnitude / UT**2:g} µT)"
        )
    if magnitude > coils.max_field * (1 + 1e-9):
        raise InputError(
            f"{label} is {_ut(b)} µT (|B| = {magnitude / UT:g} µT); expected |B| <= "
            f"max_field {coils.max_field / UT:g} µT"
        )
    currents = np.linalg.solve(coils.calibration, b - coils.ambient_field)
    worst = int(np.argmax(np.abs(currents)))
    if abs(currents[worst]) > coils.max_current:
        raise InputError(
            f"{label} {_ut(b)} µT needs {currents[worst]:.3g} A in coil {'xyz'[worst]}; "
            f"expected at most max_current {coils.max_current:g} A"
        )


class GridSizeWarning(UserWarning):
    """The grid asked for covers another area than the size asked for (`size_note`)."""


def size_note(size: tuple[float, float], step: tuple[float, float],
              points: tuple[int, int]) -> str:
    """"" when a grid of `points` (nx, ny) at `step` (sx, sy) m spans the `size` (w, h) m
    asked for; else the area it covers instead and the sizes that would fit. A grid has
    whole steps, so a size that is no whole number of steps cannot be scanned as asked,
    and a user who asked for an area must hear that another one is scanned."""
    whole = [abs(span / st - round(span / st)) < 1e-6 for span, st in zip(size, step, strict=True)]
    covered = tuple((n - 1) * st for n, st in zip(points, step, strict=True))
    if all(whole) and all(math.isclose(c, span, rel_tol=1e-6, abs_tol=1e-12)
                          for c, span in zip(covered, size, strict=True)):
        return ""
    fits = [f"{_um(math.floor(span / st) * st)} or {_um(math.ceil(span / st) * st)} µm along "
            f"{label}" for label, span, st, ok in zip("xy", size, step, whole, strict=True)
            if not ok]
    steps = _um(step[0]) if step[0] == step[1] else f"{_um(step[0])} × {_um(step[1])}"
    return (f"a size of {_um(size[0])} × {_um(size[1])} µm is no whole number of steps of "
            f"{steps} µm: the grid of {points[0]} × {points[1]} points covers "
            f"{_um(covered[0])} × {_um(covered[1])} µm instead"
            + (f" (sizes that fit: {'; '.join(fits)})" if fits else ""))


def _um(length: float) -> str:
    return f"{length / UM:.6g}"


def format_seconds(seconds: float) -> str:
    """A duration for messages: '3.2 h', '4.1 days', or the value itself when not finite."""
    if not math.isfinite(seconds):
        return f"{seconds!r} s"
    if seconds >= 86400:
        return f"{seconds / 86400:.3g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds:.3g} s"


def _ut(b: np.ndarray) -> str:
    return "(" + ", ".join(f"{v / UT:g}" for v in b) + ")"


def title_unstorable(title: str) -> str:
    """What in `title` HDF5 text cannot hold, said for a message, or "": a NUL (a TOML
    recipe's "\\u0000"; HDF5 ends its text there) or a lone surrogate (how Python reads a
    command-line byte that is not UTF-8, which UTF-8 text cannot encode)."""
    for c in title:
        if c == "\0":
            return "a NUL character (U+0000)"
        if "\udc80" <= c <= "\udcff":  # Python's stand-in for the byte (surrogateescape)
            return (f"byte 0x{ord(c) - 0xDC00:02x}, which is not UTF-8 (a terminal or file in "
                    "another encoding)")
        if "\ud800" <= c <= "\udfff":
            return f"{c!r}, a lone surrogate, which is no character"
    return ""
